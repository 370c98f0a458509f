"""``kanx demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from kanx.cli import app
from kanx.cli.common import console, handle_errors, print_json


@app.command("demo")
@handle_errors
def demo_command(
    out: Path = typer.Option(Path("kanx-demo"), "--out", help="Folder for the demo's outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Run the kanx pipeline on the bundled exp(sin(pi*x)+y^2) sample."""
    from kanx.demo import run_demo

    written: dict[str, list[str]] = {}

    def on_stage(name: str, paths: list[Path]) -> None:
        written[name] = [str(p) for p in paths]
        if not as_json:
            console.print(f"[bold]{name}[/bold]: " + ", ".join(str(p) for p in paths))

    ctx = run_demo(out, on_stage)
    if as_json:
        print_json({"out": str(out), "stages": written, "results": ctx.results})
        return
    results = ctx.results
    info = results["info"]
    console.print(f"model: widths {info['widths']}, {info['parameters']} parameters, R² on the sample data {info['r2_on_sample']:.6f}",
                  markup=False)
    if "prune" in results:
        pruned = results["prune"]
        console.print(f"pruned: widths {pruned['widths'][0]} → {pruned['widths'][1]}, edges {pruned['edges'][0]} → "
                      f"{pruned['edges'][1]}, fidelity R² {pruned['fidelity_r2']:.6f}", markup=False)
    if "symbolify" in results:
        formula = results["symbolify"]
        console.print(f"formula: f = {formula['formula']}  (R² vs network {formula['r2_vs_network']:.6f})", markup=False)
    if "interactions" in results:
        found = results["interactions"]
        console.print(f"interactions: f = {found['structure']}, max order {found['max_order']}", markup=False)
    console.print(f"outputs are in {out}/", markup=False)
