"""Shared CLI plumbing: consoles, error handling, JSON output, option parsing."""

from __future__ import annotations

import functools
import math
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from kanx.core.errors import KanxError, KanxFailure
from kanx.io.files import to_json

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DEBUG = {"enabled": False}

DEVICE_HELP = "Where the numerics run: cpu, cuda (a GPU; exit 2 when none is present) or auto (cuda when present)."
MAX_MEMORY_HELP = ("Working memory per batched step, e.g. 512MB or 2GB (default 1GiB): larger models are processed "
                   "in chunks of this size.")

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(command: F) -> F:
    """Turn ``KanxError`` into a one-line message and exit code 2 (``KanxFailure``: exit 1);
    other exceptions also become one line (exit 1) unless ``--debug`` is on."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KanxError as exc:
            if DEBUG["enabled"]:
                traceback.print_exc()
            err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KanxFailure as exc:
            if DEBUG["enabled"]:
                traceback.print_exc()
            err_console.print(f"failed: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", markup=False)
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - last-resort guard for the CLI
            if DEBUG["enabled"]:
                raise
            err_console.print(
                f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                markup=False, soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(to_json(data) + "\n")
    sys.stdout.flush()


def parse_int_list(text: str, option: str) -> list[int]:
    """``"2,5,1"`` → ``[2, 5, 1]`` with a clear error naming ``option``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise KanxError(f"{option} {text!r}: expected comma-separated integers, e.g. 2,5,1") from None
    if not values:
        raise KanxError(f"{option} {text!r}: expected comma-separated integers, e.g. 2,5,1")
    return values


def fmt(value: object, digits: int = 4) -> str:
    """Compact number for tables (``-`` for missing or non-finite values; other values as short text)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)[:40]
    return f"{value:.{digits}g}"


def read_data(model, path, targets: list[str]):
    """``--data`` rows for ``model`` (``None`` without ``--data``), ``--target`` naming the output
    columns; notes on inferred targets go to stderr."""
    from kanx.io.data import read_model_rows, split_names

    names = [name for text in targets for name in split_names(text)]
    if path is None:
        if names:
            raise KanxError("--target: needs --data")
        return None
    rows = read_model_rows(model, path, targets=names or None)
    for note in rows.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    return rows
