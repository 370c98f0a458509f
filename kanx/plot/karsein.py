"""Pictures of a KarSein model: every per-feature activation, one figure per branch and layer.

Each panel draws the spline activation ``s_i(x)`` of one feature over the observed range of its
input (on the model's stored sample, or rows ``x``), with a light histogram of where the
samples lie; its title is the feature label (``user[2]``, ``b1.4``, ``user⊙item``, ``v1.3``, see
``kanx.families.karsein.features``) and its corner the feature's attribution. Panels are ordered by
attribution. Every output of the layer mixes the panel's curve with SiLU:
``w_base[i, j]·silu(x) + w_sp[i, j]·s_i(x)``. In the vector-wise branch one curve acts on all ``D``
embedding coordinates, and its histogram pools them.

Drawing reuses ``kanx.plot.grid`` (panel layout, frames, histograms, curves; files through
``kanx.io.figures``);
curves of a whole layer are evaluated in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from kanx.core.errors import KanxError
from kanx.core.numerics import single_thread
from kanx.families.karsein.features import FeatureLayer, default_rows, feature_importance, feature_layers, layer_inputs
from kanx.families.karsein.model import KarSein
from kanx.io.figures import Figures
from kanx.plot.grid import (
    CURVE_POINTS,
    HIST_BINS,
    PRUNED_COLOR,
    TEXT_GREY,
    EdgeSet,
    GridLayout,
    draw_panels,
    grid_layout,
    new_canvas,
    observed_range,
    sample_histograms,
    shortened,
    tick_text,
)
from kanx.plot.settings import PlotSettings

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BRANCH_NAMES = {"bit": "bit-wise", "vec": "vector-wise"}


@dataclass
class FeaturePanels:
    """The panels of one layer: ``edges`` (``src`` = feature index, ``dst`` = 0, curves ``[P, E]``)
    and the label of each shown feature."""

    name: str
    feature: FeatureLayer
    edges: EdgeSet
    labels: list[str]


def figure_names(model: KarSein, settings: PlotSettings) -> list[str]:
    """``bit_layer0``, …, ``vec_layer0``, … in ``model.all_layers()`` order."""
    refuse_kan_only(settings)
    return [f"{f.branch}_layer{f.index}" for f in feature_layers(model)]


def select_features(mask: torch.Tensor, scores: torch.Tensor, top: int | None, show_pruned: bool) -> torch.Tensor:
    """Features to draw, most important first (masked ones after the active ones, only with
    ``show_pruned``), at most ``top``."""
    active = mask > 0
    key = torch.where(active, scores.double(), torch.full_like(scores.double(), -1.0))
    order = torch.sort(-key, stable=True).indices
    if not show_pruned:
        order = order[active[order]]
    return order if top is None else order[:top]


@torch.no_grad()
def layer_panels(feature: FeatureLayer, z: torch.Tensor, scores: torch.Tensor, top: int | None = None,
                 show_pruned: bool = False, points: int = CURVE_POINTS) -> FeaturePanels:
    """Curves of the chosen features of one layer given its inputs ``z [M, n_in]`` and
    attribution ``scores [n_in]`` (every feature evaluated in one batch)."""
    layer = feature.layer
    src = select_features(layer.mask, scores, top, show_pruned)
    lo, hi = observed_range(z)
    grid = lo + torch.linspace(0, 1, points)[:, None] * (hi - lo)  # [P, n_in]
    curves = layer.activations(grid)[:, src]
    nan = torch.full_like(curves, float("nan"))
    edges = EdgeSet(
        layer=feature.index, src=src, dst=torch.zeros_like(src), importance=scores[src].float(),
        is_symbolic=torch.zeros(len(src), dtype=torch.bool), is_pruned=layer.mask[src] <= 0, xs=grid[:, src],
        numeric=curves, symbolic=nan, r2=torch.full((len(src),), float("nan")),
        hist=sample_histograms(z, lo, hi, HIST_BINS)[src], lo=lo[src], hi=hi[src], formulas=[None] * len(src),
        active_total=int((layer.mask > 0).sum()),
    )
    return FeaturePanels(f"{feature.branch}_layer{feature.index}", feature, edges, [feature.labels[i] for i in src.tolist()])


def all_panels(model: KarSein, top: int | None = None, show_pruned: bool = False,
               x: torch.Tensor | None = None) -> list[FeaturePanels]:
    """``FeaturePanels`` of every layer on rows ``x`` (default: the stored sample, else drawn ids)."""
    rows = default_rows(model, 1000, 0) if x is None else torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad(), single_thread():
        inputs = layer_inputs(model, rows)
        scores = feature_importance(model, rows).attribution
        return [layer_panels(f, z, s, top, show_pruned) for f, z, s in zip(feature_layers(model), inputs, scores)]


# ===================================================================== drawing
def _panel_texts(ax: Axes, layout: GridLayout, panels: FeaturePanels, x0: torch.Tensor, y0: torch.Tensor,
                 low: torch.Tensor, high: torch.Tensor) -> None:
    """Titles (feature labels), importance and tick labels (a loop that only places text)."""
    edges, w, h = panels.edges, layout.panel_w, layout.panel_h
    small = {"fontsize": 6.5, "color": TEXT_GREY}
    rows = zip(panels.labels, edges.src.tolist(), x0.tolist(), y0.tolist(), low.tolist(), high.tolist(),
               edges.lo.tolist(), edges.hi.tolist(), edges.importance.tolist(), edges.is_pruned.tolist())
    for label, i, x, y, ylo, yhi, xlo, xhi, score, pruned in rows:
        title_y = y + h + layout.formula_h + 0.05
        score_text = "pruned" if pruned else f"{score:.2g}"
        color = PRUNED_COLOR if pruned else "black"
        gid = f"panel-{panels.name}-{i}"
        if layout.compact:
            ax.text(x, title_y, f"{shortened(label, 16)}  {score_text}", fontsize=6.5, ha="left", va="bottom", color=color, gid=gid)
            continue
        ax.text(x, title_y, shortened(label, 18), fontsize=8, ha="left", va="bottom", color=color, gid=gid)
        ax.text(x + w, title_y, score_text, ha="right", va="bottom", **small)
        ax.text(x, y - 0.04, tick_text(xlo), ha="left", va="top", **small)
        ax.text(x + w, y - 0.04, tick_text(xhi), ha="right", va="top", **small)
        ax.text(x - 0.05, y + h, tick_text(yhi), ha="right", va="top", **small)
        ax.text(x - 0.05, y, tick_text(ylo), ha="right", va="bottom", **small)


def _header(ax: Axes, model: KarSein, panels: FeaturePanels, layout: GridLayout, top: int | None, title: str) -> None:
    feature, edges = panels.feature, panels.edges
    what = f"{len(edges)} of {edges.active_total} active features"
    what = f"top {what} by importance" if top and len(edges) < edges.active_total else what
    heading = (f"{title}{BRANCH_NAMES[feature.branch]} layer {feature.index}: {feature.n_in} features → "
               f"{feature.layer.n_out} output{'s' if feature.layer.n_out != 1 else ''} — {what}")
    size = min(11.0, max(7.0, (layout.width - 0.4) * 72 / (0.66 * len(heading))))
    ax.text(0.2, layout.height - 0.22, heading, fontsize=size, ha="left", va="top", weight="bold")
    legend = "solid: spline activation s(x) over the observed input range; outputs mix w_base·silu(x) + w_sp·s(x)"
    if feature.branch == "vec":
        legend += f"; one curve acts on all {model.emb_dim} embedding coordinates"
    legend += "   grey: where the samples lie   top right: importance (attribution)"
    ax.text(0.2, 0.06, legend, fontsize=7, ha="left", va="bottom", color=TEXT_GREY, wrap=True)


def draw_feature_grid(model: KarSein, panels: FeaturePanels, top: int | None = None, title: str = "") -> Figure:
    """One figure: a panel per shown feature of one layer, most important first."""
    edges = panels.edges
    layout = grid_layout(len(edges), False)
    fig, ax = new_canvas(layout.width, layout.height)
    _header(ax, model, panels, layout, top, title)
    if len(edges) == 0:
        ax.text(layout.width / 2, layout.height / 2, "no active features in this layer", ha="center", va="center")
        return fig
    x0, y0, low, high = draw_panels(ax, layout, edges)
    _panel_texts(ax, layout, panels, x0, y0, low, high)
    return fig


def karsein_figures(model: KarSein, x: torch.Tensor | None, settings: PlotSettings) -> Figures:
    """One grid per branch and layer (``bit_layer0`` … ``vec_layer0`` …) of per-feature curves,
    computed on the CPU; KarSein has no single layer to pick and no diagram (``settings.diagram``
    is ignored)."""
    if not isinstance(model, KarSein):
        raise KanxError(f"KarSein plotting needs a KarSein model, not {getattr(model, 'family', type(model).__name__)!r}")
    refuse_kan_only(settings)
    prefix = f"{settings.title} — " if settings.title else ""
    panels = all_panels(model, settings.top, settings.show_pruned, x)
    return Figures([p.name for p in panels], [draw_feature_grid(model, p, settings.top, prefix) for p in panels])


def refuse_kan_only(settings: PlotSettings) -> None:
    if settings.layer is not None or settings.diagram_only:
        raise KanxError(f"{'--layer' if settings.layer is not None else '--diagram-only'}: not available for KarSein models "
                        "(every branch and layer is drawn; use --top to limit the panels)")
