"""``kanx predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from kanx.cli import app
from kanx.cli.common import DEVICE_HELP, MAX_MEMORY_HELP, console, handle_errors, print_json
from kanx.core.choices import DEVICES, SOURCES
from kanx.io.files import atomic_write_text, check_output_path


@app.command("predict")
@handle_errors
def predict_command(
    model: Path = typer.Argument(..., help="Checkpoint."),
    inputs: Path = typer.Argument(
        ..., help="CSV with the model's input columns (KarSein: field tokens, unknown ones use the OOV row), or a .npy/.pt array."
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write predictions to this CSV."),
    device: Literal[DEVICES] = typer.Option("cpu", "--device", help=DEVICE_HELP),
    max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print predictions as JSON."),
    library: Literal[SOURCES] | None = typer.Option(None, "--from", help="Library a foreign checkpoint came from (default: detect)."),
) -> None:
    """Evaluate a model on new inputs (a classifier: the predicted label and each class's probability)."""
    from kanx.core.resources import check_resources
    from kanx.families.registry import family_of
    from kanx.io.data import read_model_rows
    from kanx.io.load import load_model
    from kanx.prediction import classes_of, predict, predicted_labels, prediction_columns, predictions_csv

    check_resources(device, max_memory)
    if output is not None:
        check_output_path(output, "--output", [model, inputs])
    network = load_model(model, source=library)
    y = predict(network, read_model_rows(network, inputs, min_rows=1, infer_targets=False), device, max_memory)
    names = prediction_columns(network)[1:] if classes_of(network) is not None else family_of(network).output_names(network)
    if output is not None:
        atomic_write_text(output, predictions_csv(network, y))
    if as_json:
        classes = classes_of(network)
        labels = {"classes": list(classes.names), "labels": predicted_labels(network, y)} if classes is not None else {}
        print_json({"outputs": names, "rows": len(y), **labels, "predictions": y.tolist()})
    elif output is not None:
        console.print(f"wrote {len(y)} predictions to {output}", markup=False)
    else:
        console.print(predictions_csv(network, y), end="", markup=False)
