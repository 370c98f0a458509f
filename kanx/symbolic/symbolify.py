"""``symbolify``: the entry point behind ``kanx symbolify`` for KAN models (strategy dispatch)."""

from __future__ import annotations

import copy

from kanx.core.errors import KanxError
from kanx.core.numerics import single_thread
from kanx.families.kan.network import KAN
from kanx.functions.library import build_library
from kanx.symbolic.edges import check_fit_options, symbolify_edges
from kanx.symbolic.results import SymbolicResult
from kanx.symbolic.structure import structure_first

STRATEGIES = ("edges", "structure-first")


def symbolify(
    model: KAN,
    *,
    engine: str = "builtin",
    lib: str | list[str] | None = None,
    lib_add: list[str] | tuple[str, ...] = (),
    r2_threshold: float = 0.99,
    tolerance: float = 2e-3,
    prune_threshold: float = 1e-2,
    fallback: str = "numeric",
    data=None,
    finetune_steps: int = 0,
    digits: int = 4,
    snap_tolerance: float = 5e-4,
    simplify_timeout: float = 10.0,
    seed: int = 0,
    strategy: str = "edges",
    budget: float = 60.0,
) -> SymbolicResult:
    """Turn ``model`` into one formula per output (the input model is not modified).

    ``data``: a ``kanx.io.data.Dataset`` whose inputs drive the fits (and whose targets, when
    they match the outputs, are what constants are fine-tuned against and checked with).
    ``strategy``: ``"edges"`` fits every edge and composes; ``"structure-first"`` decomposes the
    network's function first (``kanx.symbolic.strategy``), searching for at most ``budget``
    seconds per output, and falls back to ``"edges"`` where that finds no accurate formula.
    """
    if strategy not in STRATEGIES:
        raise KanxError(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if budget <= 0:
        raise KanxError(f"--budget {budget}: must be > 0 seconds")
    check_fit_options(engine, fallback, r2_threshold, digits)
    if finetune_steps < 0:
        raise KanxError(f"--finetune {finetune_steps}: must be >= 0")
    if not isinstance(model, KAN):
        raise KanxError("symbolify works on kanx KAN models")
    functions, custom = build_library(lib, list(lib_add))
    with single_thread():
        if strategy == "structure-first":

            def edges() -> SymbolicResult:
                return symbolify_edges(copy.deepcopy(model), engine, functions, custom, r2_threshold, tolerance, prune_threshold,
                                  fallback, data, finetune_steps, digits, snap_tolerance, simplify_timeout, seed)

            return structure_first(model, functions, data, edges, budget=budget, digits=digits,
                                   simplify_timeout=simplify_timeout, seed=seed)
        return symbolify_edges(
            copy.deepcopy(model), engine, functions, custom, r2_threshold, tolerance, prune_threshold, fallback,
            data, finetune_steps, digits, snap_tolerance, simplify_timeout, seed,
        )
