"""The interactions entry point: one function for every model family, dispatched on the family.

``interactions(model, x, settings)`` works on every model family: input-level analysis for a
KAN (``kan``), field-level for KarSein (``karsein``).
"""

from __future__ import annotations

import sympy
import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.families.registry import family_of, placed
from kanx.interaction.kan import InteractionReport, interactions_of_kan
from kanx.interaction.karsein import KarSeinInteractionReport, field_interactions
from kanx.interaction.settings import InteractionSettings


def interactions(model: nn.Module, x: torch.Tensor | None = None, settings: InteractionSettings | None = None,
                 formulas: list[sympy.Expr] | None = None, y: torch.Tensor | None = None,
                 **options) -> InteractionReport | KarSeinInteractionReport:
    """The interaction report of ``model`` on inputs ``x [N, n_in]`` (default: its stored sample).

    ``y [N, n_out]`` (KAN): the targets of those rows, which measure the network's own error for the
    noise floor (a KarSein report does not use its labels). ``formulas`` (KAN only): one sympy expression per output in the input names,
    analysed as well. ``settings`` (or its fields as keyword ``options``) as in :class:`InteractionSettings`.
    """
    settings = settings if settings is not None else InteractionSettings(**options)
    with memory_budget(parse_memory(settings.max_memory)):
        device = resolve_device(settings.device)
        moved = [t.to(device) if t is not None else None for t in (x, y)]
        return report_on(placed(model, device), moved[0], settings, formulas, moved[1])


def report_on(model: nn.Module, x: torch.Tensor | None, settings: InteractionSettings,
              formulas: list[sympy.Expr] | None, y: torch.Tensor | None = None) -> InteractionReport | KarSeinInteractionReport:
    """:func:`interactions` once the model and the rows are on the settings' device."""
    return REPORTS[family_of(model).name](model, x, settings, formulas, y)


def kan_report(model: nn.Module, x: torch.Tensor | None, settings: InteractionSettings,
               formulas: list[sympy.Expr] | None, y: torch.Tensor | None) -> InteractionReport:
    if y is not None and (x is None or y.shape != (x.shape[0], model.n_outputs)):
        raise KanxError(f"interactions: the targets must be [rows, {model.n_outputs}] beside the inputs")
    return interactions_of_kan(model, x, settings, formulas, y)


def karsein_report(model: nn.Module, x: torch.Tensor | None, settings: InteractionSettings,
                   formulas: list[sympy.Expr] | None, y: torch.Tensor | None) -> KarSeinInteractionReport:
    """Field-level interactions; click labels play no part (``y`` is not used)."""
    if formulas is not None:
        raise KanxError("--formula: formula analysis is not supported for KarSein models")
    return field_interactions(model, x, settings)


REPORTS = {"kan": kan_report, "karsein": karsein_report}  # by family name (kanx.families.registry)
