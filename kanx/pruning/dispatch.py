"""The prune entry point: one function for every model family, dispatched on the family.

``prune(model, x, y, settings)`` works on every model family: the family's pruner chooses the
units (KAN edges and hidden nodes, KarSein features and fields) and the shared search
(``kanx.pruning.search``) removes as many as the guard allows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.families.registry import device_of, family_of, placed
from kanx.pruning.kan import PruneReport, prune_kan
from kanx.pruning.karsein import KarSeinPruneReport, prune_karsein
from kanx.pruning.settings import PruneSettings

PRUNERS: dict[str, Callable] = {"kan": prune_kan, "karsein": prune_karsein}


def prune(model: nn.Module, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
          settings: PruneSettings | None = None, **options) -> tuple[nn.Module, PruneReport | KarSeinPruneReport]:
    """Prune ``model`` (left untouched); returns ``(pruned_model, report)``.

    ``x`` model inputs ``[N, n_in]`` (default: the model's stored sample); ``y`` targets when known
    (``[N, n_out]`` for a KAN, 0/1 labels ``[N]`` for KarSein). ``settings`` (or its fields as
    keyword ``options``) as in :class:`PruneSettings`.
    """
    settings = settings if settings is not None else PruneSettings(**options)
    home = device_of(model)
    with memory_budget(parse_memory(settings.max_memory)):
        device = resolve_device(settings.device)
        x, y = (t.to(device) if t is not None else None for t in (x, y))
        pruned, report = PRUNERS[family_of(model).name](placed(model, device), x, y, settings)
    return placed(pruned, home), report

