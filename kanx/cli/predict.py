"""``kanx predict``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
import typer

from kanx.cli import app
from kanx.cli.common import console, handle_errors, print_json
from kanx.io.checkpoint import load_model
from kanx.io.data import load_input_array
from kanx.io.files import atomic_write_text, check_output_path


def predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``model`` on ``x`` ``[N, n_inputs]`` without gradients: ``[N, n_outputs]``."""
    model.eval()
    with torch.no_grad():
        return model(x.float())


def predictions_csv(names: list[str], values: torch.Tensor) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in values.tolist():
        writer.writerow([repr(float(v)) for v in row])
    return buffer.getvalue()


@app.command("predict")
@handle_errors
def predict_command(
    model: Path = typer.Argument(..., help="Checkpoint."),
    inputs: Path = typer.Argument(..., help="CSV with the model's input columns, or a .npy/.pt array [rows, inputs]."),
    output: Path = typer.Option(None, "--output", "-o", help="Write predictions to this CSV."),
    as_json: bool = typer.Option(False, "--json", help="Print predictions as JSON."),
    library: str = typer.Option(None, "--from", help="Foreign checkpoint of: pykan, efficient-kan, fastkan, chebykan (default: detect)."),
) -> None:
    """Evaluate a model on new inputs."""
    if output is not None:
        check_output_path(output, "--output", [model, inputs])
    network = load_model(model, source=library)
    x = load_input_array(inputs, network.meta.input_names)
    y = predict(network, x)
    names = network.meta.output_names
    if output is not None:
        atomic_write_text(output, predictions_csv(names, y))
    if as_json:
        print_json({"outputs": names, "rows": len(y), "predictions": y.tolist()})
    elif output is not None:
        console.print(f"wrote {len(y)} predictions to {output}", markup=False)
    else:
        console.print(predictions_csv(names, y), end="", markup=False)
