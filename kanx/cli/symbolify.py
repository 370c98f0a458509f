"""``kanx symbolify``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import typer
from rich.table import Table

from kanx.cli import app
from kanx.cli.common import DEVICE_HELP, MAX_MEMORY_HELP, console, err_console, fmt, handle_errors, print_json, read_data
from kanx.cli.karsein import render_symbolify
from kanx.core.choices import DEVICES, ENGINES, EXPORT_LANGUAGES, FALLBACKS, LOGISTIC_ROUTE, SPARSE_ROUTE, STRATEGIES
from kanx.core.errors import KanxError
from kanx.io.files import atomic_write_text, check_output_path

TABLE_ROWS = 50  # rows of the edge table and warnings shown for a wide model (--json has all)
HIDDEN_SHOWN = 10


def complete_language(context, parameter, incomplete: str) -> list:
    """Shell completion for --export's first value."""
    return [language for language in EXPORT_LANGUAGES if language.startswith(incomplete)]


@app.command("symbolify")
@handle_errors
def symbolify_command(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="kanx checkpoint."),
    out: Path = typer.Option(None, "--out", help="Write a LaTeX fragment (equations + per-edge table)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write a checkpoint whose edges are symbolic."),
    engine: Literal[ENGINES] = typer.Option("builtin", "--engine", help="Symbolic regression engine."),
    lib: str = typer.Option(None, "--lib", help="Restrict the library, e.g. x,x^2,sin,exp."),
    lib_add: list[str] = typer.Option([], "--lib-add", help="Add a function of x in sympy syntax, e.g. 'x*exp(-x)'; repeatable."),
    r2_threshold: float = typer.Option(0.99, "--r2-threshold", help="Minimum R² for an edge to become symbolic."),
    tolerance: float = typer.Option(2e-3, "--tolerance", help="Pick the simplest fit within this R² of the best."),
    negligible_threshold: float = typer.Option(1e-2, "--negligible-threshold", "--prune-threshold",
                                               help="Edges with attribution below this become constants."),
    fallback: Literal[FALLBACKS] = typer.Option("numeric", "--fallback",
                                 help="What an edge no library function fits becomes."),
    data: Path = typer.Option(None, "--data", help="CSV of model inputs (+ outputs if known), or a .npy/.pt input array."),
    target: list[str] = typer.Option([], "--target", help="Column(s) of --data holding the model's outputs "
                                     "(repeat or comma-separate; default: the columns named like the outputs)."),
    finetune: int = typer.Option(0, "--finetune", help="LBFGS steps re-optimising the symbolic constants end to end."),
    digits: int = typer.Option(4, "--digits", help="Significant digits of the printed constants."),
    seed: int = typer.Option(0, "--seed", help="Seed for the fit/held-out split and the engines."),
    strategy: Literal[STRATEGIES] = typer.Option("auto", "--strategy",
                                 help="edges: fit every edge and compose; structure-first: decompose the network's function first "
                                 "(power laws, products, sums, transformed targets, variable combinations; docs/symbolify.md); "
                                 "auto: with targets in --data both, per output the formula that fits held-out rows better; else edges."),
    budget: float = typer.Option(1_000_000, "--budget", help="structure-first: search work per output, in work units (rows the "
                                 "network is asked about, 1-D fits and refits counted): the same options give the same formula "
                                 "on any machine."),
    time_limit: float = typer.Option(None, "--time-limit", help="structure-first: optional wall-clock cap per output, in "
                                     "seconds (results then depend on the machine; the report says when it cut a search)."),
    refine: str = typer.Option("auto", "--refine", metavar="auto|N",
                               help="Train the network N more LBFGS steps on --data before extraction; auto: only when its R² on "
                               "the data is below what the strategy needs; 0: never."),
    export: tuple[str, Path] | None = typer.Option(
        None, "--export", metavar=f"[{'|'.join(EXPORT_LANGUAGES)}] FILE", shell_complete=complete_language,
        help="Write the formulas as a Python module (one function per output) computed with math, NumPy or torch."),
    device: Literal[DEVICES] = typer.Option("cpu", "--device", help=DEVICE_HELP),
    max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Turn a trained KAN into formulas: fit every edge, compose, simplify, check fidelity."""
    from kanx.families.registry import family_of
    from kanx.io.checkpoint import save_model
    from kanx.io.load import load_model
    from kanx.symbolic import SymbolifySettings, symbolify

    if output is not None and strategy == "auto":
        strategy = "edges"  # a symbolic checkpoint holds edge formulas only
    settings = SymbolifySettings(engine=engine, lib=lib, lib_add=tuple(lib_add), r2_threshold=r2_threshold, tolerance=tolerance,
                                 negligible_threshold=negligible_threshold, fallback=fallback, finetune_steps=finetune, digits=digits,
                                 seed=seed, strategy=strategy, budget=budget, time_limit=time_limit,
                                 refine=parse_refine(refine),
                                 device=device, max_memory=max_memory)
    if out is not None:
        check_output_path(out, "--out", [model_path])
    if output is not None:
        check_output_path(output, "--output", [model_path])
    if export is not None:
        if export[0] not in EXPORT_LANGUAGES:
            raise KanxError(f"--export {export[0]!r}: use one of {', '.join(EXPORT_LANGUAGES)} (then the file name)")
        check_output_path(export[1], "--export", [model_path])
    written = [path.resolve() for path in (out, output, export[1] if export else None) if path is not None]
    if len(set(written)) < len(written):
        raise KanxError("--out, --output and --export must name different files")
    if output is not None and strategy == "structure-first":
        raise KanxError("--output writes a network with symbolic edges; use it with --strategy edges")
    model = load_model(model_path)
    writer = WRITERS[family_of(model).name]
    if output is not None and writer.checkpoint is None:
        raise KanxError("--output: KarSein models have no symbolic checkpoint form; use --out formula.tex or --json")
    if export is not None and writer.code is None:
        raise KanxError("--export: a KarSein model's output runs through embeddings and has no closed formula to export; "
                        "use --out formula.tex or --json for its per-feature formulas")
    result = symbolify(model, read_data(model, data, target), settings)
    code = result.to_code(export[0], source=model_path.name) if export is not None else None
    if out is not None:
        atomic_write_text(out, result.to_latex())
    if output is not None:
        save_model(result.model, output)
    if code is not None:
        atomic_write_text(export[1], code)
    failed = oracle_failed(result)
    if as_json:
        summary = result.to_dict()
        summary["written"] = {"latex": str(out) if out else None}
        if writer.checkpoint is not None:
            summary["written"]["checkpoint"] = str(output) if output else None
            summary["written"]["code"] = str(export[1]) if export else None
        print_json(summary)
        if failed:
            raise typer.Exit(1)
        return
    writer.render(result)
    for path in (out, output, export[1] if export else None):
        if path is not None:
            console.print(f"wrote {path}", markup=False)
    if failed:
        raise typer.Exit(1)


def parse_refine(text: str) -> int | None:
    """``--refine``: ``auto`` → ``None``, else a number of steps."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise KanxError(f"--refine {text!r}: use auto or a number of LBFGS steps, e.g. 100") from None


def oracle_failed(result) -> bool:
    """True when the network failed on the data: the formulas are not the law (exit code 1)."""
    return result.oracle_quality is not None and not result.oracle_quality.is_law



def render(result) -> None:
    """Rich tables: the network's quality on the data, live edges, then the formulas with their fidelity."""
    from kanx.symbolic.structure.strategy import cut_by_clock

    oracle = result.oracle_quality
    if oracle is not None:
        line = oracle.message(result.output_names)
        if oracle.verdict == "good":
            console.print(f"oracle: {line}", markup=False, soft_wrap=True)
        else:
            err_console.print(f"warning: {line}", markup=False, soft_wrap=True)
        if oracle.noise is not None:
            console.print(f"noise: {oracle.noise_text(result.output_names)}", markup=False, soft_wrap=True)
    for name, log in zip(result.output_names, result.log):
        if log.get("structure_text"):
            console.print(f"structure of {name} (found on the network):", markup=False)
            for line in log["structure_text"]:
                console.print("  " + line, markup=False, soft_wrap=True)
        for dropped in log.get("dropped_inputs") or []:
            console.print(f"  dropped input {dropped['input']} for {name}: {dropped['reason']}", markup=False, soft_wrap=True)
        if log.get("refitted_on_data"):
            console.print(f"  refitted to the data: the piece of {', '.join(log['refitted_on_data'])} in {name} "
                          f"(the form found on the network fits them worse)", markup=False, soft_wrap=True)
        if cut_by_clock(log):
            err_console.print(f"warning: --time-limit cut the search for {name} short: this formula depends on the machine",
                              markup=False, soft_wrap=True)
        for match in log.get("physical_constants") or []:
            console.print(f"  constant {match['value']:.6g} in {name} taken as {match['constant']} = {match['exact']:.10g} "
                          f"({match['description']})", markup=False, soft_wrap=True)
    if result.edges:
        render_edges(result)
    render_formulas(result)
    if getattr(result, "classification", None) is not None:
        for name, expr in result.probability_formulas():
            console.print(f"{name} = {expr}", markup=False, soft_wrap=True)
        console.print(f"as a classifier: {result.classification.text()}", markup=False, soft_wrap=True)


def render_edges(result) -> None:
    """The live edges and their chosen functions (the ``TABLE_ROWS`` most important of a wide model)."""
    live = [edge for edge in result.edges if edge.status not in ("masked", "negligible")]
    shown = live if len(live) <= TABLE_ROWS else sorted(live, key=lambda e: -e.importance)[:TABLE_ROWS]
    title = "kanx symbolify: edges" + ("" if shown is live else f" (the {TABLE_ROWS} most important of {len(live)}; --json for all)")
    table = Table(title=title)
    for column in ("layer", "in", "sub", "status", "function", "R²", "importance"):
        table.add_column(column, justify="left" if column in ("status", "function") else "right")
    for edge in shown:
        name = edge.chosen.name if edge.chosen else "-"
        r2 = fmt(edge.chosen.r2, 6) if edge.chosen else "-"
        table.add_row(str(edge.layer), str(edge.i), str(edge.j), edge.status, name, r2, fmt(edge.importance, 3))
    console.print(table)


def render_formulas(result) -> None:
    """One line per output formula and its fidelity, then warnings about flagged edges."""
    not_law = result.oracle_quality is not None and not result.oracle_quality.is_law
    routes = list(result.strategy_used) + [""] * len(result.expressions)
    for name, expr, fid, route in zip(result.output_names, result.expressions, result.fidelity, routes):
        net = fid.network
        label = ("fitted on the rows (sparse regression), not read from the network: " if route == SPARSE_ROUTE
                 else "fitted on the labelled rows (sparse logistic regression), not read from the network: "
                 if route == LOGISTIC_ROUTE else "formula of the failed network, NOT the law: " if not_law else "")
        console.print(f"{label}{name} = {expr}", markup=False, soft_wrap=True)
        line = f"  vs network (held out): R² {fmt(net.r2, 6)}  RMSE {fmt(net.rmse)}  max|err| {fmt(net.max_abs)}"
        if fid.data is not None:
            d = fid.data
            line += f"  | vs data: R² {fmt(d.r2, 6)}  RMSE {fmt(d.rmse)}"
            if d.noise_floor is not None:
                line += f"  (noise floor R² {fmt(d.noise_floor, 6)}: " + ("at the floor, as good as the data allow)" if d.at_noise_floor
                                                                         else "above the floor)")
            elif result.oracle_quality is not None and result.oracle_quality.noise is not None:
                line += "  (noise unknown: no noise floor)"
        console.print(line, markup=False)
    hidden = list(getattr(result, "hidden", {}).items())
    if hidden:
        console.print(f"where ({len(hidden)} hidden nodes, named as in the plots):", markup=False)
        for name, definition in hidden[:HIDDEN_SHOWN]:
            text = str(definition)
            console.print(f"  {name} = {text if len(text) <= 400 else text[:400] + ' …'}", markup=False, soft_wrap=True)
        if len(hidden) > HIDDEN_SHOWN:
            console.print(f"  … {len(hidden) - HIDDEN_SHOWN} more (every definition in --json and --out)", markup=False)
    for edge in result.flagged[:TABLE_ROWS]:
        best = f"best library fit {edge.chosen.name} R² {edge.chosen.r2:.4f}" if edge.chosen is not None else "no library fit"
        threshold = result.settings.get("r2_threshold")
        why = (f"{best} < {threshold}" if threshold is not None else best) + (f"; {edge.note.strip()}" if edge.note else "")
        err_console.print(f"warning: edge ({edge.layer},{edge.i},{edge.j}) kept {edge.status}: {why}", markup=False, soft_wrap=True)
    if len(result.flagged) > TABLE_ROWS:
        err_console.print(f"warning: … and {len(result.flagged) - TABLE_ROWS} more edges kept numeric or polynomial (--json)",
                          markup=False)


@dataclass(frozen=True)
class ResultWriter:
    """How a family's symbolify result is shown (``render``: rich tables) and whether it has a
    symbolic checkpoint form (--output) and code (--export); the LaTeX is the result's own."""

    render: Callable
    checkpoint: bool | None
    code: bool | None


WRITERS = {"kan": ResultWriter(render, True, True), "karsein": ResultWriter(render_symbolify, None, None)}
