"""Running a sympy step that may not finish (``simplify``, ``expand``) under a time limit: in a
forked worker that is killed when the limit passes, with a fallback value."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable


def _worker(function: Callable, args: tuple, channel: multiprocessing.Queue) -> None:
    try:
        channel.put(("ok", function(*args)))
    except Exception as exc:  # noqa: BLE001 - reported back to the parent
        channel.put(("error", repr(exc)))


def run_with_timeout(function: Callable, args: tuple, timeout: float, fallback):
    """``function(*args)`` in a forked worker; ``fallback`` if it fails or exceeds ``timeout``
    seconds (the worker is then killed). Without ``fork`` it runs inline."""
    if timeout <= 0:
        return fallback
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        try:
            return function(*args)
        except Exception:  # noqa: BLE001
            return fallback
    channel = context.Queue()
    process = context.Process(target=_worker, args=(function, args, channel), daemon=True)
    process.start()
    try:
        status, value = channel.get(timeout=timeout)
    except queue.Empty:
        status, value = "timeout", None
    finally:
        if process.is_alive():
            process.kill()
        process.join(1)
    return value if status == "ok" else fallback
