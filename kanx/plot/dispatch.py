"""The plot stage: one function for every model family, dispatched on the family.

``plot_activations(model, data, settings)`` works on every model family: one grid per layer and
the network diagram for a KAN (``kan``), one grid per branch and layer of per-feature
activations for KarSein (``karsein``). Figures are made without pyplot, so the caller's
matplotlib backend is untouched; :meth:`kanx.io.figures.Figures.save` writes them.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from kanx.core.stage import inputs_and_targets, settings_of
from kanx.families.registry import family_of
from kanx.io.figures import Figures
from kanx.plot import kan, karsein
from kanx.plot.settings import PlotSettings


def plot_activations(model: nn.Module, data: object | None = None, settings: PlotSettings | None = None,
                     **options) -> Figures:
    """The activation figures of ``model``: one grid per layer (KarSein: per branch and layer),
    the most important panels first, then the network diagram when ``settings.diagram``.

    ``data``: rows or a tensor of inputs ``[N, n_in]`` whose range and histogram the panels show
    (default: the model's stored sample). ``settings`` (or its fields as keyword ``options``) as in
    :class:`PlotSettings`."""
    settings = settings_of(PlotSettings, settings, options, "plot_activations")
    x, _ = inputs_and_targets(data, "plot_activations")
    return FIGURES[family_of(model).name](model, x, settings)


def plot_network(model: nn.Module, data: object | None = None, settings: PlotSettings | None = None,
                 **options) -> Figures:
    """The network diagram alone (KAN): nodes by layer, each shown edge with its miniature
    activation, opacity proportional to importance; as :func:`plot_activations` with
    ``diagram_only``."""
    settings = dataclasses.replace(settings_of(PlotSettings, settings, options, "plot_network"), diagram_only=True)
    return plot_activations(model, data, settings)


def figure_names(model: nn.Module, settings: PlotSettings) -> list[str]:
    """The names :func:`plot_activations` gives its figures (``layer0``…, ``diagram``; KarSein
    ``bit_layer0``…), known before any drawing (the CLI checks its output files with them)."""
    return FIGURE_NAMES[family_of(model).name](model, settings)


# each family's figures and their names, by family name (kanx.families.registry)
FIGURES = {"kan": kan.kan_figures, "karsein": karsein.karsein_figures}
FIGURE_NAMES = {"kan": kan.figure_names, "karsein": karsein.figure_names}
