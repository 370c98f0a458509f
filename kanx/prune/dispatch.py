"""The prune entry point: one function for every model family, dispatched on the family.

``prune(model, x, y, settings)`` works on every model family: the family's pruner chooses the
units (KAN edges and hidden nodes, KarSein features and fields) and the shared search
(``kanx.prune.search``) removes as many as the guard allows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kanx.families.registry import family_of
from kanx.prune.kan import PruneReport, prune_kan
from kanx.prune.karsein import KarSeinPruneReport, prune_karsein
from kanx.prune.settings import PruneSettings

PRUNERS: dict[str, Callable] = {"kan": prune_kan, "karsein": prune_karsein}


def prune(model: nn.Module, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
          settings: PruneSettings | None = None, **options) -> tuple[nn.Module, PruneReport | KarSeinPruneReport]:
    """Prune ``model`` (left untouched); returns ``(pruned_model, report)``.

    ``x`` model inputs ``[N, n_in]`` (default: the model's stored sample); ``y`` targets when known
    (``[N, n_out]`` for a KAN, 0/1 labels ``[N]`` for KarSein). ``settings`` (or its fields as
    keyword ``options``) as in :class:`PruneSettings`.
    """
    settings = settings if settings is not None else PruneSettings(**options)
    return PRUNERS[family_of(model).name](model, x, y, settings)

