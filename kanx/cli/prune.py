"""``kanx prune``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from rich.markup import escape
from rich.table import Table

from kanx.cli import app
from kanx.cli.common import DEVICE_HELP, MAX_MEMORY_HELP, console, fmt, handle_errors, print_json, read_data
from kanx.cli.karsein import render_karsein_report
from kanx.core.choices import DEVICES
from kanx.io.files import check_output_path

if TYPE_CHECKING:
    from kanx.pruning import PruneReport

TOP = 10


def default_output(model: Path) -> Path:
    """``dir/stem.pt`` → ``dir/stem.pruned.pt``."""
    return model.with_name(f"{model.stem}.pruned.pt")


def file_size(path: Path) -> int | None:
    """Size of a checkpoint file; None for multi-file sources such as a pykan prefix."""
    return path.stat().st_size if path.is_file() else None


def render_summary(report: PruneReport, source: Path, output: Path) -> None:
    table = Table(title=escape(f"kanx prune ({report.mode}) {source} → {output}"))
    for column in ("", "before", "after"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("widths", " → ".join(map(str, report.widths_before)), " → ".join(map(str, report.widths_after)))
    table.add_row("active edges", str(report.edges_before), str(report.edges_after))
    table.add_row("parameters", str(report.parameters_before), str(report.parameters_after))
    table.add_row("checkpoint bytes", str(file_size(source) or "-"), str(output.stat().st_size))
    if report.target_r2 is not None:
        table.add_row("R² vs data targets", fmt(report.target_r2[0], 6), fmt(report.target_r2[1], 6))
    if report.classification is not None and report.classification["log_loss"] is not None:
        table.add_row("log-loss vs labels", fmt(report.classification["log_loss"][0], 6), fmt(report.classification["log_loss"][1], 6))
    console.print(table)
    if report.classification is not None:
        console.print(f"fidelity: the pruned network decides as the original on {report.fidelity:.2%} of {report.holdout_rows} "
                      f"held-out rows; its class probabilities differ by {report.classification['kl_divergence']:.3g} nats "
                      "(mean KL divergence)", markup=False)
        return
    console.print(f"fidelity: R² of pruned vs original network = {report.fidelity:.6f} on {report.holdout_rows} held-out rows",
                  markup=False)


def render_edges(report: PruneReport, show_all: bool) -> None:
    table = Table(title="kept edges by layer" + ("" if show_all else f" (top {TOP} per layer; --all for every edge)"))
    for column in ("layer", "from", "to", "attribution", "mean |phi|"):
        table.add_column(column, justify="right" if column in ("layer", "attribution", "mean |phi|") else "left")
    for layer in sorted({edge["layer"] for edge in report.edges}):
        rows = [edge for edge in report.edges if edge["layer"] == layer]
        for edge in rows if show_all else rows[:TOP]:
            target = edge["target"] + (f" (factor {edge['factor'] + 1})" if edge["factor"] is not None else "")
            table.add_row(str(layer), escape(edge["source"]), escape(target), fmt(edge["attribution"]), fmt(edge["magnitude"]))
        if not show_all and len(rows) > TOP:
            table.add_row(str(layer), f"… {len(rows) - TOP} more", "", "", "")
    console.print(table)


def render_nodes(report: PruneReport, show_all: bool) -> None:
    table = Table(title="node entropy of incoming |phi| (original network; low = decided on few inputs)")
    for column in ("layer", "node", "active inputs", "entropy", "effective inputs", "score", "kept"):
        table.add_column(column, justify="left" if column == "node" else "right")
    for layer in sorted({row["layer"] for row in report.nodes}):
        rows = sorted((r for r in report.nodes if r["layer"] == layer), key=lambda r: -r["score"])
        for row in rows if show_all else rows[:TOP]:
            table.add_row(str(layer), escape(row["node"] + (f" (factor {row['factor'] + 1})" if row["factor"] is not None else "")),
                          str(row["active_inputs"]), fmt(row["entropy"], 3), fmt(row["effective_inputs"], 3),
                          fmt(row["score"]), "yes" if row["kept"] else "no")
    console.print(table)


@app.command("prune")
@handle_errors
def prune_command(
    model: Path = typer.Argument(..., help="Checkpoint to prune (never overwritten)."),
    data: Path = typer.Option(None, "--data", "-d", help="CSV with the model's input columns (targets used if present)."),
    target: list[str] = typer.Option([], "--target", help="Column(s) of --data holding the model's outputs "
                                     "(repeat or comma-separate; default: the columns named like the outputs)."),
    output: Path = typer.Option(None, "--output", "-o", help="Pruned checkpoint (default MODEL.pruned.pt)."),
    edge_threshold: float = typer.Option(None, "--edge-threshold", help="Keep edges with attribution >= this x the layer's best."),
    node_threshold: float = typer.Option(None, "--node-threshold", help="Keep hidden nodes scoring >= this x the layer's best."),
    feature_threshold: float = typer.Option(None, "--feature-threshold",
                                            help="KarSein: keep features with magnitude >= this x the layer's best."),
    min_fidelity: float = typer.Option(0.99, "--min-fidelity", help="Auto mode: R² to keep against the original (and targets); "
                                      "a classifier: the share of rows deciding the original's class."),
    max_auc_drop: float = typer.Option(0.005, "--max-auc-drop", help="KarSein auto mode: largest AUC loss allowed (labelled --data)."),
    finetune_steps: int = typer.Option(0, "--finetune", help="Retrain the survivors for this many Adam steps."),
    lamb: float = typer.Option(None, "--lamb", help="Sparsity weight for --finetune (default: the model's training value)."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate for --finetune."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split and fine-tuning."),
    show_all: bool = typer.Option(False, "--all", help="List every kept edge and node."),
    device: Literal[DEVICES] = typer.Option("cpu", "--device", help=DEVICE_HELP),
    max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Prune a KAN (edges, nodes) or a KarSein model (features, fields) to its minimal structure (auto mode keeps
    R² >= --min-fidelity) and write a new checkpoint."""
    from kanx.families.registry import family_of
    from kanx.io.checkpoint import save_model
    from kanx.io.load import load_model
    from kanx.pruning import PruneSettings, prune

    out = output if output is not None else default_output(model)
    check_output_path(out, "--output", [model] + ([data] if data else []))
    settings = PruneSettings(edge_threshold=edge_threshold, node_threshold=node_threshold, feature_threshold=feature_threshold,
                             min_fidelity=min_fidelity, max_auc_drop=max_auc_drop, finetune_steps=finetune_steps, lamb=lamb,
                             lr=lr, seed=seed, device=device, max_memory=max_memory)
    network = load_model(model)
    rows = read_data(network, data, target)
    report = prune(network, rows, settings)
    pruned = report.model
    pruned.provenance["pruning"]["source"] = str(model)
    if data:
        pruned.provenance["pruning"]["data"] = str(data)
    save_model(pruned, out)
    if as_json:
        print_json({"output": str(out), "bytes_before": file_size(model), "bytes_after": out.stat().st_size,
                    **report.to_dict()})
        return
    RENDERERS[family_of(network).name](report, model, out, show_all)
    console.print(f"wrote {out}", markup=False)


def render_kan_report(report: PruneReport, model: Path, out: Path, show_all: bool) -> None:
    """Summary, kept edges, node entropies, unused inputs and notes of a KAN pruning."""
    render_summary(report, model, out)
    render_edges(report, show_all)
    render_nodes(report, show_all)
    if report.unused_inputs:
        console.print(f"unused inputs (no remaining edge): {', '.join(report.unused_inputs)}", markup=False)
    for note in report.notes:
        console.print(note, markup=False)


RENDERERS = {"kan": render_kan_report, "karsein": render_karsein_report}
