"""Scaling reduction: is ``f = M₁(x) · g(M₂(x))`` for monomials ``M₁ = Π x_i^b_i`` and
``M₂ = Π x_i^a_i``?

Physical laws are dimensionally consistent, so a function of many variables often depends on
them only through one dimensionless group (``qV/kT``, ``v/c``, ``ω/ω₀``) times a prefactor with
the units. In log coordinates the *elasticities* ``E_i = ∂ log|f| / ∂ log x_i`` of such a
function are ``b + t(x)·a`` with the scalar ``t = M₂ g'(M₂) / g(M₂)``: the elasticity vectors
of all sample points lie on one line. The test needs first derivatives only (wide central
differences of the oracle in ``log x``), which a trained network gives reliably.

``a`` is the line's direction (leading right singular vector of the centred elasticities,
each point weighted by ``min(1, |f|/median|f|)``: a network's error is about the same size
everywhere, so its log-derivatives are noisy in proportion to ``1/|f|``), normalised and
snapped to small rationals. The differences scale ``x_i`` by ``e^{±δ}``, so a variable may be
negative or cross 0; the caller then allows only integer exponents on it. ``b`` is fixed only
up to adding multiples of ``a`` (``M₁ M₂^c · g(M₂)/M₂^c`` is the same function);
:func:`prefactor_options` lists the simple choices (each one zeroing one exponent) for the
caller to try.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kanx.symbolic.structure.separability import Oracle, sample_box

# Relative step of the central differences in each x_i. Wide on purpose: it averages out a
# network's derivative wiggles, and for exponents ±1 the difference quotients still lie
# exactly on the line (log g(u·e^δ) − log g(u·e^-δ) is then a function of u alone).
LOG_STEP = 0.05
MIN_MAGNITUDE = 1e-2
MIN_LINE_SHARE = 0.98  # share of the elasticity variance the line must explain
SNAP_TOLERANCE = 0.06
DENOMINATORS = (1, 2, 3)


@dataclass
class ScalingLine:
    """Elasticities ``E ≈ b + t·a``: ``direction`` ``a`` (``[k]`` snapped rationals as
    fractions ``(p, q)``), ``offset`` ``b`` orthogonal to ``a`` (``[k]`` float) and
    ``line_share``, the (weighted) fraction of the elasticity variance along the line."""

    direction: list[tuple[int, int]]
    offset: torch.Tensor
    line_share: float


@dataclass
class Elasticities:
    """``rates`` ``[n, k]``: ``∂ log|f| / ∂ log|x_i|`` at ``n`` points; ``weights`` ``[n]`` in
    (0, 1]: ``min(1, |f| / median |f|)``. A network's error is about the same size everywhere,
    so where ``|f|`` is small its log-derivatives are noisy in proportion to ``1/|f|``."""

    rates: torch.Tensor
    weights: torch.Tensor


def inner_box(lo: torch.Tensor, hi: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The part of ``[lo, hi]`` (``[k]`` each, any signs) whose points stay in the box when
    multiplied or divided by ``factor > 1``."""
    return torch.where(lo > 0, lo * factor, lo / factor), torch.where(hi > 0, hi / factor, hi * factor)


def elasticities(oracle: Oracle, lo: torch.Tensor, hi: torch.Tensor, rows: int,
                 generator: torch.Generator, floor: torch.Tensor | None = None) -> Elasticities | None:
    """``∂ log|f| / ∂ log|x_i|`` (central differences of ``x_i·e^{±LOG_STEP}``, so a variable may
    be negative or cross 0) at the points of ``rows`` samples of the box where ``|f|`` is at
    least ``MIN_MAGNITUDE`` of its median (in a decaying tail a network's error dominates the
    logarithm); ``None`` when ``f`` changes sign, is not finite, or too few points remain."""
    k = lo.numel()
    step = math.exp(LOG_STEP)
    x = sample_box(*inner_box(lo, hi, step), rows, generator, floor)
    scales = torch.ones(2 * k + 1, 1, k, dtype=torch.float64)
    for i in range(k):
        scales[1 + 2 * i, 0, i] = step
        scales[2 + 2 * i, 0, i] = 1 / step
    values = oracle((x[None] * scales).reshape(-1, k)).reshape(2 * k + 1, rows)
    if not bool(torch.isfinite(values).all()):
        return None
    median = float(values[0].abs().median())
    keep = values[0].abs() >= MIN_MAGNITUDE * median
    values = values[:, keep]
    if values.shape[1] < max(16, rows // 8):
        return None
    if not (bool((values > 0).all()) or bool((values < 0).all())):
        return None
    logs = torch.log(values.abs())
    rates = ((logs[1::2] - logs[2::2]) / (2 * LOG_STEP)).T
    return Elasticities(rates, (values[0].abs() / median).clamp(max=1.0))


def snap_ratio(value: float, tolerance: float = SNAP_TOLERANCE) -> tuple[int, int] | None:
    """``(p, q)`` with ``q`` in 1, 2, 3 (the smallest that fits) and ``|p/q − value| ≤
    tolerance``; ``None`` if none."""
    for q in DENOMINATORS:
        p = round(value * q)
        if abs(p / q - value) <= tolerance:
            return p, q
    return None


def scaling_line(elasticity: Elasticities) -> ScalingLine | None:
    """Fit ``E_n ≈ b + t_n a`` by weighted least squares (weight² per row); ``None`` when the
    points do not lie on a line, barely move (a pure power law), or the direction does not snap
    to small rationals with at least two non-zero entries."""
    E, w2 = elasticity.rates, elasticity.weights[:, None] ** 2
    mean = (w2 * E).sum(dim=0) / w2.sum()
    centred = (E - mean) * w2.sqrt()
    spread = float(centred.pow(2).sum())
    if spread <= 1e-6 * float(w2.sum()) * (1.0 + float(mean.pow(2).sum())):
        return None
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    share = float(s[0] ** 2 / s.pow(2).sum())
    if share < MIN_LINE_SHARE:
        return None
    direction = _snapped_direction(vh[0])
    if direction is None or sum(p != 0 for p, _ in direction) < 2:
        return None
    a = torch.tensor([p / q for p, q in direction], dtype=torch.float64)
    projector = torch.eye(a.numel(), dtype=torch.float64) - torch.outer(a, a) / float(a @ a)
    return ScalingLine(direction, mean @ projector, share)


def _snapped_direction(v: torch.Tensor) -> list[tuple[int, int]] | None:
    """``v`` divided by one of its large entries so that all entries snap; the pivot with the
    smallest snapping error wins."""
    best, best_error = None, float("inf")
    largest = float(v.abs().max())
    for pivot in range(v.numel()):
        if abs(float(v[pivot])) < 0.3 * largest:
            continue
        scaled = v / v[pivot]
        snapped = [snap_ratio(float(value)) for value in scaled]
        if any(s is None for s in snapped):
            continue
        error = max(abs(p / q - float(value)) for (p, q), value in zip(snapped, scaled))
        if error < best_error:
            best, best_error = snapped, error
    return best


def prefactor_options(line: ScalingLine) -> list[list[tuple[int, int] | float]]:
    """Exponent vectors ``b + c·a`` for the prefactor ``M₁``: ``c`` zeroing each exponent where
    ``a ≠ 0``, and ``c = 0``; entries snapped to rationals where they are close to one (else
    kept as floats). Simplest first (fewest non-zero, then smallest total)."""
    a = torch.tensor([p / q for p, q in line.direction], dtype=torch.float64)
    shifts = [0.0] + [-float(line.offset[i]) / float(a[i]) for i in range(a.numel()) if float(a[i]) != 0]
    options, seen = [], set()
    for shift in shifts:
        values = line.offset + shift * a
        entries = [snap_ratio(float(v)) or float(v) for v in values]
        key = tuple(e if isinstance(e, tuple) else round(e, 3) for e in entries)
        if key in seen:
            continue
        seen.add(key)
        options.append(entries)
    return sorted(options, key=_prefactor_cost)


def _prefactor_cost(entries: list[tuple[int, int] | float]) -> tuple[int, int, float]:
    unsnapped = sum(not isinstance(e, tuple) for e in entries)
    nonzero = sum(e[0] != 0 if isinstance(e, tuple) else 1 for e in entries)
    total = sum(abs(e[0] / e[1]) if isinstance(e, tuple) else abs(e) for e in entries)
    return unsnapped, nonzero, total
