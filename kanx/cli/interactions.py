"""``kanx interactions``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from rich.table import Table

from kanx.cli import app
from kanx.cli.common import DEVICE_HELP, MAX_MEMORY_HELP, console, fmt, handle_errors, print_json, read_data
from kanx.core.choices import DEVICES, FIGURE_FORMATS, SOURCES
from kanx.core.errors import KanxError
from kanx.interaction.settings import InteractionSettings
from kanx.io.files import check_output_path

if TYPE_CHECKING:
    from kanx.interaction.karsein import KarSeinInteractionReport
    from kanx.interaction.report import InteractionReport

PLOT_DPI = 130


def render_sets(sets: list, title: str, empty: str) -> None:
    """The interaction sets table (KAN inputs or KarSein fields), strongest first."""
    if not sets:
        console.print(empty, markup=False)
        return
    table = Table(title=title)
    tested = any(term.support is not None for term in sets)
    columns = ("inputs", "order", "own share", "± error", "interaction variance") + (("held-out support", "± error") if tested else ())
    for column in columns:
        table.add_column(column, justify="left" if column == "inputs" else "right", no_wrap=column == "inputs")
    for term in sets:
        support = (f"{100 * term.support:.3g}%", f"{100 * term.support_error:.2g}%") if tested else ()
        table.add_row("{" + ", ".join(term.variables) + "}", str(term.order), f"{100 * term.strength:.3g}%",
                      f"{100 * term.error:.2g}%", f"{100 * term.variance_share:.3g}%", *support)
    console.print(table)


def render_unconfirmed(sets: list, floor: float, held_out: bool = False) -> None:
    """Sets whose subsets all interact but whose own share is measurable only below the floor (or,
    ``held_out``, which the held-out rows neither confirm nor refute)."""
    if sets:
        why = ("the held-out rows neither confirm nor refute them" if held_out
               else f"own share measurable, not above {floor:.2g}")
        render_sets(sets, f"possible terms the network cannot confirm ({why})", "")


def noise_line(noise) -> str:
    """How the sets of one output were decided: by held-out rows, or by the reporting floor."""
    from kanx.interaction.sets import GROWN_SIGMAS, NOISE_SIGMAS, RETEST_BAND, RETEST_DRAWS  # here: the CLI starts without torch

    if noise.held_out_rows:
        floor = f", own share > {noise.set_floor:.2g}" if noise.set_floor > 0 else ""
        return (f"reported: sets that {noise.held_out_rows} rows with targets ({noise.source}) support: removing the set "
                f"from the network raises their error, by {NOISE_SIGMAS:g} standard errors for a pair, {GROWN_SIGMAS:g} for "
                f"a set grown from passing subsets (a support within {RETEST_BAND:g} standard errors of its bar is estimated "
                f"again over up to {RETEST_DRAWS[-1]} partner draws){floor}; the network leaves {100 * noise.error_share:.3g}% of the "
                "variance unexplained on them")
    if noise.error_share is None:
        return f"reported: own share > {noise.floor:.2g} (the threshold; the network's error is unknown)"
    return (f"reported: own share > {noise.floor:.2g} (threshold {noise.threshold:.2g}; the network leaves "
            f"{100 * noise.error_share:.3g}% of the variance unexplained on the {noise.source})")


def render(report: InteractionReport) -> None:
    for index, result in enumerate(report.outputs):
        bound = report.structural[index]
        render_sets(result.interaction_sets, f"interaction sets of {result.output}",
                    f"{result.output}: no interaction above the noise (additive in its inputs)")
        console.print(noise_line(result.noise), markup=False)
        render_unconfirmed(result.unconfirmed_sets, result.noise.floor, result.noise.held_out_rows > 0)
        console.print(f"[bold]{result.output}[/bold] = {result.tree.describe() or '(constant)'}")
        table = Table(title=f"additive blocks of {result.output}")
        for column in ("inputs", "order", "structure", "top set share", "variance share", "interaction share"):
            table.add_column(column, justify="left" if column in ("inputs", "structure") else "right")
        for group in result.groups:
            table.add_row(
                ", ".join(group.variables), str(group.order), group.structure, fmt(group.strength, 3),
                f"{100 * group.variance_share:.1f}%", f"{100 * group.interaction_share:.1f}%",
            )
        console.print(table)
        degree = f", polynomial degree <= {bound.degree_bound}" if bound.degree_bound is not None else ""
        console.print(
            f"max order found {result.max_order}; the architecture can make up to {bound.max_order} inputs interact{degree}",
            markup=False,
        )
        if result.unused:
            console.print(f"unused inputs: {', '.join(result.unused)}", markup=False)
        for note in result.notes:
            console.print(f"note: {note}", markup=False)
        render_pairs(report, index)
        if result.formula:
            render_formula(result.formula)
    console.print(
        f"{report.samples} samples, {report.network_evaluations} network evaluations, {report.seconds:.2f} s",
        markup=False,
    )


def render_pairs(report: InteractionReport, index: int, limit: int = 10) -> None:
    names = report.inputs
    strength = report.outputs[index].pairwise
    pairs = sorted(
        ((strength[i][j], names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))),
        reverse=True,
    )
    table = Table(title="strongest pairs (variance share of the terms holding both)")
    for column in ("pair", "share"):
        table.add_column(column)
    for value, a, b in pairs[:limit]:
        table.add_row(f"{a} × {b}", fmt(value, 3))
    console.print(table)


def render_formula(formula: dict) -> None:
    table = Table(title=f"formula terms: {formula['expression']}")
    for column in ("term", "inputs", "order", "variance share"):
        table.add_column(column)
    for term in formula["terms"]:
        table.add_row(term["term"], ", ".join(term["variables"]), str(term["order"]), f"{100 * term['variance_share']:.1f}%")
    console.print(table)


def render_karsein(report: KarSeinInteractionReport) -> None:
    """Field interaction sets and the structural bounds of a KarSein model."""
    render_sets(report.interaction_sets, f"field interaction sets (own share of the score variance > {report.threshold})",
                "no field interactions above the threshold (the score is additive in the fields)")
    render_unconfirmed(report.unconfirmed_sets, report.threshold)
    for bound in report.structural:
        degrees = ", ".join("?" if r is None else str(r) for r in bound.layer_degrees)
        degree = "unbounded" if bound.degree_bound is None else str(bound.degree_bound)
        console.print(
            f"{bound.branch}: activation degrees r = [{degrees}], multiplying layers {bound.multiplying_layers}: "
            f"degree bound {degree}, up to {bound.max_field_order} fields can interact", markup=False,
        )
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    console.print(
        f"{report.samples} samples, {report.network_evaluations} network evaluations, {report.seconds:.2f} s", markup=False
    )


@app.command("interactions")
@handle_errors
def interactions_command(
    model: Path = typer.Argument(Path("model.pt"), help="Checkpoint (default model.pt)."),
    data: Path = typer.Option(None, "--data", help="CSV (columns named like the model inputs) or .npy/.pt array to analyse on "
                              "(default: the checkpoint's held-out rows, then its training sample)."),
    target: list[str] = typer.Option([], "--target", help="Column(s) of --data holding the model's outputs "
                                     "(repeat or comma-separate; default: the columns named like the outputs); with them "
                                     "each interaction set is tested against the data: give rows the network was not trained on."),
    formula: list[str] = typer.Option([], "--formula", help="Also analyse this formula in the input names (one per output)."),
    threshold: float = typer.Option(None, "--threshold", help="Own share of the output variance a set must carry to be "
                                    "reported (default: KAN 3e-5, none when held-out targets test the sets; KarSein 0.05); "
                                    "sets within the noise are never reported."),
    max_order: int = typer.Option(InteractionSettings.max_order, "--max-order", help="Largest interaction set tested."),
    product_threshold: float = typer.Option(
        InteractionSettings.product_threshold, "--product-threshold", help="Residual below which a product split is accepted."
    ),
    samples: int = typer.Option(1000, "--samples", help="Use at most this many rows."),
    seed: int = typer.Option(0, "--seed", help="Seed for row subsampling and Monte Carlo estimates."),
    plot: Path = typer.Option(None, "--plot", help="Write the figure: pair heatmap, interaction sets and tree (.png, .svg or .pdf)."),
    source: Literal[SOURCES] | None = typer.Option(None, "--from", help="Library a foreign checkpoint came from (default: detect)."),
    device: Literal[DEVICES] = typer.Option("cpu", "--device", help=DEVICE_HELP),
    max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Which inputs interact, at what order, and their share of the output variance."""
    from kanx.families.registry import family_of
    from kanx.interaction import interactions
    from kanx.io.load import load_model

    settings = InteractionSettings(threshold=threshold, product_threshold=product_threshold, max_samples=samples, seed=seed,
                                   max_order=max_order, device=device, max_memory=max_memory, formulas=tuple(formula))
    if plot is not None:
        check_output_path(plot, "--plot", [model] + ([data] if data else []))
        if plot.suffix.lower().lstrip(".") not in FIGURE_FORMATS:
            raise KanxError(f"--plot {plot}: use a .png, .svg or .pdf file name")
    network = load_model(model, source=source)
    report = interactions(network, read_data(network, data, target), settings)
    written = report.figures().save_each(plot, PLOT_DPI) if plot is not None else []
    if as_json:
        print_json({**report.to_dict(), "plots": [str(p) for p in written]})
        return
    RENDERERS[family_of(network).name](report)
    for path in written:
        console.print(f"wrote {path}", markup=False)


RENDERERS = {"kan": render, "karsein": render_karsein}
