"""Pictures of a KAN: every learned activation, the network diagram, symbolic overlays.

``plot_activations`` draws one figure per layer: a grid of panels, one per shown edge, each
with ``phi(x)`` over the observed range of the edge's input, a light histogram of where the
samples lie, and (for symbolic edges) the fitted formula dashed on top with its R² against the
numeric spline. ``plot_network`` draws the diagram: nodes by layer, every edge with its
miniature activation, opacity proportional to importance.

All numbers are computed batched with torch (every edge of a layer at once); drawing is
batched too: each figure is a single axes in inch coordinates holding a handful of
collections, so hundreds of edges render in seconds. Figures are plain
``matplotlib.figure.Figure`` objects with an Agg canvas (no pyplot, no GUI). matplotlib is
imported lazily so that ``import kanx`` stays fast.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import sympy
import torch

from kanx.core.errors import KanxError
from kanx.core.numerics import r2, single_thread
from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.families.kan.importance import importance
from kanx.families.kan.network import KAN
from kanx.families.registry import device_of, placed
from kanx.io.figures import Figures
from kanx.plot.settings import PlotSettings

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVE_POINTS = 96
HIST_BINS = 24
FALLBACK_ROWS = 256
# Without --top, a layer with more active edges than this draws only its most important ones
# (a 784×64 layer would otherwise ask for 50,176 panels); the heading says how many were left out.
MAX_PANELS = 256

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

# diagram layout, inches
LAYER_GAP = 2.0
MAX_DIAGRAM_W = 48.0


# ===================================================================== edge data
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


def sample_inputs(model: KAN, x: torch.Tensor | None = None) -> torch.Tensor:
    """Inputs to propagate: ``x``, else the model's stored sample, else a fixed uniform draw
    over the recorded input ranges."""
    device = device_of(model)
    if x is not None:
        return torch.as_tensor(x, dtype=torch.float32).reshape(-1, model.n_inputs).to(device)
    if model.sample_inputs.shape[0] > 0:
        return model.sample_inputs.float().to(device)
    ranges = torch.tensor(model.meta.input_ranges, dtype=torch.float32, device=device).reshape(model.n_inputs, 2)
    generator = torch.Generator().manual_seed(0)
    unit = torch.rand(FALLBACK_ROWS, model.n_inputs, generator=generator).to(device)
    return ranges[:, 0] + unit * (ranges[:, 1] - ranges[:, 0])


def node_names(model: KAN) -> list[list[str]]:
    """Names of every node layer: input names, ``h<layer>_<k>`` for hidden nodes, output names."""
    names = [list(model.meta.input_names)]
    for index in range(1, len(model.widths) - 1):
        names.append([f"h{index}_{k + 1}" for k in range(model.widths[index])])
    names.append(list(model.meta.output_names))
    return names


def subnode_targets(model: KAN, layer: int) -> tuple[list[int], list[int | None]]:
    """For every subnode of ``layer``: the node it feeds and its factor index (None for sums)."""
    shape = model.layers[layer].shape
    nodes: list[int] = list(range(shape.n_sum))
    factors: list[int | None] = [None] * shape.n_sum
    for offset, arity in enumerate(shape.mult_arities):
        nodes.extend([shape.n_sum + offset] * arity)
        factors.extend(range(arity))
    return nodes, factors


def observed_range(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input observed ``[min, max]``, widened where an input is (nearly) constant."""
    lo, hi = inputs.min(dim=0).values, inputs.max(dim=0).values
    pad = torch.where(hi - lo < 1e-9, 0.05 * lo.abs().clamp_min(1.0), torch.zeros_like(lo))
    return lo - pad, hi + pad


def _curve_points(layer: torch.nn.Module, inputs: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Abscissae ``[P, n_in]`` and row indices for evaluating every edge at once.

    Without layer norm each edge depends on its own input only, so a uniform grid over the
    observed range serves every edge. With layer norm an edge also depends on the other
    inputs, so its curve follows the samples sorted by its input (returned as row indices).
    """
    if not layer.layer_norm:
        t = torch.linspace(0, 1, points, device=inputs.device).unsqueeze(1)
        return lo + t * (hi - lo), torch.empty(0, dtype=torch.long)
    order = inputs.argsort(dim=0)  # [N, n_in]
    picks = torch.linspace(0, inputs.shape[0] - 1, min(points, inputs.shape[0]), device=inputs.device).round().long()
    rows = order[picks]  # [P, n_in]
    return inputs.gather(0, rows), rows


def _edge_values(layer: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Numeric and symbolic values of every edge (masks ignored): two ``[N, n_in, n_sub]``."""
    numeric = layer.numeric_edges(x)
    if (layer.sym_active > 0).any():
        symbolic = layer.symbolic_edges(x)
    else:
        symbolic = torch.zeros_like(numeric)
    return numeric, symbolic


def _pick(values: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Select edges ``(src, dst)`` from ``[N, n_in, n_sub]`` → ``[P, E]``; with ``rows``
    (``[P, n_in]`` sample rows per input) edge ``(i, j)`` takes the rows chosen for input ``i``."""
    if rows.numel() == 0:
        return values[:, src, dst]
    return values[rows[:, src], src, dst]


def select_edges(layer: torch.nn.Module, scores: torch.Tensor, top: int | None,
                 show_pruned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges to draw, most important first: active ones (and pruned ones after them when
    ``show_pruned``), at most ``top``. Returns ``(src, dst)`` index tensors."""
    active = (layer.mask > 0).flatten()
    key = torch.where(active, scores.flatten().double(), torch.full_like(scores.flatten().double(), -1.0))
    order = torch.sort(-key, stable=True).indices
    if not show_pruned:
        order = order[active[order]]
    if top is not None:
        order = order[:top]
    n_sub = layer.mask.shape[1]
    return order // n_sub, order % n_sub


def sample_histograms(inputs: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-input histogram of the samples over ``[lo, hi]``, scaled to max 1: ``[n_in, bins]``."""
    where = ((inputs - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)  # [N, n_in]
    ones = torch.ones_like(where.T, dtype=torch.float32)
    counts = torch.zeros(inputs.shape[1], bins, device=inputs.device).scatter_add_(1, where.T, ones)
    return counts / counts.amax(dim=1, keepdim=True).clamp_min(1.0)


def _r_squared(reference: torch.Tensor, fitted: torch.Tensor) -> torch.Tensor:
    """R² of ``fitted`` against ``reference`` per column ``[N, E]`` → ``[E]`` (NaN where the
    reference is flat: a flat edge has no shape for an overlay to match)."""
    flat = ((reference - reference.mean(dim=0)) ** 2).sum(dim=0) <= 1e-12 * reference.shape[0]
    return torch.where(flat, torch.full(flat.shape, float("nan"), dtype=torch.float64, device=flat.device),
                       r2(fitted, reference, dim=0))


def formula_mathtext(name: str, affine: tuple[float, ...], variable: str, custom: dict[str, str]) -> str:
    """``c*f(a*x+b)+d`` as mathtext with 3 significant digits, e.g. ``$0.5 \\sin(3.14 x)$``."""
    from kanx.functions.library import resolve

    symbol = sympy.Symbol("x")
    a, b, c, d = affine
    b = 0.0 if abs(b) < 1e-3 * max(1.0, abs(a)) else b
    d = 0.0 if abs(d) < 1e-3 * max(1.0, abs(c)) else d
    a, b, c, d = (_short_number(v) for v in (a, b, c, d))
    function = resolve(name, custom).sympy_fn
    expr = c * function(a * symbol + b) + d
    if function(symbol).is_polynomial(symbol):
        expr = sympy.expand(expr)
    text = sympy.latex(expr, symbol_names={symbol: _latex_name(variable)})
    for old, new in ((r"\operatorname", r"\mathrm"), (r"{\left(", r"\left("), (r"\right)}", r"\right)")):
        text = text.replace(old, new)
    return f"${text}$" if _mathtext_ok(f"${text}$") else f"{c}*{name}({a}*{variable}+{b})+{d}"


def _latex_name(name: str) -> str:
    """Mathtext for a variable name: ``h1_2`` → ``h_{1,2}``, ``x_1`` → ``x_{1}``, others upright."""
    hidden = re.fullmatch(r"h(\d+)_(\d+)", name)
    if hidden:
        return f"h_{{{hidden.group(1)},{hidden.group(2)}}}"
    if name.isidentifier():
        return sympy.latex(sympy.Symbol(name))
    return r"\mathrm{" + re.sub(r"[^A-Za-z0-9.]", "", name)[:12] + "}"


def _short_number(value: float) -> sympy.Expr:
    """A number rounded to 3 significant digits; exact integers stay integers."""
    rounded = float(f"{value:.3g}")
    return sympy.Integer(int(rounded)) if rounded == int(rounded) else sympy.Float(rounded, 3)


def _mathtext_ok(text: str) -> bool:
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(text)
    except ValueError:
        return False
    return True


@torch.no_grad()
def layer_edges(model: KAN, layer: int, inputs: torch.Tensor, scores: torch.Tensor,
                top: int | None = None, show_pruned: bool = False, points: int = CURVE_POINTS) -> EdgeSet:
    """Everything needed to draw the chosen edges of ``layer`` given its inputs ``[N, n_in]``
    and importance ``scores`` ``[n_in, n_sub]``; every edge is evaluated in one batch."""
    target = model.layers[layer]
    src, dst = select_edges(target, scores, top, show_pruned)
    lo, hi = observed_range(inputs)
    grid, rows = _curve_points(target, inputs, lo, hi, points)
    numeric, symbolic = _edge_values(target, grid if rows.numel() == 0 else inputs)
    is_symbolic = target.sym_active[src, dst] > 0
    curve_sym = _pick(symbolic, src, dst, rows)
    curve_sym = torch.where(is_symbolic & torch.isfinite(curve_sym), curve_sym, torch.full_like(curve_sym, float("nan")))
    r2 = torch.full((src.numel(),), float("nan"), device=src.device)
    if is_symbolic.any():
        sample_numeric, sample_symbolic = _edge_values(target, inputs)
        fitted = _r_squared(sample_numeric[:, src, dst], sample_symbolic[:, src, dst])
        r2 = torch.where(is_symbolic, fitted, r2)
    return EdgeSet(
        layer=layer, src=src, dst=dst, importance=scores[src, dst].float(), is_symbolic=is_symbolic,
        is_pruned=target.mask[src, dst] <= 0, xs=grid[:, src], numeric=_pick(numeric, src, dst, rows),
        symbolic=curve_sym, r2=r2, hist=sample_histograms(inputs, lo, hi, HIST_BINS)[src], lo=lo[src], hi=hi[src],
        formulas=_formulas(model, layer, src, dst, is_symbolic), active_total=int((target.mask > 0).sum()),
    )


def _formulas(model: KAN, layer: int, src: torch.Tensor, dst: torch.Tensor, is_symbolic: torch.Tensor) -> list[str | None]:
    """Mathtext formula of each symbolic edge (string formatting only; values are batched)."""
    names = node_names(model)[layer]
    out: list[str | None] = []
    for i, j, sym in zip(src.tolist(), dst.tolist(), is_symbolic.tolist()):
        edge = model.symbolic_edge(layer, i, j) if sym else None
        out.append(formula_mathtext(edge[0], edge[1], names[i], model.custom_functions) if edge else None)
    return out


def all_layer_edges(model: KAN, top: int | None = None, show_pruned: bool = False,
                    x: torch.Tensor | None = None, layers: list[int] | None = None) -> list[EdgeSet]:
    """``EdgeSet`` of each requested layer (all by default), importance = attribution."""
    inputs = [sample_inputs(model, x)]
    with torch.no_grad(), single_thread():
        scores = importance(model, inputs[0]).attribution
        for layer in model.layers[:-1]:
            inputs.append(layer(inputs[-1]))
    wanted = range(len(model.layers)) if layers is None else layers
    return [layer_edges(model, index, inputs[index], scores[index], top, show_pruned).cpu() for index in wanted]


# ===================================================================== drawing helpers
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


def _normalise(values: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return (values - low) / (high - low)


def _y_limits(edges: EdgeSet) -> tuple[torch.Tensor, torch.Tensor]:
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


def _segments(x0: torch.Tensor, y0: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
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


def _edge_title(names_in: list[str], names_out: list[str], nodes: list[int], factors: list[int | None],
                i: int, j: int) -> str:
    target = shortened(names_out[nodes[j]])
    factor = factors[j]
    suffix = f" factor {factor + 1}" if factor is not None else ""
    return f"{shortened(names_in[i])} → {target}{suffix}"


# ===================================================================== activation grid
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
    ys = y0[crosses] + _normalise(torch.zeros_like(low), low, high)[crosses] * layout.panel_h
    starts = torch.stack([x0[crosses], ys], dim=1)
    ends = torch.stack([x0[crosses] + layout.panel_w, ys], dim=1)
    ax.add_collection(LineCollection(list(torch.stack([starts, ends], dim=1).numpy()), colors="#c8c8c8",
                                     linewidths=0.6, linestyles=(0, (2, 2)), zorder=2))


def _draw_curves(ax: Axes, layout: GridLayout, edges: EdgeSet, x0: torch.Tensor, y0: torch.Tensor,
                 low: torch.Tensor, high: torch.Tensor) -> None:
    """Numeric curves (one LineCollection) and symbolic overlays (one dashed LineCollection)."""
    from matplotlib.collections import LineCollection

    w, h = layout.panel_w, layout.panel_h
    u = _normalise(edges.xs, edges.lo, edges.hi)
    v = _normalise(edges.numeric, low, high)
    colors = [PRUNED_COLOR if pruned else NUMERIC_COLOR for pruned in edges.is_pruned.tolist()]
    width = 1.0 if layout.compact else 1.4
    ax.add_collection(LineCollection(_segments(x0, y0, u, v, w, h), colors=colors, linewidths=width, zorder=3))
    sym = edges.is_symbolic
    if sym.any():
        vs = _normalise(edges.symbolic[:, sym], low[sym], high[sym])
        vs = torch.where((vs >= -0.01) & (vs <= 1.01), vs, torch.full_like(vs, float("nan")))
        ax.add_collection(LineCollection(_segments(x0[sym], y0[sym], u[:, sym], vs, w, h), colors=SYMBOLIC_COLOR,
                                         linewidths=width, linestyles=(0, (4, 2)), zorder=4))


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


def draw_panels(ax, layout, edges):
    """Frames, sample histograms, zero lines and curves of every panel of a grid; returns the
    panel origins ``x0, y0`` and the shared y limits ``low, high`` for the panel texts."""
    x0, y0 = layout.origins()
    low, high = _y_limits(edges)
    _draw_frames(ax, layout, x0, y0)
    _draw_histograms(ax, layout, edges, x0, y0)
    _draw_zero_lines(ax, layout, x0, y0, low, high)
    _draw_curves(ax, layout, edges, x0, y0, low, high)
    return x0, y0, low, high


def panel_limit(top: int | None) -> int:
    """The panels per layer actually drawn: ``top``, else ``MAX_PANELS``."""
    return top if top is not None else MAX_PANELS


def edge_sets(model: KAN, top: int | None, show_pruned: bool, x: torch.Tensor | None, layers: list[int] | None,
              device: str, max_memory: str | int | None) -> list[EdgeSet]:
    """:func:`all_layer_edges` computed on ``device`` within ``max_memory``, at most
    ``panel_limit(top)`` edges per layer; the sets come back on the CPU."""
    with memory_budget(parse_memory(max_memory)):
        on_device = placed(model, resolve_device(device))
        return all_layer_edges(on_device, panel_limit(top), show_pruned, x, layers)


# ===================================================================== network diagram
@dataclass
class DiagramLayout:
    """Diagram geometry (inches): node layers bottom to top, ``gap`` apart."""

    width: float
    height: float
    margin: float
    gap: float

    def node_x(self, count: int) -> torch.Tensor:
        inner = self.width - 2 * self.margin
        return self.margin + (torch.arange(count).float() + 0.5) * inner / count

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


def _edge_ends(model: KAN, edges: EdgeSet, layout: DiagramLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """x of each edge's source node and of its target node; factors of a multiplication node
    arrive side by side."""
    x_src = layout.node_x(model.widths[edges.layer])[edges.src]
    nodes, factors = subnode_targets(model, edges.layer)
    arity = [1] * model.layers[edges.layer].shape.n_sum + [a for a in model.mult[edges.layer + 1] for _ in range(a)]
    offsets = torch.tensor([0.0 if f is None else float(f) for f in factors]) - (torch.tensor(arity) - 1) / 2
    x_dst = layout.node_x(model.widths[edges.layer + 1])[torch.tensor(nodes)[edges.dst]]
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
    u = _normalise(edges.xs, edges.lo, edges.hi) * 0.86 + 0.07
    v = _normalise(curve, low, high) * 0.8 + 0.1
    segments = _segments(cx - box_w / 2, torch.full_like(cx, mid - box_h / 2), u, v, box_w, box_h)
    ax.add_collection(LineCollection(segments, colors=colors[1], linewidths=1.0, zorder=3))


def _draw_layer_edges(ax: Axes, model: KAN, edges: EdgeSet, layout: DiagramLayout) -> None:
    """Lines node → miniature → node (one LineCollection), then the miniatures, of one layer."""
    from matplotlib.collections import LineCollection

    if len(edges) == 0:
        return
    y_src, y_dst = layout.layer_y(edges.layer), layout.layer_y(edges.layer + 1)
    x_src, x_dst = _edge_ends(model, edges, layout)
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


def _draw_nodes(ax: Axes, model: KAN, layout: DiagramLayout) -> None:
    """Sum nodes as dots, multiplication nodes as circled ×; input/output names."""
    names = node_names(model)
    for index, width in enumerate(model.widths):
        xs = layout.node_x(width).numpy()
        y = layout.layer_y(index)
        n_mult = len(model.mult[index])
        n_sum = width - n_mult
        ax.scatter(xs[:n_sum], [y] * n_sum, s=36, color="#222222", zorder=5)
        if n_mult:
            ax.scatter(xs[n_sum:], [y] * n_mult, s=190, facecolors="white", edgecolors="#222222", linewidths=1.1, zorder=5)
            ax.scatter(xs[n_sum:], [y] * n_mult, s=60, marker="x", color="#222222", linewidths=1.3, zorder=6)
        _label_nodes(ax, xs.tolist(), y, names[index], index, len(model.widths) - 1)


def _label_nodes(ax: Axes, xs: list[float], y: float, names: list[str], index: int, last: int) -> None:
    """Input names below, output names above, hidden names small and grey beside the node."""
    crowded = len(xs) > 1 and xs[1] - xs[0] < 0.55
    if index in (0, last):
        size = 7 if crowded else 9
        for x, name in zip(xs, names):
            ax.text(x, y + (0.17 if index == last else -0.17), shortened(name, 14), fontsize=size, ha="center",
                    va="bottom" if index == last else "top", zorder=6)
    elif not crowded:
        for x, name in zip(xs, names):
            ax.text(x + 0.1, y - 0.06, name, fontsize=6.5, color=TEXT_GREY, ha="left", va="top", zorder=6,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.6})


def draw_diagram(model: KAN, sets: list[EdgeSet], title: str = "") -> Figure:
    """The network diagram from per-layer ``EdgeSet``s (layers bottom to top)."""
    layout = diagram_layout(model, sets)
    fig, ax = new_canvas(layout.width, layout.height)
    for edges in sets:
        _draw_layer_edges(ax, model, edges, layout)
    _draw_nodes(ax, model, layout)
    widths = " → ".join(str(w) for w in model.widths)
    heading = f"{title}KAN [{widths}]" if title else f"KAN [{widths}]"
    ax.text(0.2, layout.height - 0.12, heading, fontsize=10, weight="bold", ha="left", va="top")
    note = "opacity ∝ importance · red: symbolic edge · ⊗ multiplication node"
    ax.text(0.2, layout.height - 0.38, note, fontsize=7, color=TEXT_GREY, ha="left", va="top")
    return fig


# ===================================================================== checks and files
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


def _check_top(top: int | None) -> None:
    if top is not None and top < 1:
        raise KanxError(f"--top {top}: must be at least 1")


def kan_figures(model: KAN, x: torch.Tensor | None, settings: PlotSettings) -> Figures:
    """A KAN's figures: one grid per layer (or only ``settings.layer``; none with ``diagram_only``),
    one panel per active edge (most important first; at most ``top`` per layer, ``MAX_PANELS``
    without it; pruned edges greyed when ``show_pruned``), then the network diagram when asked
    for. ``x [N, n_inputs]`` replaces the model's stored sample; the edge data is computed once
    (on ``settings.device`` within ``max_memory``) and shared by the grids and the diagram."""
    _check_model(model)
    layers = _check_layer(model, settings.layer)
    prefix = f"{settings.title} — " if settings.title else ""
    top = settings.top
    sets = edge_sets(model, top, settings.show_pruned, x, None if settings.with_diagram else layers, settings.device,
                     settings.max_memory)
    named: list[tuple[str, Figure]] = []
    if not settings.diagram_only:
        chosen = sets if layers is None or not settings.with_diagram else [sets[layers[0]]]
        named = [(f"layer{s.layer}", draw_grid(model, s, panel_limit(top), prefix)) for s in chosen]
    if settings.with_diagram:
        named.append(("diagram", draw_diagram(model, sets, prefix)))
    return Figures([name for name, _ in named], [figure for _, figure in named])


def figure_names(model: KAN, settings: PlotSettings) -> list[str]:
    """The names :func:`kan_figures` gives its figures (``layer0``…, ``diagram``)."""
    layers = _check_layer(model, settings.layer)
    grids = [] if settings.diagram_only else [f"layer{index}" for index in (layers or range(len(model.layers)))]
    return grids + (["diagram"] if settings.with_diagram else [])
