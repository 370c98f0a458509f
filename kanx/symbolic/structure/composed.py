"""Inner functions of a composed sum ``f = g(h_1(x_1) + … + h_k(x_k))`` from an oracle.

For such an ``f`` every partial derivative is ``f_i = g'(u)·h_i'(x_i)``, so the ratio
``f_i / f_m = h_i'(x_i) / h_m'(x_m)`` does not involve ``g`` at all. Along the line through a
reference point ``r`` on which only ``x_i`` moves, ``h_i'(t) ∝ f_i / f_m`` (``m`` another variable,
whose ``h_m'(r_m)`` is then constant), and integrating gives ``h_i`` up to an offset and a
factor. Put in one unit (the factors from derivative ratios over the whole box), the profiles add
up to ``u`` up to a constant, and ``g`` is the function of one variable that maps ``u`` to ``f``.

Derivatives are central differences of the oracle (a network is smooth enough for first
derivatives, not for identities between second ones). Where the anchor's derivative is nearly 0
along a line (``g'(u) = 0``: both derivatives vanish and their ratio says nothing) the ratio is
interpolated from its neighbours. :func:`single_index_share` then tunes the profiles' relative
scales on function values and tells whether ``f`` is indeed a function of their sum alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kanx.symbolic.structure.separability import Oracle, sample_box

STEP_SHARE = 2e-3  # finite-difference step, as a share of each variable's range
GRID_POINTS = 256  # points per profile
REFERENCE_CHOICES = 32  # candidate reference points in the middle of the box
WEAK_SLOPE = 0.02  # an anchor derivative below this share of its largest size on the line is unreliable
MAX_WEAK_SHARE = 0.25  # a line with more unreliable points than this gives no profile


@dataclass
class InnerProfiles:
    """``grids [k, P]`` (each variable's range) and ``values [k, P]``: ``h_i`` on its grid, in one
    common unit, each starting at 0 (the offsets are not identifiable)."""

    grids: torch.Tensor
    values: torch.Tensor


def partial_derivatives(oracle: Oracle, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Central-difference gradient of the oracle at ``x [N, k]`` → ``[N, k]`` (steps of
    ``STEP_SHARE`` of each range; one oracle call)."""
    n, k = x.shape
    step = STEP_SHARE * (hi - lo)
    moved = []
    for i in range(k):
        shift = torch.zeros(k, dtype=x.dtype)
        shift[i] = step[i]
        moved += [x + shift, x - shift]
    values = oracle(torch.cat(moved)).reshape(2 * k, n)
    return ((values[0::2] - values[1::2]) / (2 * step[:, None])).T


def interpolate(x: torch.Tensor, grid: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``values`` on the increasing ``grid`` ``[P]`` at ``x [N]`` (held constant
    beyond the ends)."""
    x = x.clamp(float(grid[0]), float(grid[-1]))
    right = torch.searchsorted(grid, x).clamp(1, grid.numel() - 1)
    left = right - 1
    weight = (x - grid[left]) / (grid[right] - grid[left])
    return values[left] + weight * (values[right] - values[left])


def inner_profiles(oracle: Oracle, lo: torch.Tensor, hi: torch.Tensor, generator: torch.Generator,
                   rows: int = 256) -> InnerProfiles | None:
    """The profiles ``h_i`` of a composed sum along lines through the reference point where every
    partial derivative is clearly non-zero, put in one unit by :func:`common_scales` on ``rows``
    box samples; ``None`` when a variable has no effect there or a line's derivative ratios are
    unreliable on too much of it."""
    k = lo.numel()
    if k < 2:
        return None
    reference = reference_point(oracle, lo, hi, generator)
    if reference is None:
        return None
    grids, slopes = [], []
    for i in range(k):
        grid = torch.linspace(float(lo[i]), float(hi[i]), GRID_POINTS, dtype=torch.float64)
        line = reference.expand(GRID_POINTS, -1).clone()
        line[:, i] = grid
        gradient = partial_derivatives(oracle, line, lo, hi)
        slope = ratio_with_gaps(gradient[:, i], gradient[:, 1 if i == 0 else 0])  # h_i' up to a constant factor
        if slope is None:
            return None
        grids.append(grid)
        slopes.append(slope)
    grid, slope = torch.stack(grids), torch.stack(slopes)
    scales = common_scales(oracle, grid, slope, lo, hi, rows, generator)
    if scales is None:
        return None
    slope = slope * scales[:, None]
    steps = (slope[:, 1:] + slope[:, :-1]) / 2 * (grid[:, 1:] - grid[:, :-1])
    values = torch.cat([torch.zeros(k, 1, dtype=torch.float64), steps.cumsum(1)], dim=1)
    return InnerProfiles(grid, values)


def common_scales(oracle: Oracle, grids: torch.Tensor, slopes: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  rows: int, generator: torch.Generator) -> torch.Tensor | None:
    """Factors ``c [k]`` (``c_0 = 1``) that put the line slopes ``s_i`` (``[k, P]`` on ``grids``, each
    ``h_i'`` up to its own factor) in one unit: ``f_i / f_0 = c_i·s_i(x_i) / s_0(x_0)`` at every
    point, so ``c_i`` is the median of ``(f_i / f_0)·s_0 / s_i`` over box samples where none of the
    four is below a tenth of its median size (one point's derivatives are too rough to set it)."""
    x = sample_box(lo, hi, rows, generator)
    gradient = partial_derivatives(oracle, x, lo, hi)
    slope = torch.stack([interpolate(x[:, i], grids[i], slopes[i]) for i in range(lo.numel())], dim=1)
    scales = [torch.ones((), dtype=torch.float64)]
    for i in range(1, lo.numel()):
        parts = torch.stack([gradient[:, i], gradient[:, 0], slope[:, i], slope[:, 0]], dim=1).abs()
        strong = (parts > 0.1 * parts.median(dim=0).values).all(dim=1)
        if int(strong.sum()) < rows // 8:
            return None
        ratio = (gradient[strong, i] / gradient[strong, 0]) * (slope[strong, 0] / slope[strong, i])
        scales.append(ratio.median())
    scales = torch.stack(scales)
    return scales if bool(torch.isfinite(scales).all()) else None


def reference_point(oracle: Oracle, lo: torch.Tensor, hi: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
    """Of ``REFERENCE_CHOICES`` points in the middle 60% of the box, the one whose smallest partial
    derivative (each relative to its median size over the points) is largest; ``None`` when some
    variable's derivative is 0 at all of them."""
    points = sample_box(lo * 0.8 + hi * 0.2, lo * 0.2 + hi * 0.8, REFERENCE_CHOICES, generator)
    gradient = partial_derivatives(oracle, points, lo, hi).abs()
    if not bool(torch.isfinite(gradient).all()):
        return None
    typical = gradient.median(dim=0).values
    if bool((typical <= 0).any()):
        return None
    strength = (gradient / typical).min(dim=1).values
    return points[int(strength.argmax())]


def ratio_with_gaps(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor | None:
    """``numerator / denominator`` (``[P]``), interpolated across the points where the
    denominator is below ``WEAK_SLOPE`` of its largest size; ``None`` when those are more than
    ``MAX_WEAK_SHARE`` of the points or the values are not finite."""
    size = float(denominator.abs().max())
    reliable = denominator.abs() > WEAK_SLOPE * size
    if size == 0 or float((~reliable).double().mean()) > MAX_WEAK_SHARE:
        return None
    index = torch.arange(numerator.numel(), dtype=torch.float64)
    kept = torch.nonzero(reliable)[:, 0]
    ratio = numerator[kept] / denominator[kept]
    if not bool(torch.isfinite(ratio).all()):
        return None
    return interpolate(index, index[kept], ratio)


def neighbour_share(u: torch.Tensor, f: torch.Tensor) -> float:
    """How far ``f`` is from a function of ``u`` alone (both ``[N]``), as a share of ``Var f``:
    ``E[(f_{n+1} − f_n)²] / (2 Var f)`` over the samples sorted by ``u``. Neighbours in ``u`` have
    nearly equal ``f`` exactly when ``u`` determines it (0 then, plus a term of order ``1/N²``
    from the slope of ``g``)."""
    ordered = f[torch.argsort(u)]
    variance = f.var(unbiased=False).clamp_min(1e-300)
    return float(((ordered[1:] - ordered[:-1]) ** 2).mean() / (2 * variance))


SCALE_SPANS = (0.3, 0.03)  # relative ranges of the two rounds of the scale search
SCALE_STEPS = 25


def single_index_share(oracle: Oracle, profiles: InnerProfiles, lo: torch.Tensor, hi: torch.Tensor, rows: int,
                       generator: torch.Generator) -> float:
    """:func:`neighbour_share` of ``f`` against ``u = Σ h_i(x_i)`` on ``rows`` box samples, after
    tuning the profiles' relative scales (in place) to make it smallest: coordinate search of
    each ``h_i``'s factor (``i ≥ 1``) on a grid within ``±30%``, then ``±3%``. Derivatives fix
    the scales to a few per cent; this sets them from the function's values."""
    x = sample_box(lo, hi, rows, generator)
    f = oracle(x)
    parts = torch.stack([interpolate(x[:, i], profiles.grids[i], profiles.values[i]) for i in range(x.shape[1])])
    factors = torch.ones(x.shape[1], dtype=torch.float64)
    for span in SCALE_SPANS:
        for i in range(1, x.shape[1]):
            trials = factors[i] * torch.exp(torch.linspace(-span, span, SCALE_STEPS, dtype=torch.float64))
            shares = []
            for trial in trials:
                scaled = factors.clone()
                scaled[i] = trial
                shares.append(neighbour_share(scaled @ parts, f))
            factors[i] = trials[int(torch.tensor(shares).argmin())]
    profiles.values = profiles.values * factors[:, None]
    return neighbour_share(factors @ parts, f)
