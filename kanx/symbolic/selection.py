"""Choosing among an edge's candidate fits: the Pareto front of (complexity, R²), the simplest
candidate within tolerance of the best, and the polynomial fallback when nothing fits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kanx.core.numerics import chance_loss, misfit_beyond_noise, r2_value
from kanx.symbolic.engines import Candidate, edge_candidates
from kanx.symbolic.settings import SymbolifySettings

POLY_COMPLEXITY = 4.0


def pareto(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates not beaten on both complexity and R² (finite R² only), simplest first."""
    valid = sorted((c for c in candidates if math.isfinite(c.r2)), key=lambda c: (c.complexity, -c.r2))
    front: list[Candidate] = []
    for c in valid:
        if not front or c.r2 > front[-1].r2:
            if front and front[-1].complexity == c.complexity:
                front[-1] = c
            else:
                front.append(c)
    return front


NOISE_RATIO = 100.0


def select(candidates: list[Candidate], tolerance: float, noise: float = 0.0, data_noise: float = 0.0,
           rows: int = 0) -> Candidate | None:
    """The simplest candidate within tolerance of the best; ties on complexity go to the
    higher R². ``None`` when no candidate is finite.

    The tolerance on R² is ``min(tolerance, NOISE_RATIO * (1 - best R²))``: on clean data (a
    near-perfect best fit) a look-alike that is orders of magnitude worse is not "within
    tolerance", while on noisy spline edges the absolute ``tolerance`` applies. ``noise`` (an R²
    gap the data cannot resolve, e.g. the oracle's own error share) widens it: candidates that
    agree within the noise are equal, and the simpler closed form wins.

    ``data_noise`` (share of the targets' variance that is noise, with ``rows`` rows): R² against
    noisy targets cannot pass ``1 − data_noise``, so only the misfit beyond it counts in
    ``1 - best R²``, plus what a true simplification may lose by chance on those rows
    (:func:`kanx.core.numerics.chance_loss`). Without it, noise would read as the formula's
    error and let look-alikes that are measurably worse pass as equal.
    """
    good = within_tolerance(candidates, tolerance, noise, data_noise, rows)
    return min(good, key=lambda c: (c.complexity, -c.r2)) if good else None


def within_tolerance(candidates: list[Candidate], tolerance: float, noise: float = 0.0, data_noise: float = 0.0,
                     rows: int = 0) -> list[Candidate]:
    """The finite candidates whose R² is within :func:`select`'s margin of the best (the ones
    the data do not tell apart), in the given order."""
    valid = [c for c in candidates if math.isfinite(c.r2) and c.name != "0"]
    if not valid:
        return []
    best = max(c.r2 for c in valid)
    own_error = NOISE_RATIO * misfit_beyond_noise(best, data_noise, rows) + chance_loss(data_noise, rows)
    allowed = max(min(tolerance, own_error + 1e-12), noise)
    return [c for c in valid if c.r2 >= best - allowed]


def poly_fallback(x: torch.Tensor, y: torch.Tensor, degree: int = 3, digits: int = 6) -> tuple[str, float]:
    """Least-squares polynomial of ``degree`` in ``x`` for data ``x``, ``y`` ``[N]`` as sympy
    text, and its R² (``""`` and ``-inf`` when the data are not finite)."""
    xd, yd = x.double(), y.double()
    if not bool(torch.isfinite(xd).all() and torch.isfinite(yd).all()):
        return "", float("-inf")
    vander = torch.stack([xd**k for k in range(degree + 1)], dim=1)
    coef = torch.linalg.lstsq(vander, yd[:, None]).solution[:, 0]
    fitted = vander @ coef
    r2 = r2_value(fitted, yd)
    text = " + ".join(f"({float(c):.{digits}g})*x**{k}" for k, c in enumerate(coef))
    return text, r2


@dataclass
class Choice:
    """What one activation (a KAN edge, a KarSein feature) becomes: ``status`` ``symbolic``
    (``chosen`` fits above the threshold), ``poly`` (``poly`` is the cubic's text in ``x``,
    ``chosen`` its candidate named ``"poly"``) or ``numeric`` (``chosen``: the best, too poor, fit)."""

    status: str
    chosen: Candidate | None
    poly: str | None = None


def choose_fit(candidates: list[Candidate], x: torch.Tensor, y: torch.Tensor, tolerance: float, r2_threshold: float,
               fallback: str) -> Choice:
    """The one rule for every family: the simplest candidate within ``tolerance`` of the best when
    it reaches ``r2_threshold``; else the ``fallback`` (a least-squares cubic of the data
    ``x``, ``y`` ``[N]`` for ``"poly"``, the spline kept as it is for ``"numeric"``)."""
    chosen = select(candidates, tolerance)
    if chosen is not None and chosen.r2 >= r2_threshold:
        return Choice("symbolic", chosen)
    if fallback == "poly":
        text, r2 = poly_fallback(x, y)
        if math.isfinite(r2):  # an activation that overflows keeps its spline
            return Choice("poly", Candidate("poly", (1.0, 0.0, 1.0, 0.0), r2, POLY_COMPLEXITY), text)
    return Choice("numeric", chosen)


@dataclass
class ActivationFits:
    """The fits of ``E`` activations: per activation its Pareto front of candidates and its
    :class:`Choice`; ``custom``: the functions the engine introduced (name → text in ``x``)."""

    fronts: list[list[Candidate]]
    choices: list[Choice]
    custom: dict[str, str]


def fit_activations(xs: torch.Tensor, ys: torch.Tensor, functions: list, settings: SymbolifySettings) -> ActivationFits:
    """Activations → candidates → choice, the same for every family: ``xs``, ``ys`` ``[E, M]``
    (each row one activation's inputs and values) fitted by ``settings.engine`` with the library
    ``functions``, then :func:`choose_fit` with the settings' tolerance, threshold and fallback."""
    found = edge_candidates(settings.engine, xs, ys, functions, settings.seed)
    choices = [choose_fit(candidates, x, y, settings.tolerance, settings.r2_threshold, settings.fallback)
               for candidates, x, y in zip(found.candidates, xs, ys)]
    return ActivationFits([pareto(candidates) for candidates in found.candidates], choices, found.custom)
