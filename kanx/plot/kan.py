"""Pictures of a KAN: every learned activation with its symbolic overlay, and the diagram.

``kan_figures`` draws one figure per layer: a grid of panels, one per shown edge, each with
``phi(x)`` over the observed range of the edge's input, a light histogram of where the samples
lie, and (for symbolic edges) the fitted formula dashed on top with its R² against the numeric
spline; then, when asked for, the network diagram (``kanx.plot.diagram``).

The edge data comes from ``kanx.plot.edges`` (batched with torch, every edge of a layer at
once); drawing is batched too (``kanx.plot.grid``: each figure is a single axes in inch
coordinates holding a handful of collections), so hundreds of edges render in seconds.
Figures are plain ``matplotlib.figure.Figure`` objects with an Agg canvas (no pyplot, no GUI);
matplotlib is imported lazily so that ``import kanx`` stays fast.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.io.figures import Figures
from kanx.plot.diagram import draw_diagram
from kanx.plot.edges import edge_sets, node_names, panel_limit, subnode_targets
from kanx.plot.grid import (
    COMPACT_ABOVE,
    PRUNED_COLOR,
    SYMBOLIC_COLOR,
    TEXT_GREY,
    EdgeSet,
    GridLayout,
    draw_panels,
    grid_layout,
    new_canvas,
    shortened,
    tick_text,
)
from kanx.plot.order import node_order
from kanx.plot.settings import PlotSettings

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _edge_title(names_in: list[str], names_out: list[str], nodes: list[int], factors: list[int | None],
                i: int, j: int) -> str:
    target = shortened(names_out[nodes[j]])
    factor = factors[j]
    suffix = f" factor {factor + 1}" if factor is not None else ""
    return f"{shortened(names_in[i])} → {target}{suffix}"


def _r2_text(r2: float) -> str:
    if math.isnan(r2):
        return "R² n/a"
    return f"R²={r2:.4f}" if r2 > 0.99 else f"R²={r2:.3f}"


def _draw_panel_texts(ax: Axes, model: KAN, layout: GridLayout, edges: EdgeSet, x0: torch.Tensor,
                      y0: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
    """Titles, importance, tick labels and formula lines (a loop that only places text)."""
    names = node_names(model)
    nodes, factors = subnode_targets(model, edges.layer)
    w, h = layout.panel_w, layout.panel_h
    small = {"fontsize": 6.5, "color": TEXT_GREY}
    rows = zip(edges.src.tolist(), edges.dst.tolist(), x0.tolist(), y0.tolist(), low.tolist(), high.tolist(),
               edges.lo.tolist(), edges.hi.tolist(), edges.importance.tolist(), edges.is_pruned.tolist())
    for k, (i, j, x, y, ylo, yhi, xlo, xhi, score, pruned) in enumerate(rows):
        title_y = y + h + layout.formula_h + 0.05
        title = _edge_title(names[edges.layer], names[edges.layer + 1], nodes, factors, i, j)
        score_text = "pruned" if pruned else f"{score:.2g}"
        color = PRUNED_COLOR if pruned else "black"
        gid = f"panel-{edges.layer}-{i}-{j}"
        if layout.compact:
            ax.text(x, title_y, f"{title}  {score_text}", fontsize=6.5, ha="left", va="bottom", color=color, gid=gid)
        else:
            ax.text(x, title_y, title, fontsize=8, ha="left", va="bottom", color=color, gid=gid)
            ax.text(x + w, title_y, score_text, ha="right", va="bottom", **small)
            ax.text(x, y - 0.04, tick_text(xlo), ha="left", va="top", **small)
            ax.text(x + w, y - 0.04, tick_text(xhi), ha="right", va="top", **small)
            ax.text(x - 0.05, y + h, tick_text(yhi), ha="right", va="top", **small)
            ax.text(x - 0.05, y, tick_text(ylo), ha="right", va="bottom", **small)
        formula = edges.formulas[k]
        if formula is not None:
            size = 7 if len(formula) < 34 and not layout.compact else 6
            ax.text(x, y + h + 0.04, f"{formula}   {_r2_text(float(edges.r2[k]))}", fontsize=size, ha="left",
                    va="bottom", color=SYMBOLIC_COLOR, gid=f"symbolic-{edges.layer}-{i}-{j}")


def _grid_header(ax: Axes, model: KAN, edges: EdgeSet, layout: GridLayout, top: int | None, title: str) -> None:
    n_in, n_out = model.widths[edges.layer], model.widths[edges.layer + 1]
    what = f"{len(edges)} of {edges.active_total} active edges"
    left_out = edges.active_total - int((~edges.is_pruned).sum())
    what = f"top {what} by importance" if top and len(edges) < edges.active_total else what
    what = f"{what}, {left_out} left out (--top to change)" if left_out > 0 else what
    plural = "s" if n_out != 1 else ""
    heading = f"{title}layer {edges.layer}: {n_in} inputs → {n_out} node{plural} — {what}"
    size = min(11.0, max(7.0, (layout.width - 0.4) * 72 / (0.66 * len(heading))))
    ax.text(0.2, layout.height - 0.22, heading, fontsize=size, ha="left", va="top", weight="bold")
    parts = ["solid: learned φ(x) over the observed input range", "grey: where the samples lie"]
    if edges.is_symbolic.any():
        parts.append("dashed red: symbolic fit, R² against the spline")
    parts.append("top right: importance (attribution)" if not layout.compact else "number: importance (attribution)")
    if model.mult[edges.layer + 1]:
        parts.append("factor k: k-th input of a multiplication node")
    if model.layers[edges.layer].layer_norm:
        parts.append("layer norm: an edge also depends on the other inputs, so curves follow the samples")
    if layout.compact:
        parts.append(f"tick labels omitted above {COMPACT_ABOVE} panels (use --top or --layer)")
    per_line = max(40, int((layout.width - 0.4) * 17))
    lines, line = [], ""
    for part in parts:
        if line and len(line) + 3 + len(part) > per_line:
            lines.append(line)
            line = ""
        line = f"{line}   {part}" if line else part
    lines.append(line)
    ax.text(0.2, 0.06, "\n".join(lines), fontsize=7, ha="left", va="bottom", color=TEXT_GREY, linespacing=1.3)


def draw_grid(model: KAN, edges: EdgeSet, top: int | None = None, title: str = "") -> Figure:
    """The activation grid of one layer: one panel per edge of ``edges``, most important first."""
    layout = grid_layout(len(edges), any(f is not None for f in edges.formulas))
    fig, ax = new_canvas(layout.width, layout.height)
    _grid_header(ax, model, edges, layout, top, title)
    if len(edges) == 0:
        ax.text(layout.width / 2, layout.height / 2, "no active edges in this layer", ha="center", va="center")
        return fig
    x0, y0, low, high = draw_panels(ax, layout, edges)
    _draw_panel_texts(ax, model, layout, edges, x0, y0, low, high)
    return fig


def _check_model(model: object) -> None:
    if not isinstance(model, KAN):
        family = getattr(model, "family", type(model).__name__)
        raise KanxError(f"plotting supports KAN models, not {family!r}")


def _check_layer(model: KAN, layer: int | None) -> list[int] | None:
    if layer is None:
        return None
    count = len(model.layers)
    if not 0 <= layer < count:
        raise KanxError(f"--layer {layer}: the model has {count} layers (0..{count - 1})")
    return [layer]


def kan_figures(model: KAN, x: torch.Tensor | None, settings: PlotSettings) -> Figures:
    """A KAN's figures: one grid per layer (or only ``settings.layer``; none with ``diagram_only``),
    one panel per active edge (most important first; at most ``top`` per layer, ``MAX_PANELS``
    without it; pruned edges greyed when ``show_pruned``), then the network diagram when asked
    for, its hidden nodes placed as ``settings.node_order`` says (``kanx.plot.order``). ``x [N,
    n_inputs]`` replaces the model's stored sample; the edge data is computed once (on
    ``settings.device`` within ``max_memory``) and shared by the grids and the diagram."""
    _check_model(model)
    layers = _check_layer(model, settings.layer)
    prefix = f"{settings.title} — " if settings.title else ""
    top = settings.top
    sets = edge_sets(model, top, settings.show_pruned, x, None if settings.with_diagram else layers, settings.device,
                     settings.max_memory)
    grids = [] if settings.diagram_only else [s for s in sets if layers is None or s.layer in layers]
    figures = [draw_grid(model, s, panel_limit(top), prefix) for s in grids]
    if settings.with_diagram:
        figures.append(draw_diagram(model, sets, prefix, node_order(model, settings.node_order)))
    return Figures(figure_names(model, settings), figures)


def figure_names(model: KAN, settings: PlotSettings) -> list[str]:
    """The names :func:`kan_figures` gives its figures (``layer0``…, ``diagram``)."""
    layers = _check_layer(model, settings.layer)
    grids = [] if settings.diagram_only else [f"layer{index}" for index in (layers or range(len(model.layers)))]
    return grids + (["diagram"] if settings.with_diagram else [])

