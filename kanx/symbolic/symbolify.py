"""``symbolify``: the entry point behind ``kanx symbolify`` for KAN models (strategy dispatch)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from kanx.core.errors import KanxError
from kanx.core.numerics import single_thread
from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.core.stage import rows_on, settings_of
from kanx.families.kan.network import KAN
from kanx.families.registry import device_of, family_of, placed
from kanx.functions.library import build_library
from kanx.symbolic.edges import symbolify_edges
from kanx.symbolic.karsein import KarSeinSymbolicResult, symbolify_karsein
from kanx.symbolic.oracle import judge_and_refine
from kanx.symbolic.results import SymbolicResult, with_noise_floors
from kanx.symbolic.settings import SymbolifySettings
from kanx.symbolic.structure import structure_first


def symbolify(model: nn.Module, data: object | None = None, settings: SymbolifySettings | None = None,
              **options) -> SymbolicResult | KarSeinSymbolicResult:
    """Formulas for ``model`` (left untouched), whatever its family.

    ``data``: rows with ``.x`` (model inputs ``[N, n_in]``) and ``.y`` (targets, or ``None``), e.g. a
    ``kanx.Rows`` or ``kanx.io.data.Dataset``, or a tensor of inputs; default: the model's stored sample. ``settings`` (or its
    fields as keyword ``options``) as in :class:`SymbolifySettings`.
    """
    settings = settings_of(SymbolifySettings, settings, options, "symbolify")
    home = device_of(model)
    with memory_budget(parse_memory(settings.max_memory)):
        device = resolve_device(settings.device)
        result = IMPLEMENTATIONS[family_of(model).name](placed(model, device), rows_on(data, device, "symbolify"), settings)
    result.model = placed(result.model if result.model is not None else model, home)
    return result


def symbolify_kan(model: KAN, data: object | None, settings: SymbolifySettings) -> SymbolicResult:
    """A KAN's formulas. ``data``: a ``Dataset`` whose inputs drive the fits (and whose targets,
    when they match the outputs, are what constants are refitted against and checked with).
    ``strategy="edges"`` fits every edge and composes; ``"structure-first"`` decomposes the
    network's function first (``kanx.symbolic.structure``), searching for at most ``budget``
    work units per output, and falls back to ``"edges"`` where that finds no accurate formula;
    ``"auto"`` (the default) fits every edge and, when the data hold the targets, decomposes too:
    per output, the formula with the smaller misfit beyond the noise on the held-out rows wins
    (the shorter one on a tie). An edge formula at the noise floor can still be a look-alike
    (a known noise estimate may still hold part of the network's error, up to the share
    :func:`kanx.core.numerics.neighbour_variance` tolerates); an unknown one counts as 0."""
    s = settings
    functions, custom = build_library(s.lib, list(s.lib_add))
    oracle = None
    if has_targets(model, data):
        model, oracle = judge_and_refine(model, data.x.float(), data.y.float(), s.strategy, s.refine, s.seed)
    elif s.refine:
        raise KanxError(f"--refine {s.refine}: needs data with the model's outputs (--data with the target column)")

    def edges() -> SymbolicResult:
        return symbolify_edges(copy.deepcopy(model), functions, custom, data, s)

    def decomposed(edge_strategy: Callable[[], SymbolicResult], rival: bool) -> SymbolicResult:
        return structure_first(model, functions, data, edge_strategy, budget=s.budget, time_limit=s.time_limit,
                               digits=s.digits, simplify_timeout=s.simplify_timeout, seed=s.seed,
                               data_noise=oracle.threshold_noise if oracle is not None else None, rival=rival)

    with single_thread():
        if s.strategy == "structure-first":
            result = decomposed(edges, rival=False)
        else:
            result = edges()
            if oracle is not None and oracle.noise is not None:
                with_noise_floors(result.fidelity, oracle.noise)
            if s.strategy == "auto" and oracle is not None:
                edge_result = result
                result = decomposed(lambda: edge_result, rival=True)
    result.oracle_quality = oracle
    if oracle is not None and oracle.noise is not None:
        with_noise_floors(result.fidelity, oracle.noise)
    return result


def has_targets(model: KAN, data: object | None) -> bool:
    """Whether ``data`` holds a target column for each of the model's outputs."""
    y = getattr(data, "y", None) if data is not None else None
    return y is not None and y.ndim == 2 and y.shape[1] == model.n_outputs and y.shape[0] > 0


IMPLEMENTATIONS: dict[str, Callable] = {"kan": symbolify_kan, "karsein": symbolify_karsein}
