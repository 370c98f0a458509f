"""``kanx import``: convert a pykan / efficient-kan / FastKAN / ChebyKAN / KarSein checkpoint to kanx."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from kanx.cli import app
from kanx.cli.common import console, fmt, handle_errors, print_json
from kanx.core.choices import BASE_FUNCTIONS, SOURCES, TASKS
from kanx.core.errors import KanxError
from kanx.io.files import check_output_path

if TYPE_CHECKING:
    from kanx.families.kan.network import KAN
    from kanx.families.karsein.model import KarSein


def default_output(source: Path) -> Path:
    """``<stem>.kanx.pt`` in the current folder (pykan: ``<prefix>.kanx.pt``), so importing
    never writes into the folder a foreign checkpoint came from."""
    from kanx.io.importers import pykan

    prefix = pykan.locate(source)
    if prefix is not None:
        return Path(f"{prefix.name}.kanx.pt")
    return Path(f"{source.name.split('.')[0] or 'model'}.kanx.pt")


def input_files(source: Path) -> list[Path]:
    """Every file the import reads (so the output can never replace one of them)."""
    from kanx.io.importers import pykan

    prefix = pykan.locate(source)
    if prefix is None:
        return [source]
    return [Path(f"{prefix}{suffix}") for suffix in pykan.SUFFIXES]


def check_writable(output: Path, option: str) -> None:
    folder = output.parent if str(output.parent) else Path(".")
    if not os.access(folder, os.W_OK):
        raise KanxError(f"{option} {output}: folder {folder} is not writable (pass -o/--output elsewhere)")


def reference_pair(source: Path, inputs: Path | None, outputs: Path | None) -> tuple[Path, Path] | None:
    """``(inputs.pt, outputs.pt)`` to verify against: the options, or files beside the input."""
    if (inputs is None) != (outputs is None):
        raise KanxError("--check-inputs and --check-outputs must be given together")
    if inputs is not None:
        return inputs, outputs
    folder = source if source.is_dir() else source.parent
    pair = (folder / "inputs.pt", folder / "outputs.pt")
    return pair if all(p.is_file() for p in pair) else None


@app.command("import")
@handle_errors
def import_command(
    source: Path = typer.Argument(..., help="Foreign checkpoint: a state-dict .pt, or a pykan saveckpt prefix / file / folder."),
    library: Literal[SOURCES] | None = typer.Option(None, "--from", help="Library the checkpoint came from (default: detect)."),
    output: Path = typer.Option(None, "--output", "-o", help="kanx checkpoint to write (default <stem>.kanx.pt beside the input)."),
    rbf_width: float = typer.Option(None, "--rbf-width", help="FastKAN Gaussian width h (default: the RBF grid spacing)."),
    norm_eps: float = typer.Option(None, "--norm-eps", help="FastKAN LayerNorm epsilon (default 1e-5)."),
    base_fn: Literal[BASE_FUNCTIONS] | None = typer.Option(None, "--base-fn", help="Base activation of efficient-kan/FastKAN "
                                                          "(default silu)."),
    config: Path = typer.Option(None, "--config", help="KarSein: JSON with the hyper-parameters the state dict lacks (docs/karsein.md)."),
    check_inputs: Path = typer.Option(None, "--check-inputs", help="Inputs tensor [rows, n_in] to verify the import on."),
    check_outputs: Path = typer.Option(None, "--check-outputs", help="The source library's outputs on --check-inputs."),
    task: Literal[TASKS] = typer.Option("regression", "--task", help="classify: the model's outputs are class logits "
                                        "(trained with cross-entropy); name the classes with --classes."),
    classes: str = typer.Option(None, "--classes", help="classify: the classes in the order of the outputs, a,b,c (two "
                                "classes and one output: the output is the second class's log-odds)."),
    label: str = typer.Option("class", "--label", help="classify: the data column holding the class labels."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Convert another KAN library's checkpoint into a kanx checkpoint (exact mapping, no retraining)."""
    from kanx.families.registry import family_of
    from kanx.io.checkpoint import save_model
    from kanx.io.data import split_names
    from kanx.io.importers import import_checkpoint, reference_difference
    from kanx.io.load import declared_classifier
    from kanx.io.torchfile import read_payload

    target = output if output is not None else default_output(source)
    check_output_path(target, "--output", input_files(source) + ([config] if config is not None else []))
    check_writable(target, "--output")
    options = {"config": config} if config is not None else {}
    if (task == "classify") != (classes is not None):
        raise KanxError("--task classify and --classes go together: name the classes of the outputs")
    model = import_checkpoint(source, library, rbf_width=rbf_width, norm_eps=norm_eps, base_fn=base_fn, **options)
    if task == "classify":
        model = declared_classifier(model, split_names(classes), label)
    pair = reference_pair(source, check_inputs, check_outputs)
    difference = None
    if pair is not None:
        difference = reference_difference(model, read_payload(pair[0]), read_payload(pair[1]), strict=check_inputs is not None)
    save_model(model, target)
    summary = SUMMARIES[family_of(model).name](model, source, target, difference, pair)
    if as_json:
        print_json(summary)
    else:
        render_summary(summary)


def kan_summary(model: KAN, source: Path, target: Path, difference: float | None, pair) -> dict:
    """The import summary of a KAN."""
    return {
        "source": str(source), "library": model.provenance["imported_from"], "layout": model.provenance["layout"],
        "output": str(target), "widths": list(model.widths), "basis": dict(model.basis), "base_function": model.base_fn,
        "parameters": model.parameter_count(), "inferred": model.provenance["inferred"],
        "max_abs_difference": difference, "reference": [str(p) for p in pair] if difference is not None else None,
        **({"task": "classify", "label": model.meta.label, "classes": list(model.meta.classes)} if model.classes is not None else {}),
    }


def karsein_summary(model: KarSein, source: Path, target: Path, difference: float | None, pair) -> dict:
    """The import summary of a KarSein model (fields and branches instead of KAN widths)."""
    return {
        "source": str(source), "library": "karsein", "layout": model.provenance["layout"], "output": str(target),
        "widths": model.vec_widths, "basis": {"kind": "bspline", "grid": model.grid, "k": model.k},
        "base_function": "silu", "parameters": model.parameter_count(), "inferred": model.provenance["inferred"],
        "fields": list(model.fields), "bit_widths": model.bit_widths, "vec_widths": model.vec_widths,
        "pairwise": list(model.pairwise), "combine": model.combine,
        "max_abs_difference": difference, "reference": [str(p) for p in pair] if difference is not None else None,
    }


def render_summary(summary: dict) -> None:
    widths = " → ".join(str(w) for w in summary["widths"])
    basis = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in summary["basis"].items())
    console.print(f"imported {summary['source']} ({summary['library']}: {summary['layout']})", markup=False)
    console.print(f"widths {widths}; basis {basis}; base {summary['base_function']}; {summary['parameters']} parameters", markup=False)
    if summary["max_abs_difference"] is not None:
        console.print(f"max |kanx - {summary['library']}| on {summary['reference'][0]}: {summary['max_abs_difference']:.3g}", markup=False)
    if summary.get("task") == "classify":
        console.print(f"classifier of {summary['label']}: classes {', '.join(summary['classes'])}", markup=False)
    console.print(f"wrote {summary['output']}", markup=False)


SUMMARIES = {"kan": kan_summary, "karsein": karsein_summary}
