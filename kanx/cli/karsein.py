"""KarSein branches of ``kanx prune``, ``kanx plot-activations`` and ``kanx symbolify``.

The command modules load the checkpoint and, for a KarSein model, call ``run_prune``,
``run_plot`` or ``run_symbolify`` here (rendering and file writing; the work is in
``kanx.prune.karsein``, ``kanx.plot.karsein`` and ``kanx.symbolic.karsein``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.markup import escape
from rich.table import Table

from kanx.cli.common import console, err_console, fmt, print_json
from kanx.core.errors import KanxError
from kanx.families.karsein.model import KarSein
from kanx.io.checkpoint import save_model
from kanx.io.ctr import read_columns
from kanx.io.data import load_input_array
from kanx.io.files import atomic_write_text, check_output_path
from kanx.train.karsein import labels_from

if TYPE_CHECKING:
    from kanx.prune.karsein import KarSeinPruneReport
    from kanx.symbolic.karsein import BranchFormula, KarSeinSymbolicResult

TOP = 10


# --------------------------------------------------------------------------- data
def karsein_data(network: KarSein, path: Path | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Rows ``[N, F + n_dense]`` from ``--data`` (CSV with the field/dense columns, or a .npy/.pt
    array) and, when the CSV has the model's target column, its 0/1 labels ``[N]``."""
    if path is None:
        return None, None
    if path.suffix.lower() != ".csv":
        return load_input_array(path, network.input_names), None
    columns = read_columns(path, network.input_names, "--data")
    x = network.encode(columns, str(path))
    with path.open(newline="") as handle:
        header = [h.strip() for h in next(csv.reader(handle))]
    target = network.output_name
    if target not in header:
        return x, None
    try:
        y = labels_from(read_columns(path, [target], "--data")[target], target)
    except KanxError:
        raise KanxError(f"--data {path}: column {target} must hold 0/1 labels") from None
    return x, y


# --------------------------------------------------------------------------- prune
def run_prune(network: KarSein, source: Path, data: Path | None, out: Path, *, feature_threshold: float | None,
              min_fidelity: float, max_auc_drop: float, finetune_steps: int, lamb: float | None, lr: float, seed: int,
              show_all: bool, as_json: bool) -> None:
    """Prune a KarSein model, write ``out`` and print the report."""
    from kanx.prune.karsein import prune_karsein

    x, y = karsein_data(network, data)
    pruned, report = prune_karsein(network, x, y, feature_threshold=feature_threshold, min_fidelity=min_fidelity,
                                   max_auc_drop=max_auc_drop, finetune_steps=finetune_steps, lamb=lamb, lr=lr, seed=seed)
    pruned.provenance["pruning"]["source"] = str(source)
    if data:
        pruned.provenance["pruning"]["data"] = str(data)
    save_model(pruned, out)
    before = source.stat().st_size if source.is_file() else None
    if as_json:
        print_json({"output": str(out), "bytes_before": before, "bytes_after": out.stat().st_size, **report.to_dict()})
        return
    render_prune(report, source, out)
    render_features(report, show_all)
    console.print(f"fields dropped entirely: {', '.join(report.dropped_fields) or 'none'}"
                  + (f"; dense features dropped: {', '.join(report.dropped_dense)}" if report.dropped_dense else ""), markup=False)
    for note in report.notes:
        console.print(note, markup=False)
    console.print(f"wrote {out}", markup=False)


def render_prune(report: KarSeinPruneReport, source: Path, out: Path) -> None:
    table = Table(title=escape(f"kanx prune ({report.mode}) {source} → {out}"))
    for column in ("", "before", "after"):
        table.add_column(column, justify="left" if not column else "right")
    for name, count in report.features_before.items():
        table.add_row(f"active features {name}", str(count), str(report.features_after[name]))
    table.add_row("active parameters", str(report.parameters_before), str(report.parameters_after))
    if report.metrics is not None:
        before, after = report.metrics["before"], report.metrics["after"]
        table.add_row(f"AUC ({report.metrics['rows']} labelled rows)", fmt(before["auc"], 5), fmt(after["auc"], 5))
        table.add_row("log-loss", fmt(before["log_loss"], 5), fmt(after["log_loss"], 5))
    console.print(table)
    console.print(f"fidelity: R² of pruned vs original logit = {report.fidelity:.6f} on {report.holdout_rows} held-out rows",
                  markup=False)


def render_features(report: KarSeinPruneReport, show_all: bool) -> None:
    """Dropped features (or, with --all, every feature), by layer and decreasing attribution."""
    rows = report.features if show_all else report.dropped
    title = "features (original importance)" if show_all else f"dropped features (top {TOP} per layer; --all for every feature)"
    table = Table(title=title)
    for column in ("layer", "feature", "magnitude", "attribution") + (("kept",) if show_all else ()):
        table.add_column(column, justify="left" if column in ("layer", "feature") else "right")
    for layer in dict.fromkeys(r["layer"] for r in rows):
        chosen = sorted((r for r in rows if r["layer"] == layer), key=lambda r: -r["attribution"])
        for row in chosen if show_all else chosen[:TOP]:
            extra = ("yes" if row["kept"] else "no",) if show_all else ()
            table.add_row(layer, escape(row["feature"]), fmt(row["magnitude"], 3), fmt(row["attribution"], 3), *extra)
        if not show_all and len(chosen) > TOP:
            table.add_row(layer, f"… {len(chosen) - TOP} more", "", "")
    console.print(table)


# --------------------------------------------------------------------------- plot
def run_plot(network: KarSein, source: Path, stem: Path, fmt_name: str, dpi: int, layer: int | None, top: int | None,
             show_pruned: bool, diagram_only: bool, as_json: bool) -> None:
    """Draw every per-feature activation of a KarSein model (one file per branch and layer)."""
    from kanx.plot.kan import output_paths
    from kanx.plot.karsein import figure_names, render_karsein

    if layer is not None or diagram_only:
        raise KanxError(f"{'--layer' if layer is not None else '--diagram-only'}: not available for KarSein models "
                        "(every branch and layer is drawn; use --top to limit the panels)")
    for path in output_paths(stem, figure_names(network), fmt_name):
        check_output_path(path, "--output", [source])
    written = render_karsein(network, stem, fmt_name, dpi, top, show_pruned, title=source.stem)
    if as_json:
        print_json({"files": [str(path) for path in written]})
        return
    for path in written:
        console.print(f"wrote {path}", markup=False)


# --------------------------------------------------------------------------- symbolify
def run_symbolify(network: KarSein, data: Path | None, out: Path | None, output: Path | None, as_json: bool,
                  **options: object) -> None:
    """Per-feature fits and composed formulas of a KarSein model; ``options`` go to ``symbolify_karsein``."""
    from kanx.symbolic.karsein import karsein_latex, symbolify_karsein

    if output is not None:
        raise KanxError("--output: KarSein models have no symbolic checkpoint form; use --out formula.tex or --json")
    x, y = karsein_data(network, data)
    result = symbolify_karsein(network, x, y, **options)
    if out is not None:
        atomic_write_text(out, karsein_latex(result))
    if as_json:
        print_json({**result.to_dict(), "written": {"latex": str(out) if out else None}})
        return
    render_symbolify(result)
    if out is not None:
        console.print(f"wrote {out}", markup=False)


def _clip(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 1] + f"… ({len(text)} characters; all with --json or --out)"


def render_fits(result: KarSeinSymbolicResult) -> None:
    table = Table(title=f"kanx symbolify (KarSein): per-feature activations (top {TOP} per layer; all with --json)")
    for column in ("layer", "feature", "status", "function", "R²", "importance"):
        table.add_column(column, justify="left" if column in ("layer", "feature", "status", "function") else "right")
    for layer in dict.fromkeys(f.layer for f in result.features):
        live = sorted((f for f in result.features if f.layer == layer and f.status not in ("masked", "negligible")),
                      key=lambda f: -f.importance)
        for fit in live[:TOP]:
            name = fit.chosen.name if fit.chosen else ("silu only" if fit.status == "silu" else "-")
            table.add_row(layer, escape(fit.label), fit.status, escape(name), fmt(fit.chosen.r2, 6) if fit.chosen else "-",
                          fmt(fit.importance, 3))
        rest = sum(1 for f in result.features if f.layer == layer) - len(live[:TOP])
        if rest:
            table.add_row(layer, f"… {rest} more", "", "", "", "")
    console.print(table)


def render_branch(formula: BranchFormula, title: str, lhs: str) -> None:
    console.print(f"[bold]{escape(title)}[/bold]", soft_wrap=True)
    for symbol, definition in formula.hidden:
        console.print(_clip(f"  {symbol} = {definition}"), markup=False, soft_wrap=True)
    console.print(_clip(f"  {lhs} = {formula.expression}"), markup=False, soft_wrap=True)
    if formula.terms:
        table = Table(title=f"strongest terms of {lhs}")
        for column in ("term", "weights" if formula.head else "coefficient", "variance share"):
            table.add_column(column, justify="right" if column == "variance share" else "left")
        for term in formula.terms[:TOP]:
            shown = _clip(f"⟨w, {term.term}⟩" if term.weights else term.term, 120)
            weights = "[" + ", ".join(fmt(w, 3) for w in term.weights) + "]" if term.weights else fmt(term.coefficient, 4)
            table.add_row(escape(shown), weights, f"{100 * term.share:.2f}%")
        console.print(table)
    fid = formula.fidelity
    console.print(f"  vs network branch (held out): R² {fmt(fid.r2, 6)}  RMSE {fmt(fid.rmse)}  max|err| {fmt(fid.max_abs)}",
                  markup=False, soft_wrap=True)


def render_symbolify(result: KarSeinSymbolicResult) -> None:
    render_fits(result)
    vec = result.vec
    head = "[" + ", ".join(fmt(w, 4) for w in vec.head) + "]"
    render_branch(vec, f"vector-wise: vec = Σ_d h_d·g(e_d) + b, h = {head}, b = {fmt(vec.bias, 4)}; "
                       f"each term c·T of g is ⟨c·h, T(e)⟩", "g")
    render_branch(result.bit, "bit-wise", "bit")
    fid = result.fidelity
    combine = "vec + bit" if result.combine == "sum" else "vec + sigmoid(bit)"
    line = f"logit = {combine} vs network (held out): R² {fmt(fid.r2, 6)}  RMSE {fmt(fid.rmse)}"
    if result.auc is not None:
        line += f"  | AUC formula {fmt(result.auc['formula'], 5)} vs network {fmt(result.auc['network'], 5)}"
    console.print(line, markup=False, soft_wrap=True)
    if result.flagged:
        names = ", ".join(f.label for f in result.flagged)
        err_console.print(f"warning: no library function fits feature(s) {names} above the R² threshold; kept "
                          f"{result.settings['fallback']}", markup=False, soft_wrap=True)
