"""The activation-grid toolkit both families draw with: the edges chosen for drawing (``EdgeSet``),
the canvas in inch coordinates, the grid layout and the batched drawing of every panel's frame,
sample histogram, zero line and curves (one collection each)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVE_POINTS = 96

HIST_BINS = 24

NUMERIC_COLOR = "#1f4e9c"

SYMBOLIC_COLOR = "#c0392b"

PRUNED_COLOR = "#9a9a9a"

TEXT_GREY = "#666666"

# grid layout, inches
PANEL_W, PANEL_H = 1.85, 1.15

GUTTER_LEFT, GUTTER_RIGHT = 0.5, 0.14

TITLE_H, FORMULA_H, XLABEL_H = 0.3, 0.2, 0.24

HEADER_H, FOOTER_H = 0.6, 0.4

HIST_SHARE = 0.24

COMPACT_ABOVE = 100



@dataclass
class EdgeSet:
    """The edges of one layer chosen for drawing, ordered by importance (E edges, P points).

    ``src``/``dst``: input and subnode index ``[E]``; ``xs`` ``[P, E]`` curve abscissae;
    ``numeric`` ``[P, E]`` the spline+base value (mask ignored); ``symbolic`` ``[P, E]`` the
    symbolic value (NaN on numeric edges); ``r2`` ``[E]`` R² of symbolic vs. numeric on the
    samples (NaN on numeric edges); ``hist`` ``[E, B]`` sample histogram scaled to max 1;
    ``lo``/``hi`` ``[E]`` the input range; ``formulas`` mathtext per edge (None if numeric).
    """

    layer: int
    src: torch.Tensor
    dst: torch.Tensor
    importance: torch.Tensor
    is_symbolic: torch.Tensor
    is_pruned: torch.Tensor
    xs: torch.Tensor
    numeric: torch.Tensor
    symbolic: torch.Tensor
    r2: torch.Tensor
    hist: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    formulas: list[str | None]
    active_total: int

    def __len__(self) -> int:
        return int(self.src.numel())

    def cpu(self) -> EdgeSet:
        """The same edges with every tensor on the CPU (for drawing)."""
        moved = {f.name: getattr(self, f.name).cpu() for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)

    @property
    def shown(self) -> torch.Tensor:
        """What each edge computes in the model: symbolic where active, else numeric ``[P, E]``."""
        return torch.where(self.is_symbolic.unsqueeze(0), self.symbolic, self.numeric)


def observed_range(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input observed ``[min, max]``, widened where an input is (nearly) constant."""
    lo, hi = inputs.min(dim=0).values, inputs.max(dim=0).values
    pad = torch.where(hi - lo < 1e-9, 0.05 * lo.abs().clamp_min(1.0), torch.zeros_like(lo))
    return lo - pad, hi + pad


def sample_histograms(inputs: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-input histogram of the samples over ``[lo, hi]``, scaled to max 1: ``[n_in, bins]``."""
    where = ((inputs - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)  # [N, n_in]
    ones = torch.ones_like(where.T, dtype=torch.float32)
    counts = torch.zeros(inputs.shape[1], bins, device=inputs.device).scatter_add_(1, where.T, ones)
    return counts / counts.amax(dim=1, keepdim=True).clamp_min(1.0)


def new_canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of ``width`` × ``height`` inches with one axes whose data units are inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return fig, ax


def to_unit(values: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return (values - low) / (high - low)


def panel_y_limits(edges: EdgeSet) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-panel y range: the numeric curve, widened to the symbolic overlay but by at most one
    span of the numeric curve on either side (a far-off fit is cut at the panel edge)."""
    low, high = edges.numeric.amin(dim=0), edges.numeric.amax(dim=0)
    span = (high - low).clamp_min(1e-9)
    finite = torch.isfinite(edges.symbolic)
    sym_low = torch.where(finite, edges.symbolic, high).amin(dim=0).clamp_min(low - span)
    sym_high = torch.where(finite, edges.symbolic, low).amax(dim=0).clamp_max(high + span)
    low, high = torch.minimum(low, sym_low), torch.maximum(high, sym_high)
    pad = torch.where(high - low < 1e-9, 0.05 * low.abs().clamp_min(1e-3), 0.08 * (high - low))
    return low - pad, high + pad


def panel_segments(x0: torch.Tensor, y0: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
              width: float, height: float) -> list:
    """Curves ``[P, E]`` in unit panel coordinates → LineCollection segments in inches."""
    xs = x0 + u * width
    ys = y0 + v * height
    return list(torch.stack([xs, ys], dim=-1).transpose(0, 1).numpy())


def tick_text(value: float) -> str:
    text = f"{value:.3g}".replace("e-0", "e-").replace("e+0", "e+")
    return "0" if text in ("-0", "0") else text


def shortened(name: str, limit: int = 12) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


@dataclass
class GridLayout:
    """Panel placement of an activation grid (inches). ``compact`` grids (many panels) use
    smaller panels and leave out per-panel tick labels: text dominates drawing time."""

    count: int
    columns: int
    panel_w: float
    panel_h: float
    gutter_left: float
    title_h: float
    formula_h: float
    xlabel_h: float
    compact: bool

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.count / self.columns))

    @property
    def cell_w(self) -> float:
        return self.gutter_left + self.panel_w + GUTTER_RIGHT

    @property
    def cell_h(self) -> float:
        return self.title_h + self.formula_h + self.panel_h + self.xlabel_h

    @property
    def width(self) -> float:
        return max(self.columns * self.cell_w + 0.1, 6.4)

    @property
    def height(self) -> float:
        return self.rows * self.cell_h + HEADER_H + FOOTER_H

    def origins(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bottom-left corner of each panel's plotting box: two ``[count]`` tensors."""
        index = torch.arange(self.count)
        col, row = index % self.columns, index // self.columns
        x0 = self.gutter_left + col * self.cell_w
        y0 = self.height - HEADER_H - (row + 1) * self.cell_h + self.xlabel_h
        return x0.float(), y0.float()


def grid_layout(count: int, with_formulas: bool) -> GridLayout:
    """Near-square grid (a little wider than tall) for ``count`` panels."""
    columns = max(1, min(count, math.ceil(math.sqrt(max(count, 1) * 1.4))))
    formula_h = FORMULA_H if with_formulas else 0.0
    if count > COMPACT_ABOVE:
        return GridLayout(count, columns, 1.4, 0.85, 0.12, 0.24, formula_h, 0.1, True)
    return GridLayout(count, columns, PANEL_W, PANEL_H, GUTTER_LEFT, TITLE_H, formula_h, XLABEL_H, False)


def _draw_frames(ax: Axes, layout: GridLayout, x0: torch.Tensor, y0: torch.Tensor) -> None:
    from matplotlib.collections import PolyCollection

    w, h = layout.panel_w, layout.panel_h
    corners = torch.tensor([[0, 0], [w, 0], [w, h], [0, h]])
    boxes = torch.stack([x0, y0], dim=1)[:, None, :] + corners[None]
    ax.add_collection(PolyCollection(list(boxes.numpy()), facecolors="#fcfcfc", edgecolors="#b5b5b5",
                                     linewidths=0.6, zorder=1))


def _draw_histograms(ax: Axes, layout: GridLayout, edges: EdgeSet, x0: torch.Tensor, y0: torch.Tensor) -> None:
    """Step-shaped grey histograms along the bottom of each panel, one PolyCollection."""
    from matplotlib.collections import PolyCollection

    bins = edges.hist.shape[1]
    left = torch.arange(bins).float() / bins
    u = torch.stack([left, left + 1 / bins], dim=1).flatten()  # [2B]
    v = edges.hist.repeat_interleave(2, dim=1)  # [E, 2B]
    u = torch.cat([torch.zeros(1), u, torch.ones(1)])
    v = torch.cat([torch.zeros(len(edges), 1), v, torch.zeros(len(edges), 1)], dim=1)
    xs = x0[:, None] + u[None] * layout.panel_w
    ys = y0[:, None] + v * layout.panel_h * HIST_SHARE
    ax.add_collection(PolyCollection(list(torch.stack([xs, ys], dim=-1).numpy()), facecolors="#d9d9d9",
                                     edgecolors="none", zorder=2))


def _draw_zero_lines(ax: Axes, layout: GridLayout, x0: torch.Tensor, y0: torch.Tensor, low: torch.Tensor,
                     high: torch.Tensor) -> None:
    from matplotlib.collections import LineCollection

    crosses = (low < 0) & (high > 0)
    ys = y0[crosses] + to_unit(torch.zeros_like(low), low, high)[crosses] * layout.panel_h
    starts = torch.stack([x0[crosses], ys], dim=1)
    ends = torch.stack([x0[crosses] + layout.panel_w, ys], dim=1)
    ax.add_collection(LineCollection(list(torch.stack([starts, ends], dim=1).numpy()), colors="#c8c8c8",
                                     linewidths=0.6, linestyles=(0, (2, 2)), zorder=2))


def _draw_curves(ax: Axes, layout: GridLayout, edges: EdgeSet, x0: torch.Tensor, y0: torch.Tensor,
                 low: torch.Tensor, high: torch.Tensor) -> None:
    """Numeric curves (one LineCollection) and symbolic overlays (one dashed LineCollection)."""
    from matplotlib.collections import LineCollection

    w, h = layout.panel_w, layout.panel_h
    u = to_unit(edges.xs, edges.lo, edges.hi)
    v = to_unit(edges.numeric, low, high)
    colors = [PRUNED_COLOR if pruned else NUMERIC_COLOR for pruned in edges.is_pruned.tolist()]
    width = 1.0 if layout.compact else 1.4
    ax.add_collection(LineCollection(panel_segments(x0, y0, u, v, w, h), colors=colors, linewidths=width, zorder=3))
    sym = edges.is_symbolic
    if sym.any():
        vs = to_unit(edges.symbolic[:, sym], low[sym], high[sym])
        vs = torch.where((vs >= -0.01) & (vs <= 1.01), vs, torch.full_like(vs, float("nan")))
        ax.add_collection(LineCollection(panel_segments(x0[sym], y0[sym], u[:, sym], vs, w, h), colors=SYMBOLIC_COLOR,
                                         linewidths=width, linestyles=(0, (4, 2)), zorder=4))


def draw_panels(ax, layout, edges):
    """Frames, sample histograms, zero lines and curves of every panel of a grid; returns the
    panel origins ``x0, y0`` and the shared y limits ``low, high`` for the panel texts."""
    x0, y0 = layout.origins()
    low, high = panel_y_limits(edges)
    _draw_frames(ax, layout, x0, y0)
    _draw_histograms(ax, layout, edges, x0, y0)
    _draw_zero_lines(ax, layout, x0, y0, low, high)
    _draw_curves(ax, layout, edges, x0, y0, low, high)
    return x0, y0, low, high

