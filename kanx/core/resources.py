"""Where the numerics run and how much working memory they may take.

``resolve_device`` turns ``cpu`` / ``cuda`` / ``auto`` into a ``torch.device`` (a clear
``KanxError`` when CUDA is asked for and absent). ``memory_budget`` sets, for the work inside
it, the number of bytes one batched step may allocate; ``rows_per_chunk`` and ``map_rows`` turn
that budget into chunk sizes, so peak memory stays flat however many edges or samples a model
has. Stages read their ``max_memory`` setting and enter the budget; inner code only asks
``working_bytes()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING

from kanx.core.choices import DEVICES
from kanx.core.errors import KanxError

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_MEMORY = 1 << 30  # 1 GiB of working memory per batched step
MIN_MAX_MEMORY = 16 << 20
UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 10**3, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6, "mib": 1 << 20,
         "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tb": 10**12, "tib": 1 << 40}

_budget: ContextVar[int] = ContextVar("kanx_memory_budget", default=DEFAULT_MAX_MEMORY)


def resolve_device(device: str | torch.device | None, option: str = "--device") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"`` (CUDA when present, else CPU) or ``None``
    (CPU) → a ``torch.device``. Asking for CUDA where none is usable raises ``KanxError``."""
    import torch  # here, not at module level: settings import this module and the CLI starts without torch

    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = (device or "cpu").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = name.split(":", 1)[0]
    if kind not in DEVICES or kind == "auto" or (":" in name and kind != "cuda"):
        raise KanxError(f"{option}: expected one of {', '.join(DEVICES)}, got {name!r}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise KanxError(f"{option} {name}: no CUDA GPU is available here (torch {torch.__version__}); use cpu or auto")
        resolved = torch.device(name)
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise KanxError(f"{option} {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return resolved
    return torch.device("cpu")


def parse_memory(value: str | int | float | None, option: str = "--max-memory") -> int:
    """A memory size → bytes: an integer number of bytes, or text such as ``512MB``, ``2GiB``,
    ``1.5g`` (decimal kB/MB/GB/TB, binary k/m/g/t and KiB/MiB/GiB/TiB). ``None``: the default.
    Sizes below 16 MiB are refused (no useful batch fits)."""
    if value is None:
        return DEFAULT_MAX_MEMORY
    if isinstance(value, bool):
        raise KanxError(f"{option}: expected a size such as 2GB, got {value!r}")
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in UNITS:
            raise KanxError(f"{option}: expected a size such as 512MB or 2GiB, got {value!r}")
        size = float(match.group(1)) * UNITS[unit]
    if not size >= MIN_MAX_MEMORY or size != size or size == float("inf"):
        raise KanxError(f"{option}: {value!r} is below the smallest useful budget, {MIN_MAX_MEMORY >> 20} MiB")
    return int(size)


@contextmanager
def memory_budget(max_bytes: int | None) -> Iterator[int]:
    """Within the block, batched steps size their chunks so each allocates about ``max_bytes``
    (``None``: keep the current budget)."""
    if max_bytes is None:
        yield _budget.get()
        return
    token = _budget.set(int(max_bytes))
    try:
        yield int(max_bytes)
    finally:
        _budget.reset(token)


def working_bytes() -> int:
    """The bytes one batched step may allocate (the innermost ``memory_budget``, default 1 GiB)."""
    return _budget.get()


def rows_per_chunk(bytes_per_row: float, total: int | None = None) -> int:
    """How many rows (samples, edges, ...) of ``bytes_per_row`` fit the working budget; at least
    1, at most ``total`` when given."""
    rows = max(1, int(working_bytes() // max(float(bytes_per_row), 1.0)))
    return min(rows, total) if total is not None else rows


def map_rows(function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, bytes_per_row: float) -> torch.Tensor:
    """``function(x)`` computed on chunks of ``x``'s rows (dim 0) that fit the working budget,
    concatenated along dim 0. ``function`` must treat rows independently."""
    import torch

    step = rows_per_chunk(bytes_per_row, max(len(x), 1))
    if len(x) <= step:
        return function(x)
    return torch.cat([function(x[start : start + step]) for start in range(0, len(x), step)])


def check_resources(device: str | torch.device | None, max_memory: str | int | float | None) -> None:
    """Validate a stage's ``device`` [--device] and ``max_memory`` [--max-memory] settings when they
    are stored, so an absent GPU or a malformed size is a ``KanxError`` before any work."""
    resolve_device(device)
    parse_memory(max_memory)


def made_on_cpu() -> AbstractContextManager:
    """A context in which tensors created without a device are created on the CPU, whatever
    default device the caller has set. ``torch.device("cpu")`` as a context sends every torch
    call inside it through a Python mode (about a tenth of the symbolic layer's time), so it is
    entered only when the default is not already the CPU."""
    import torch

    return nullcontext() if torch.get_default_device().type == "cpu" else torch.device("cpu")
