"""The order the KAN diagram draws each hidden layer's nodes in: one with few edge crossings.

An *order* is, per node layer, the list of its node indices left to right (a permutation of
``range(widths[l])``); inputs and outputs keep index order. The diagram draws edge ``(i, j)`` of
KAN layer ``l`` from node ``i`` of row ``l`` to the end of subnode ``j`` in row ``l + 1``: the node
itself for a sum node; for a multiplication node (the last ``len(mult_arities)`` nodes of a layer,
``kanx.families.kan.layer.LayerShape``) its factors' ends side by side, factor 0 leftmost. Only
drawn edges count, i.e. unmasked ones. Two edges of the same layer *cross* when their ends are in
opposite order on the two rows; edges sharing an end do not cross.

Counting is exact and batched: with the mask ``[n_in, n_sub]`` rearranged into drawn order on both
sides, ``H[a, c] = 1`` for an edge from the ``a``-th source to the ``c``-th end, and the crossings
are ``Σ H[a, c]·H[a', c']`` over every pair of edges with ``a < a'`` and ``c > c'``: one product
with a 2-D cumulative sum of ``H`` (int64), no loop over edges or pairs.

Search (deterministic): with the neighbouring rows held fixed, the crossings that a row's order
decides are ``Σ_{u left of v} C[u, v]``, ``C`` ``[n, n]`` counting the crossings between node
``u``'s and node ``v``'s edges (both sides) when ``u`` is left of ``v``. Between orders with as
many crossings, the one whose crossing edges are smaller wins: ``C`` adds the crossings weighted by
the product of the two edges' sizes (:func:`edge_sizes`, normalised so the weighted part of any
order stays below ½ and never outweighs one crossing). A fully connected network, where every
order crosses as often, is drawn with its large edges apart. A row of at most ``EXACT_NODES``
nodes takes the best of all permutations; a wider one a barycentre order followed by adjacent
swaps that lower the cost. Rows are improved down and up ``SWEEPS`` times; a row's order only
changes when its cost falls, ties keep the lower original index, and the result is the index order
unless it costs strictly less. The caption reports the crossing counts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from kanx.core.choices import NODE_ORDERS
from kanx.core.errors import KanxError
from kanx.families.kan.layer import LayerShape
from kanx.families.kan.network import KAN

EXACT_NODES = 7  # rows up to this many nodes try every permutation (7! = 5040)
SWAP_NODES = 2048  # wider rows skip the adjacent swaps (their pair matrix C would be n² entries)
SWEEPS = 4  # down-and-up passes over the hidden rows

Order = list[list[int]]


# --------------------------------------------------------------------------- structure
def identity_order(widths: list[int]) -> Order:
    """Every node layer in index order."""
    return [list(range(width)) for width in widths]


def subnode_owner(shape: LayerShape) -> torch.Tensor:
    """Node of every subnode ``[n_sub]`` (sum nodes own one, a multiplication node ``arity``)."""
    sizes = torch.tensor([1] * shape.n_sum + list(shape.mult_arities), dtype=torch.long)
    return torch.repeat_interleave(torch.arange(shape.n_out), sizes)


def subnode_factor(shape: LayerShape) -> torch.Tensor:
    """Factor index of every subnode ``[n_sub]`` (0 for sum nodes)."""
    factors = [0] * shape.n_sum + [f for arity in shape.mult_arities for f in range(arity)]
    return torch.tensor(factors, dtype=torch.long)


def positions(row: torch.Tensor) -> torch.Tensor:
    """Where each node is drawn: the inverse permutation of ``row`` ``[n]`` (node indices left to right)."""
    where = torch.empty_like(row)
    where[row] = torch.arange(row.numel())
    return where


def end_order(shape: LayerShape, row: torch.Tensor) -> torch.Tensor:
    """Subnode indices ``[n_sub]`` left to right by their drawn ends, given the order ``row``
    ``[n_out]`` of the nodes they feed (a multiplication node's factors side by side)."""
    arity = max([1, *shape.mult_arities])
    key = positions(row)[subnode_owner(shape)] * arity + subnode_factor(shape)
    return torch.sort(key, stable=True).indices


def drawn_mask(model: KAN, layer: int) -> torch.Tensor:
    """``[n_in, n_sub]`` int64: 1 where KAN layer ``layer`` draws an edge (unmasked)."""
    return (model.layers[layer].mask.detach() > 0).long().cpu()


def edge_sizes(model: KAN) -> list[torch.Tensor]:
    """Per KAN layer, ``[n_in, n_sub]`` float64: each drawn edge's size (its base weight plus its
    spline weight times its largest coefficient, or a symbolic edge's outer factor), divided by the
    sum over the whole network, so that the size-weighted crossings of any order add up to less
    than ½ (``Σ_{e,f} w_e·w_f ≤ (Σ w)²/2``) and only break ties between equal crossing counts."""
    sizes = []
    for index, layer in enumerate(model.layers):
        numeric = layer.w_base.detach().abs() + layer.w_sp.detach().abs() * layer.coef.detach().abs().amax(-1)
        symbolic = layer.sym_affine.detach()[..., 2].abs()
        size = torch.where(layer.sym_active.detach() > 0, symbolic, numeric).double().cpu()
        sizes.append(torch.nan_to_num(size, nan=0.0, posinf=0.0) * drawn_mask(model, index))
    total = float(sum(size.sum() for size in sizes))
    return [size / total if total > 0 else size for size in sizes]


# --------------------------------------------------------------------------- counting
def ranked_crossings(ranked: torch.Tensor) -> int | float:
    """Crossings of the edges ``ranked[a, c] > 0`` ``[n_src, n_end]`` drawn from the ``a``-th
    source to the ``c``-th end (rows and columns in drawn order): pairs with ``a < a'``, ``c > c'``.
    An integer tensor counts them; a float one sums ``ranked[e]·ranked[f]`` over them."""
    h = ranked if ranked.is_floating_point() else ranked.long()
    below_left = h.flip(0).cumsum(0).flip(0) - h  # Σ_{a' > a} h[a', c]
    below_left = below_left.cumsum(1) - below_left  # Σ_{a' > a, c' < c} h[a', c']
    total = (h * below_left).sum()
    return float(total) if h.is_floating_point() else int(total)


def layer_crossings(model: KAN, layer: int, order: Order | list[torch.Tensor], sizes: list[torch.Tensor] | None = None) -> float:
    """Crossings among the drawn edges of KAN layer ``layer`` with node rows in ``order`` (an
    integer); with ``sizes`` (:func:`edge_sizes`), plus their size-weighted sum (the tie-break)."""
    src = torch.as_tensor(order[layer], dtype=torch.long)
    ends = end_order(model.layers[layer].shape, torch.as_tensor(order[layer + 1], dtype=torch.long))
    count = ranked_crossings(drawn_mask(model, layer)[src][:, ends])
    return count if sizes is None else count + ranked_crossings(sizes[layer][src][:, ends])


def count_crossings(model: KAN, order: Order | None = None) -> int:
    """Edge crossings of the whole diagram with node rows in ``order`` (default: index order)."""
    order = order if order is not None else identity_order(model.widths)
    return sum(layer_crossings(model, layer, order) for layer in range(len(model.layers)))


def ordering_cost(model: KAN, order: Order | list[torch.Tensor], sizes: list[torch.Tensor]) -> float:
    """What the search minimises: the crossings, then (below 1) their size-weighted sum."""
    return sum(layer_crossings(model, layer, order, sizes) for layer in range(len(model.layers)))


# --------------------------------------------------------------------------- one row
def side_counts(model: KAN, row: int, order: list[torch.Tensor],
                weights: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Drawn edges of each node ``u`` of hidden row ``row`` by where their other end is drawn:
    ``below [n, n_{row-1}]`` (edges from the row below, into any subnode of ``u``) and ``above
    [n, n_sub]`` (edges to the ends of row ``row + 1``), both float64 counts (or, with
    ``weights``, the edges' summed weights), columns left to right."""
    into = (weights[row - 1] if weights is not None else drawn_mask(model, row - 1).double())[order[row - 1]]
    owner = subnode_owner(model.layers[row - 1].shape)
    below = torch.zeros(model.widths[row], into.shape[0], dtype=torch.float64).index_add_(0, owner, into.T)
    outgoing = weights[row] if weights is not None else drawn_mask(model, row).double()
    above = outgoing[:, end_order(model.layers[row].shape, order[row + 1])]
    return below, above


def pair_costs(below: torch.Tensor, above: torch.Tensor) -> torch.Tensor:
    """``C [n, n]``: crossings between node ``u``'s and node ``v``'s edges (both sides) when ``u``
    is drawn left of ``v``, from the counts of :func:`side_counts` (exact integers in float64)."""
    total = torch.zeros(below.shape[0], below.shape[0], dtype=torch.float64)
    for counts in (below, above):
        left_of = counts.cumsum(1) - counts  # [n, K]: edges of v ending left of column k
        total += counts @ left_of.T
    return total


def order_cost(costs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Crossings a row order decides, ``Σ_{i<j} C[p_i, p_j]``, for orders ``rows [..., n]`` → ``[...]``."""
    n = rows.shape[-1]
    first, second = torch.triu_indices(n, n, 1)
    return costs[rows[..., first], rows[..., second]].sum(-1)


def exact_row(costs: torch.Tensor) -> torch.Tensor:
    """The best order ``[n]`` of every permutation (lexicographic, so ties keep the lower indices)."""
    n = costs.shape[0]
    every = torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long).reshape(-1, n)
    return every[int(order_cost(costs, every).argmin())]


def barycentre_row(below: torch.Tensor, above: torch.Tensor, current: torch.Tensor, downward: bool) -> torch.Tensor:
    """Nodes sorted by the mean drawn position (0..1) of their neighbours on the side just fixed
    (below when ``downward``), else the other side, else where they are now; ties by node index."""
    n = current.numel()
    key = (positions(current).double() * 2 + 1) / (2 * n)
    for counts in (above, below) if downward else (below, above):  # the preferred side last, so it wins
        width = counts.shape[1]
        degree = counts.sum(1)
        centre = counts @ (torch.arange(width, dtype=torch.float64) * 2 + 1) / (2 * width)
        key = torch.where(degree > 0, centre / degree.clamp_min(1), key)
    return torch.sort(key, stable=True).indices


def adjacent_swaps(costs: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """``row`` after swapping neighbours while a swap lowers the crossings (odd–even passes, each
    swap independent of the others in its pass; at most ``n`` passes)."""
    row = row.clone()
    n = row.numel()
    for _ in range(n):
        swapped = False
        for start in (0, 1):
            left = torch.arange(start, n - 1, 2)
            a, b = row[left], row[left + 1]
            better = costs[b, a] < costs[a, b]
            row[left[better]], row[left[better] + 1] = b[better], a[better]
            swapped = swapped or bool(better.any())
        if not swapped:
            break
    return row


def improve_row(model: KAN, order: list[torch.Tensor], row: int, downward: bool, sizes: list[torch.Tensor]) -> bool:
    """Re-order hidden row ``row`` with its neighbours fixed; True when its crossings fell (or,
    as many, their size-weighted sum)."""
    below, above = side_counts(model, row, order)
    current = order[row]
    if current.numel() > SWAP_NODES:
        candidate = barycentre_row(below, above, current, downward)
        trial = [*order[:row], candidate, *order[row + 1:]]
        better = local_crossings(model, trial, row, sizes) < local_crossings(model, order, row, sizes)
    else:
        costs = pair_costs(below, above) + pair_costs(*side_counts(model, row, order, sizes))
        if current.numel() <= EXACT_NODES:
            candidate = exact_row(costs)
        else:
            candidate = adjacent_swaps(costs, barycentre_row(below, above, current, downward))
        better = bool(order_cost(costs, candidate) < order_cost(costs, current))
    if better:
        order[row] = candidate
    return better


def local_crossings(model: KAN, order: list[torch.Tensor], row: int, sizes: list[torch.Tensor]) -> float:
    """:func:`ordering_cost` of the two KAN layers on either side of node row ``row``."""
    return layer_crossings(model, row - 1, order, sizes) + layer_crossings(model, row, order, sizes)


# --------------------------------------------------------------------------- the network
def minimal_crossing_order(model: KAN, sweeps: int = SWEEPS) -> Order:
    """An order of every node layer with few edge crossings (the fewest for a single hidden row
    of at most ``EXACT_NODES`` nodes): inputs and outputs in index order, each hidden row improved
    with its neighbours fixed, down then up, ``sweeps`` times; the index order unless beaten."""
    start = identity_order(model.widths)
    order = [torch.tensor(row, dtype=torch.long) for row in start]
    hidden = list(range(1, len(model.widths) - 1))
    sizes = edge_sizes(model)
    for _ in range(sweeps if hidden else 0):
        changed = [improve_row(model, order, row, True, sizes) for row in hidden]
        changed += [improve_row(model, order, row, False, sizes) for row in reversed(hidden)]
        if not any(changed):
            break
    found = [row.tolist() for row in order]
    return found if ordering_cost(model, found, sizes) < ordering_cost(model, start, sizes) else start


@dataclass(frozen=True)
class NodeOrder:
    """The diagram's node order: ``order`` per node layer (node indices left to right), where it
    came from (``source``: ``crossings`` computed, ``stored`` with the model, ``index``), and the
    edge crossings in index order (``before``) and in ``order`` (``after``)."""

    order: Order
    source: str
    before: int
    after: int

    @property
    def caption(self) -> str:
        """One line for the figure (empty for a network without hidden nodes)."""
        if len(self.order) < 3:
            return ""
        if self.source == "crossings":
            return f"hidden nodes ordered to minimise edge crossings: {self.before} → {self.after}"
        if self.source == "stored":
            return f"hidden nodes in the order stored with the model: edge crossings {self.before} → {self.after}"
        return f"hidden nodes in index order: {self.before} edge crossings"


def node_order(model: KAN, mode: str = "auto") -> NodeOrder:
    """The order the diagram uses for ``mode`` (``kanx.core.choices.NODE_ORDERS``): ``auto`` the
    model's stored order, else a crossing-minimal one; ``crossings`` a crossing-minimal one
    computed afresh; ``index`` the index order."""
    if mode not in NODE_ORDERS:
        raise KanxError(f"--node-order {mode}: must be one of {', '.join(NODE_ORDERS)}")
    before = count_crossings(model)
    stored = model.stored_node_order() if mode == "auto" else None
    if stored is not None:
        return NodeOrder(stored, "stored", before, count_crossings(model, stored))
    if mode == "index":
        return NodeOrder(identity_order(model.widths), "index", before, before)
    found = minimal_crossing_order(model)
    return NodeOrder(found, "crossings", before, count_crossings(model, found))
