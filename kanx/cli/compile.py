"""``kanx compile``: a formula laid out as a KAN (the prior of the KAN 2.0 loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.table import Table

from kanx.cli import app
from kanx.cli.common import console, fmt, handle_errors, print_json
from kanx.core.errors import KanxError
from kanx.io.files import check_output_path

EDGE_CHOICES = Literal["symbolic", "spline"]


@app.command("compile")
@handle_errors
def compile_command(
    formula: str = typer.Argument(..., help="The formula, e.g. 'exp(sin(pi*x) + y**2)'."),
    var: list[str] = typer.Option([], "--var", help="Range of a variable, NAME=LOW:HIGH; repeat per variable, in input order."),
    output: Path = typer.Option(Path("prior.pt"), "--output", "-o", help="Checkpoint to write."),
    edges: EDGE_CHOICES = typer.Option("symbolic", "--edges", help="symbolic: each edge computes its library function "
                                       "exactly; spline: B-spline edges fitted to them (every edge trainable)."),
    grid: int = typer.Option(5, "--grid", help="B-spline intervals of the network's edges (what --edges spline fits, and "
                             "what 'kanx train --init' turns symbolic edges into)."),
    name: str = typer.Option("f", "--name", help="Name of the output."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Lay a formula out as a KAN whose edges compute it; 'kanx train --init' then fine-tunes it on data."""
    from kanx.io.checkpoint import save_model
    from kanx.io.data import parse_var_spec
    from kanx.symbolic.compile import compile_formula

    specs = [parse_var_spec(spec) for spec in var]
    ranges = {spec_name: (low, high) for spec_name, low, high in specs}
    if len(ranges) != len(specs):
        raise KanxError("--var: a variable is declared twice")
    check_output_path(output, "--output", [])
    result = compile_formula(formula, ranges, edges=edges, grid=grid, output_name=name)
    save_model(result.model, output)
    if as_json:
        print_json({**result.to_dict(), "output": str(output)})
        return
    summary = result.to_dict()
    table = Table(title=f"kanx compile → {output}")
    table.add_column("", style="bold")
    table.add_column("value")
    table.add_row("formula", summary["formula"])
    table.add_row("widths", str(summary["widths"]) + (f", multiplication nodes {summary['mult']}" if any(summary["mult"]) else ""))
    table.add_row("edges", f"{summary['active_edges']} {summary['edges']}")
    table.add_row("max relative error", f"{fmt(summary['max_relative_error'], 3)} (on the --var ranges)")
    console.print(table)
    if summary["max_relative_error"] > 1e-6:
        console.print(f"note: the network differs from the formula by up to {fmt(summary['max_relative_error'], 3)} of its "
                      "largest value: the checkpoint stores its constants in float32, and large arguments of exp or "
                      "powers magnify their rounding", markup=False)
