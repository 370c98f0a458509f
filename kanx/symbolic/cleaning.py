"""Cleaning a composed expression (``kanx.families.kan.compose``) into a readable formula.

``Cleaner.run`` turns the raw composition into a formula:

1. normalise (expand products and powers, pull constants out of ``exp``) in a worker with
   a time limit;
2. every floating constant becomes a parameter, refitted jointly (Levenberg–Marquardt in
   torch) against the target on the fit samples;
3. additive terms are dropped one at a time (weakest first) while R² stays within ``tolerance``;
4. constants are snapped to integers, simple rationals and rational multiples of π while
   R² stays within ``tolerance`` (the other constants refitted after each snap);
5. the rest are rounded to ``digits`` significant digits and sympy simplifies the result
   (again under a time limit, falling back to the unsimplified form).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import sympy
import torch

from kanx.core.numerics import chance_loss, misfit_beyond_noise, noise_bounded_by_fit, r2_value
from kanx.symbolic.canonical import fold_constants, round_floats
from kanx.symbolic.refit import Evaluator, Parametrised, parametrise, refit, to_expr
from kanx.symbolic.timeout import run_with_timeout


# --------------------------------------------------------------------------- composition
def _pull_exp_constants(expr: sympy.Expr) -> sympy.Expr:
    def is_target(node: sympy.Basic) -> bool:
        return isinstance(node, sympy.exp) and isinstance(node.args[0], sympy.Add) and any(
            term.is_Number and abs(float(term)) < 30 for term in node.args[0].args
        )

    def rewrite(node: sympy.Basic) -> sympy.Expr:
        constant = sum((t for t in node.args[0].args if t.is_Number), sympy.Integer(0))
        rest = sympy.Add(*[t for t in node.args[0].args if not t.is_Number])
        return sympy.exp(constant) * sympy.exp(rest)

    return expr.replace(is_target, rewrite)


def normalise(expr: sympy.Expr) -> sympy.Expr:
    """Expand products and integer powers everywhere; move numeric terms out of ``exp``."""
    expanded = sympy.expand(expr, deep=True, power_exp=False, power_base=False, log=False, mul=True, multinomial=True)
    return sympy.expand(_pull_exp_constants(expanded), deep=True, power_exp=False, power_base=False, log=False)


def simplest_form(expr: sympy.Expr) -> sympy.Expr:
    return sympy.simplify(expr)


DIRECT = (sympy.sin, sympy.cos, sympy.tan, sympy.sinh, sympy.cosh, sympy.tanh)
INVERSE = (sympy.asin, sympy.acos, sympy.atan, sympy.asinh, sympy.acosh, sympy.atanh)


def formula_cost(expr: sympy.Expr) -> int:
    """``count_ops`` with each function application (sin, exp, atanh, …) counted three times:
    of two equal formulas, the one with fewer transcendental functions reads more simply."""
    return int(sympy.count_ops(expr)) + 2 * len([node for node in sympy.preorder_traversal(expr) if isinstance(node, sympy.Function)])


def resolve_inverse_pairs(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with trigonometric and hyperbolic functions of sums that hold their own inverses
    expanded and simplified (``tanh(atanh x + atanh y)`` → ``(x + y)/(x·y + 1)``) when that costs
    less (:func:`formula_cost`); ``expr`` itself otherwise."""
    def pairs(node: sympy.Basic) -> bool:
        return isinstance(node, DIRECT) and isinstance(node.args[0], sympy.Add) and node.args[0].has(*INVERSE)

    if not any(pairs(node) for node in sympy.preorder_traversal(expr)):
        return expr
    rewritten = sympy.simplify(sympy.expand_trig(expr))
    return rewritten if formula_cost(rewritten) < formula_cost(expr) else expr


# --------------------------------------------------------------------------- snapping
SNAP_RANGE = (1e-3, 1e6)  # simple numbers are sought for constants of this size only


def nice_candidates(value: float, max_denominator: int = 6, pi_squared: bool = False,
                    pi_inverse: bool = False) -> list[sympy.Expr]:
    """Simple numbers near ``value``, nearest first: integers, p/q (q ≤ max_denominator),
    (p/q)·π, and on request (p/q)·π² and (p/q)/π. None for a constant outside ``SNAP_RANGE``:
    6.04e+33 or 1.1e-17 carry their units, and an integer or fraction there means nothing."""
    found: dict[sympy.Expr, float] = {}
    if not math.isfinite(value) or not SNAP_RANGE[0] <= abs(value) <= SNAP_RANGE[1]:
        return []
    bases = [(1.0, sympy.Integer(1)), (math.pi, sympy.pi)] + ([(math.pi**2, sympy.pi**2)] if pi_squared else [])
    bases += [(1 / math.pi, 1 / sympy.pi)] if pi_inverse else []
    for base, unit in bases:
        ratio = Fraction(value / base).limit_denominator(max_denominator)
        if ratio.numerator == 0 or (ratio.denominator > 1 and abs(ratio.numerator) > 24):
            continue
        candidate = sympy.Rational(ratio.numerator, ratio.denominator) * unit
        found[candidate] = abs(float(candidate) - value) / max(abs(value), 1e-12)
        whole = round(value / base)
        if whole != 0:
            found[sympy.Integer(whole) * unit] = abs(whole * base - value) / max(abs(value), 1e-12)
    return [c for c, _ in sorted(found.items(), key=lambda kv: kv[1])]


# --------------------------------------------------------------------------- Taylor regimes
TAYLOR_WIDTH = 0.3  # an argument within this of an expansion point: the function is its first Taylor term to ~1.5%
ODD_AT_ZERO = (sympy.tan, sympy.tanh, sympy.sinh, sympy.asin, sympy.atan, sympy.asinh, sympy.atanh)


def taylor_polynomial(node: sympy.Expr, argument: tuple[float, float]) -> sympy.Expr | None:
    """The first non-constant Taylor polynomial of the function ``node`` about the expansion
    point its argument's range ``(low, high)`` stays within ``TAYLOR_WIDTH`` of, or ``None``:
    sin and cos about multiples of π/2 (lines where they cross 0, parabolas at their extremes),
    tan about multiples of π, tanh, sinh, arcsin, arctan, arsinh, artanh about 0, cosh about 0, exp and log over a
    narrow range (lines about the midpoint)."""
    low, high = argument
    u = node.args[0] if node.args else None
    if u is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    if isinstance(node, (sympy.sin, sympy.cos)):
        quarter = round((low / 2 + high / 2) / (math.pi / 2))  # halves first: low + high of 1e+308 overflows
        centre = quarter * math.pi / 2
        if max(abs(low - centre), abs(high - centre)) > TAYLOR_WIDTH:
            return None
        phase = quarter % 4 if isinstance(node, sympy.sin) else (quarter + 1) % 4
        delta = u - sympy.Rational(quarter, 2) * sympy.pi
        # sin about kπ/2: phase 0 → δ, 1 → 1 − δ²/2, 2 → −δ, 3 → −(1 − δ²/2); cos is sin shifted by π/2
        return (delta, 1 - delta**2 / 2, -delta, -(1 - delta**2 / 2))[phase]
    if isinstance(node, sympy.tan):  # period π: about the multiple of π nearest the range
        turns = round((low / 2 + high / 2) / math.pi)
        centre = turns * math.pi
        return u - turns * sympy.pi if max(abs(low - centre), abs(high - centre)) <= TAYLOR_WIDTH else None
    if isinstance(node, ODD_AT_ZERO) and max(abs(low), abs(high)) <= TAYLOR_WIDTH:
        return u
    if isinstance(node, sympy.cosh) and max(abs(low), abs(high)) <= TAYLOR_WIDTH:
        return 1 + u**2 / 2
    middle = low / 2 + high / 2
    if isinstance(node, sympy.exp) and high - low <= TAYLOR_WIDTH:
        value = finite_value(math.exp, middle)  # exp(800) has no float64: the function stays
        return None if value is None else sympy.Float(value) * (1 + u - sympy.Float(middle))
    if isinstance(node, sympy.log) and low > 0 and high / low <= 1 + TAYLOR_WIDTH:
        return sympy.Float(math.log(middle)) + (u - sympy.Float(middle)) / sympy.Float(middle)
    if isinstance(node, sympy.Pow) and narrow_power(node, low, high):
        power = float(node.exp)
        value = finite_value(math.pow, middle, power)  # (1e+26)**12 has no float64: the power stays
        if value is None or value == 0:
            return None
        return sympy.Float(value) * (1 + sympy.Float(power) * (u - sympy.Float(middle)) / sympy.Float(middle))
    return None


def finite_value(function: Callable[..., float], *args: float) -> float | None:
    """``function(*args)`` (a float function such as ``math.exp`` or ``math.pow``) when it is a
    finite float64, else ``None``: an overflow, a domain error or a non-finite result."""
    try:
        value = float(function(*args))
    except (OverflowError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def narrow_power(node: sympy.Pow, low: float, high: float) -> bool:
    """Whether ``base**p`` (a number ``p`` other than 0 and 1) has a base ranging over
    ``(low, high)`` of one sign within a factor ``1 + TAYLOR_WIDTH``: there it is the line of its
    first Taylor term (``(1 − εx)²`` → ``1 − 2εx``); a fractional power needs a positive base."""
    exponent = node.exp
    if not exponent.is_Number or exponent in (0, 1) or low * high <= 0:
        return False
    if low < 0 and not exponent.is_integer:
        return False
    small, large = sorted((abs(low), abs(high)))
    return large / small <= 1 + TAYLOR_WIDTH


# --------------------------------------------------------------------------- clean-up
@dataclass
class CleanSettings:
    digits: int = 4
    tolerance: float = 5e-4
    snap_window: float = 0.1  # only numbers within this relative distance are tried as snaps
    pi_window: float | None = None  # the same for multiples of π (None: snap_window)
    pi_squared: bool = False  # also try (p/q)·π² (window: pi_window)
    pi_inverse: bool = False  # also try (p/q)/π, e.g. ħ = h/(2π) (window: pi_window)
    expand: bool = True  # normalise (expand products) before refitting; off keeps factored forms
    noise_ratio: float | None = None  # if set, the allowed R² loss is at most noise_ratio·(1 − R² − noise_share) + chance
    noise_share: float = 0.0  # share of the targets' variance that is noise (kanx.core.numerics.noise_share)
    max_parameters: int = 60
    max_terms: int = 80
    timeout: float = 10.0
    fold: bool = True  # fold constants (kanx.symbolic.canonical) before snapping and after rounding
    taylor: bool = True  # functions the data only see in their Taylor regime become that polynomial


def additive_terms(expr: sympy.Expr, parameters: set[sympy.Symbol]) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """Terms of the sums in ``expr`` that pruning may drop, as ``(node, replacement)`` pairs for
    ``xreplace``: each term holding a parameter (→ 0), and each plain number added beside a
    parameter (the sum → the sum without it). The numbers are the offsets that folding moves out
    of parameters, e.g. the ``1`` of ``c·(1 + d·x)`` folded from ``a·x + b``."""
    drops: list[tuple[sympy.Expr, sympy.Expr]] = []
    for node in sympy.preorder_traversal(expr):
        if not isinstance(node, sympy.Add):
            continue
        drops.extend((term, sympy.Integer(0)) for term in node.args if term.free_symbols & parameters)
        if node.free_symbols & parameters:
            drops.extend((node, sympy.Add(*(t for t in node.args if t is not term)))
                         for term in node.args if isinstance(term, sympy.Number))
    unique: list[tuple[sympy.Expr, sympy.Expr]] = []
    for drop in drops:
        if drop not in unique:
            unique.append(drop)
    return unique


PRUNE_PASSES = 4


class Cleaner:
    """Prunes, snaps and rounds one expression against a target ``y`` on inputs ``x``."""

    def __init__(self, variables: list[sympy.Symbol], x: torch.Tensor, y: torch.Tensor, settings: CleanSettings) -> None:
        self.variables = variables
        self.x, self.y = x.double(), y.double()
        self.settings = settings

    def fit(self, param: Parametrised, free: list[int] | None = None) -> tuple[Parametrised, float]:
        """Refit the free parameters of ``param``; returns the refitted copy and its R²."""
        try:
            evaluator = Evaluator(param, self.variables, self.x)
        except Exception:  # noqa: BLE001 - lambdify failure means the candidate is unusable
            return param, float("-inf")
        free = list(range(len(param.symbols))) if free is None else free
        try:
            with torch.no_grad():
                start = evaluator(param.values)
            values = refit(evaluator, param.values, self.y, free)
            with torch.no_grad():
                prediction = evaluator(values)
        except (RuntimeError, OverflowError, TypeError, ValueError):  # e.g. an integer beyond torch's range
            return param, float("-inf")
        score = r2_value(prediction, self.y)
        if r2_value(start, self.y) > score:
            values, score = param.values, r2_value(start, self.y)
        return Parametrised(param.expr, param.symbols, values), score

    def run(self, expr: sympy.Expr) -> tuple[sympy.Expr, dict]:
        """Cleaned expression and a log of what was done."""
        settings = self.settings
        log: dict = {"pruned_terms": 0, "snapped": 0}
        if isinstance(expr, sympy.Number) or expr.atoms(sympy.core.function.AppliedUndef):
            return round_floats(expr, settings.digits), log
        if not expr.free_symbols <= set(self.variables):  # written in named hidden nodes: nothing to refit on
            log["skipped"] = "the formula is written in hidden nodes"
            return round_floats(expr, settings.digits), log
        normal = run_with_timeout(normalise, (expr,), settings.timeout, expr) if settings.expand else expr
        param = parametrise(normal)
        if len(param.symbols) > settings.max_parameters:
            log["skipped"] = f"{len(param.symbols)} constants (more than {settings.max_parameters})"
            return round_floats(normal, settings.digits), log
        param, reference = self.fit(param)
        raw_param, raw_score = self.fit(parametrise(expr))
        if not reference > raw_score - settings.tolerance:  # normalising lost accuracy (overflow…)
            param, reference = raw_param, raw_score
        if not math.isfinite(reference):
            log["skipped"] = "the composed formula does not evaluate to finite values"
            return round_floats(expr, settings.digits), log
        if settings.fold:
            param, reference = self.folded(param, reference)
        log["r2_refit"] = reference
        allowed = settings.tolerance
        if settings.noise_ratio is not None:  # misfit at the targets' noise level is the data's, not the formula's
            noise = noise_bounded_by_fit(settings.noise_share, reference, len(self.y), len(param.symbols))
            own_error = misfit_beyond_noise(reference, noise, len(self.y))
            allowed = min(allowed, settings.noise_ratio * own_error + chance_loss(noise, len(self.y)) + 1e-12)
        floor = reference - allowed
        param = self.prune(param, floor, log)
        if settings.fold and log["pruned_terms"]:  # dropped offsets leave products of constants to fold into one
            param = self.folded(*self.fit(param))[0]
        if settings.taylor:
            param = self.taylor(param, floor, log)
        param = self.snap(param, floor, log)
        if settings.taylor:  # a snap can leave a function in its Taylor regime: tan(εx + π) is tan(εx)
            replaced = log.get("taylor", 0)
            param = self.taylor(param, floor, log)
            if log.get("taylor", 0) > replaced:
                param = self.snap(param, floor, log)
        if settings.fold:
            return fold_constants(round_floats(to_expr(param), settings.digits), settings.digits), log
        return round_floats(to_expr(param), settings.digits), log

    def taylor(self, param: Parametrised, floor: float, log: dict) -> Parametrised:
        """Replace each function that the data only see near an expansion point by its Taylor
        polynomial there (``sin(εx)`` → ``εx``, ``1 − cos(εx)`` → ``(εx)²/2``, ``exp`` of a narrow
        argument → a line, a power of a base that varies by less than ``TAYLOR_WIDTH`` → a line),
        refold and prune, and keep it while R² stays above ``floor``: where
        the data cannot tell them apart, the polynomial is the simpler law."""
        nodes = param.expr.atoms(sympy.Function) | {p for p in param.expr.atoms(sympy.Pow) if p.exp.is_Number}
        for node in sorted(nodes, key=lambda f: (-sympy.count_ops(f), sympy.default_sort_key(f))):
            if not param.expr.has(node):
                continue
            argument = self.argument_range(param, node)
            replacement = taylor_polynomial(node, argument) if argument is not None else None
            if replacement is None:
                continue
            replaced = to_expr(Parametrised(param.expr.xreplace({node: replacement}), param.symbols, param.values))
            passing = []
            # as written, and expanded: a polynomial piece can cancel against a term beside it
            for form in (replaced, run_with_timeout(sympy.expand, (replaced,), self.settings.timeout, replaced)):
                fitted, score = self.fit(parametrise(fold_constants(form)))
                if score >= floor:
                    pruned = self.prune(fitted, floor, log)
                    passing.append((sympy.count_ops(pruned.expr), len(passing), pruned))
            if passing:
                param = min(passing, key=lambda item: item[:2])[2]
                log["taylor"] = log.get("taylor", 0) + 1
        return param

    def argument_range(self, param: Parametrised, node: sympy.Expr) -> tuple[float, float] | None:
        """(min, max) of ``node``'s first argument over the samples, ``None`` if it does not
        evaluate or does not depend on the variables."""
        if not node.args or not (node.args[0].free_symbols & set(self.variables)):
            return None
        try:
            with torch.no_grad():
                values = Evaluator(Parametrised(node.args[0], param.symbols, param.values), self.variables, self.x)(param.values)
        except Exception:  # noqa: BLE001 - an argument that does not evaluate is left alone
            return None
        if not bool(torch.isfinite(values).all()):
            return None
        return float(values.min()), float(values.max())

    def folded(self, param: Parametrised, reference: float) -> tuple[Parametrised, float]:
        """``param`` with its constants folded (one per independent constant) and refitted,
        unless folding loses accuracy (it should not: it is exact algebra)."""
        fitted, score = self.fit(parametrise(fold_constants(to_expr(param))))
        return (fitted, score) if score >= reference - 1e-9 else (param, reference)

    def prune(self, param: Parametrised, floor: float, log: dict) -> Parametrised:
        """Drop additive terms (``additive_terms``), least important first, refitting after each,
        while R² stays at or above ``floor``; passes repeat while one drops something (a drop
        inside a sum rewrites the sum, so its own offset is looked at again)."""
        for _ in range(PRUNE_PASSES):
            before = log["pruned_terms"]
            param = self.prune_pass(param, floor, log)
            if log["pruned_terms"] == before:
                break
        return param

    def prune_pass(self, param: Parametrised, floor: float, log: dict) -> Parametrised:
        drops = additive_terms(param.expr, set(param.symbols))[: self.settings.max_terms]
        ranked = []
        for node, replacement in drops:
            trial = Parametrised(param.expr.xreplace({node: replacement}), param.symbols, param.values)
            try:
                with torch.no_grad():
                    loss = r2_value(Evaluator(trial, self.variables, self.x)(param.values), self.y)
            except Exception:  # noqa: BLE001
                continue
            ranked.append((-loss, node, replacement))
        for _, node, replacement in sorted(ranked, key=lambda item: item[0]):
            if not param.expr.has(node):
                continue
            trial = Parametrised(param.expr.xreplace({node: replacement}), param.symbols, param.values)
            fitted, score = self.fit(trial)
            if score >= floor:
                param = fitted
                log["pruned_terms"] += 1
        return param

    def snap(self, param: Parametrised, floor: float, log: dict) -> Parametrised:
        tried: set[int] = set()
        while True:
            used = param.expr.free_symbols
            options = []
            for k, symbol in enumerate(param.symbols):
                if k in tried or symbol not in used:
                    continue
                value = float(param.values[k])
                for candidate in nice_candidates(value, pi_squared=self.settings.pi_squared,
                                                 pi_inverse=self.settings.pi_inverse)[:2]:
                    distance = abs(float(candidate) - value) / max(abs(value), 1e-12)
                    window = self.settings.snap_window
                    if candidate.has(sympy.pi) and self.settings.pi_window is not None:
                        window = self.settings.pi_window
                    if distance <= window:
                        options.append((distance, k, candidate))
            if not options:
                return param
            options.sort(key=lambda item: item[0])
            k = options[0][1]
            tried.add(k)
            for _, index, candidate in [o for o in options if o[1] == k]:
                trial_expr = param.expr.xreplace({param.symbols[index]: candidate})
                trial = Parametrised(trial_expr, param.symbols, param.values)
                fitted, score = self.fit(trial)
                if score >= floor:
                    param = fitted
                    log["snapped"] += 1
                    break
