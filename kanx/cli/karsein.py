"""Rendering of KarSein reports for ``kanx prune`` and ``kanx symbolify`` (the command modules
pick these through their per-family tables; the work is in ``kanx.pruning.karsein`` and
``kanx.symbolic.karsein``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from kanx.cli.common import console, err_console, fmt

if TYPE_CHECKING:
    from kanx.pruning.karsein import KarSeinPruneReport
    from kanx.symbolic.karsein import BranchFormula, KarSeinSymbolicResult

TOP = 10


# --------------------------------------------------------------------------- prune
def render_karsein_report(report: KarSeinPruneReport, source: Path, out: Path, show_all: bool) -> None:
    """Summary, dropped (or all) features, dropped fields and notes of a KarSein pruning."""
    render_prune(report, source, out)
    render_features(report, show_all)
    console.print(f"fields dropped entirely: {', '.join(report.dropped_fields) or 'none'}"
                  + (f"; dense features dropped: {', '.join(report.dropped_dense)}" if report.dropped_dense else ""), markup=False)
    for note in report.notes:
        console.print(note, markup=False)


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


# --------------------------------------------------------------------------- symbolify
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
    fid = result.logit_fidelity
    combine = "vec + bit" if result.combine == "sum" else "vec + sigmoid(bit)"
    line = f"logit = {combine} vs network (held out): R² {fmt(fid.r2, 6)}  RMSE {fmt(fid.rmse)}"
    if result.auc is not None:
        line += f"  | AUC formula {fmt(result.auc['formula'], 5)} vs network {fmt(result.auc['network'], 5)}"
    console.print(line, markup=False, soft_wrap=True)
    if result.flagged:
        names = ", ".join(f.label for f in result.flagged)
        err_console.print(f"warning: no library function fits feature(s) {names} above the R² threshold; kept "
                          f"{result.settings['fallback']}", markup=False, soft_wrap=True)
