"""``kanx info``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.table import Table

from kanx.cli import app
from kanx.cli.common import console, fmt, handle_errors, print_json
from kanx.core.choices import SOURCES


def render_karsein_info(info: dict, source: Path) -> None:
    """Text view of ``describe_karsein``."""
    console.print(f"[bold]{source}[/bold]  family karsein  {info['parameters']} parameters")
    fields = Table(title="fields")
    for column in ("field", "vocabulary", "OOV row"):
        fields.add_column(column)
    for item in info["fields"]:
        fields.add_row(item["name"], str(item["vocabulary_size"]), "yes" if item["oov_row"] else "no")
    console.print(fields)
    branches = info["branches"]
    bit = " → ".join(map(str, branches["bit_wise"]["widths"]))
    vec = " → ".join(map(str, branches["vector_wise"]["widths"]))
    console.print(f"embedding dim {info['emb_dim']}; dense features: {', '.join(info['dense']) or 'none'}", markup=False)
    console.print(f"bit-wise branch widths {bit}", markup=False)
    pairs = branches["vector_wise"]["pairwise_layers"]
    console.print(f"vector-wise branch widths {vec}; pairwise products in layers {pairs}", markup=False)
    basis = info["basis"]
    console.print(f"combine {info['combine']}; basis grid={basis['grid']}, k={basis['k']}; output {info['output']}", markup=False)
    from kanx.families.checks import recorded

    test = recorded(info["training"], "metrics", "test")
    if test is not None:
        console.print(f"test AUC {fmt(recorded(test, 'auc'), 4)}, log-loss {fmt(recorded(test, 'log_loss'), 4)}", markup=False)
    for key, value in info["provenance"].items():
        console.print(f"{key}: {value}", markup=False)


def render_info(info: dict, source: Path) -> None:
    INFO_RENDERERS[info["family"]](info, source)


def render_kan_info(info: dict, source: Path) -> None:
    basis = ", ".join(f"{k}={v}" for k, v in info["basis"].items())
    widths = " → ".join(str(w) for w in info["widths"])
    console.print(f"[bold]{source}[/bold]  family {info['family']}  widths {widths}")
    console.print(f"basis {basis}; base function {info['base_function']}; {info['parameters']} parameters", markup=False)
    for layer, arities in info["multiplication_nodes"].items():
        console.print(f"layer {layer}: multiplication nodes of arity {', '.join(map(str, arities))}", markup=False)
    table = Table(title="edges per layer")
    for column in ("layer", "in → nodes", "edges", "active", "pruned", "symbolic"):
        table.add_column(column, justify="right")
    for layer in info["layers"]:
        table.add_row(
            str(layer["layer"]), f"{layer['inputs']} → {layer['nodes']}", str(layer["total"]),
            str(layer["active"]), str(layer["pruned"]), str(layer["symbolic"]),
        )
    console.print(table)
    inputs = Table(title="inputs")
    for column in ("name", "min", "max"):
        inputs.add_column(column)
    for item in info["inputs"]:
        inputs.add_row(item["name"], fmt(item["min"]), fmt(item["max"]))
    console.print(inputs)
    console.print(f"outputs: {', '.join(info['outputs'])}; stored sample: {info['stored_sample_rows']} rows; "
                  f"held-out rows with targets: {info['stored_held_out_rows']}", markup=False)
    task = info.get("task") or {}
    if task.get("kind") == "classify":
        console.print(f"classifier of {task['label']}: classes {', '.join(task['classes'])}", markup=False)
    if info["symbolic_edges"]:
        sym = Table(title="symbolic edges  c·f(a·x+b)+d")
        for column in ("layer", "input", "subnode", "f", "a", "b", "c", "d"):
            sym.add_column(column)
        for edge in info["symbolic_edges"]:
            sym.add_row(str(edge["layer"]), str(edge["input"]), str(edge["subnode"]), edge["function"], *(fmt(v) for v in edge["affine"]))
        console.print(sym)
    from kanx.families.checks import recorded, recorded_number

    provenance = {**info["provenance"]}
    training = info["training"]
    compiled = recorded(training, "compiled") if training else None
    if isinstance(compiled, dict):  # laid out from a formula, not trained
        ranges = compiled.get("ranges")  # a free-form record: whatever the file holds
        if isinstance(ranges, dict):
            provenance["ranges"] = ", ".join(f"{name}={bounds[0]}:{bounds[1]}" if isinstance(bounds, list) and len(bounds) == 2
                                             else f"{name}=?" for name, bounds in ranges.items())
        provenance["max relative error"] = fmt(recorded_number(compiled, "max_relative_error", default=float("nan")), 3)
    elif training:
        provenance["data"] = recorded(training, "data_source")
        provenance["fingerprint"] = recorded(training, "data_fingerprint")
        provenance["seed"] = recorded(training, "seed")
        if recorded(training, "metrics") is not None:
            provenance["test R²"] = fmt(recorded(training, "metrics", "test", "r2"), 6)
    for key, value in provenance.items():
        console.print(f"{key}: {value}", markup=False)


INFO_RENDERERS = {"kan": render_kan_info, "karsein": render_karsein_info}  # by family name (kanx.families.registry)


@app.command("info")
@handle_errors
def info_command(
    model: Path = typer.Argument(Path("model.pt"), help="Checkpoint (default model.pt)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    library: Literal[SOURCES] | None = typer.Option(None, "--from", help="Library a foreign checkpoint came from (default: detect)."),
) -> None:
    """Architecture, parameters, active/pruned/symbolic edges and provenance of a model."""
    from kanx.io.load import load_model
    from kanx.summary import describe

    info = describe(load_model(model, source=library))
    if as_json:
        print_json(info)
    else:
        render_info(info, model)
