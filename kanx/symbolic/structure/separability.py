"""Function-value tests of how a black-box function of several variables decomposes.

All tests query an *oracle* ``f: [N, k] float64 → [N] float64`` (a trained network, or any
callable) inside a box ``lo ≤ x ≤ hi`` and use only function values: a network's first
derivatives are usable but its second derivatives are too rough to test identities with.

* Additive separability of variables ``i`` and ``j`` (no term depends on both): the mixed
  difference ``f(x) − f(x with x_i') − f(x with x_j') + f(x with x_i', x_j')`` vanishes.
  ``additive_share[i, j] = E[Δ²] / (4 Var f)``.
* Multiplicative separability (``f = g · h`` with ``i`` in ``g`` and ``j`` in ``h``):
  ``f(x) f(x_ij') − f(x_i') f(x_j')`` vanishes; it needs no sign condition on ``f``.
  ``product_share[i, j] = E[M²] / (2 E[f²]²)``. With an offset, ``f − c`` is a product when
  ``M − c·Δ`` vanishes; ``c`` is fitted by least squares over all pairs.
* A pair ``(i, j)`` enters only through a combination ``u = c(x_i, x_j)`` (difference, sum,
  product, ratio) when moving along the level set of ``u`` leaves ``f`` unchanged:
  ``E[(f(x) − f(x*))²] / (2 Var f)`` with ``x*`` another point of the same ``u``.

Shares are dimensionless; an exact decomposition gives 0 and a network that learned it
gives its own error level (about 1e-5…1e-3 for a well-trained KAN).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy
import torch

Oracle = Callable[[torch.Tensor], torch.Tensor]


def sample_box(lo: torch.Tensor, hi: torch.Tensor, rows: int, generator: torch.Generator,
               floor: torch.Tensor | None = None) -> torch.Tensor:
    """``rows`` points of the box ``[lo, hi]`` (``[k]`` each) → ``[rows, k]`` float64: uniform,
    except the variables whose ``floor`` (``[k]``, see :func:`spread_floor`) is above 0: their
    magnitude is log-uniform between the floor and the box's largest ``|x|``, as data spread
    over decades are (a network is accurate only where its data lie, and uniform draws of a box
    two decades wide fall in its top decade nine times in ten)."""
    u = torch.rand(rows, lo.numel(), generator=generator, dtype=torch.float64)
    return _placed(lo, hi, u, generator, floor)


def _placed(lo: torch.Tensor, hi: torch.Tensor, u: torch.Tensor, generator: torch.Generator,
            floor: torch.Tensor | None) -> torch.Tensor:
    """The points ``[rows, k]`` of the box at the unit draws ``u``: uniform, or log-spread for the
    variables whose ``floor`` is above 0."""
    uniform = lo + (hi - lo) * u
    if floor is None or not bool((floor > 0).any()):
        return uniform
    return torch.where(floor > 0, _log_spread(lo, hi, floor, u, generator), uniform)


def _log_spread(lo: torch.Tensor, hi: torch.Tensor, floor: torch.Tensor, u: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
    """Points ``[rows, k]`` whose magnitude is log-uniform in ``[floor, max |x|]`` at the unit
    draws ``u`` (``[rows, k]``), signed as the box allows (either sign with equal odds where it
    spans 0), clamped to the box."""
    spans_zero = (lo < 0) & (hi > 0)
    top = torch.maximum(lo.abs(), hi.abs())
    bottom = torch.where(spans_zero, floor, torch.minimum(lo.abs(), hi.abs()).clamp_min(floor)).clamp_max(top)
    magnitude = torch.exp(bottom.log() + (top.log() - bottom.log()) * u)
    sign = torch.where(hi <= 0, -1.0, 1.0).to(torch.float64).expand_as(u)
    if bool(spans_zero.any()):
        flip = torch.rand(u.shape, generator=generator, dtype=torch.float64) < 0.5
        sign = torch.where(spans_zero & flip, -1.0, sign)
    return torch.minimum(torch.maximum(sign * magnitude, lo), hi)


def middle_sample(lo: torch.Tensor, hi: torch.Tensor, rows: int, generator: torch.Generator,
                  floor: torch.Tensor | None = None, keep: float = 0.5) -> torch.Tensor:
    """``rows`` points ``[rows, k]`` of the box's middle ``keep`` share along every variable (in
    log-magnitude for the variables with a ``floor`` above 0): candidate reference points."""
    margin = (1 - keep) / 2
    if floor is None or not bool((floor > 0).any()):
        return sample_box(lo * (1 - margin) + hi * margin, lo * margin + hi * (1 - margin), rows, generator)
    u = margin + keep * torch.rand(rows, lo.numel(), generator=generator, dtype=torch.float64)
    return _placed(lo, hi, u, generator, floor)


def grid_points(lo: float, hi: float, points: int, floor: float = 0.0) -> torch.Tensor:
    """``points`` values ``[points]`` across ``[lo, hi]``: evenly spaced, or for a variable with a
    ``floor`` above 0 evenly spaced in ``log |x|`` from the floor (on each side of 0 the box
    reaches, half of them each)."""
    if floor <= 0:
        return torch.linspace(lo, hi, points, dtype=torch.float64)
    top = max(abs(lo), abs(hi))
    if lo < 0 < hi:
        half = torch.logspace(math.log10(floor), math.log10(top), points // 2, dtype=torch.float64)
        values = torch.cat([-half.flip(0), half])
    else:
        bottom = min(max(min(abs(lo), abs(hi)), floor), top)
        values = torch.logspace(math.log10(bottom), math.log10(top), points, dtype=torch.float64)
        values = -values.flip(0) if hi <= 0 else values
    return values.clamp(lo, hi)


SPREAD_DECADES = 1.0  # a variable whose |x| spans at least this many decades may be log-spread


def spread_floor(x: torch.Tensor) -> torch.Tensor:
    """Per variable of the rows ``x`` (``[N, k]``), the floor of its magnitude when its data
    are spread over decades (``|x|`` between its 1% and 99% quantiles spans at least
    ``SPREAD_DECADES``, and the median of ``|x|`` is nearer their geometric than their arithmetic
    mean, as for log-uniform draws), else 0 (uniform: the box is sampled evenly) → ``[k]``."""
    magnitude = x.double().abs()
    levels = torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64)
    low, median, high = torch.quantile(magnitude, levels, dim=0)
    decades = torch.log10(high / low.clamp_min(1e-300))
    geometric = torch.sqrt(low * high)
    arithmetic = (low + high) / 2
    nearer_geometric = (median.log() - geometric.log()).abs() < (median.log() - arithmetic.log()).abs()
    spread = (low > 0) & (decades >= SPREAD_DECADES) & nearer_geometric
    return torch.where(spread, low, torch.zeros_like(low))


def _swapped_values(oracle: Oracle, x: torch.Tensor, partner: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``f(x)`` ``[N]``, single swaps ``[k, N]`` and pair swaps ``[P, N]`` (pairs in
    ``itertools.combinations`` order), all in one oracle call."""
    n, k = x.shape
    pairs = list(itertools.combinations(range(k), 2))
    batches = [x]
    for i in range(k):
        one = x.clone()
        one[:, i] = partner[:, i]
        batches.append(one)
    for i, j in pairs:
        two = x.clone()
        two[:, [i, j]] = partner[:, [i, j]]
        batches.append(two)
    values = oracle(torch.cat(batches)).reshape(len(batches), n)
    return values[0], values[1 : k + 1], values[k + 1 :]


@dataclass
class PairShares:
    """``[k, k]`` symmetric matrices of pairwise non-separability (zero diagonal)."""

    additive: torch.Tensor
    product: torch.Tensor
    offset: float = 0.0
    offset_product: torch.Tensor | None = None


def pair_shares(oracle: Oracle, lo: torch.Tensor, hi: torch.Tensor, rows: int, generator: torch.Generator,
                floor: torch.Tensor | None = None) -> PairShares:
    """Additive and multiplicative non-separability of every pair of variables, on points of the
    box drawn as :func:`sample_box` does with ``floor``."""
    k = lo.numel()
    additive = torch.zeros(k, k, dtype=torch.float64)
    product = torch.zeros(k, k, dtype=torch.float64)
    if k < 2:
        return PairShares(additive, product)
    x, partner = sample_box(lo, hi, rows, generator, floor), sample_box(lo, hi, rows, generator, floor)
    base, single, double = _swapped_values(oracle, x, partner)
    pairs = list(itertools.combinations(range(k), 2))
    first, second = zip(*pairs)
    mixed = base - single[list(first)] - single[list(second)] + double  # [P, N]
    cross = base * double - single[list(first)] * single[list(second)]
    # f − c is a product exactly when cross − c·mixed vanishes: c by least squares over all pairs
    offset = float((cross * mixed).sum() / (mixed * mixed).sum().clamp_min(1e-300))
    shifted = cross - offset * mixed
    variance = base.var(unbiased=False).clamp_min(1e-300)
    square = (base * base).mean().clamp_min(1e-300)
    offset_product = torch.zeros(k, k, dtype=torch.float64)
    for p, (i, j) in enumerate(pairs):
        additive[i, j] = additive[j, i] = (mixed[p] ** 2).mean() / (4 * variance)
        product[i, j] = product[j, i] = (cross[p] ** 2).mean() / (2 * square * square)
        offset_product[i, j] = offset_product[j, i] = (shifted[p] ** 2).mean() / (2 * square * square)
    return PairShares(additive, product, offset, offset_product)


def components(share: torch.Tensor, threshold: float) -> list[list[int]]:
    """Connected components of the graph ``share > threshold`` (sorted lists of indices)."""
    k = share.shape[0]
    parent = list(range(k))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in itertools.combinations(range(k), 2):
        if float(share[i, j]) > threshold:
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(k):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())


# --------------------------------------------------------------------------- combinations
@dataclass(frozen=True)
class Combination:
    """How a pair enters: ``u = c(x_i, x_j)`` and ``x_i`` recovered from ``(u, x_j)``."""

    name: str
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    solve_i: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    sympy_form: Callable[[sympy.Expr, sympy.Expr], sympy.Expr]
    positive_only: bool


COMBINATIONS = (
    Combination("difference", lambda a, b: a - b, lambda u, b: u + b, lambda a, b: a - b, False),
    Combination("sum", lambda a, b: a + b, lambda u, b: u - b, lambda a, b: a + b, False),
    Combination("product", lambda a, b: a * b, lambda u, b: u / b, lambda a, b: a * b, True),
    Combination("ratio", lambda a, b: a / b, lambda u, b: u * b, lambda a, b: a / b, True),
)


def feasible_partner(combo: Combination, u: torch.Tensor, lo_i: float, hi_i: float, lo_j: float,
                     hi_j: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval ``[low, high]`` (``[N]`` each) of ``x_j`` values for which ``x_i`` solved from
    ``u`` lies in ``[lo_i, hi_i]``, intersected with ``[lo_j, hi_j]``."""
    if combo.name == "difference":
        low, high = lo_i - u, hi_i - u
    elif combo.name == "sum":
        low, high = u - hi_i, u - lo_i
    elif combo.name == "product":
        low, high = u / hi_i, u / lo_i
    else:
        low, high = lo_i / u, hi_i / u
    return low.clamp_min(lo_j), high.clamp_max(hi_j)


def combination_range(combo: Combination, lo_i: float, hi_i: float, lo_j: float, hi_j: float) -> tuple[float, float]:
    """Range of ``u = c(x_i, x_j)`` over the box."""
    corners = [combo.forward(torch.tensor(a), torch.tensor(b)) for a in (lo_i, hi_i) for b in (lo_j, hi_j)]
    values = [float(c) for c in corners]
    return min(values), max(values)


def combination_residual(oracle: Oracle, lo: torch.Tensor, hi: torch.Tensor, i: int, j: int, combo: Combination,
                         rows: int, generator: torch.Generator, floor: torch.Tensor | None = None) -> float:
    """How much ``f`` changes along level sets of ``c(x_i, x_j)`` (0 when it enters only
    through ``c``), as a share of ``Var f``, from points drawn as :func:`sample_box` does with
    ``floor``."""
    lo_i, hi_i, lo_j, hi_j = float(lo[i]), float(hi[i]), float(lo[j]), float(hi[j])
    if combo.positive_only and min(lo_i, lo_j) <= 0:
        return float("inf")
    x = sample_box(lo, hi, rows, generator, floor)
    u = combo.forward(x[:, i], x[:, j])
    low, high = feasible_partner(combo, u, lo_i, hi_i, lo_j, hi_j)
    moved = x.clone()
    moved[:, j] = low + (high - low) * torch.rand(rows, generator=generator, dtype=torch.float64)
    moved[:, i] = combo.solve_i(u, moved[:, j]).clamp(lo_i, hi_i)
    spread = (high - low) / (hi_j - lo_j)
    keep = spread > 0.05  # points whose level set is long enough to tell anything
    if int(keep.sum()) < rows // 8:
        return float("inf")
    values = oracle(torch.cat([x[keep], moved[keep]]))
    base, other = values.chunk(2)
    variance = base.var(unbiased=False).clamp_min(1e-300)
    return float(((base - other) ** 2).mean() / (2 * variance))
