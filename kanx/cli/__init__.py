"""The ``kanx`` command line: a thin Typer layer over the library."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from kanx.cli.common import DEBUG, err_console
from kanx.core.version import __version__


class OneLineErrors(TyperGroup):
    """The kanx command group: a usage error (unknown option, bad choice, missing value) is one
    line on stderr and exit code 2, like every other bad input."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            err_console.print("aborted", markup=False)
            sys.exit(1)
        except typer.TyperException as exc:  # usage errors: unknown option, bad choice, missing value
            message = exc.format_message().replace("Value error, ", "")
            context = getattr(exc, "ctx", None)
            hint = f" (see '{context.command_path} --help')" if context is not None else ""
            err_console.print(f"error: {message}{hint}", markup=False, soft_wrap=True)
            sys.exit(getattr(exc, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="kanx",
    cls=OneLineErrors,
    help="Read trained Kolmogorov–Arnold networks: train, inspect, prune, plot, extract formulas, find interactions.",
    invoke_without_command=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kanx {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    context: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """kanx: turn trained KANs into formulas and structure a scientist can read."""
    DEBUG["enabled"] = debug
    if context.invoked_subcommand is None:
        typer.echo(context.get_help())
        raise typer.Exit(0)


# Each command module registers itself on ``app`` when imported.
from kanx.cli import compile, demo, discover, importer, info, interactions, plot, predict, prune, symbolify, train  # noqa: E402,F401


def main() -> None:
    app()
