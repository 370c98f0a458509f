"""``kanx predict``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
import typer

from kanx.cli import app
from kanx.cli.common import console, handle_errors, print_json
from kanx.families.karsein.model import KarSein
from kanx.io.ctr import read_columns
from kanx.io.data import load_input_array
from kanx.io.files import atomic_write_text, check_output_path
from kanx.io.load import load_model


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
    inputs: Path = typer.Argument(
        ..., help="CSV with the model's input columns (KarSein: field tokens, unknown ones use the OOV row), or a .npy/.pt array."
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write predictions to this CSV."),
    as_json: bool = typer.Option(False, "--json", help="Print predictions as JSON."),
    library: str = typer.Option(None, "--from", help="Foreign checkpoint of: pykan, efficient-kan, fastkan, chebykan (default: detect)."),
) -> None:
    """Evaluate a model on new inputs."""
    if output is not None:
        check_output_path(output, "--output", [model, inputs])
    network = load_model(model, source=library)
    if isinstance(network, KarSein):
        if inputs.suffix.lower() == ".csv":
            x = network.encode(read_columns(inputs, network.input_names, "INPUTS"), str(inputs))
        else:
            x = load_input_array(inputs, network.input_names)
        names = [network.output_name]
    else:
        x = load_input_array(inputs, network.meta.input_names)
        names = network.meta.output_names
    y = predict(network, x)
    if output is not None:
        atomic_write_text(output, predictions_csv(names, y))
    if as_json:
        print_json({"outputs": names, "rows": len(y), "predictions": y.tolist()})
    elif output is not None:
        console.print(f"wrote {len(y)} predictions to {output}", markup=False)
    else:
        console.print(predictions_csv(names, y), end="", markup=False)
