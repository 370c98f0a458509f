"""The network diagram of a KAN: nodes by layer, each shown edge with its miniature activation,
opacity proportional to importance, multiplication nodes marked; each row's nodes placed in the
order of ``kanx.plot.order`` (few edge crossings), which the caption states."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from kanx.families.kan.network import KAN
from kanx.plot.edges import node_names, subnode_targets
from kanx.plot.grid import (
    NUMERIC_COLOR,
    PRUNED_COLOR,
    SYMBOLIC_COLOR,
    TEXT_GREY,
    EdgeSet,
    new_canvas,
    panel_segments,
    shortened,
    to_unit,
)
from kanx.plot.order import NodeOrder, identity_order, positions

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# diagram layout, inches
LAYER_GAP = 2.0

MAX_DIAGRAM_W = 48.0



@dataclass
class DiagramLayout:
    """Diagram geometry (inches): node layers bottom to top, ``gap`` apart."""

    width: float
    height: float
    margin: float
    gap: float

    def node_x(self, count: int) -> torch.Tensor:
        """x of the ``count`` slots of a row ``[count]``, left to right."""
        return self.margin + (torch.arange(count).float() + 0.5) * self.spacing(count)

    def spacing(self, count: int) -> float:
        """Distance between neighbouring nodes of a row of ``count``."""
        return (self.width - 2 * self.margin) / count

    def nodes_x(self, row: list[int]) -> torch.Tensor:
        """x of every node ``[n]`` (by node index) of a row drawn in order ``row`` (node indices
        left to right)."""
        return self.node_x(len(row))[positions(torch.tensor(row, dtype=torch.long))]

    def layer_y(self, index: int) -> float:
        return 0.6 + index * self.gap


def diagram_layout(model: KAN, sets: list[EdgeSet]) -> DiagramLayout:
    widest = max([len(s) * 0.62 for s in sets] + [w * 0.8 for w in model.widths] + [4.5])
    width = min(widest, MAX_DIAGRAM_W) + 1.0
    gap = min(max(LAYER_GAP, width / 10), 2.5 * LAYER_GAP)
    height = 0.6 + (len(model.widths) - 1) * gap + 1.15
    return DiagramLayout(width, height, 0.5, gap)


def _alphas(edges: EdgeSet) -> torch.Tensor:
    """Opacity proportional to importance within the layer (floor 0.06 so nothing vanishes)."""
    peak = edges.importance.max().clamp_min(1e-12) if len(edges) else torch.tensor(1.0)
    alpha = (edges.importance / peak).clamp(0.06, 1.0)
    return torch.where(edges.is_pruned, torch.full_like(alpha, 0.12), alpha)


def _rgba(edges: EdgeSet, alpha: torch.Tensor, numeric_color: str) -> list[tuple[float, ...]]:
    from matplotlib.colors import to_rgba

    colors = []
    for sym, pruned, a in zip(edges.is_symbolic.tolist(), edges.is_pruned.tolist(), alpha.tolist()):
        base = PRUNED_COLOR if pruned else SYMBOLIC_COLOR if sym else numeric_color
        colors.append(to_rgba(base, a))
    return colors


def _edge_ends(model: KAN, edges: EdgeSet, layout: DiagramLayout,
               order: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """x ``[E]`` of each edge's source node and of its target node, nodes placed in ``order``;
    factors of a multiplication node arrive side by side (factor 0 leftmost)."""
    x_src = layout.nodes_x(order[edges.layer])[edges.src]
    nodes, factors = subnode_targets(model, edges.layer)
    arity = [1] * model.layers[edges.layer].shape.n_sum + [a for a in model.mult[edges.layer + 1] for _ in range(a)]
    offsets = torch.tensor([0.0 if f is None else float(f) for f in factors]) - (torch.tensor(arity) - 1) / 2
    x_dst = layout.nodes_x(order[edges.layer + 1])[torch.tensor(nodes)[edges.dst]]
    return x_src, x_dst + 0.09 * offsets[edges.dst]


def _slot_centres(x_src: torch.Tensor, x_dst: torch.Tensor, layout: DiagramLayout) -> tuple[torch.Tensor, float]:
    """Miniature centres spread across the width, ordered by where each edge runs (fewer
    crossings); returns the centres and the slot width."""
    count = x_src.numel()
    order = torch.argsort(x_src + x_dst * 1.0001, stable=True)
    slot = torch.empty(count, dtype=torch.long)
    slot[order] = torch.arange(count)
    slot_w = (layout.width - 2 * layout.margin) / count
    return layout.margin + (slot.float() + 0.5) * slot_w, slot_w


def _draw_miniatures(ax: Axes, edges: EdgeSet, cx: torch.Tensor, mid: float, box: tuple[float, float],
                     colors: tuple[list, list]) -> None:
    """Boxes (one PolyCollection) and curves (one LineCollection) of a layer's miniatures."""
    from matplotlib.collections import LineCollection, PolyCollection

    box_w, box_h = box
    corners = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * torch.tensor([box_w, box_h])
    boxes = torch.stack([cx, torch.full_like(cx, mid)], 1)[:, None, :] + corners[None]
    ax.add_collection(PolyCollection(list(boxes.numpy()), facecolors="white", edgecolors=colors[0],
                                     linewidths=0.6, zorder=2))
    curve = edges.shown
    finite = torch.isfinite(curve)
    low = torch.where(finite, curve, torch.full_like(curve, float("inf"))).amin(0)
    high = torch.where(finite, curve, torch.full_like(curve, float("-inf"))).amax(0)
    high = torch.where(high - low < 1e-9, low + 1.0, high)
    u = to_unit(edges.xs, edges.lo, edges.hi) * 0.86 + 0.07
    v = to_unit(curve, low, high) * 0.8 + 0.1
    segments = panel_segments(cx - box_w / 2, torch.full_like(cx, mid - box_h / 2), u, v, box_w, box_h)
    ax.add_collection(LineCollection(segments, colors=colors[1], linewidths=1.0, zorder=3))


def _draw_layer_edges(ax: Axes, model: KAN, edges: EdgeSet, layout: DiagramLayout, order: list[list[int]]) -> None:
    """Lines node → miniature → node (one LineCollection), then the miniatures, of one layer."""
    from matplotlib.collections import LineCollection

    if len(edges) == 0:
        return
    y_src, y_dst = layout.layer_y(edges.layer), layout.layer_y(edges.layer + 1)
    x_src, x_dst = _edge_ends(model, edges, layout, order)
    cx, slot_w = _slot_centres(x_src, x_dst, layout)
    box_w = min(0.5, 0.8 * slot_w)
    box_h = min(0.42, max(0.12, 0.7 * box_w))
    mid = (y_src + y_dst) / 2
    alpha = _alphas(edges)
    line_colors = _rgba(edges, alpha, "#222222")
    lower = torch.stack([torch.stack([x_src, torch.full_like(cx, y_src + 0.07)], 1),
                         torch.stack([cx, torch.full_like(cx, mid - box_h / 2)], 1)], 1)
    upper = torch.stack([torch.stack([cx, torch.full_like(cx, mid + box_h / 2)], 1),
                         torch.stack([x_dst, torch.full_like(cx, y_dst - 0.07)], 1)], 1)
    ax.add_collection(LineCollection(list(torch.cat([lower, upper]).numpy()), colors=line_colors * 2,
                                     linewidths=0.9, zorder=1))
    _draw_miniatures(ax, edges, cx, mid, (box_w, box_h), (line_colors, _rgba(edges, alpha, NUMERIC_COLOR)))


def _draw_nodes(ax: Axes, model: KAN, layout: DiagramLayout, order: list[list[int]]) -> None:
    """Sum nodes as dots, multiplication nodes (the last of a layer) as circled ×, placed in
    ``order``; input/output names."""
    names = node_names(model)
    for index, width in enumerate(model.widths):
        xs = layout.nodes_x(order[index]).numpy()
        y = layout.layer_y(index)
        n_mult = len(model.mult[index])
        n_sum = width - n_mult
        ax.scatter(xs[:n_sum], [y] * n_sum, s=36, color="#222222", zorder=5)
        if n_mult:
            ax.scatter(xs[n_sum:], [y] * n_mult, s=190, facecolors="white", edgecolors="#222222", linewidths=1.1, zorder=5)
            ax.scatter(xs[n_sum:], [y] * n_mult, s=60, marker="x", color="#222222", linewidths=1.3, zorder=6)
        crowded = width > 1 and layout.spacing(width) < 0.55
        _label_nodes(ax, xs.tolist(), y, names[index], (index, len(model.widths) - 1), crowded)


def _label_nodes(ax: Axes, xs: list[float], y: float, names: list[str], rows: tuple[int, int], crowded: bool) -> None:
    """Input names below, output names above, hidden names small and grey beside the node
    (``rows``: this row's index and the last one's)."""
    index, last = rows
    if index in (0, last):
        size = 7 if crowded else 9
        for x, name in zip(xs, names):
            ax.text(x, y + (0.17 if index == last else -0.17), shortened(name, 14), fontsize=size, ha="center",
                    va="bottom" if index == last else "top", zorder=6)
    elif not crowded:
        for x, name in zip(xs, names):
            ax.text(x + 0.1, y - 0.06, name, fontsize=6.5, color=TEXT_GREY, ha="left", va="top", zorder=6,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.6})


def draw_diagram(model: KAN, sets: list[EdgeSet], title: str = "", order: NodeOrder | None = None) -> Figure:
    """The network diagram from per-layer ``EdgeSet``s (layers bottom to top), each row's nodes
    placed in ``order`` (``kanx.plot.order``; default: index order) and its caption under the
    legend."""
    layout = diagram_layout(model, sets)
    fig, ax = new_canvas(layout.width, layout.height)
    rows = order.order if order is not None else identity_order(model.widths)
    for edges in sets:
        _draw_layer_edges(ax, model, edges, layout, rows)
    _draw_nodes(ax, model, layout, rows)
    widths = " → ".join(str(w) for w in model.widths)
    heading = f"{title}KAN [{widths}]" if title else f"KAN [{widths}]"
    ax.text(0.2, layout.height - 0.12, heading, fontsize=10, weight="bold", ha="left", va="top")
    note = "opacity ∝ importance · red: symbolic edge · ⊗ multiplication node"
    ax.text(0.2, layout.height - 0.38, note, fontsize=7, color=TEXT_GREY, ha="left", va="top")
    if order is not None and order.caption:
        ax.text(0.2, layout.height - 0.54, order.caption, fontsize=7, color=TEXT_GREY, ha="left", va="top", gid="node-order")
    return fig

