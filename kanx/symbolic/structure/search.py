"""Structure-first symbolic regression: decompose a function before fitting any formula.

Instead of fitting every edge of a network and composing, the network is used as an
*oracle* (values anywhere in the training box) and the function is split recursively:

1. one variable → :func:`kanx.symbolic.structure.univariate.fit_univariate`;
2. a power law ``C·Π x_i^p_i`` (log-linear least squares on ``log|f|``; positive box);
3. multiplicative separability ``f = Π g_k(group_k)`` (``separability.pair_shares``), each
   factor solved on a slice through a reference point; the same for additive separability;
4. a scaling law ``f = M₁(x)·g(M₂(x))`` of monomials (``kanx.symbolic.structure.scaling``): one
   dimensionless group times a prefactor, ``g`` fitted as a function of one variable;
5. a transformed target ``T(f)`` (1/f, f², √f, log f, …) that is a power law or separable;
6. a pair that enters only through ``x_i − x_j``, ``x_i + x_j``, ``x_i·x_j`` or ``x_i / x_j``
   is replaced by that one variable;
7. a composed sum ``f = g(h_1(x_1) + … + h_k(x_k))`` (``kanx.symbolic.structure.composed``): the
   inner functions from ratios of partial derivatives, then ``g`` as a function of their sum.

A step's formula is accepted when it reproduces its (sub-)oracle to ``accept_r2``. At the top
level the search stops at a formula that reproduces the oracle to ``settle_r2`` (its own error
level); an accepted formula short of that may be a look-alike of the law, so the later steps are
tried too and every formula goes on to the targets. A sub-problem stops at its first accepted
formula; of those it found, the best-fitting accepted one is kept (the simplest one where they
agree within the noise). The composed formula's constants are then
refitted to the data, pruned and snapped to simple numbers (``kanx.symbolic.cleaning.Cleaner``).
A :class:`StructureNode` tree records what was found.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import sympy
import torch

from kanx.core.budget import WorkBudget
from kanx.core.lambdify import formula_on_rows
from kanx.core.numerics import r2_value
from kanx.functions.library import LibraryFunction
from kanx.symbolic.cleaning import Cleaner, CleanSettings, formula_cost
from kanx.symbolic.refit import parametrise, to_expr
from kanx.symbolic.structure.composed import inner_profiles, single_index_share
from kanx.symbolic.structure.scaling import elasticities, prefactor_options, scaling_line, snap_ratio
from kanx.symbolic.structure.separability import (
    COMBINATIONS,
    Combination,
    Oracle,
    combination_range,
    combination_residual,
    components,
    feasible_partner,
    grid_points,
    middle_sample,
    pair_shares,
    sample_box,
)
from kanx.symbolic.structure.univariate import fit_univariate, sign_definite

LOOSE_SEPARABILITY = 5.0  # factor on the separability threshold when nothing separates at it
MAX_PREFACTORS = 4  # prefactor choices tried per orientation of a scaling group
NEAR_ZERO_BAND = 0.02  # power laws are fitted on points with every |x_i| above this share of its range's size
# Work units (kanx.core.budget) charged per step, on top of one unit per oracle row: a 1-D fit refits a few dozen
# candidate formulas, each compiled and fitted by Levenberg–Marquardt; a polish refits one formula's constants.
FIT_WORK = 50_000
POLISH_WORK = 1_000


@dataclass
class StructureSettings:
    """Knobs of the structure-first search (defaults tuned on the AI Feynman equations).

    ``separability_threshold``: a pair share above it means "not separable";
    ``accept_r2``: R² (vs the sub-oracle) a sub-formula needs; ``settle_r2``: R² at which the
    search stops looking for a better formula (``None``: at ``accept_r2``); ``rows``: oracle
    samples per test; ``max_depth``: recursion limit; ``budget``: work units for the whole search
    (``kanx.core.budget``: one per oracle row, ``FIT_WORK`` per 1-D fit, ``POLISH_WORK`` per polish), so
    the search ends at the same point on any machine; ``time_limit``: an optional wall-clock cap
    in seconds on top of it (``None``: none)."""

    separability_threshold: float = 2e-3
    combination_threshold: float = 2e-3
    accept_r2: float = 0.999
    rows: int = 512
    max_depth: int = 8
    budget: int = 1_000_000
    tolerance: float = 2e-3
    noise: float = 0.0  # R² gap within which 1-D candidates count as equal (the oracle's error share)
    settle_r2: float | None = None
    time_limit: float | None = None

    @property
    def settled_r2(self) -> float:
        return self.accept_r2 if self.settle_r2 is None else max(self.settle_r2, self.accept_r2)


@dataclass
class StructureNode:
    """One step of the decomposition: ``kind`` (univariate, power-law, product, sum, scaling,
    transform, substitute, failed), the variables it covers, a readable ``detail`` and the
    formula's R² against its oracle."""

    kind: str
    variables: list[str]
    detail: str
    r2: float
    children: list[StructureNode] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "variables": self.variables, "detail": self.detail, "r2": self.r2,
                "children": [c.to_dict() for c in self.children]}

    def describe(self, indent: int = 0) -> list[str]:
        line = f"{'  ' * indent}{self.kind}({', '.join(self.variables)}): {self.detail}  [R² {self.r2:.6f}]"
        return [line] + [row for child in self.children for row in child.describe(indent + 1)]


@dataclass
class Problem:
    """Find ``f`` of the variables ``symbols`` (displayed as ``names``) on the box
    ``[lo, hi]`` (``[k]`` each), asking the oracle where the data lie: variables with a
    ``floor`` above 0 are sampled log-uniformly in magnitude. Substituted variables are fresh
    symbols; the caller maps them back."""

    oracle: Oracle
    symbols: list[sympy.Symbol]
    names: list[str]
    lo: torch.Tensor
    hi: torch.Tensor
    depth: int = 0
    floor: torch.Tensor | None = None  # [k] per-variable magnitude floor of log-spread sampling (``sample_box``)

    def sample(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        """``rows`` points ``[rows, k]`` of the box, drawn where the data lie (``sample_box``)."""
        return sample_box(self.lo, self.hi, rows, generator, self.floor)

    def floors_of(self, variables: list[int]) -> torch.Tensor | None:
        """The floors of ``variables`` (``None`` when the problem has none)."""
        return self.floor[variables] if self.floor is not None else None


@dataclass
class Solution:
    """A formula and how it was found; ``alternatives``: formulas of the same step that its
    oracle does not tell apart from it (near-equal 1-D fits of a piece)."""

    expr: sympy.Expr
    node: StructureNode
    alternatives: list[Solution] = field(default_factory=list)

    def with_alternatives(self) -> list[Solution]:
        return [self, *self.alternatives]


class StructureSearch:
    """Recursive decomposition with a shared work budget and seeded sampling."""

    def __init__(self, functions: list[LibraryFunction], settings: StructureSettings, seed: int,
                 budget: WorkBudget | None = None) -> None:
        self.functions = functions
        self.settings = settings
        self.generator = torch.Generator().manual_seed(seed)
        self.signed_generator = torch.Generator().manual_seed(seed + 1)
        self.budget = budget if budget is not None else WorkBudget(settings.budget, settings.time_limit)

    def out_of_time(self) -> bool:
        """Whether the work budget (or its optional clock cap) is spent."""
        return self.budget.exhausted()

    def fit_1d(self, x: torch.Tensor, y: torch.Tensor, symbol: sympy.Symbol):
        """:func:`fit_univariate` of ``y [N]`` against ``x [N]`` with the search's library and
        tolerances, charged ``FIT_WORK`` to the budget."""
        self.budget.charge(FIT_WORK)
        return fit_univariate(x, y, symbol, self.functions, self.settings.tolerance, self.settings.noise)

    # ------------------------------------------------------------------ checking
    def score(self, problem: Problem, expr: sympy.Expr) -> float:
        """R² of ``expr`` against the oracle on fresh samples of the problem's box."""
        x = problem.sample(self.settings.rows, self.generator)
        prediction = evaluate(expr, problem, x)
        return r2_value(prediction, problem.oracle(x)) if prediction is not None else float("-inf")

    # ------------------------------------------------------------------ search
    def solve(self, problem: Problem) -> Solution | None:
        """Of the accepted formulas (R² ≥ ``accept_r2``), the simplest within the noise of the
        best-fitting one; without any, the best one found."""
        return self.best_of(self.candidates(problem))

    def best_of(self, found: list[Solution]) -> Solution | None:
        """:meth:`solve`'s choice among ``found``."""
        accepted = [c for c in found if c.node.r2 >= self.settings.accept_r2]
        if not accepted:
            return max(found, key=lambda c: c.node.r2, default=None)
        best = max(c.node.r2 for c in accepted)
        near = [c for c in accepted if c.node.r2 >= best - self.settings.noise]
        return min(near, key=lambda c: (formula_cost(c.expr), -c.node.r2))

    def candidates(self, problem: Problem) -> list[Solution]:
        """Formulas of the steps tried in order (with their alternatives), up to and including
        the first one that reaches ``settle_r2`` at the top level, ``accept_r2`` in a
        sub-problem (a slice of the network is rarely reproduced to its error level, and going
        on in every sub-problem of every split multiplies the search's time; a power law is
        always tried: it is the cheapest and the commonest law)."""
        if problem.lo.numel() == 1:
            return self.univariate_options(problem)[:1]
        enough = self.settings.settled_r2 if problem.depth == 0 else self.settings.accept_r2
        out: list[Solution] = []
        for step in (self.power_law, self.separable, self.scaling, self.transformed, self.substitute, self.composed_sum):
            if self.out_of_time() or problem.depth > self.settings.max_depth:
                break
            found = step(problem)
            if found is None:
                continue
            out.extend(found.with_alternatives())
            if max(s.node.r2 for s in found.with_alternatives()) >= enough:
                break
        return out

    def univariate_options(self, problem: Problem) -> list[Solution]:
        """The 1-D fit of a one-variable problem, then the alternatives its samples do not tell
        apart from it (``UnivariateFit.alternatives``)."""
        symbol = sympy.Dummy("t")
        floor = float(problem.floor[0]) if problem.floor is not None else 0.0
        x = grid_points(float(problem.lo[0]), float(problem.hi[0]), 256, floor)
        y = problem.oracle(x[:, None])
        fit = self.fit_1d(x, y, symbol)
        if fit is None:
            return []
        options = []
        for expr, r2, label in [(fit.expr, fit.r2, fit.label), *fit.alternatives]:
            expr = expr.xreplace({symbol: problem.symbols[0]})
            options.append(Solution(expr, StructureNode("univariate", problem.names, f"{label}: {expr}", r2)))
        return options

    def power_law(self, problem: Problem) -> Solution | None:
        """``C·Π x_i^p_i`` (integer exponents on variables of either sign), fitted away from
        the near-zero band of signed variables, where a power law's logarithm is least
        reliable and a network the least accurate."""
        signed = bool((problem.lo <= 0).any())
        # a box reaching 0 draws from its own stream, so that probing it leaves every other
        # step's samples as they were without the probe
        generator = self.signed_generator if signed else self.generator
        x = problem.sample(self.settings.rows, generator)
        size = torch.maximum(problem.lo.abs(), problem.hi.abs())
        x = x[(x.abs() >= NEAR_ZERO_BAND * size).all(dim=1)]
        if x.shape[0] < self.settings.rows // 4:
            return None
        expr = fit_power_law(problem.symbols, x, problem.oracle(x))
        if expr is None:
            return None
        r2 = self.score(problem, expr)
        return Solution(expr, StructureNode("power-law", problem.names, str(expr), r2))

    def separable(self, problem: Problem) -> Solution | None:
        """``f`` (or ``f − c``) a product of functions of disjoint groups, or a sum of them."""
        shares = pair_shares(problem.oracle, problem.lo, problem.hi, self.settings.rows, self.generator, problem.floor)
        options = []
        # a looser second look: the shares of a function crossing zero sit a few times above a
        # network's error level; a false split is caught by the acceptance test
        for threshold in (self.settings.separability_threshold, LOOSE_SEPARABILITY * self.settings.separability_threshold):
            for kind, share, rank in (("product", shares.product, 2), ("sum", shares.additive, 1),
                                      ("offset-product", shares.offset_product, 0)):
                groups = components(share, threshold)
                if len(groups) > 1:
                    options.append((len(groups), rank, kind, groups))
            if options:
                break
        best: Solution | None = None
        for _, _, kind, groups in sorted(options, reverse=True):
            if self.out_of_time():
                break
            if kind == "offset-product":
                found = self.offset_split(problem, shares.offset, groups)
            else:
                found = self.split(problem, kind, groups)
            if found is not None and found.node.r2 >= self.settings.accept_r2:
                return found
            if found is not None and (best is None or found.node.r2 > best.node.r2):
                best = found
        return best

    def scaling(self, problem: Problem) -> Solution | None:
        """``f = M₁ · g(M₂)`` with monomials ``M₁``, ``M₂`` (``kanx.symbolic.structure.scaling``). Variables
        that reach 0 or below take integer exponents only (``M₂``: none negative where the box
        contains 0; ``M₁``: none where it crosses 0). Each allowed prefactor option in each
        orientation of ``M₂`` is fitted (:meth:`reduced`); of those whose formula and ``g`` both
        reach ``accept_r2`` the shortest formula wins, else the best one is returned as a
        candidate."""
        rates = elasticities(problem.oracle, problem.lo, problem.hi, self.settings.rows // 2, self.generator, problem.floor)
        line = scaling_line(rates) if rates is not None else None
        if line is None:
            return None
        signed = (problem.lo <= 0).tolist()
        crossing = ((problem.lo < 0) & (problem.hi > 0) | (problem.lo == 0)).tolist()
        prefactors = [p for p in prefactor_options(line) if _signed_ok(p, signed, crossing, prefactor=True)]
        tried: list[Solution] = []
        for orientation in _orientations(line.direction):
            if not _signed_ok(orientation, signed, crossing, prefactor=False):
                continue
            for prefactor in prefactors[:MAX_PREFACTORS]:
                if self.out_of_time():
                    break
                found = self.reduced(problem, [sympy.Rational(p, q) for p, q in orientation],
                                     [sympy.Rational(*e) if isinstance(e, tuple) else sympy.Float(e) for e in prefactor])
                if found is not None:
                    tried.append(found)
            # g must be found along its whole range, not only reproduce f where it matters little;
            # several prefactors can then pass, and the shortest formula is the law
            accepted = [s for s in tried if min(s.node.r2, s.node.children[0].r2) >= self.settings.accept_r2]
            if accepted:
                return min(accepted, key=lambda s: formula_cost(s.expr))
        return max(tried, key=lambda s: s.node.r2, default=None)

    def reduced(self, problem: Problem, group: list[sympy.Expr], prefactor: list[sympy.Expr]) -> Solution | None:
        """Fit ``g(u) = f / Π x^prefactor`` against ``u = Π x^group`` on samples of the whole box
        plus (for a positive box) points spread evenly over ``u`` between its 1% and 99%
        quantiles along the box's log-diagonal: the first weigh ``u`` as the data do, the second
        show g's shape over the whole range without the extreme corners, where a network is
        least accurate."""
        box = problem.sample(self.settings.rows, self.generator)
        u_box = monomial(box, group)
        if bool((problem.lo > 0).all()):
            quantiles = torch.quantile(u_box, torch.tensor([0.01, 0.99], dtype=torch.float64))
            extra = diagonal_points(problem, group, quantiles, self.settings.rows)
        else:
            extra = problem.sample(self.settings.rows, self.generator)
        x = torch.cat([box, extra])
        u = torch.cat([u_box, monomial(extra, group)])
        y = problem.oracle(x) / monomial(x, prefactor)
        symbol = sympy.Dummy("u")
        finite = bool(torch.isfinite(y).all())
        fit = self.fit_1d(u, y, symbol) if finite else None
        if fit is None:
            return None
        name = f"({_monomial_text(problem.names, group)})"
        scale = sympy.Mul(*(s**e for s, e in zip(problem.symbols, prefactor)))
        group_expr = sympy.Mul(*(s**e for s, e in zip(problem.symbols, group)))
        detail = f"f = {_monomial_text(problem.names, prefactor)} · g({name})"
        options = []
        for inner, r2, label in [(fit.expr, fit.r2, fit.label), *fit.alternatives]:
            expr = self.polish(problem, scale * inner.xreplace({symbol: group_expr}))
            child = StructureNode("univariate", [name], f"{label}: {inner}", r2)
            options.append(Solution(expr, StructureNode("scaling", problem.names, detail, self.score(problem, expr), [child])))
        return ranked(options)

    def offset_split(self, problem: Problem, offset: float, groups: list[list[int]]) -> Solution | None:
        """``f = c + Π g_k``: split ``f − c`` as a product."""
        oracle = _shifted_oracle(problem.oracle, offset)
        found = self.split(replace(problem, oracle=oracle), "product", groups)
        if found is None:
            return None
        expr = self.polish(problem, sympy.Float(offset) + found.expr)
        node = StructureNode("offset-product", problem.names, f"f - {offset:.6g} = {found.node.detail}",
                             self.score(problem, expr), found.node.children)
        return Solution(expr, node)

    def reference_point(self, problem: Problem) -> torch.Tensor:
        """A slice point for split sub-problems: of 64 points in the middle half of the box
        (``middle_sample``), the one where ``|f|`` is largest (a product's factors must not
        vanish there)."""
        middle = middle_sample(problem.lo, problem.hi, 64, self.generator, problem.floor)
        values = problem.oracle(middle).abs()
        values = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
        return middle[int(values.argmax())]

    def split(self, problem: Problem, kind: str, groups: list[list[int]]) -> Solution | None:
        """The pieces of each group solved on a slice through the reference point and joined
        (``kind``: product or sum). When some piece's best-fitting formula is not the one
        :meth:`best_of` chose (a shorter formula within the noise of it), the join of the
        best-fitting pieces comes along as an alternative: only the targets can tell which one
        is the law."""
        reference = self.reference_point(problem)
        chosen, closest = [], []
        for group in groups:
            found = self.candidates(slice_problem(problem, group, reference))
            best = self.best_of(found)
            if best is None:
                return None
            chosen.append(best)
            closest.append(max(found, key=lambda c: c.node.r2))
        at_reference = float(problem.oracle(reference[None, :])[0])
        if kind == "product" and abs(at_reference) < 1e-12:
            return None
        options = [self.joined(problem, kind, groups, chosen, at_reference)]
        if any(a is not b for a, b in zip(chosen, closest)):
            options.append(self.joined(problem, kind, groups, closest, at_reference))
        return Solution(options[0].expr, options[0].node, options[1:])

    def joined(self, problem: Problem, kind: str, groups: list[list[int]], pieces: list[Solution],
               at_reference: float) -> Solution:
        """The product (each factor's value at the reference point divided out once per extra
        factor) or sum (its value subtracted likewise) of the pieces, polished and scored."""
        if kind == "product":
            expr = sympy.Mul(*(p.expr for p in pieces)) / sympy.Float(at_reference) ** (len(pieces) - 1)
        else:
            expr = sympy.Add(*(p.expr for p in pieces)) - sympy.Float(at_reference) * (len(pieces) - 1)
        expr = self.polish(problem, expr)
        detail = " | ".join("{" + ", ".join(problem.names[i] for i in g) + "}" for g in groups)
        return Solution(expr, StructureNode(kind, problem.names, detail, self.score(problem, expr), [p.node for p in pieces]))

    def transformed(self, problem: Problem) -> Solution | None:
        """``T(f)`` a power law or separable for a target transform ``T``; the formula is
        ``T⁻¹`` of the transformed problem's formula."""
        x = problem.sample(self.settings.rows, self.generator)
        values = problem.oracle(x)
        sign = sign_definite(values)
        best: tuple[Solution, TargetTransform, int, Solution] | None = None
        for transform in TARGET_TRANSFORMS:
            if self.out_of_time():
                break
            if transform.needs_sign and sign == 0:
                continue
            factor = sign if transform.needs_sign else 1
            oracle = _transformed_oracle(problem.oracle, transform.forward, factor)
            if not bool(torch.isfinite(oracle(x)).all()):
                continue
            inner = replace(problem, oracle=oracle, depth=problem.depth + 1)
            found = self.power_law(inner)
            if found is None or found.node.r2 < self.settings.accept_r2:
                found = self.separable(inner) or found
            if found is None:
                continue
            solution = self.inverted(problem, transform, factor, found)
            if solution.node.r2 >= self.settings.accept_r2:
                return self.with_inverted_alternatives(problem, transform, factor, found, solution)
            if best is None or solution.node.r2 > best[0].node.r2:
                best = (solution, transform, factor, found)
        return self.with_inverted_alternatives(problem, *best[1:], best[0]) if best is not None else None

    def inverted(self, problem: Problem, transform: TargetTransform, factor: int, found: Solution) -> Solution:
        """``T⁻¹`` of a formula found for ``T(f)``, polished and scored on the problem."""
        expr = self.polish(problem, factor * transform.inverse(found.expr))
        return Solution(expr, StructureNode("transform", problem.names, f"{transform.name}(f): {found.node.kind}",
                                            self.score(problem, expr), [found.node]))

    def with_inverted_alternatives(self, problem: Problem, transform: TargetTransform, factor: int, found: Solution,
                                   solution: Solution) -> Solution:
        """``solution`` with ``T⁻¹`` of ``found``'s alternatives (built only for the transform
        the step returns: each costs a polish)."""
        return Solution(solution.expr, solution.node, [self.inverted(problem, transform, factor, a) for a in found.alternatives])

    def substitute(self, problem: Problem) -> Solution | None:
        ranked = []
        k = problem.lo.numel()
        for i, j in itertools.permutations(range(k), 2):
            for combo in COMBINATIONS:
                if combo.name in ("sum", "product") and i > j:
                    continue  # symmetric: one order is enough
                residual = combination_residual(problem.oracle, problem.lo, problem.hi, i, j, combo,
                                                self.settings.rows, self.generator, problem.floor)
                if residual <= self.settings.combination_threshold:
                    ranked.append((residual, i, j, combo))
        for _, i, j, combo in sorted(ranked, key=lambda item: item[0])[:3]:
            if self.out_of_time():
                break
            sub = substituted_problem(problem, i, j, combo)
            found = self.solve(sub)
            if found is None:
                continue
            expr = found.expr.xreplace({sub.symbols[-1]: combo.sympy_form(problem.symbols[i], problem.symbols[j])})
            detail = f"{problem.names[i]}, {problem.names[j]} enter as {sub.names[-1]}"
            return Solution(expr, StructureNode("substitute", problem.names, detail, self.score(problem, expr), [found.node]))
        return None

    def composed_sum(self, problem: Problem) -> Solution | None:
        """``f = g(Σ h_i(x_i))`` (``kanx.symbolic.structure.composed``): the inner functions'
        profiles from derivative ratios, each fitted as a function of one variable (the
        simplest fits, and the best-fitting ones when they differ: a profile read from
        derivatives is not exact enough to choose between near-equal shapes), then ``g`` fitted
        against their sum on samples of the box, with its own alternatives. ``None`` when ``f`` is
        not a function of the profiles' sum within the separability threshold, or a piece has no
        formula."""
        profiles = inner_profiles(problem.oracle, problem.lo, problem.hi, self.generator)
        if profiles is None:
            return None
        share = single_index_share(problem.oracle, profiles, problem.lo, problem.hi, 4 * self.settings.rows, self.generator)
        if share > LOOSE_SEPARABILITY * max(self.settings.separability_threshold, SINGLE_INDEX_FLOOR):
            return None
        simplest, closest = [], []
        for i, symbol in enumerate(problem.symbols):
            fit = self.fit_1d(profiles.grids[i], profiles.values[i], symbol)
            if fit is None:
                return None
            best = max([(fit.expr, fit.r2), *((e, r2) for e, r2, _ in fit.alternatives)], key=lambda option: option[1])[0]
            # g's own shift takes the offsets
            simplest.append(fit.expr - fit.expr.as_coeff_Add()[0])
            closest.append(best - best.as_coeff_Add()[0])
        variants = [sympy.Add(*simplest)] + ([sympy.Add(*closest)] if closest != simplest else [])
        options = [s for u_expr in variants for s in self.outer_options(problem, u_expr)]
        return ranked(options)

    def outer_options(self, problem: Problem, u_expr: sympy.Expr) -> list[Solution]:
        """``g(u_expr)`` for the 1-D fit of the oracle against ``u_expr`` on box samples and its
        alternatives, each polished and scored."""
        x = problem.sample(2 * self.settings.rows, self.generator)
        u = evaluate(u_expr, problem, x)
        if u is None or float(u.std()) == 0:
            return []
        symbol = sympy.Dummy("u")
        fit = self.fit_1d(u, problem.oracle(x), symbol)
        if fit is None:
            return []
        detail = f"f = g({' + '.join(f'h({name})' for name in problem.names)})"
        options = []
        for outer, r2, label in [(fit.expr, fit.r2, fit.label), *fit.alternatives]:
            expr = self.polish(problem, outer.xreplace({symbol: u_expr}))
            child = StructureNode("univariate", ["u"], f"{label}: g(u) = {outer}, u = {u_expr}", r2)
            options.append(Solution(expr, StructureNode("composed-sum", problem.names, detail, self.score(problem, expr), [child])))
        return options

    def polish(self, problem: Problem, expr: sympy.Expr) -> sympy.Expr:
        """Refit the float constants of ``expr`` against the problem's oracle."""
        x = problem.sample(self.settings.rows, self.generator)
        self.budget.charge(POLISH_WORK)
        try:
            cleaner = Cleaner(problem.symbols, x, problem.oracle(x), CleanSettings())
            param, score = cleaner.fit(parametrise(expr))
        except Exception:  # noqa: BLE001 - a formula that cannot be evaluated keeps its constants
            return expr
        return to_expr(param) if math.isfinite(score) else expr


# --------------------------------------------------------------------------- helpers
SINGLE_INDEX_FLOOR = 1e-5  # neighbours in u differ by g's slope over their spacing: a share of this order


def ranked(options: list[Solution]) -> Solution | None:
    """The best-scoring option, the others as its alternatives."""
    if not options:
        return None
    options = sorted(options, key=lambda s: -s.node.r2 if math.isfinite(s.node.r2) else math.inf)
    return Solution(options[0].expr, options[0].node, options[1:])


def fit_power_law(symbols: list[sympy.Symbol], x: torch.Tensor, y: torch.Tensor) -> sympy.Expr | None:
    """``C·Π x_i^p_i`` by least squares on ``log|y|`` against ``log|x_i|`` (``x [N, k]``, ``y [N]``;
    power laws span many decades, so only signs are tested), exponents snapped to simple
    rationals and ``C`` re-estimated for them; ``None`` when it does not apply.

    Variables of either sign take integer exponents only, and the law must then explain every
    sign: ``sign(y)·Π sign(x_i)^p_i`` is the same (``C``'s sign) on at least ``SIGN_AGREEMENT`` of
    the rows (all rows but a network's near-zero flickers). Rows where a variable or ``y`` is 0
    carry no logarithm and are left out."""
    x, y = x.double(), y.double()
    usable = (x != 0).all(dim=1) & (y != 0) & torch.isfinite(y)
    if int(usable.sum()) < max(8, x.shape[1] + 2):
        return None
    x, y = x[usable], y[usable]
    signed = (x < 0).any(dim=0)
    if not bool(signed.any()) and sign_definite(y, margin=1e-12) == 0:
        return None
    logx, target = torch.log(x.abs()), torch.log(y.abs())
    design = torch.cat([torch.ones(x.shape[0], 1, dtype=torch.float64), logx], dim=1)
    coefficients = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
    powers = [snap_exponent(float(p)) for p in coefficients[1:]]
    if any(bool(neg) and not (isinstance(p, sympy.Integer)) for p, neg in zip(powers, signed.tolist())):
        return None
    odd = torch.tensor([bool(neg) and int(p) % 2 == 1 for p, neg in zip(powers, signed.tolist())])
    flips = ((x < 0) & odd).sum(dim=1) % 2 == 1
    law_sign = torch.where(flips, -torch.sign(y), torch.sign(y))
    sign = 1 if float((law_sign > 0).double().mean()) >= 0.5 else -1
    if float((law_sign == sign).double().mean()) < SIGN_AGREEMENT:
        return None
    log_scale = float((target - logx @ torch.tensor([float(p) for p in powers], dtype=torch.float64)).mean())
    expr = sign * sympy.Float(math.exp(log_scale))
    for symbol, power in zip(symbols, powers):
        expr = expr * symbol**power
    return expr


SIGN_AGREEMENT = 0.98


def snap_exponent(value: float, tolerance: float = 0.04) -> sympy.Expr:
    """The simple rational (denominator 1, 2 or 3) nearest ``value`` when within
    ``tolerance``, else the float."""
    ratio = snap_ratio(value, tolerance)
    return sympy.Rational(*ratio) if ratio is not None else sympy.Float(value)


@dataclass(frozen=True)
class TargetTransform:
    """``T`` applied to the oracle's values (after multiplying by the sign when ``needs_sign``)
    and ``T⁻¹`` applied to the formula found for ``T(f)``."""

    name: str
    forward: object  # Callable[[Tensor], Tensor]
    inverse: object  # Callable[[sympy.Expr], sympy.Expr]
    needs_sign: bool


TARGET_TRANSFORMS = (
    TargetTransform("1/f", lambda y: 1 / y, lambda e: 1 / e, True),
    TargetTransform("f^2", lambda y: y * y, sympy.sqrt, True),
    TargetTransform("1/f^2", lambda y: 1 / (y * y), lambda e: 1 / sympy.sqrt(e), True),
    TargetTransform("sqrt(f)", torch.sqrt, lambda e: e**2, True),
    TargetTransform("log(f)", torch.log, sympy.exp, True),
    TargetTransform("sin(f)", torch.sin, sympy.asin, False),
    TargetTransform("arcsin(sqrt(f))", lambda y: torch.asin(torch.sqrt(y)), lambda e: sympy.sin(e) ** 2, True),
)


def _shifted_oracle(oracle: Oracle, offset: float) -> Oracle:
    return lambda x: oracle(x) - offset


def _transformed_oracle(oracle: Oracle, forward, sign: int) -> Oracle:
    return lambda x: forward(sign * oracle(x))


def slice_problem(problem: Problem, group: list[int], reference: torch.Tensor) -> Problem:
    """The problem restricted to ``group``, other variables fixed at ``reference``."""
    base = reference.clone()

    def oracle(x: torch.Tensor) -> torch.Tensor:
        full = base.expand(x.shape[0], -1).clone()
        full[:, group] = x
        return problem.oracle(full)

    return Problem(oracle, [problem.symbols[i] for i in group], [problem.names[i] for i in group],
                   problem.lo[group], problem.hi[group], problem.depth + 1, problem.floors_of(group))


def substituted_problem(problem: Problem, i: int, j: int, combo: Combination) -> Problem:
    """Replace variables ``i`` and ``j`` by ``u = c(x_i, x_j)`` (last variable of the new problem)."""
    keep = [v for v in range(problem.lo.numel()) if v not in (i, j)]
    lo_i, hi_i, lo_j, hi_j = (float(t) for t in (problem.lo[i], problem.hi[i], problem.lo[j], problem.hi[j]))
    u_lo, u_hi = combination_range(combo, lo_i, hi_i, lo_j, hi_j)

    def oracle(x: torch.Tensor) -> torch.Tensor:
        u = x[:, -1]
        low, high = feasible_partner(combo, u, lo_i, hi_i, lo_j, hi_j)
        full = torch.empty(x.shape[0], problem.lo.numel(), dtype=torch.float64)
        full[:, keep] = x[:, :-1]
        full[:, j] = (low + high) / 2
        full[:, i] = combo.solve_i(u, full[:, j]).clamp(lo_i, hi_i)
        return problem.oracle(full)

    shown = str(combo.sympy_form(*(sympy.Symbol(problem.names[v]) for v in (i, j))))
    symbols = [problem.symbols[v] for v in keep] + [sympy.Dummy(f"u{problem.depth}")]
    names = [problem.names[v] for v in keep] + [f"({shown})"]
    lo = torch.cat([problem.lo[keep], torch.tensor([u_lo], dtype=torch.float64)])
    hi = torch.cat([problem.hi[keep], torch.tensor([u_hi], dtype=torch.float64)])
    floor = problem.floors_of(keep)
    floor = torch.cat([floor, torch.zeros(1, dtype=torch.float64)]) if floor is not None else None  # u: sampled evenly
    return Problem(oracle, symbols, names, lo, hi, problem.depth + 1, floor)


def diagonal_points(problem: Problem, group: list[sympy.Expr], u_range: torch.Tensor, rows: int) -> torch.Tensor:
    """``rows`` points ``[rows, k]`` on the box's log-diagonal along which ``u = Π x^group``
    grows (variables outside the group at their geometric middle), with ``u`` evenly spaced
    over ``u_range`` (``[2]``, inside the box's range of ``u``)."""
    a = torch.tensor([float(e) for e in group], dtype=torch.float64)
    log_lo, log_hi = problem.lo.log(), problem.hi.log()
    middle = (log_lo + log_hi) / 2
    start = torch.where(a > 0, log_lo, torch.where(a < 0, log_hi, middle))
    end = torch.where(a > 0, log_hi, torch.where(a < 0, log_lo, middle))
    log_u = torch.linspace(float(u_range[0]), float(u_range[1]), rows, dtype=torch.float64).log()
    s = (log_u - float(start @ a)) / float((end - start) @ a)
    return torch.exp(start + s[:, None] * (end - start))


def monomial(x: torch.Tensor, exponents: list[sympy.Expr]) -> torch.Tensor:
    """``Π x_i^e_i`` for ``x [N, k]`` → ``[N]``; a negative ``x_i`` needs an integer ``e_i``."""
    powers = torch.tensor([float(e) for e in exponents], dtype=torch.float64)
    used = powers != 0
    magnitude = torch.exp(x[:, used].abs().log() @ powers[used])
    odd = torch.tensor([float(e) % 2 == 1 for e in exponents])
    flips = ((x < 0) & odd).sum(dim=1) % 2 == 1
    return torch.where(flips, -magnitude, magnitude)


def _signed_ok(exponents: list, signed: list[bool], crossing: list[bool], prefactor: bool) -> bool:
    """Whether a monomial's exponents (``(p, q)`` fractions or floats) are defined on the box:
    integers on variables that reach 0 or below; where the box contains 0, no negative exponent
    in the group, and none at all in a ``prefactor`` (it must not vanish there)."""
    for e, is_signed, is_crossing in zip(exponents, signed, crossing):
        value = e[0] / e[1] if isinstance(e, tuple) else e
        if not is_signed or value == 0:
            continue
        if not (isinstance(e, tuple) and e[1] == 1):
            return False
        if is_crossing and (prefactor or value < 0):
            return False
    return True


def _orientations(direction: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """``u`` and ``1/u``, the one with more positive exponents (then a positive first
    exponent) first: library shapes such as ``exp(-c·u)`` are not symmetric under ``u → 1/u``."""
    flipped = [(-p, q) for p, q in direction]
    positives = sum(p > 0 for p, _ in direction) - sum(p < 0 for p, _ in direction)
    first = next(p for p, _ in direction if p != 0)
    return [direction, flipped] if (positives, first) >= (0, 0) else [flipped, direction]


def _monomial_text(names: list[str], exponents: list) -> str:
    parts = [name if e == 1 else f"{name}^{e}" for name, e in zip(names, exponents) if e != 0]
    return "·".join(parts) or "1"


def evaluate(expr: sympy.Expr, problem: Problem, x: torch.Tensor) -> torch.Tensor | None:
    """Evaluate a formula over the problem's symbols on samples ``x [N, k]`` → ``[N]`` (``None``
    when it does not evaluate to finite numbers)."""
    return formula_values(expr, problem.symbols, x)


def formula_values(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor) -> torch.Tensor | None:
    """``expr`` over ``symbols`` on the rows ``x [N, k]`` → ``[N]`` float64 (``None`` when it does
    not evaluate to finite numbers)."""
    try:
        out = formula_on_rows(expr, symbols, [x[:, k] for k in range(x.shape[1])], x.shape[0])
    except Exception:  # noqa: BLE001 - unevaluable formula
        return None
    return out if bool(torch.isfinite(out).all()) else None


def counted(oracle: Oracle, budget: WorkBudget) -> Oracle:
    """``oracle`` with every row it evaluates charged to ``budget``."""
    def charged(x: torch.Tensor) -> torch.Tensor:
        budget.charge(x.shape[0])
        return oracle(x)

    return charged


def search_structure(oracle: Oracle, symbols: list[sympy.Symbol], lo: torch.Tensor, hi: torch.Tensor,
                     functions: list[LibraryFunction], settings: StructureSettings | None = None,
                     seed: int = 0, floor: torch.Tensor | None = None, budget: WorkBudget | None = None) -> list[Solution]:
    """Decompose and fit ``oracle`` (``[N, k]`` → ``[N]``, float64) on the box ``[lo, hi]``;
    formulas over ``symbols``; ``floor`` (``[k]``, ``separability.spread_floor`` of the data):
    variables spread over decades are sampled log-uniformly in magnitude. Returns the top-level candidates (power law, then the steps up
    to the first one reaching ``settle_r2``, each with its alternatives; for one variable, its
    1-D fit and the alternatives the network does not tell apart from it), so a caller holding
    data can pick among them; empty when no step produced a formula. ``budget``: the work budget
    to spend (default: a fresh one from ``settings``); every oracle row is charged to it."""
    settings = settings or StructureSettings()
    search = StructureSearch(functions, settings, seed, budget)
    floor = floor.double() if floor is not None else None
    problem = Problem(counted(oracle, search.budget), list(symbols), [str(s) for s in symbols], lo.double(), hi.double(), floor=floor)
    if len(symbols) == 1:
        return search.univariate_options(problem)
    return search.candidates(problem)
