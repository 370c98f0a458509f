"""``kanx plot-activations``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from kanx.cli import app
from kanx.cli.common import DEVICE_HELP, MAX_MEMORY_HELP, console, handle_errors, print_json
from kanx.core.choices import DEVICES, NODE_ORDERS
from kanx.core.choices import FIGURE_FORMATS as FORMATS
from kanx.core.errors import KanxError
from kanx.io.files import check_output_path


def resolve_format(fmt: str | None, output: Path | None) -> str:
    """``--format``, else the suffix of ``-o`` when it is png/svg/pdf, else png."""
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    if fmt is None:
        return suffix if suffix in FORMATS else "png"
    if suffix in FORMATS and suffix != fmt:
        raise KanxError(f"--output {output}: suffix .{suffix} does not match --format {fmt}")
    return fmt


def resolve_stem(output: Path | None, model: Path, fmt: str) -> Path:
    """Output stem: ``-o`` without a png/svg/pdf suffix; ``<model stem>_activations`` in the
    current folder by default, or in ``-o`` when it is a folder."""
    if output is None or output.is_dir():
        return (output or Path()) / f"{model.stem}_activations"
    if output.suffix.lower().lstrip(".") in FORMATS:
        return output.with_suffix("")
    return output


def check_dpi(dpi: int) -> None:
    if not 10 <= dpi <= 1200:
        raise KanxError(f"--dpi {dpi}: must be between 10 and 1200")


def check_order_output(path: Path, model: Path, figures: list[Path], network: object) -> None:
    """``--save-order PATH``: a new checkpoint for a KAN, neither the input nor a figure file."""
    check_output_path(path, "--save-order", [model])
    if any(path.resolve() == figure.resolve() for figure in figures):
        raise KanxError(f"--save-order {path}: is also a figure file of this plot")
    if not hasattr(network, "set_node_order"):  # a KAN's; the KarSein plots have no diagram
        family = getattr(network, "family", type(network).__name__)
        raise KanxError(f"--save-order {path}: stores the node order of a KAN diagram, {model} holds a {family} model")


def save_node_order(network: object, mode: str, path: Path) -> Path:
    """Write ``network`` with the diagram's node order for ``mode`` stored to ``path`` (atomically)."""
    from kanx.io.checkpoint import save_model
    from kanx.plot.order import node_order

    network.set_node_order(node_order(network, mode).order)
    return save_model(network, path)


@app.command("plot-activations")
@handle_errors
def plot_activations_command(
    model: Path = typer.Argument(..., help="Checkpoint to draw."),
    output: Path = typer.Option(None, "--output", "-o", help="Output stem (default <model>_activations here); "
                                "files are <stem>_layer<L>.<fmt> and <stem>_diagram.<fmt>, or <stem>.pdf."),
    layer: int = typer.Option(None, "--layer", help="Only this layer's activation grid (0-based)."),
    top: int = typer.Option(None, "--top", help="Keep the N most important edges per layer."),
    fmt: Literal[FORMATS] | None = typer.Option(None, "--format",
                                              help="Figure type (pdf: one multipage file; default: -o's suffix, else png)."),
    dpi: int = typer.Option(100, "--dpi", help="Resolution of png output (and of raster parts elsewhere)."),
    show_pruned: bool = typer.Option(False, "--show-pruned", help="Also draw pruned edges, greyed."),
    diagram_only: bool = typer.Option(False, "--diagram-only", help="Only the network diagram."),
    device: Literal[DEVICES] = typer.Option("cpu", "--device", help=DEVICE_HELP),
    max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP),
    node_order: Literal[NODE_ORDERS] = typer.Option(
        "auto", "--node-order", help="Hidden nodes of the diagram: auto (the order stored with the model, else one that "
        "minimises edge crossings), crossings (compute that order afresh), index (by node index)."),
    save_order: Path = typer.Option(None, "--save-order", metavar="PATH", help="Also write a copy of the checkpoint to "
                                    "PATH with the diagram's node order stored, so later plots match (never the input)."),
    as_json: bool = typer.Option(False, "--json", help="Print the written paths as JSON."),
) -> None:
    """Draw every learned activation (one grid per layer) and the network diagram (hidden nodes
    ordered to minimise edge crossings unless --node-order index)."""
    from kanx.io.figures import output_paths
    from kanx.io.load import load_model
    from kanx.plot import PlotSettings, figure_names, plot_activations

    check_dpi(dpi)
    settings = PlotSettings(layer=layer, top=top, show_pruned=show_pruned, diagram=True, diagram_only=diagram_only,
                            title=model.stem, device=device, max_memory=max_memory, node_order=node_order)
    fmt = resolve_format(fmt, output)
    stem = resolve_stem(output, model, fmt)
    if not stem.parent.is_dir():
        raise KanxError(f"--output {output}: folder {stem.parent} does not exist")
    network = load_model(model)
    figures = output_paths(stem, figure_names(network, settings), fmt)
    for path in figures:
        check_output_path(path, "--output", [model])
    if save_order is not None:
        check_order_output(save_order, model, figures, network)
    written = plot_activations(network, None, settings).save(stem, fmt, dpi)
    stored = save_node_order(network, node_order, save_order) if save_order is not None else None
    if as_json:
        print_json({"files": [str(path) for path in written], **({"checkpoint": str(stored)} if stored else {})})
        return
    for path in written:
        console.print(f"wrote {path}", markup=False)
    if stored is not None:
        console.print(f"wrote {stored} (the diagram's node order stored)", markup=False)
