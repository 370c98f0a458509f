"""Scaling reduction: is ``f = M₁(x) · g(M₂(x))`` for monomials ``M₁ = Π x_i^b_i`` and
``M₂ = Π x_i^a_i``?

Physical laws are dimensionally consistent, so a function of many variables often depends on
them only through one dimensionless group (``qV/kT``, ``v/c``, ``ω/ω₀``) times a prefactor with
the units. In log coordinates the *elasticities* ``E_i = ∂ log|f| / ∂ log x_i`` of such a
function are ``b + t(x)·a`` with the scalar ``t = M₂ g'(M₂) / g(M₂)``: the elasticity vectors
of all sample points lie on one line. The test needs first derivatives only (wide central
differences of the oracle in ``log x``), which a trained network gives reliably.

``a`` is the line's direction (leading right singular vector of the centred elasticities),
normalised and snapped to small rationals. ``b`` is fixed only up to adding multiples of
``a`` (``M₁ M₂^c · g(M₂)/M₂^c`` is the same function); :func:`prefactor_options` lists the
simple choices (each one zeroing one exponent) for the caller to try.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kanx.symbolic.separability import Oracle, sample_box

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
    ``line_share``, the fraction of the elasticity variance along the line."""

    direction: list[tuple[int, int]]
    offset: torch.Tensor
    line_share: float


def elasticities(oracle: Oracle, lo: torch.Tensor, hi: torch.Tensor, rows: int,
                 generator: torch.Generator) -> torch.Tensor | None:
    """``∂ log|f| / ∂ log x_i`` at the points of ``rows`` samples of the box (positive, ``[k]``
    each) where ``|f|`` is at least ``MIN_MAGNITUDE`` of its median (in a decaying tail a network's
    error dominates the logarithm) → ``[n ≤ rows, k]``; ``None`` when ``f`` changes sign, is not
    finite, or too few points remain."""
    k = lo.numel()
    step = math.exp(LOG_STEP)
    x = sample_box(lo * step, hi / step, rows, generator)
    scales = torch.ones(2 * k + 1, 1, k, dtype=torch.float64)
    for i in range(k):
        scales[1 + 2 * i, 0, i] = step
        scales[2 + 2 * i, 0, i] = 1 / step
    values = oracle((x[None] * scales).reshape(-1, k)).reshape(2 * k + 1, rows)
    if not bool(torch.isfinite(values).all()):
        return None
    keep = values[0].abs() >= MIN_MAGNITUDE * float(values[0].abs().median())
    values = values[:, keep]
    if values.shape[1] < max(16, rows // 8):
        return None
    if not (bool((values > 0).all()) or bool((values < 0).all())):
        return None
    logs = torch.log(values.abs())
    return ((logs[1::2] - logs[2::2]) / (2 * LOG_STEP)).T


def snap_ratio(value: float, tolerance: float = SNAP_TOLERANCE) -> tuple[int, int] | None:
    """``(p, q)`` with ``q`` in 1, 2, 3 (the smallest that fits) and ``|p/q − value| ≤
    tolerance``; ``None`` if none."""
    for q in DENOMINATORS:
        p = round(value * q)
        if abs(p / q - value) <= tolerance:
            return p, q
    return None


def scaling_line(E: torch.Tensor) -> ScalingLine | None:
    """Fit ``E_n ≈ b + t_n a`` (``E`` ``[N, k]``); ``None`` when the points do not lie on a
    line, barely move (a pure power law), or the direction does not snap to small rationals
    with at least two non-zero entries."""
    mean = E.mean(dim=0)
    centred = E - mean
    spread = float(centred.pow(2).sum())
    if spread <= 1e-6 * E.shape[0] * (1.0 + float(mean.pow(2).sum())):
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
    return ScalingLine(direction, (E @ projector).mean(dim=0), share)


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
