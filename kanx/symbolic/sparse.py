"""The rows' own route to a law: a sparse regression over a library of terms.

The network is one oracle of the law; where it has not learned it (a few hundred rows along
trajectories, clustered rows) the rows may still hold it. This route regresses the targets on a
library of terms of the inputs (monomials, one-variable functions, and products of an input or a
sine or cosine with one-variable functions, and ratios of them, see :func:`sparse_laws`) and
keeps few of them, along two paths:

- sequentially thresholded least squares over a range of thresholds (the SINDy idea: Brunton,
  Proctor and Kutz, PNAS 2016);
- a beam search over sets of terms by size, extending the best sets of each size by one term
  (forward selection keeps only the best set, and a greedy path can take a wrong term early);

and from each set either path finds, backward elimination, dropping each time the term whose
loss raises the residual least.

Every set of terms either path visits is refitted by least squares on the fit rows and becomes a
candidate formula; the candidates are compared on held-out rows by the caller, together with
the network's. Everything is torch float64 on the CPU; the formulas are sympy.
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


def term_library(x: torch.Tensor, symbols: list[sympy.Symbol]) -> tuple[list[sympy.Expr], torch.Tensor]:
    """The library's terms on the rows ``x [N, n]`` (float64): their formulas (``T``, simplest
    first) and values ``[N, T]``. Terms that are not finite on every row are left out, and so is
    a term whose values are a multiple of an earlier term's on every row (``|x|`` of a positive
    input is ``x``)."""
    n = x.shape[1]
    formulas: list[sympy.Expr] = []
    columns: list[torch.Tensor] = []
    for degree in range(monomial_degree(n) + 1):
        for powers in itertools.combinations_with_replacement(range(n), degree):
            formulas.append(sympy.Mul(*[symbols[i] for i in powers]))
            columns.append(torch.prod(x[:, list(powers)], dim=1) if powers else torch.ones(x.shape[0], dtype=x.dtype))
    unary = [(f.formula(symbols[i]), f.values(x[:, i]), f.name) for f in UNARY for i in range(n) if applies(f, x[:, i])]
    for formula, values, _ in unary:
        formulas.append(formula)
        columns.append(values)
    for (formula, values, _), j in itertools.product(unary, range(n)):
        formulas.append(symbols[j] * formula)
        columns.append(x[:, j] * values)
    periodic = [item for item in unary if item[2] in PERIODIC]
    for (first, first_values, _), (second, second_values, _) in itertools.combinations(periodic, 2):
        formulas.append(first * second)
        columns.append(first_values * second_values)
    values = torch.stack(columns[:MAX_TERMS], dim=1)
    return distinct_terms(formulas[:MAX_TERMS], values)


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
    n = x.shape[1]
    formulas, columns = [], []
    for degree in range(1, (5 if n == 1 else 2) + 1):
        for powers in itertools.combinations_with_replacement(range(n), degree):
            formulas.append(sympy.Mul(*[symbols[i] for i in powers]))
            columns.append(torch.prod(x[:, list(powers)], dim=1))
    values = torch.stack(columns, dim=1)
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
        laws.append(law)
    return laws


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
