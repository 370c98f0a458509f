"""The plot entry points: one function for every model family, dispatched on the family.

``plot_activations`` (figures) and ``render`` (files) work on every model family: one grid per
layer for a KAN (``kan``), one grid per branch and layer of per-feature activations for KarSein
(``karsein``). Figures are made without pyplot, so the caller's matplotlib backend is untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.core.resources import check_resources
from kanx.families.registry import family_of
from kanx.plot import kan, karsein

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_activations(model: nn.Module, layer: int | None = None, top: int | None = None, show_pruned: bool = False,
                     x: torch.Tensor | None = None, title: str = "", device: str = "cpu",
                     max_memory: str | int | None = None) -> list[Figure]:
    """One figure per layer (KarSein: per branch and layer) of activation panels, the most
    important first, at most ``top`` per figure; ``layer`` picks one KAN layer; ``x [N, n_in]``
    replaces the stored sample; ``title`` prefixes the headings. A KAN's curves are computed on
    ``device`` within ``max_memory``; a KarSein model's (one curve per feature) on the CPU."""
    check_resources(device, max_memory)
    return FIGURES[family_of(model).name](model, layer, top, show_pruned, x, title, device, max_memory)


def figure_names(model: nn.Module, layer: int | None = None, diagram_only: bool = False) -> list[str]:
    """The names ``render`` gives its figures (``layer0``…, ``diagram``; KarSein ``bit_layer0``…)."""
    return FIGURE_NAMES[family_of(model).name](model, layer, diagram_only)


def render(model: nn.Module, stem: str | Path, fmt: str = "png", dpi: int = 100, layer: int | None = None,
           top: int | None = None, show_pruned: bool = False, diagram_only: bool = False, title: str = "",
           device: str = "cpu", max_memory: str | int | None = None) -> list[Path]:
    """Write the figures as ``<stem>_<name>.<fmt>`` (or one ``<stem>.pdf``); returns the paths.
    ``device`` and ``max_memory`` as in :func:`plot_activations`."""
    check_resources(device, max_memory)
    return RENDERERS[family_of(model).name](model, stem, fmt, dpi, layer, top, show_pruned, diagram_only, title, device,
                                            max_memory)


def kan_names(model: nn.Module, layer: int | None, diagram_only: bool) -> list[str]:
    count = len(model.layers)
    if layer is not None and not 0 <= layer < count:
        raise KanxError(f"--layer {layer}: the model has {count} layers (0..{count - 1})")
    names = [] if diagram_only else [f"layer{index}" for index in ([layer] if layer is not None else range(count))]
    return names + ["diagram"]


def karsein_names(model: nn.Module, layer: int | None, diagram_only: bool) -> list[str]:
    refuse_kan_only(layer, diagram_only)
    return karsein.figure_names(model)


def karsein_figures(model: nn.Module, layer: int | None, top: int | None, show_pruned: bool, x: torch.Tensor | None,
                    title: str, device: str, max_memory: str | int | None) -> list[Figure]:
    refuse_kan_only(layer, False)
    return [figure for _, figure in karsein.plot_karsein(model, top, show_pruned, x, title)]


def kan_files(model: nn.Module, stem: str | Path, fmt: str, dpi: int, layer: int | None, top: int | None,
              show_pruned: bool, diagram_only: bool, title: str, device: str, max_memory: str | int | None) -> list[Path]:
    return kan.render(model, stem, fmt, dpi, layer, top, show_pruned, diagram_only, title=title, device=device,
                      max_memory=max_memory)


def karsein_files(model: nn.Module, stem: str | Path, fmt: str, dpi: int, layer: int | None, top: int | None,
                  show_pruned: bool, diagram_only: bool, title: str, device: str,
                  max_memory: str | int | None) -> list[Path]:
    refuse_kan_only(layer, diagram_only)
    return karsein.render_karsein(model, stem, fmt, dpi, top, show_pruned, title=title)


def refuse_kan_only(layer: int | None, diagram_only: bool) -> None:
    if layer is not None or diagram_only:
        raise KanxError(f"{'--layer' if layer is not None else '--diagram-only'}: not available for KarSein models "
                        "(every branch and layer is drawn; use --top to limit the panels)")


# each family's figures, their names and their files, by family name (kanx.families.registry)
FIGURES = {"kan": kan.plot_activations, "karsein": karsein_figures}
FIGURE_NAMES = {"kan": kan_names, "karsein": karsein_names}
RENDERERS = {"kan": kan_files, "karsein": karsein_files}
