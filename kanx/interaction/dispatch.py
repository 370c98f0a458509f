"""The interactions entry point: one function for every model family, dispatched on the family.

``interactions(model, data, settings)`` works on every model family: input-level analysis for a
KAN (``kan``), field-level for KarSein (``karsein``).
"""

from __future__ import annotations

import sympy
import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.core.stage import inputs_and_targets, settings_of
from kanx.families.registry import family_of, placed
from kanx.functions.parser import parse_expression
from kanx.interaction.kan import interactions_of_kan
from kanx.interaction.karsein import KarSeinInteractionReport, field_interactions
from kanx.interaction.report import InteractionReport
from kanx.interaction.settings import InteractionSettings


def interactions(model: nn.Module, data: object | None = None, settings: InteractionSettings | None = None,
                 **options) -> InteractionReport | KarSeinInteractionReport:
    """The interaction report of ``model`` on ``data`` (rows, ``kanx.Rows`` or a ``Dataset``, or a
    tensor of inputs ``[N, n_in]``; default: its held-out rows, then its stored sample).

    Targets, when the rows have them (KAN, ``[N, n_out]``), measure the network's own error for the
    noise floor and test each set against the data (a KarSein report, and a KAN classifier's,
    which analyses the logits, does not use its labels).
    ``settings`` (or its fields as keyword ``options``, ``formulas`` among them) as in
    :class:`InteractionSettings`.
    """
    settings = settings_of(InteractionSettings, settings, options, "interactions")
    x, y = inputs_and_targets(data, "interactions")
    with memory_budget(parse_memory(settings.max_memory)):
        device = resolve_device(settings.device)
        moved = [t.to(device) if t is not None else None for t in (x, y)]
        return report_on(placed(model, device), moved[0], settings, moved[1])


def report_on(model: nn.Module, x: torch.Tensor | None, settings: InteractionSettings,
              y: torch.Tensor | None = None) -> InteractionReport | KarSeinInteractionReport:
    """:func:`interactions` once the model and the rows are on the settings' device."""
    return REPORTS[family_of(model).name](model, x, settings, y)


def kan_report(model: nn.Module, x: torch.Tensor | None, settings: InteractionSettings,
               y: torch.Tensor | None) -> InteractionReport:
    if model.classes is not None:  # a classifier's rows hold class labels, not values of its outputs (logits)
        y = None
    if y is not None and (x is None or y.shape != (x.shape[0], model.n_outputs)):
        raise KanxError(f"interactions: the targets must be [rows, {model.n_outputs}] beside the inputs")
    return interactions_of_kan(model, x, settings, kan_formulas(model, settings.formulas), y)


def kan_formulas(model: nn.Module, formulas: tuple[str | sympy.Expr, ...]) -> list[sympy.Expr] | None:
    """The ``formulas`` setting as sympy expressions in the input names (text through the safe
    parser), one per output; ``None`` when none were given."""
    if not formulas:
        return None
    family = family_of(model)
    outputs = family.output_names(model)
    if len(formulas) != len(outputs):
        raise KanxError(f"--formula: give one formula per output ({len(outputs)})")
    names = family.input_names(model)
    return [parse_expression(f, names, "--formula") if isinstance(f, str) else f for f in formulas]


def karsein_report(model: nn.Module, x: torch.Tensor | None, settings: InteractionSettings,
                   y: torch.Tensor | None) -> KarSeinInteractionReport:
    """Field-level interactions; click labels play no part (``y`` is not used)."""
    if settings.formulas:
        raise KanxError("--formula: formula analysis is not supported for KarSein models")
    return field_interactions(model, x, settings)


REPORTS = {"kan": kan_report, "karsein": karsein_report}  # by family name (kanx.families.registry)
