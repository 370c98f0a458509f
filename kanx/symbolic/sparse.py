"""The rows' own route to a law: a sparse regression over a library of terms.

The network is one oracle of the law; where it has not learned it (a few hundred rows along
trajectories, clustered rows) the rows may still hold it. This route regresses the targets on a
library of terms of the inputs (monomials, one-variable functions, products of one or two inputs
or a sine or cosine with one-variable functions, saturating terms ``xᵐ/(xᵐ + K)`` of positive
inputs, logistic steps ``1/(1 + exp(w·x − b))`` of one input or two, and ratios of them, see
:func:`sparse_laws`) and keeps few of them, along two paths:

- sequentially thresholded least squares over a range of thresholds (the SINDy idea: Brunton,
  Proctor and Kutz, PNAS 2016);
- a beam search over sets of terms by size, extending the best sets of each size by one term
  (forward selection keeps only the best set, and a greedy path can take a wrong term early);

and from each set either path finds, backward elimination, dropping each time the term whose
loss raises the residual least.

Every set of terms either path visits is refitted by least squares on the fit rows and becomes a
candidate formula; the nonlinear constants of a saturating term (``K``) or a step (``w``, ``b``)
are searched on the fit rows with the other constants refitted at each value (variable
projection: a grid, then a Levenberg–Marquardt polish), once beside monomials for the library and
again beside the candidate's other terms. The candidates are compared on held-out rows by the caller,
together with the network's. Everything is torch float64 on the CPU; the formulas are sympy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

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
EXACT_SHARE = 1e-12  # of the targets' variance left unexplained: a law this close needs no further family
SELECTION_TOLERANCE = 1e-3  # as the structure search's choice among its cleaned formulas
MAX_WIDE_INPUTS = 3  # saturating terms, and products of two inputs with a function, up to this many inputs
HALF_SEARCH_POINTS = 65  # half-saturation points of the coarse grid
HALF_ROUNDS = 5
POLISH_ITERATIONS = 40
BASIN_CANDIDATES = 200  # coarse-grid points, by residual, scanned for distinct starts
MOVES_PER_ROUND = 3  # a parameter search takes at most this many grids per narrowing
REFINED_PER_SIZE = 2  # of each size, the laws best on the fit rows have their nonlinear constants refined
MAX_REFINED = 3  # laws with more nonlinear terms (or more than MAX_SELECTED terms) keep the library's constants


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


class NonlinearShape:
    """What the terms with nonlinear parameters share: their values at their own parameters (each
    kind supplies ``parameters`` and ``batch_values``)."""

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Values ``[N]`` on rows ``x [N, n]``."""
        return self.batch_values(x, torch.tensor([self.parameters], dtype=x.dtype))[0]


@dataclass(frozen=True)
class Saturating(NonlinearShape):
    """A saturating term ``x_iᵐ/(x_iᵐ + hᵐ)`` of a positive input (times ``x_j`` when ``factor``
    is ``j``), with half-saturation point ``half`` (> 0, in the input's units). Its one nonlinear
    parameter is ``log half``."""

    input: int
    power: int
    half: float
    factor: int | None = None
    refine_points = 17  # per round of :func:`best_parameters`, each round 8 times finer
    refine_rounds = HALF_ROUNDS - 1
    narrowed = True  # finer grids before the polish (cheap in one parameter)
    starts = 1  # one basin: the residual is smooth in log K
    library_degree = None  # fitted for the library beside every monomial of the library
    regrid_in_laws = True  # a law's other terms may move K far: its search starts from the coarse grid again

    @property
    def parameters(self) -> tuple[float, ...]:
        return (math.log(self.half),)

    def with_parameters(self, parameters: torch.Tensor) -> Saturating:
        return replace(self, half=float(parameters[0].exp()))

    def batch_values(self, x: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        """Values ``[Q, N]`` on rows ``x [N, n]`` at ``Q`` parameter vectors ``parameters [Q, 1]``."""
        h = parameters[:, :1].exp().pow(self.power)
        power = x[:, self.input].pow(self.power)
        out = power / (power + h)
        return out * x[:, self.factor] if self.factor is not None else out

    def coarse_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``HALF_SEARCH_POINTS`` half-saturation points ``[Q, 1]``, log-spaced from a fifth of the
        input's least value to five times its largest, and their spacing ``[1]``."""
        column = x[:, self.input]
        grid = torch.linspace(math.log(float(column.min()) / 5), math.log(float(column.max()) * 5), HALF_SEARCH_POINTS,
                              dtype=torch.float64)
        return grid.unsqueeze(1), (grid[1:2] - grid[:1])

    def formula(self, symbols: list[sympy.Symbol]) -> sympy.Expr:
        power = symbols[self.input] ** self.power
        term = power / (power + sympy.Float(self.half ** self.power, 15))
        return term * symbols[self.factor] if self.factor is not None else term


@dataclass(frozen=True)
class Logistic(NonlinearShape):
    """A logistic step ``1/(1 + exp(a·(p − m)))`` of one input, or of a direction in the plane of
    two, where ``p = cos θ·u_i + sin θ·u_j`` and ``u = (x − center)/spread`` are the inputs
    standardised on the fit rows (one input: ``θ`` is 0 or π). Nonlinear parameters ``(θ, log a,
    m)``; written as ``1/(1 + exp(w_i·x_i + w_j·x_j − b))`` in the inputs' units."""

    inputs: tuple[int, ...]
    centers: tuple[float, ...]
    spreads: tuple[float, ...]
    angle: float = 0.0
    log_rate: float = 0.0
    middle: float = 0.0
    narrowed = False  # the polish alone from each start: grids in three parameters cost thousands of points
    starts = 12  # the residual has several basins in (direction, rate, middle), more on few rows
    library_degree = 1  # a step beside a linear trend: higher monomials mimic a gentle step
    regrid_in_laws = False  # thousands of grid points: a law's refit starts where the library's fit ended

    @staticmethod
    def of(inputs: tuple[int, ...], x: torch.Tensor) -> Logistic:
        """The step of ``inputs`` standardised on the rows ``x [N, n]``."""
        columns = x[:, list(inputs)]
        spreads = columns.std(dim=0).clamp_min(torch.finfo(x.dtype).tiny)
        return Logistic(inputs, tuple(columns.mean(dim=0).tolist()), tuple(spreads.tolist()))

    @property
    def parameters(self) -> tuple[float, ...]:
        return (self.angle, self.log_rate, self.middle)

    def with_parameters(self, parameters: torch.Tensor) -> Logistic:
        angle, log_rate, middle = (float(v) for v in parameters)
        return replace(self, angle=angle, log_rate=log_rate, middle=middle)

    def batch_values(self, x: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        """Values ``[Q, N]`` on rows ``x [N, n]`` at ``Q`` parameter vectors ``parameters [Q, 3]``."""
        u = (x[:, list(self.inputs)] - torch.tensor(self.centers, dtype=x.dtype)) / torch.tensor(self.spreads, dtype=x.dtype)
        angle = parameters[:, 0:1]
        projection = torch.cos(angle) * u[:, 0]
        if len(self.inputs) == 2:
            projection = projection + torch.sin(angle) * u[:, 1]
        return torch.sigmoid(-parameters[:, 1:2].exp() * (projection - parameters[:, 2:3]))

    def coarse_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameter vectors ``[Q, 3]`` to start from (rates from 0.3 to 30 per spread, middles
        from −3 to 3 spreads; one input: both directions, two: 32 angles) and the grid's
        spacing ``[3]`` (0 for the angle of one input, which refinement keeps)."""
        angles = torch.tensor([0.0, math.pi], dtype=torch.float64) if len(self.inputs) == 1 else \
            torch.arange(32, dtype=torch.float64) * (2 * math.pi / 32)
        rates = torch.linspace(math.log(0.3), math.log(30.0), 12 if len(self.inputs) == 1 else 10, dtype=torch.float64)
        middles = torch.linspace(-3.0, 3.0, 25 if len(self.inputs) == 1 else 21, dtype=torch.float64)
        grid = torch.cartesian_prod(angles, rates, middles)
        angle_step = 0.0 if len(self.inputs) == 1 else float(angles[1] - angles[0])
        return grid, torch.tensor([angle_step, float(rates[1] - rates[0]), float(middles[1] - middles[0])],
                                  dtype=torch.float64)

    def mirrored(self) -> Logistic:
        """The step ``1 − self``: the other direction through the same middle."""
        return replace(self, angle=self.angle + math.pi, middle=-self.middle)

    def weights(self) -> tuple[list[float], float]:
        """``(w, b)`` of ``1/(1 + exp(Σ w_k·x_k − b))`` in the inputs' units."""
        rate = math.exp(self.log_rate)
        directions = [math.cos(self.angle), math.sin(self.angle)][:len(self.inputs)]
        w = [rate * d / s for d, s in zip(directions, self.spreads)]
        b = rate * self.middle + sum(wk * c for wk, c in zip(w, self.centers))
        return w, b

    def formula(self, symbols: list[sympy.Symbol]) -> sympy.Expr:
        w, b = self.weights()
        argument = sympy.Add(*[sympy.Float(wk, 15) * symbols[i] for wk, i in zip(w, self.inputs)]) - sympy.Float(b, 15)
        return 1 / (1 + sympy.exp(argument))


NonlinearTerm = Saturating | Logistic


@dataclass
class SparseLaw:
    """One candidate of the route: its ``terms`` (formulas of the library's terms) and their
    fitted ``coefficients``, over ``pivot + Σ denominator_coefficients·denominator`` when it is
    a ratio (``pivot``: 1 or a monomial), under ``outer`` (``""``; ``"sqrt"``/``"-sqrt"``: the
    law is ± the root of that; ``"1/"``: its reciprocal); its R² on the fit rows and on the
    held-out rows."""

    terms: list[sympy.Expr]
    coefficients: list[float]
    fit_r2: float
    held_out_r2: float
    denominator: list[sympy.Expr] = field(default_factory=list)
    denominator_coefficients: list[float] = field(default_factory=list)
    pivot: sympy.Expr = sympy.Integer(1)
    outer: str = ""

    @property
    def size(self) -> int:
        """The number of terms, numerator and denominator together (a monomial pivot and an
        outer root or reciprocal count as one each)."""
        return len(self.terms) + len(self.denominator) + (self.pivot != 1) + bool(self.outer)

    @property
    def formula(self) -> sympy.Expr:
        """The law, its constants as floats."""
        law = sympy.Add(*[sympy.Float(c, 15) * term for c, term in zip(self.coefficients, self.terms)])
        if self.denominator or self.pivot != 1:
            law = law / (self.pivot + sympy.Add(*[sympy.Float(c, 15) * term
                                                  for c, term in zip(self.denominator_coefficients, self.denominator)]))
        return OUTER_FORMULAS[self.outer](law)

    @property
    def complexity(self) -> float:
        return float(formula_cost(self.formula))

    def values(self, upper: torch.Tensor, lower: torch.Tensor, upper_terms: list[int], lower_terms: list[int],
               pivot: torch.Tensor | None = None) -> torch.Tensor:
        """The law's values ``[N]`` from the library's values on ``N`` rows (``upper [N, T]``,
        ``lower [N, D]``), the indices of its terms there, and its pivot's values ``[N]``
        (``None``: the pivot is 1)."""
        law = upper[:, upper_terms] @ torch.tensor(self.coefficients, dtype=upper.dtype)
        if lower_terms or pivot is not None:
            below = (pivot if pivot is not None else torch.ones_like(law))
            if lower_terms:
                below = below + lower[:, lower_terms] @ torch.tensor(self.denominator_coefficients, dtype=lower.dtype)
            law = law / below
        return OUTER_VALUES[self.outer](law)


OUTER_FORMULAS: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {
    "": lambda law: law, "sqrt": sympy.sqrt, "-sqrt": lambda law: -sympy.sqrt(law), "1/": lambda law: 1 / law}
INNER_TARGETS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {  # what the library fits under each outer form
    "": lambda y: y, "sqrt": torch.square, "-sqrt": torch.square, "1/": torch.reciprocal}
OUTER_VALUES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "": lambda law: law, "sqrt": torch.sqrt, "-sqrt": lambda law: -torch.sqrt(law), "1/": torch.reciprocal}


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


def nonlinear_library(x: torch.Tensor, y: torch.Tensor) -> list[NonlinearTerm]:
    """The library's terms with nonlinear parameters, for targets ``y [N]`` on rows ``x [N, n]``,
    each at the parameters that fit ``y`` best beside monomials (:func:`best_parameters`; those
    up to the term's ``library_degree``, else all of the library's):

    - saturating terms of each input positive on every row: powers 1 to 5 (one input) or 1 to 2,
      alone and times each other input; none beyond ``MAX_WIDE_INPUTS`` inputs;
    - a logistic step of each input, and of each pair of inputs up to ``MAX_WIDE_INPUTS + 1``
      inputs."""
    n = x.shape[1]
    beside = {degree: torch.stack([values for _, values in monomials(x, range(degree + 1))], dim=1)
              for degree in (1, monomial_degree(n))}
    shapes: list[NonlinearTerm] = []
    if n <= MAX_WIDE_INPUTS:
        positive = [i for i in range(n) if bool((x[:, i] > 0).all())]
        powers = range(1, 6) if n == 1 else range(1, 3)
        shapes += [Saturating(i, m, 1.0, j) for i in positive
                   for m, j in itertools.product(powers, [None, *(k for k in range(n) if k != i)])]
    steps = [(i,) for i in range(n)] + (list(itertools.combinations(range(n), 2)) if n <= MAX_WIDE_INPUTS + 1 else [])
    shapes += [Logistic.of(inputs, x) for inputs in steps if all(bool(x[:, i].std() > 0) for i in inputs)]
    fitted = [best_parameters(shape, x, beside[shape.library_degree or monomial_degree(n)], y)[0] for shape in shapes]
    # a step and its mirror differ by a constant, which a law may not hold: both enter the library
    mirrored = [term.mirrored() for term in fitted if isinstance(term, Logistic)]
    return [term for term in fitted + mirrored if term is not None]


def orthonormal_basis(others: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis ``[N, r]`` of the span of the columns ``others [N, T]`` (QR of the
    columns scaled to unit RMS; directions below 1e-12 of the largest dropped)."""
    scale = others.pow(2).mean(dim=0).sqrt().clamp_min(torch.finfo(others.dtype).tiny)
    basis, triangle = torch.linalg.qr(others / scale)
    if not others.shape[1]:
        return basis
    return basis[:, triangle.diagonal().abs() > 1e-12 * max(float(triangle.diagonal().abs().max()), 1e-300)]


def projected_out(basis: torch.Tensor, y: torch.Tensor, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``y [N]`` and ``columns [Q, N]`` with their parts in the span of the orthonormal ``basis
    [N, r]`` removed."""
    return y - basis @ (basis.T @ y), columns - (columns @ basis) @ basis.T


def residuals_after(basis: torch.Tensor, y: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Residuals ``[Q, N]`` of the least-squares fits of ``y [N]`` on the orthonormal ``basis
    [N, r]`` and each one of ``columns [Q, N]``."""
    rest_y, rest = projected_out(basis, y, columns)
    norms = rest.pow(2).sum(dim=1, keepdim=True)
    share = torch.where(norms > 0, (rest @ rest_y).unsqueeze(1) / norms.clamp_min(torch.finfo(y.dtype).tiny), 0.0)
    return rest_y - share * rest


def residual_after(others: torch.Tensor, y: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Residual sums of squares ``[Q]`` of the least-squares fits of ``y [N]`` on the columns
    ``others [N, T]`` and each one of ``columns [Q, N]``: by projecting out an orthonormal basis of
    ``others`` (QR), which stays exact where the columns are nearly collinear."""
    rest_y, rest = projected_out(orthonormal_basis(others), y, columns)
    norms = rest.pow(2).sum(dim=1)
    gain = torch.where(norms > 0, (rest @ rest_y).pow(2) / norms.clamp_min(torch.finfo(y.dtype).tiny), 0.0)
    error = rest_y.pow(2).sum() - gain
    return torch.where(torch.isfinite(error), error, torch.inf)


def polished_parameters(term: NonlinearTerm, x: torch.Tensor, others: torch.Tensor, y: torch.Tensor,
                        start: torch.Tensor, active: torch.Tensor,
                        box: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, float]:
    """The nonlinear parameters ``[k]`` of ``term`` from ``start [k]`` (only those where ``active
    [k]`` is true move, each within ``box``: lower and upper bounds ``[k]``) by Levenberg–Marquardt on
    the residuals left after the least-squares fit of ``y [N]`` on ``others [N, T]`` and the
    term (variable projection; forward-difference Jacobian), and their residual sum of squares.
    A grid finds the basin; this finds the bottom, where a law's constants must be exact."""
    basis = orthonormal_basis(others)
    free = active.nonzero().flatten()
    steps = 1e-6 * start[free].abs().clamp_min(1.0)
    moves = torch.zeros(len(free), len(start), dtype=start.dtype)
    moves[torch.arange(len(free)), free] = steps
    parameters, damping = start.clone(), 1e-3
    residual = residuals_after(basis, y, term.batch_values(x, parameters.unsqueeze(0)))[0]
    error = float(residual.pow(2).sum())
    exact = 1e-26 * float(y.pow(2).sum())  # the rounding floor of float64 fits
    for _ in range(POLISH_ITERATIONS):
        moved = residuals_after(basis, y, term.batch_values(x, parameters + moves))
        jacobian = ((moved - residual) / steps.unsqueeze(1)).T  # [N, k]
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ residual
        if not bool(torch.isfinite(normal).all() and torch.isfinite(gradient).all()):
            break
        improved = False
        while damping < 1e10:
            system = normal + damping * torch.diag(normal.diagonal().clamp_min(1e-300))
            try:
                step = torch.linalg.solve(system, -gradient)
            except RuntimeError:  # a singular system: more damping
                damping *= 4
                continue
            trial = parameters.clone()
            trial[free] += step
            trial = torch.minimum(torch.maximum(trial, box[0]), box[1])
            trial_residual = residuals_after(basis, y, term.batch_values(x, trial.unsqueeze(0)))[0]
            trial_error = float(trial_residual.pow(2).sum())
            if math.isfinite(trial_error) and trial_error < error:
                gain = error - trial_error
                parameters, residual, error = trial, trial_residual, trial_error
                damping, improved = max(damping / 3, 1e-12), True
                break
            damping *= 4
        if not improved or gain <= 1e-14 * error or error <= exact:
            break
    return parameters, error


def best_parameters(term: NonlinearTerm, x: torch.Tensor, others: torch.Tensor, y: torch.Tensor,
                    regrid: bool = True) -> tuple[NonlinearTerm | None, float]:
    """``term`` at the nonlinear parameters that fit ``y [N]`` best on rows ``x [N, n]`` beside
    the columns ``others [N, T]``, each linear constant refitted by least squares at every
    point (variable projection), and its residual sum of squares. With ``regrid``: the term's
    coarse grid, then from each of its ``term.starts`` best points that are not neighbours of a
    better one, :func:`narrowed_parameters` (where ``term.narrowed``) and
    :func:`polished_parameters`; without, the polish
    alone from the term's own parameters. ``(None, inf)`` when no point fits."""
    grid, half_width = term.coarse_grid(x)
    span = grid.amax(dim=0) - grid.amin(dim=0)
    box = (grid.amin(dim=0) - span, grid.amax(dim=0) + span)
    active = half_width > 0
    if not regrid:
        start = torch.tensor(term.parameters, dtype=torch.float64)
        error = float(residual_after(others, y, term.batch_values(x, start.unsqueeze(0)))[0])
        if not math.isfinite(error):
            return None, math.inf
        best, error = polished_parameters(term, x, others, y, start, active, box)
        return term.with_parameters(best), error
    errors = residual_after(others, y, term.batch_values(x, grid))
    best, least = None, math.inf
    for index in basin_starts(grid, errors, half_width, term.starts):
        point, error = (narrowed_parameters(term, x, others, y, grid[index], float(errors[index]), half_width)
                        if term.narrowed else (grid[index], float(errors[index])))
        if bool(active.any()):
            point, error = polished_parameters(term, x, others, y, point, active, box)
        if error < least:
            best, least = point, error
    return (term.with_parameters(best), least) if best is not None else (None, math.inf)


def basin_starts(grid: torch.Tensor, errors: torch.Tensor, spacing: torch.Tensor, count: int) -> list[int]:
    """Indices of up to ``count`` points of ``grid [Q, k]`` to search from: by least finite
    ``errors [Q]``, each more than one ``spacing [k]`` from every point taken before it in some
    parameter (a neighbour of a better point lies in its basin)."""
    taken: list[int] = []
    for index in torch.argsort(errors, stable=True)[:BASIN_CANDIDATES].tolist():
        if len(taken) == count or not math.isfinite(float(errors[index])):
            break
        apart = [bool(((grid[index] - grid[other]).abs() > spacing * 1.5)[spacing > 0].any()) for other in taken]
        if all(apart):
            taken.append(index)
    return taken


def narrowed_parameters(term: NonlinearTerm, x: torch.Tensor, others: torch.Tensor, y: torch.Tensor,
                        start: torch.Tensor, error: float, half_width: torch.Tensor) -> tuple[torch.Tensor, float]:
    """From the grid point ``start [k]`` (residual ``error``), grids of ``term.refine_points``
    per parameter around the best so far, each spanning ``half_width [k]`` on either side, then
    one spacing of the grid before (``term.refine_rounds`` narrowings; a best on a grid's edge
    moves the grid instead); the best point and its residual sum of squares."""
    offsets = torch.linspace(-1.0, 1.0, term.refine_points, dtype=torch.float64)
    shrink = 2.0 / (term.refine_points - 1)
    active = half_width > 0
    finest = half_width * shrink ** (term.refine_rounds - 1) * (1 - 1e-9)
    best, least, center = start, error, start
    for _ in range(MOVES_PER_ROUND * term.refine_rounds):
        axes = [best[k] + half_width[k] * offsets if active[k] else best[k:k + 1] for k in range(len(half_width))]
        grid = torch.cartesian_prod(*axes).reshape(-1, len(half_width))
        errors = residual_after(others, y, term.batch_values(x, grid))
        pick = int(errors.argmin())
        if float(errors[pick]) < least:
            best, least = grid[pick], float(errors[pick])
        at_edge = (best - center).abs() >= half_width * (1 - 1e-9)
        half_width = torch.where(at_edge, half_width, half_width * shrink)
        if not bool((half_width[active] >= finest[active]).any()):
            break
        center = best
    return best, least


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


@dataclass
class Library:
    """The route's terms on the fit rows followed by the held-out rows: numerator ``formulas``
    and ``values [N+M, T]``, the nonlinear terms among them (``shapes``, by formula), and the
    denominator's ``below`` formulas and ``below_values [N+M, D]``."""

    x: torch.Tensor
    formulas: list[sympy.Expr]
    values: torch.Tensor
    shapes: dict[sympy.Expr, NonlinearTerm]
    below: list[sympy.Expr]
    below_values: torch.Tensor


def outer_forms(y: torch.Tensor) -> list[str]:
    """The outer functions a law of targets ``y [N]`` may be tried under: a root where ``y`` has
    one strict sign (the library then fits ``y²``), a reciprocal likewise (it fits ``1/y``)."""
    if bool((y > 0).all()):
        return ["sqrt", "1/"]
    if bool((y < 0).all()):
        return ["-sqrt", "1/"]
    return []


def sparse_laws(symbols: list[sympy.Symbol], x_fit: torch.Tensor, y_fit: torch.Tensor, x_test: torch.Tensor,
                y_test: torch.Tensor, noise: float = 0.0) -> list[SparseLaw]:
    """The route's candidate formulas for targets ``y_fit [N]`` on rows ``x_fit [N, n]``, each
    refitted on those rows, with its R² on the held-out rows ``x_test [M, n]``/``y_test [M]``;
    empty with more than ``MAX_INPUTS`` inputs or too few rows to fit a term.

    A law may be a ratio ``Σ a_t·θ_t / (1 + Σ b_s·φ_s)``: written as ``y = Σ a_t·θ_t − Σ b_s·y·φ_s``
    it is linear in its constants, so the columns ``−y·φ_s`` (``denominator_library``) join the
    library on the fit rows (the implicit form of sparse regression); a candidate is always
    judged by the ratio's own values on the held-out rows. When no candidate fits the held-out
    rows within their noise (``noise``: its share of the targets' variance), two more families
    are searched the same way: ratios whose denominator has no constant (``π + Σ b_s·φ_s`` for
    ``π`` each input and each input's square, ``y·π`` regressed), and a root or reciprocal of a law of the library
    (:func:`outer_forms`)."""
    if x_fit.shape[1] > MAX_INPUTS or x_fit.shape[0] < 3 or not len(x_test) or not bool(torch.isfinite(y_fit).all()):
        return []
    y_fit, y_test = y_fit.double(), y_test.double()
    library = route_library(symbols, torch.cat([x_fit, x_test]).double(), y_fit)
    laws = implicit_laws(symbols, library, y_fit, y_test, None, "")
    if max((law.held_out_r2 for law in laws), default=-math.inf) >= 1 - 2 * noise - EXACT_SHARE:
        return laws
    for pivot, formula in enumerate(library.below):
        if formula.is_Symbol or (formula.is_Pow and formula.exp == 2):
            laws += implicit_laws(symbols, library, y_fit, y_test, pivot, "")
    for outer in outer_forms(torch.cat([y_fit, y_test])):
        laws += implicit_laws(symbols, library, y_fit, y_test, None, outer)
    return laws


def route_library(symbols: list[sympy.Symbol], x_all: torch.Tensor, y_fit: torch.Tensor) -> Library:
    """The route's library on the rows ``x_all [N+M, n]`` (fit rows first), its nonlinear terms
    fitted to the targets ``y_fit [N]``."""
    rows = len(y_fit)
    formulas, values = term_library(x_all, symbols)
    shapes = {term.formula(symbols): term for term in nonlinear_library(x_all[:rows], y_fit)}
    if shapes:
        formulas, values = distinct_terms(formulas + list(shapes),
                                          torch.cat([values, torch.stack([term.values(x_all) for term in shapes.values()], dim=1)], dim=1))
    below, below_values = denominator_library(x_all, symbols)
    return Library(x_all, formulas, values, shapes, below, below_values)


def implicit_laws(symbols: list[sympy.Symbol], library: Library, y_fit: torch.Tensor, y_test: torch.Tensor,
                  pivot: int | None, outer: str) -> list[SparseLaw]:
    """The candidates of one family: laws ``outer(Σ a_t·θ_t / (π + Σ b_s·φ_s))`` where ``π`` is 1
    (``pivot`` None) or the denominator term ``pivot``, whose place among the ``φ_s`` a constant
    takes. ``g = outer⁻¹(y)`` is regressed implicitly: ``g·π = Σ a_t·θ_t − Σ b_s·g·φ_s``."""
    rows = len(y_fit)
    inner = INNER_TARGETS[outer](y_fit)
    below, below_values = list(library.below), library.below_values
    pivot_values = None
    if pivot is not None:
        pivot_values = below_values[:, pivot]
        below[pivot] = sympy.Integer(1)
        below_values = below_values.clone()
        below_values[:, pivot] = 1.0
    target = inner * pivot_values[:rows] if pivot_values is not None else inner
    columns = torch.cat([library.values[:rows], -inner.unsqueeze(1) * below_values[:rows]], dim=1)
    finite = torch.isfinite(columns).all(dim=0)
    if not bool(torch.isfinite(target).all()):
        return []
    columns = torch.where(finite, columns, 0.0)
    scale = columns.pow(2).mean(dim=0).sqrt().clamp_min(torch.finfo(torch.float64).tiny)
    y_scale = max(float(target.pow(2).mean().sqrt()), torch.finfo(torch.float64).tiny)
    unit, y_unit = columns / scale, target / y_scale
    gram, moments = unit.T @ unit / rows, unit.T @ y_unit / rows
    usable = finite.tolist()
    gram[~finite], gram[:, ~finite], moments[~finite] = 0.0, 0.0, 0.0
    terms = len(library.formulas)
    found = thresholded_supports(gram, moments) + beam_supports(gram, moments)
    supports = dict.fromkeys(found)
    for start in dict.fromkeys(found):
        if len(start) <= MAX_ELIMINATED:
            supports.update(dict.fromkeys(backward_supports(gram, moments, start)))
    for start in polynomial_starts(library.formulas, symbols, len(below)):
        supports.update(dict.fromkeys(backward_supports(gram, moments, start)))
    laws: list[tuple[SparseLaw, list[int], list[int]]] = []
    for support in supports:
        if len(support) >= rows or not all(usable[t] for t in support):
            continue
        coefficients = least_squares(columns[:, support], target).tolist()
        upper = [(t, c) for t, c in zip(support, coefficients) if t < terms]
        lower = [(t - terms, c) for t, c in zip(support, coefficients) if t >= terms]
        if not upper:
            continue
        law = SparseLaw([library.formulas[t] for t, _ in upper], [c for _, c in upper], 0.0, 0.0,
                        [below[t] for t, _ in lower], [c for _, c in lower],
                        library.below[pivot] if pivot is not None else sympy.Integer(1), outer)
        upper_terms, lower_terms = [t for t, _ in upper], [t for t, _ in lower]
        with torch.no_grad():
            predicted = law.values(library.values, below_values, upper_terms, lower_terms, pivot_values)
        law.fit_r2, law.held_out_r2 = r2_value(predicted[:rows], y_fit), r2_value(predicted[rows:], y_test)
        laws.append((law, upper_terms, lower_terms))
    refinable = [(law.size, -law.fit_r2, i) for i, (law, _, _) in enumerate(laws)
                 if law.size <= MAX_SELECTED and 0 < sum(formula in library.shapes for formula in law.terms) <= MAX_REFINED]
    chosen = {i for size in {size for size, _, _ in refinable}
              for _, _, i in sorted(item for item in refinable if item[0] == size)[:REFINED_PER_SIZE]}
    return [refined_terms(law, symbols, library, (below_values, pivot_values, inner, y_fit, y_test), upper_terms, lower_terms)
            if i in chosen else law for i, (law, upper_terms, lower_terms) in enumerate(laws)]


def refined_terms(law: SparseLaw, symbols: list[sympy.Symbol], library: Library, rows: tuple,
                  upper: list[int], lower: list[int]) -> SparseLaw:
    """``law`` with the nonlinear parameters of each of its terms that has them (the library's
    ``shapes``) refitted beside the law's other terms (:func:`best_parameters`, twice over the
    terms in turn when there are several). ``rows`` holds the denominator's values ``[N+M, D]`` and the pivot's ``[N+M]``
    (or ``None``) of the law's family, its implicit target ``outer⁻¹(y) [N]``, and the targets
    ``[N]`` and ``[M]``; ``upper``/``lower`` index the law's terms in the library. Returns a new
    law, or ``law`` when refining does not fit the rows better."""
    below_values, pivot_values, inner, y_fit, y_test = rows
    n_fit = len(y_fit)
    upper_columns = library.values[:, upper].clone()
    lower_columns = below_values[:, lower]
    fixed_lower = -inner.unsqueeze(1) * lower_columns[:n_fit]
    target = inner * pivot_values[:n_fit] if pivot_values is not None else inner
    refined_shapes = {p: library.shapes[formula] for p, formula in enumerate(law.terms) if formula in library.shapes}
    others = torch.cat([upper_columns[:n_fit, 1:], fixed_lower], dim=1)
    start = float(residual_after(others, target, upper_columns[:n_fit, :1].T)[0])
    best = start
    for p in list(refined_shapes) * (2 if len(refined_shapes) > 1 else 1):  # a second pass once the others moved
        others = torch.cat([upper_columns[:n_fit, :p], upper_columns[:n_fit, p + 1:], fixed_lower], dim=1)
        term, error = best_parameters(refined_shapes[p], library.x[:n_fit], others, target,
                                      refined_shapes[p].regrid_in_laws)
        if term is not None and error < best:
            best, refined_shapes[p] = error, term
            upper_columns[:, p] = term.values(library.x)
    if not best < start:
        return law
    coefficients = least_squares(torch.cat([upper_columns[:n_fit], fixed_lower], dim=1), target).tolist()
    terms = [refined_shapes[p].formula(symbols) if p in refined_shapes else f for p, f in enumerate(law.terms)]
    refined = SparseLaw(terms, coefficients[:len(upper)], 0.0, 0.0, list(law.denominator), coefficients[len(upper):],
                        law.pivot, law.outer)
    predicted = refined.values(upper_columns, lower_columns, list(range(len(upper))), list(range(len(lower))), pivot_values)
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
