"""Edits of a KAN that keep what it computes (up to a measured error): symbolic edges made
trainable splines, B-spline grids refined, hidden layers widened.

These are the steps of the KAN 2.0 loop between a prior and a law: a compiled formula's edges
become splines the data can correct (:func:`splines_from_symbolic`), a spline gains resolution
without changing (:func:`refine_grid`), and new hidden nodes join near zero (:func:`widen`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.families.kan.basis import bspline_basis, uniform_knots
from kanx.families.kan.layer import KANLayer, LayerShape, base_function, least_squares_coef
from kanx.families.kan.network import KAN

SAMPLE_MARGIN = 0.05  # knots reach this share of an input's span beyond the samples
LS_RIDGE = 1e-10  # these fits reproduce a function the new knots can represent: next to no ridge


def layer_inputs(model: KAN, x: torch.Tensor) -> list[torch.Tensor]:
    """What enters every layer for inputs ``x`` ``[N, n_inputs]``: one ``[N, n_in]`` per layer."""
    inputs = []
    with torch.no_grad():
        for layer in model.layers:
            inputs.append(x)
            x = layer(x)
    return inputs


def spanning_knots(z: torch.Tensor, grid: int, order: int) -> torch.Tensor:
    """Uniform knots per input spanning the samples ``z`` ``[N, n_in]`` with a margin:
    ``[n_in, grid + 2*order + 1]``."""
    lo, hi = z.min(dim=0).values, z.max(dim=0).values
    span = torch.maximum(hi - lo, 1e-3 * torch.maximum(lo.abs(), hi.abs()).clamp_min(1.0))
    return uniform_knots(lo - SAMPLE_MARGIN * span, hi + SAMPLE_MARGIN * span, grid, order)


@torch.no_grad()
def splines_from_symbolic(model: KAN, x: torch.Tensor, layers: Iterable[int] | None = None) -> KAN:
    """A copy of ``model`` whose symbolic edges in ``layers`` (default: every layer) are B-spline
    edges fitted to their functions on the values that the inputs ``x`` ``[N, n_inputs]`` bring to
    each layer (knots re-placed to span those values; base weight 0, spline weight 1). Numeric
    edges there keep their shape, refitted on the new knots. Needs a B-spline basis."""
    if model.basis["kind"] != "bspline":
        raise KanxError(f"symbolic edges become B-spline edges; this model's basis is {model.basis['kind']}")
    result = copy.deepcopy(model)
    grid, order = int(model.basis["grid"]), int(model.basis["k"])
    chosen = set(range(len(model.layers)) if layers is None else layers)
    for index, (layer, z) in enumerate(zip(result.layers, layer_inputs(model, x))):
        if index not in chosen:
            continue
        symbolic = (layer.sym_active > 0) & (layer.mask > 0)
        target = torch.where(symbolic, layer.symbolic_edges(z), layer.numeric_edges(z))
        base = base_function(layer.base_fn, z)
        w_base = torch.where(symbolic, torch.zeros_like(layer.w_base), layer.w_base)
        w_sp = torch.where(symbolic, torch.ones_like(layer.w_sp), layer.w_sp)
        spline_part = (target - base.unsqueeze(-1) * w_base) / torch.where(w_sp == 0, torch.ones_like(w_sp), w_sp)
        layer.knots = spanning_knots(z.double(), grid, order).to(layer.knots.dtype)
        coef = least_squares_coef(bspline_basis(z.double(), layer.knots.double(), order), spline_part, ridge=LS_RIDGE)
        layer.coef.copy_(coef.to(layer.coef.dtype))
        layer.w_base.copy_(w_base)
        layer.w_sp.copy_(w_sp)
        layer.sym_active.zero_()
    return result


@dataclass(frozen=True)
class GridRefinement:
    """A refined network and how much its edges moved: ``max_change`` is the largest difference
    of any spline edge on its inputs' knot range, as a share of that edge's range of values."""

    model: KAN
    old_grid: int
    new_grid: int
    max_change: float

    def to_dict(self) -> dict:
        return {"old_grid": self.old_grid, "new_grid": self.new_grid, "max_change": self.max_change}

    def __repr__(self) -> str:
        return f"GridRefinement(grid {self.old_grid} → {self.new_grid}, largest edge change {self.max_change:.2g} of its range)"

    def _repr_html_(self) -> str:
        return html_table(["old grid", "new grid", "largest edge change (share of its range)"],
                          [[self.old_grid, self.new_grid, f"{self.max_change:.2g}"]], "kanx refine_grid")


def interval_splits(widths: torch.Tensor, total: int) -> torch.Tensor:
    """How many equal parts each of the ``[G]`` intervals of ``widths`` becomes so that there are
    ``total`` >= G parts in all, in proportion to the widths (largest remainders; each >= 1)."""
    share = widths / widths.sum() * total
    parts = share.floor().clamp_min(1).long()
    order = torch.argsort(-(share - share.floor()), stable=True)
    position = 0
    while int(parts.sum()) != total:
        index = order[position % len(order)]
        if int(parts.sum()) < total:
            parts[index] += 1
        elif parts[index] > 1:
            parts[index] -= 1
        position += 1
    return parts


def refined_knots(knots: torch.Tensor, grid: int, new_grid: int, order: int) -> torch.Tensor:
    """Knots ``[n_in, new_grid + 2*order + 1]`` that contain every knot of ``knots``
    ``[n_in, grid + 2*order + 1]``: each interior interval is cut into equal parts, wider
    intervals into more. Splines on the old knots are splines on the new ones, so a least-squares
    refit reproduces them."""
    rows = []
    for row in knots.double():
        inner = row[order: order + grid + 1]
        parts = interval_splits(inner[1:] - inner[:-1], new_grid)
        pieces = [inner[m] + (inner[m + 1] - inner[m]) * torch.arange(count, dtype=row.dtype) / count
                  for m, count in enumerate(parts.tolist())]
        rows.append(torch.cat([row[:order], *pieces, row[order + grid:]]))
    return torch.stack(rows)


@torch.no_grad()
def refine_grid(model: KAN, grid: int, points_per_interval: int = 12) -> GridRefinement:
    """A copy of ``model`` with every B-spline edge on ``grid`` intervals (more than it has),
    fitted by least squares to the edge as it is on its knot range (pykan's ``refine``). The new
    knots contain the old ones, so the edges are unchanged up to rounding; ``max_change`` says by
    how much."""
    if model.basis["kind"] != "bspline":
        raise KanxError(f"--grid refines B-spline grids; this model's basis is {model.basis['kind']}")
    old_grid, order = int(model.basis["grid"]), int(model.basis["k"])
    if grid <= old_grid:
        raise KanxError(f"--grid {grid}: the model already has {old_grid} intervals; a refinement needs more")
    result = copy.deepcopy(model)
    result.basis = {**model.basis, "grid": int(grid)}
    worst = 0.0
    for old, new in zip(model.layers, result.layers):
        knots = refined_knots(old.knots, old_grid, grid, order)
        z = interval_points(knots, points_per_interval)
        before = torch.einsum("nik,ijk->nij", bspline_basis(z, old.knots.double(), order), old.coef.double())
        basis = bspline_basis(z, knots, order)
        coef = least_squares_coef(basis, before, ridge=LS_RIDGE)
        new.basis_spec = dict(result.basis)
        new.knots = knots.to(old.knots.dtype)
        new.coef = torch.nn.Parameter(coef.to(old.coef.dtype), requires_grad=old.coef.requires_grad)
        new.reuse_basis(False)
        worst = max(worst, spline_change(old, new))
    return GridRefinement(result, old_grid, int(grid), worst)


def interval_points(knots: torch.Tensor, per_interval: int) -> torch.Tensor:
    """``per_interval`` equally spaced points in every interval of each input's knots
    ``[n_in, M]`` (left ends included, right ends not): ``[(M - 1) * per_interval, n_in]``."""
    fraction = torch.arange(per_interval, dtype=knots.dtype) / per_interval
    width = knots[:, 1:] - knots[:, :-1]
    points = knots[:, :-1, None] + width[:, :, None] * fraction  # [n_in, M - 1, per_interval]
    return points.reshape(knots.shape[0], -1).T


def spline_change(old: KANLayer, new: KANLayer, points: int = 400) -> float:
    """Largest difference between the spline parts of two layers' edges on the old knots'
    interior range, as a share of each edge's range there (``w_sp`` applied)."""
    order, grid = int(old.basis_spec["k"]), int(old.basis_spec["grid"])
    lo, hi = old.knots[:, order].double(), old.knots[:, order + grid].double()
    z = lo + (hi - lo) * torch.linspace(0, 1, points, dtype=torch.float64)[:, None]
    z = z.clamp(max=torch.nextafter(hi, lo))

    def values(layer: KANLayer) -> torch.Tensor:
        spline = torch.einsum("nik,ijk->nij", bspline_basis(z, layer.knots.double(), order), layer.coef.double())
        return spline * layer.w_sp.double()

    before, after = values(old), values(new)
    scale = (before.amax(dim=0) - before.amin(dim=0)).clamp_min(1e-12)
    return float(((after - before).abs().amax(dim=0) / scale).max())


@torch.no_grad()
def widen(model: KAN, count: int, seed: int = 0, scale: float = 1e-3, hidden: Iterable[int] | None = None) -> KAN:
    """A copy of ``model`` with ``count`` more summing nodes in each hidden node layer of
    ``hidden`` (default: all), placed before its multiplication nodes. Their incoming edges start
    as a fresh layer's would; their outgoing edges start at ``scale`` of that, so the network
    computes what it did up to ``scale``, and the data can grow them."""
    if count < 0:
        raise KanxError(f"--widen {count}: must be >= 0")
    widened = set(range(1, len(model.widths) - 1) if hidden is None else hidden)
    if count and not widened:
        raise KanxError("--widen: the model has no hidden layer to widen")
    if count == 0:
        return copy.deepcopy(model)
    widths = [w + count if index in widened else w for index, w in enumerate(model.widths)]
    wider = KAN(widths, model.basis, model.mult, model.base_fn, model.layer_norm, model.meta.input_ranges,
                model.meta.input_names, model.meta.output_names, seed=seed)
    wider.meta = copy.deepcopy(model.meta)
    wider.meta.node_order = []  # the drawing order of the narrower layers no longer fits
    wider.sample_inputs, wider.held_out_inputs = model.sample_inputs.clone(), model.held_out_inputs.clone()
    wider.held_out_targets = model.held_out_targets.clone()
    wider.custom_functions = dict(model.custom_functions)
    for name in model.symbolic_functions:
        wider.function_index(name)
    for index, (old, new) in enumerate(zip(model.layers, wider.layers)):
        inputs = node_map(old.shape.n_in, old.shape, count, index in widened, model.mult[index])
        subnodes = node_map(old.shape.n_sub, old.shape, count, index + 1 in widened, None)
        copy_layer(old, new, inputs, subnodes, scale)
    return wider


def node_map(size: int, shape: LayerShape, count: int, widened: bool, input_mult: list[int] | None) -> torch.Tensor:
    """Where the ``size`` old nodes (``input_mult`` given: input nodes of a layer whose node layer
    has those multiplication arities) or subnodes land in the widened layer: the summing ones keep
    their place, and everything after them moves ``count`` along."""
    if not widened:
        return torch.arange(size)
    if input_mult is not None:
        summing = size - len(input_mult)
    else:
        summing = shape.n_sum
    index = torch.arange(size)
    return torch.where(index < summing, index, index + count)


def copy_layer(old: KANLayer, new: KANLayer, inputs: torch.Tensor, subnodes: torch.Tensor, scale: float) -> None:
    """Copy ``old``'s edges into ``new`` at rows ``inputs`` and columns ``subnodes``; edges out of
    the new input nodes are scaled by ``scale``."""
    fresh_inputs = torch.ones(new.shape.n_in, dtype=torch.bool)
    fresh_inputs[inputs] = False
    new.coef[fresh_inputs] *= scale
    new.w_base[fresh_inputs] *= scale
    rows, cols = inputs[:, None], subnodes[None, :]
    for name in ("coef", "w_base", "w_sp", "sym_affine", "mask", "sym_active", "sym_index"):
        getattr(new, name)[rows, cols] = getattr(old, name)
    new.sub_scale[subnodes], new.sub_bias[subnodes] = old.sub_scale, old.sub_bias
    kept_nodes = node_positions(old.shape, new.shape)
    new.node_scale[kept_nodes], new.node_bias[kept_nodes] = old.node_scale, old.node_bias
    if new.basis_spec["kind"] == "bspline":
        new.knots[inputs] = old.knots
    elif new.basis_spec["kind"] == "rbf":
        new.centers[inputs] = old.centers
    if old.layer_norm:
        new.norm_weight[inputs], new.norm_bias[inputs] = old.norm_weight, old.norm_bias
    new.symbolic_table = old.symbolic_table


def node_positions(old: LayerShape, new: LayerShape) -> torch.Tensor:
    """Where ``old``'s output nodes sit among ``new``'s (summing nodes first, then the same
    multiplication nodes)."""
    index = torch.arange(old.n_out)
    return torch.where(index < old.n_sum, index, index + (new.n_sum - old.n_sum))
