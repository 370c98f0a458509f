"""The prune stage: one function for every model family, dispatched on the family.

``prune(model, data, settings)`` works on every model family: the algorithm is written once
(``kanx.pruning.stage``), the family's pruner supplies the units (KAN edges and hidden nodes,
KarSein features and fields), the guard and the report, and the shared search
(``kanx.pruning.search``) removes as many units as the guard allows.
"""

from __future__ import annotations

from torch import nn

from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.core.stage import inputs_and_targets, settings_of
from kanx.families.registry import device_of, family_of, placed
from kanx.pruning.kan import KANPruner, PruneReport
from kanx.pruning.karsein import KarSeinPruner, KarSeinPruneReport
from kanx.pruning.settings import PruneSettings
from kanx.pruning.stage import FamilyPruner, prune_with

PRUNERS: dict[str, FamilyPruner] = {"kan": KANPruner(), "karsein": KarSeinPruner()}  # by family name (kanx.families.registry)


def prune(model: nn.Module, data: object | None = None, settings: PruneSettings | None = None,
          **options) -> PruneReport | KarSeinPruneReport:
    """Prune ``model`` (left untouched); the report holds the pruned network as ``.model``.

    ``data``: rows (``kanx.Rows``, a ``Dataset``) or a tensor of inputs ``[N, n_in]``; default: the
    model's stored sample. Targets, when the rows have them (``[N, n_out]`` for a KAN, 0/1 labels
    ``[N]`` for KarSein), guard the fit to the data too. ``settings`` (or its fields as keyword
    ``options``) as in :class:`PruneSettings`.
    """
    settings = settings_of(PruneSettings, settings, options, "prune")
    x, y = inputs_and_targets(data, "prune")
    home = device_of(model)
    with memory_budget(parse_memory(settings.max_memory)):
        device = resolve_device(settings.device)
        x, y = (t.to(device) if t is not None else None for t in (x, y))
        pruned, report = prune_with(PRUNERS[family_of(model).name], placed(model, device), x, y, settings)
    report.model = placed(pruned, home)
    return report
