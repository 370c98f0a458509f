"""``kanx discover``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kanx.cli import app
from kanx.cli.common import DEVICE_HELP, MAX_MEMORY_HELP, console, err_console, fmt, handle_errors, print_json
from kanx.core.choices import DEVICES, SPARSE_ROUTE, TASKS
from kanx.core.errors import KanxFailure

if TYPE_CHECKING:
    from kanx.discovery import DiscoveryResult

WORK_HELP = ("Structure-search work per target, in work units (rows the network is asked about, and rows fitted); "
             "the same options give the same law on any machine.")


@app.command("discover")
@handle_errors
def discover_command(
    data: Path = typer.Argument(..., help="CSV with a header row."),
    target: list[str] = typer.Option([], "--target", "-t", help="Target column(s); repeat or comma-separate."),
    inputs: str = typer.Option(None, "--inputs", help="Input columns a,b,c (default: all non-target columns)."),
    out: Path = typer.Option(Path("kanx-discover"), "--out", "-o", help="Folder for the network, report and figures."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, the network and the searches."),
    budget: float = typer.Option(None, "--budget", help=WORK_HELP + " Default 1,000,000."),
    time_limit: float = typer.Option(None, "--time-limit", help="Optional wall-clock cap per target search, in seconds "
                                     "(results then depend on the machine; the report says when it cut a search)."),
    steps: int = typer.Option(None, "--steps", help="Training steps of the first (Adam) phase (default: the recipe's 1500)."),
    digits: int = typer.Option(6, "--digits", help="Significant digits of the printed constants."),
    no_interactions: bool = typer.Option(False, "--no-interactions", help="Skip the interaction analysis."),
    task: Literal[TASKS] = typer.Option("regression", "--task", help="regression: numeric targets; classify: the --target "
                                        "column holds class labels, and the law is the classifier's logits."),
    device: Literal[DEVICES] = typer.Option("cpu", "--device", help=DEVICE_HELP),
    max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """From a data file to the law: train by the recipe, extract, and report (law, held-out fidelity, Pareto front)."""
    from kanx.discovery import DiscoverSettings, discover
    from kanx.io.data import load_csv, split_names
    from kanx.io.files import check_output_folder, check_output_path

    options = {"seed": seed, "steps": steps, "digits": digits, "interactions": not no_interactions, "device": device,
               "max_memory": max_memory, "time_limit": time_limit}
    if budget is not None:
        options["budget"] = budget
    settings = DiscoverSettings(**options)
    settings.symbolify_settings(task == "classify")  # options checked before the data is read
    check_output_folder(out, "--out")
    if out.exists():
        check_output_path(out / "model.pt", "--out", [data])
    dataset = load_csv(data, split_names(",".join(target)), split_names(inputs) or None, task=task)
    result = with_progress(lambda step, polish: discover(dataset, settings, out, step, polish), quiet or as_json)
    render(result, out, as_json)
    if not all(law.exact for law in result.laws):
        raise KanxFailure("no closed-form law for " + ", ".join(law.target for law in result.laws if not law.exact)
                          + f" (the report in {out} has what was found)")


def with_progress(run, quiet: bool):
    """``run(on_step, on_polish_step)`` under a progress bar of the two training phases."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("train {task.fields[train]}  held-out {task.fields[test]}"), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, disable=quiet, transient=False) as progress:
        tasks: dict[str, int] = {}

        def callback(name: str):
            def on_step(step: int, train_mse: float, test_mse: float) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=None, train="-", test="-")
                progress.update(tasks[name], completed=step, train=f"{train_mse:.3e}", test=f"{test_mse:.3e}")
            return on_step

        return run(callback("training"), callback("polishing (LBFGS)"))


def render(result: DiscoveryResult, out: Path, as_json: bool) -> None:
    """The report: per target the law, its route and fidelity, the oracle's verdict and the front."""
    if as_json:
        print_json(result.to_dict())
        return
    oracle = result.oracle or {}
    for law in result.laws:
        console.print(law.headline(), soft_wrap=True, highlight=False, markup=False, style="bold")
        for line in law.summary_lines(result.held_out_rows):
            console.print(f"  {line}", markup=False, soft_wrap=True)
        title, headers, rows = law.front_table()
        table = Table(title=title)
        for column in headers:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if oracle:
        verdict = oracle.get("verdict")
        from_rows = [law.target for law in result.laws if law.route == SPARSE_ROUTE]
        note = "" if verdict == "good" else (" — the network is a poor oracle: a law it gave may be wrong" + (
            f" ({', '.join(from_rows)} fitted on the rows, not read from the network)" if from_rows else ""))
        console.print(f"oracle: {verdict}, network R² on the extraction's held-out rows "
                      + ", ".join(fmt(v, 6) for v in oracle.get("r2", [])) + note, markup=False)
    clocked = [law.target for law in result.laws if law.cut_by_clock]
    if clocked:
        console.print(f"the --time-limit cut the search for {', '.join(clocked)}: this result depends on the machine",
                      markup=False)
    console.print(f"wrote {', '.join(result.files)} in {out}/", markup=False)

