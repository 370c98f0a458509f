"""The rows' own route to a law: a sparse regression over a library of terms.

The network is one oracle of the law; where it has not learned it (a few hundred rows along
trajectories, clustered rows) the rows may still hold it. This route regresses the targets on a
library of terms of the inputs (monomials, one-variable functions, products of one or two inputs
or a sine or cosine with one-variable functions, saturating terms ``xᵐ/(xᵐ + K)`` of positive
inputs, and ratios of them, see :func:`sparse_laws`) and keeps few of them, along two paths:

- sequentially thresholded least squares over a range of thresholds (the SINDy idea: Brunton,
  Proctor and Kutz, PNAS 2016);
- a beam search over sets of terms by size, extending the best sets of each size by one term
  (forward selection keeps only the best set, and a greedy path can take a wrong term early);

and from each set either path finds, backward elimination, dropping each time the term whose
loss raises the residual least.

Every set of terms either path visits is refitted by least squares on the fit rows and becomes a
candidate formula; a saturating term's ``K`` is searched on the fit rows with the other constants
refitted at each value (variable projection), once beside the monomials for the library and again
beside the candidate's other terms. The candidates are compared on held-out rows by the caller,
together with the network's. Everything is torch float64 on the CPU; the formulas are sympy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy
import torch

from kanx.core.numerics import r2_value
from kanx.symbolic.cleaning import formula_cost
from kanx.symbolic.engines import Candidate
from kanx.symbolic.selection import within_tolerance

MAX_INPUTS = 5  # the library grows as inputs^degree; beyond this the route stands aside
MAX_TERMS = 400
MAX_SELECTED = 10  # the beam search stops at this many terms
BEAM = 40  # sets of each size the beam search extends
KEPT = 4  # sets of each size it returns
MAX_ELIMINATED = 40  # backward elimination starts from sets of at most this many terms
THRESHOLDS = torch.logspace(-7, 0, 29, dtype=torch.float64)  # on coefficients of unit-RMS terms and target
THRESHOLD_ROUNDS = 12
RIDGE = 1e-12  # relative to the rows: keeps collinear libraries solvable without moving exact fits
SAME_COLUMN = 1e-12  # terms whose unit columns agree this closely on every row are one term
SELECTION_TOLERANCE = 1e-3  # as the structure search's choice among its cleaned formulas
MAX_WIDE_INPUTS = 3  # saturating terms, and products of two inputs with a function, up to this many inputs
HALF_SEARCH_POINTS = 65  # values of the half-saturation point tried in each refinement round
HALF_ROUNDS = 5
MAX_REFINED = 3  # laws with more saturating terms (or more than MAX_SELECTED terms) keep the grid's points


@dataclass(frozen=True)
class UnaryFunction:
    """A one-variable function of the library: its values (torch), its formula (sympy), and the
    rows it needs (``"any"``, ``"positive"``: every row > 0, ``"one-sign"``: no row 0 and one sign)."""

    name: str
    values: Callable[[torch.Tensor], torch.Tensor]
    formula: Callable[[sympy.Expr], sympy.Expr]
    needs: str = "any"


UNARY = (
    UnaryFunction("sin", torch.sin, sympy.sin),
    UnaryFunction("cos", torch.cos, sympy.cos),
    UnaryFunction("exp", torch.exp, sympy.exp),
    UnaryFunction("exp(-x)", lambda v: torch.exp(-v), lambda s: sympy.exp(-s)),
    UnaryFunction("abs", torch.abs, sympy.Abs),
    UnaryFunction("log", torch.log, sympy.log, "positive"),
    UnaryFunction("sqrt", torch.sqrt, sympy.sqrt, "positive"),
    UnaryFunction("inverse", torch.reciprocal, lambda s: 1 / s, "one-sign"),
)
PERIODIC = ("sin", "cos")  # their products with each other are in the library (sin·cos, sin(x)·cos(y))


@dataclass(frozen=True)
class Saturating:
    """A saturating term ``x_iᵐ/(x_iᵐ + hᵐ)`` of a positive input (times ``x_j`` when ``factor``
    is ``j``), with half-saturation point ``half`` (> 0, in the input's units)."""

    input: int
    power: int
    half: float
    factor: int | None = None

    def values(self, x: torch.Tensor, half: torch.Tensor | float | None = None) -> torch.Tensor:
        """Values ``[N]`` on rows ``x [N, n]``, or ``[Q, N]`` for ``Q`` half-saturation points
        ``half [Q]``."""
        h = torch.as_tensor(self.half if half is None else half, dtype=x.dtype).pow(self.power)
        power = x[:, self.input].pow(self.power)
        out = power / (power + (h.unsqueeze(-1) if h.dim() else h))
        return out * x[:, self.factor] if self.factor is not None else out

    def formula(self, symbols: list[sympy.Symbol], half: float | None = None) -> sympy.Expr:
        power = symbols[self.input] ** self.power
        term = power / (power + sympy.Float((self.half if half is None else half) ** self.power, 15))
        return term * symbols[self.factor] if self.factor is not None else term


@dataclass
class SparseLaw:
    """One candidate of the route: its ``terms`` (formulas of the library's terms) and their
    fitted ``coefficients``, over ``1 + Σ denominator_coefficients·denominator`` when it is a
    ratio; its R² on the fit rows and on the held-out rows."""

    terms: list[sympy.Expr]
    coefficients: list[float]
    fit_r2: float
    held_out_r2: float
    denominator: list[sympy.Expr] = field(default_factory=list)
    denominator_coefficients: list[float] = field(default_factory=list)

    @property
    def size(self) -> int:
        """The number of terms, numerator and denominator together."""
        return len(self.terms) + len(self.denominator)

    @property
    def formula(self) -> sympy.Expr:
        """The law, its constants as floats."""
        upper = sympy.Add(*[sympy.Float(c, 15) * term for c, term in zip(self.coefficients, self.terms)])
        if not self.denominator:
            return upper
        return upper / (1 + sympy.Add(*[sympy.Float(c, 15) * term
                                        for c, term in zip(self.denominator_coefficients, self.denominator)]))

    @property
    def complexity(self) -> float:
        return float(formula_cost(self.formula))

    def values(self, upper: torch.Tensor, lower: torch.Tensor, upper_terms: list[int], lower_terms: list[int]) -> torch.Tensor:
        """The law's values ``[N]`` from the library's values on ``N`` rows (``upper [N, T]``,
        ``lower [N, D]``) and the indices of its terms there."""
        numerator = upper[:, upper_terms] @ torch.tensor(self.coefficients, dtype=upper.dtype)
        if not lower_terms:
            return numerator
        return numerator / (1 + lower[:, lower_terms] @ torch.tensor(self.denominator_coefficients, dtype=lower.dtype))


def monomial_degree(inputs: int) -> int:
    """The largest total degree of the library's monomials for ``inputs`` inputs."""
    return 5 if inputs == 1 else 4 if inputs == 2 else 3


def applies(function: UnaryFunction, column: torch.Tensor) -> bool:
    """Whether ``function`` is defined on every value of ``column [N]``."""
    if function.needs == "positive":
        return bool((column > 0).all())
    if function.needs == "one-sign":
        return bool((column > 0).all() or (column < 0).all())
    return True


def monomials(x: torch.Tensor, degrees: range) -> list[tuple[tuple[int, ...], torch.Tensor]]:
    """Each monomial of the inputs of ``x [N, n]`` with a total degree in ``degrees`` (by degree,
    then in ``combinations_with_replacement`` order): its inputs' indices and its values ``[N]``."""
    return [(powers, torch.prod(x[:, list(powers)], dim=1) if powers else torch.ones(x.shape[0], dtype=x.dtype))
            for degree in degrees for powers in itertools.combinations_with_replacement(range(x.shape[1]), degree)]


def term_library(x: torch.Tensor, symbols: list[sympy.Symbol]) -> tuple[list[sympy.Expr], torch.Tensor]:
    """The library's terms on the rows ``x [N, n]`` (float64): their formulas (``T``, simplest
    first) and values ``[N, T]``. Terms that are not finite on every row are left out, and so is
    a term whose values are a multiple of an earlier term's on every row (``|x|`` of a positive
    input is ``x``)."""
    n = x.shape[1]
    polynomial = monomials(x, range(monomial_degree(n) + 1))
    formulas: list[sympy.Expr] = [sympy.Mul(*[symbols[i] for i in powers]) for powers, _ in polynomial]
    columns: list[torch.Tensor] = [values for _, values in polynomial]
    unary = [(f.formula(symbols[i]), f.values(x[:, i]), f.name, i) for f in UNARY for i in range(n) if applies(f, x[:, i])]
    for formula, values, _, _ in unary:
        formulas.append(formula)
        columns.append(values)
    for (formula, values, _, _), j in itertools.product(unary, range(n)):
        formulas.append(symbols[j] * formula)
        columns.append(x[:, j] * values)
    periodic = [item for item in unary if item[2] in PERIODIC]
    for (first, first_values, _, _), (second, second_values, _, _) in itertools.combinations(periodic, 2):
        formulas.append(first * second)
        columns.append(first_values * second_values)
    if n <= MAX_WIDE_INPUTS:
        for formula, values, _, i in unary:
            for j, k in itertools.combinations([m for m in range(n) if m != i], 2):
                formulas.append(symbols[j] * symbols[k] * formula)
                columns.append(x[:, j] * x[:, k] * values)
    values = torch.stack(columns[:MAX_TERMS], dim=1)
    return distinct_terms(formulas[:MAX_TERMS], values)


def saturating_library(x: torch.Tensor, y: torch.Tensor) -> list[Saturating]:
    """The saturating terms of the library for targets ``y [N]`` on rows ``x [N, n]``: for each
    input positive on every row, powers 1 to 5 (one input) or 1 to 2, alone and times each other
    input; each at the half-saturation point that fits ``y`` best together with the library's
    monomials (:func:`best_half`). None beyond ``MAX_WIDE_INPUTS`` inputs."""
    n = x.shape[1]
    if n > MAX_WIDE_INPUTS:
        return []
    positive = [i for i in range(n) if bool((x[:, i] > 0).all())]
    powers = range(1, 6) if n == 1 else range(1, 3)
    polynomial = torch.stack([values for _, values in monomials(x, range(monomial_degree(n) + 1))], dim=1)
    terms = []
    for i in positive:
        for m, j in itertools.product(powers, [None, *(k for k in range(n) if k != i)]):
            shape = Saturating(i, m, 1.0, j)
            half, _ = best_half(shape, x, polynomial, y)
            if half is not None:
                terms.append(Saturating(i, m, half, j))
    return terms


def residual_after(others: torch.Tensor, y: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Residual sums of squares ``[Q]`` of the least-squares fits of ``y [N]`` on the columns
    ``others [N, T]`` and each one of ``columns [Q, N]``: by projecting out an orthonormal basis of
    ``others`` (QR), which stays exact where the columns are nearly collinear."""
    scale = others.pow(2).mean(dim=0).sqrt().clamp_min(torch.finfo(others.dtype).tiny)
    basis, triangle = torch.linalg.qr(others / scale)
    basis = basis[:, triangle.diagonal().abs() > 1e-12 * max(float(triangle.diagonal().abs().max()), 1e-300)] \
        if others.shape[1] else basis
    rest_y = y - basis @ (basis.T @ y)
    rest = columns - (columns @ basis) @ basis.T  # [Q, N]
    norms = rest.pow(2).sum(dim=1)
    gain = torch.where(norms > 0, (rest @ rest_y).pow(2) / norms.clamp_min(torch.finfo(y.dtype).tiny), 0.0)
    error = rest_y.pow(2).sum() - gain
    return torch.where(torch.isfinite(error), error, torch.inf)


def best_half(term: Saturating, x: torch.Tensor, others: torch.Tensor, y: torch.Tensor) -> tuple[float | None, float]:
    """The half-saturation point of ``term`` that fits ``y [N]`` best on rows ``x [N, n]`` beside
    the columns ``others [N, T]``, each constant refitted by least squares (variable projection),
    and its residual sum of squares: ``HALF_SEARCH_POINTS`` points log-spaced from a fifth of the
    input's least value to five times its largest, then ``HALF_ROUNDS − 1`` finer searches around
    the best. ``(None, inf)`` when no point fits."""
    column = x[:, term.input]
    trial = torch.linspace(math.log(float(column.min()) / 5), math.log(float(column.max()) * 5), HALF_SEARCH_POINTS,
                           dtype=torch.float64)
    half, least = None, math.inf
    for _ in range(HALF_ROUNDS):
        errors = residual_after(others, y, term.values(x, trial.exp()))
        pick = int(errors.argmin())
        if float(errors[pick]) < least:
            half, least = float(trial[pick].exp()), float(errors[pick])
        if half is None:
            break
        step = float(trial[1] - trial[0])
        trial = torch.linspace(math.log(half) - step, math.log(half) + step, 17, dtype=torch.float64)
    return half, least


def distinct_terms(formulas: list[sympy.Expr], values: torch.Tensor) -> tuple[list[sympy.Expr], torch.Tensor]:
    """The finite, non-zero terms of ``values [N, T]``, each once (the first of terms whose
    columns are proportional on every row)."""
    finite = torch.isfinite(values).all(dim=0) & (values.abs().amax(dim=0) > 0)
    with torch.no_grad():
        unit = torch.where(finite, values, 0.0)
        unit = unit / unit.norm(dim=0).clamp_min(torch.finfo(values.dtype).tiny)
        overlap = (unit.T @ unit).abs().triu(diagonal=1)
    kept: list[int] = []
    for t in range(values.shape[1]):
        if bool(finite[t]) and all(float(overlap[s, t]) < 1 - SAME_COLUMN for s in kept):
            kept.append(t)
    return [formulas[t] for t in kept], values[:, kept]


def least_squares(columns: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Coefficients ``[T]`` of ``columns [N, T]`` that best fit ``y [N]`` (each column scaled to
    unit RMS and a tiny ridge for collinear libraries; returned in the columns' own units)."""
    scale = columns.pow(2).mean(dim=0).sqrt().clamp_min(torch.finfo(columns.dtype).tiny)
    unit = columns / scale
    ridge = math.sqrt(RIDGE * columns.shape[0])
    stacked = torch.cat([unit, ridge * torch.eye(unit.shape[1], dtype=unit.dtype)])
    target = torch.cat([y, torch.zeros(unit.shape[1], dtype=y.dtype)])
    solution = torch.linalg.lstsq(stacked, target.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    return solution / scale


def gram_solution(gram: torch.Tensor, moments: torch.Tensor, support: list[int]) -> torch.Tensor | None:
    """Least-squares coefficients ``[s]`` of the terms ``support`` from the Gram matrix of unit
    columns ``gram [T, T]`` and their moments with the target ``moments [T]`` (with the ridge);
    ``None`` where the terms are linearly dependent."""
    normal = gram[support][:, support] + RIDGE * torch.eye(len(support), dtype=gram.dtype)
    solution, info = torch.linalg.solve_ex(normal, moments[support])
    return solution if int(info) == 0 and bool(torch.isfinite(solution).all()) else None


def thresholded_supports(gram: torch.Tensor, moments: torch.Tensor) -> list[tuple[int, ...]]:
    """The sets of terms that sequentially thresholded least squares keeps, one per threshold
    of ``THRESHOLDS`` (coefficients of unit-RMS terms against a unit-RMS target, from the Gram
    matrix ``gram [T, T]`` and the moments ``moments [T]`` divided by the rows)."""
    supports = []
    for threshold in THRESHOLDS.tolist():
        support = list(range(gram.shape[0]))
        for _ in range(THRESHOLD_ROUNDS):
            coefficients = gram_solution(gram, moments, support)
            if coefficients is None:
                support = []
                break
            large = [t for t, c in zip(support, coefficients.tolist()) if abs(c) >= threshold]
            if len(large) == len(support) or not large:
                support = large
                break
            support = large
        if support:
            supports.append(tuple(sorted(support)))
    return supports


def subset_residuals(gram: torch.Tensor, moments: torch.Tensor, energy: float, subsets: torch.Tensor) -> torch.Tensor:
    """Mean squared residuals ``[S]`` of the least-squares fits on each set of terms
    ``subsets [S, s]`` (column indices), from the library's Gram matrix ``gram [T, T]``, its
    moments with the target ``moments [T]`` and the target's mean square ``energy`` (all per
    row); ``inf`` where a set's terms are linearly dependent."""
    size = subsets.shape[1]
    normal = gram[subsets.unsqueeze(-1), subsets.unsqueeze(-2)] + RIDGE * torch.eye(size, dtype=gram.dtype)
    right = moments[subsets]
    solution, info = torch.linalg.solve_ex(normal, right)
    residual = energy - (right * solution).sum(dim=-1)
    return torch.where((info == 0) & torch.isfinite(residual), residual, torch.inf)


def beam_supports(gram: torch.Tensor, moments: torch.Tensor) -> list[tuple[int, ...]]:
    """Sets of terms that a beam search visits (Gram matrix ``gram [T, T]`` and moments
    ``moments [T]`` as in :func:`thresholded_supports`): at each size up to ``MAX_SELECTED`` the
    ``BEAM`` sets with the least residual are extended by every other term; the ``KEPT`` best
    sets of each size are returned."""
    terms, energy = gram.shape[0], 1.0
    beam = torch.zeros(1, 0, dtype=torch.long)
    supports: list[tuple[int, ...]] = []
    for _ in range(min(MAX_SELECTED, terms)):
        grown = torch.cat([beam.repeat_interleave(terms, dim=0), torch.arange(terms).repeat(beam.shape[0]).unsqueeze(1)], dim=1)
        grown = torch.unique(grown.sort(dim=1).values, dim=0)
        distinct = (grown[:, 1:] != grown[:, :-1]).all(dim=1) if grown.shape[1] > 1 else torch.ones(len(grown), dtype=torch.bool)
        grown = grown[distinct]
        if not len(grown):
            break
        residuals = subset_residuals(gram, moments, energy, grown)
        order = torch.argsort(residuals, stable=True)
        order = order[torch.isfinite(residuals[order])]
        if not len(order):
            break
        supports += [tuple(row) for row in grown[order[:KEPT]].tolist()]
        beam = grown[order[:BEAM]]
    return supports


def backward_supports(gram: torch.Tensor, moments: torch.Tensor, start: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The nested sets of terms that backward elimination visits from ``start`` (Gram matrix
    ``gram [T, T]`` and moments ``moments [T]`` as in :func:`thresholded_supports`): each step
    drops the term whose removal raises the residual sum of squares least (``c_t² / [G⁻¹]_tt``)."""
    support = list(start)
    supports = []
    while len(support) > 1:
        normal = gram[support][:, support] + RIDGE * torch.eye(len(support), dtype=gram.dtype)
        inverse, info = torch.linalg.inv_ex(normal)
        if int(info) != 0:  # singular even with the ridge: no ranking of the terms
            break
        coefficients = inverse @ moments[support]
        loss = coefficients.pow(2) / inverse.diagonal().clamp_min(torch.finfo(gram.dtype).tiny)
        support.pop(int(loss.argmin()))
        supports.append(tuple(support))
    return supports


def denominator_library(x: torch.Tensor, symbols: list[sympy.Symbol]) -> tuple[list[sympy.Expr], torch.Tensor]:
    """The terms a law's denominator ``1 + Σ b_t·θ_t`` may hold on the rows ``x [N, n]``: the
    monomials of degree 1 to 5 of a single input, 1 to 2 of several; formulas and values ``[N, D]``."""
    terms = monomials(x, range(1, (5 if x.shape[1] == 1 else 2) + 1))
    formulas = [sympy.Mul(*[symbols[i] for i in powers]) for powers, _ in terms]
    values = torch.stack([column for _, column in terms], dim=1)
    finite = torch.isfinite(values).all(dim=0).tolist()
    return [f for f, keep in zip(formulas, finite) if keep], values[:, finite]


def polynomial_starts(formulas: list[sympy.Expr], symbols: list[sympy.Symbol], denominators: int) -> list[tuple[int, ...]]:
    """Sets of terms that backward elimination also starts from: every polynomial term of the
    library (``formulas``), alone and with each one of the ``denominators`` terms (indexed
    after the library's): a polynomial or a ratio with a simple denominator is then reached by
    dropping terms from a set that fits it exactly, where the other paths may have passed it by
    among the many near-equal terms of rows along a trajectory."""
    polynomial = tuple(t for t, formula in enumerate(formulas) if formula.is_polynomial(*symbols))
    lower = len(formulas)
    return [polynomial] + [polynomial + (lower + s,) for s in range(denominators)]


def sparse_laws(symbols: list[sympy.Symbol], x_fit: torch.Tensor, y_fit: torch.Tensor, x_test: torch.Tensor,
                y_test: torch.Tensor) -> list[SparseLaw]:
    """The route's candidate formulas for targets ``y_fit [N]`` on rows ``x_fit [N, n]``, each
    refitted on those rows, with its R² on the held-out rows ``x_test [M, n]``/``y_test [M]``;
    empty with more than ``MAX_INPUTS`` inputs or too few rows to fit a term.

    A law may be a ratio ``Σ a_t·θ_t / (1 + Σ b_s·φ_s)``: written as ``y = Σ a_t·θ_t − Σ b_s·y·φ_s``
    it is linear in its constants, so the columns ``−y·φ_s`` (``denominator_library``) join the
    library on the fit rows (the implicit form of sparse regression); a candidate is always
    judged by the ratio's own values on the held-out rows."""
    if x_fit.shape[1] > MAX_INPUTS or x_fit.shape[0] < 3 or not len(x_test) or not bool(torch.isfinite(y_fit).all()):
        return []
    rows = x_fit.shape[0]
    x_all = torch.cat([x_fit, x_test]).double()
    formulas, values = term_library(x_all, symbols)
    shapes = {term.formula(symbols): term for term in saturating_library(x_all[:rows], y_fit.double())}
    if shapes:
        formulas, values = distinct_terms(formulas + list(shapes),
                                          torch.cat([values, torch.stack([term.values(x_all) for term in shapes.values()], dim=1)], dim=1))
    below, below_values = denominator_library(x_all, symbols)
    y_fit, y_test = y_fit.double(), y_test.double()
    columns = torch.cat([values[:rows], -y_fit.unsqueeze(1) * below_values[:rows]], dim=1)
    finite = torch.isfinite(columns).all(dim=0)
    columns = torch.where(finite, columns, 0.0)
    scale = columns.pow(2).mean(dim=0).sqrt().clamp_min(torch.finfo(torch.float64).tiny)
    y_scale = max(float(y_fit.pow(2).mean().sqrt()), torch.finfo(torch.float64).tiny)
    unit, y_unit = columns / scale, y_fit / y_scale
    gram, moments = unit.T @ unit / rows, unit.T @ y_unit / rows
    usable = finite.tolist()
    gram[~finite], gram[:, ~finite], moments[~finite] = 0.0, 0.0, 0.0
    terms = len(formulas)
    found = thresholded_supports(gram, moments) + beam_supports(gram, moments)
    supports = dict.fromkeys(found)
    for start in dict.fromkeys(found):
        if len(start) <= MAX_ELIMINATED:
            supports.update(dict.fromkeys(backward_supports(gram, moments, start)))
    for start in polynomial_starts(formulas, symbols, len(below)):
        supports.update(dict.fromkeys(backward_supports(gram, moments, start)))
    laws = []
    for support in supports:
        if len(support) >= rows or not all(usable[t] for t in support):
            continue
        coefficients = least_squares(columns[:, support], y_fit).tolist()
        upper = [(t, c) for t, c in zip(support, coefficients) if t < terms]
        lower = [(t - terms, c) for t, c in zip(support, coefficients) if t >= terms]
        if not upper:
            continue
        law = SparseLaw([formulas[t] for t, _ in upper], [c for _, c in upper], 0.0, 0.0,
                        [below[t] for t, _ in lower], [c for _, c in lower])
        law.fit_r2 = r2_value(law.values(values[:rows], below_values[:rows], [t for t, _ in upper], [t for t, _ in lower]),
                              y_fit)
        law.held_out_r2 = r2_value(law.values(values[rows:], below_values[rows:], [t for t, _ in upper],
                                              [t for t, _ in lower]), y_test)
        if law.size <= MAX_SELECTED and 0 < sum(formula in shapes for formula in law.terms) <= MAX_REFINED:
            law = refined_halves(law, symbols, shapes, (x_all, values, below_values, y_fit, y_test),
                                 [t for t, _ in upper], [t for t, _ in lower])
        laws.append(law)
    return laws


def refined_halves(law: SparseLaw, symbols: list[sympy.Symbol], shapes: dict[sympy.Expr, Saturating],
                   rows: tuple[torch.Tensor, ...], upper: list[int], lower: list[int]) -> SparseLaw:
    """``law`` with the half-saturation point of each of its saturating terms (``shapes``: the
    library's, by formula) refitted beside the law's other terms (:func:`best_half`, twice over
    the terms in turn). ``rows`` holds the inputs of the fit and held-out rows ``[N+M, n]``, the
    library's values there ``[N+M, T]`` and ``[N+M, D]`` (denominator), and the targets ``[N]``
    and ``[M]``; ``upper``/``lower`` index the law's terms in them. Returns a new law, or
    ``law`` when refining does not fit the rows better."""
    x_all, values, below_values, y_fit, y_test = rows
    n_fit = len(y_fit)
    upper_columns = values[:, upper].clone()
    lower_columns = below_values[:, lower]
    fixed_lower = -y_fit.unsqueeze(1) * lower_columns[:n_fit]
    positions = [p for p, formula in enumerate(law.terms) if formula in shapes]
    halves = {p: shapes[law.terms[p]].half for p in positions}
    others = torch.cat([upper_columns[:n_fit, 1:], fixed_lower], dim=1)
    start = float(residual_after(others, y_fit, upper_columns[:n_fit, :1].T)[0])
    best = start
    for p in positions * 2:
        others = torch.cat([upper_columns[:n_fit, :p], upper_columns[:n_fit, p + 1:], fixed_lower], dim=1)
        half, error = best_half(shapes[law.terms[p]], x_all[:n_fit], others, y_fit)
        if half is not None and error < best:
            best, halves[p] = error, half
            upper_columns[:, p] = shapes[law.terms[p]].values(x_all, half)
    if not best < start:
        return law
    coefficients = least_squares(torch.cat([upper_columns[:n_fit], fixed_lower], dim=1), y_fit).tolist()
    terms = [shapes[f].formula(symbols, halves[p]) if p in halves else f for p, f in enumerate(law.terms)]
    refined = SparseLaw(terms, coefficients[:len(upper)], 0.0, 0.0, list(law.denominator), coefficients[len(upper):])
    predicted = refined.values(upper_columns, lower_columns, list(range(len(upper))), list(range(len(lower))))
    refined.fit_r2, refined.held_out_r2 = r2_value(predicted[:n_fit], y_fit), r2_value(predicted[n_fit:], y_test)
    return refined


def best_sparse_law(laws: list[SparseLaw], noise: float, rows: int) -> SparseLaw | None:
    """Among ``laws``, those the ``rows`` held-out rows do not tell apart from the best
    (:func:`kanx.symbolic.selection.within_tolerance`; ``noise``: the targets' noise share), the
    one with the fewest terms, then the least ``formula_cost``; ``None`` when none evaluates."""
    scored = [Candidate(str(i), (1.0, 0.0, 1.0, 0.0), law.held_out_r2, 0.0) for i, law in enumerate(laws)]
    good = [laws[int(c.name)] for c in within_tolerance(scored, SELECTION_TOLERANCE, data_noise=noise, rows=rows)]
    if not good:
        return None
    fewest = min(law.size for law in good)
    return min((law for law in good if law.size == fewest), key=lambda law: (law.complexity, -law.held_out_r2))
