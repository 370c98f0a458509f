"""The ``kanx`` command line: a thin Typer layer over the library."""

from __future__ import annotations

import typer

from kanx.cli.common import DEBUG
from kanx.core.version import __version__

app = typer.Typer(
    name="kanx",
    help="Read trained Kolmogorov–Arnold networks: train, inspect, prune, plot, extract formulas, find interactions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kanx {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """kanx: turn trained KANs into formulas and structure a scientist can read."""
    DEBUG["enabled"] = debug


# Each command module registers itself on ``app`` when imported.
from kanx.cli import demo, importer, info, interactions, plot, predict, prune, symbolify, train  # noqa: E402,F401


def main() -> None:
    app()
