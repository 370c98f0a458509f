"""A KAN's edge data for its pictures, computed batched with torch (every edge of a layer at
once): the inputs each layer sees, the most important edges, their curves over the observed
range, histograms, symbolic overlays with their R² and formulas as mathtext."""

from __future__ import annotations

import re

import sympy
import torch

from kanx.core.numerics import r2, single_thread
from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.families.kan.importance import importance
from kanx.families.kan.network import KAN
from kanx.families.registry import device_of, placed
from kanx.plot.grid import CURVE_POINTS, HIST_BINS, EdgeSet, observed_range, sample_histograms

FALLBACK_ROWS = 256

# Without --top, a layer with more active edges than this draws only its most important ones
# (a 784×64 layer would otherwise ask for 50,176 panels); the heading says how many were left out.
MAX_PANELS = 256



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

