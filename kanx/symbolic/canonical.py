"""Canonical constants: one number where one belongs, and physical constants by name.

A fitted formula often carries constants that only matter together: ``2.29183·(5/96)·x``,
``0.0209·m·(75·v² + 23.87·π·u²)/π`` or ``q/(15.52 − 15.52·v/c)``. Each of these is one constant
(or none) in the law. :func:`fold_constants` rewrites a formula so that

* no product or quotient of numbers remains (``0.101321·π²`` → ``1.0``; a number that is not a
  simple exact one, such as ``1/10^26``, becomes a float);
* every sum is written relative to one of its terms, whose coefficient becomes 1, and the
  common factor moves out to the enclosing product (through integer powers, and through any
  power of a positive factor): ``c·(a·A + b·B)`` → ``(c·a)·(A + (b/a)·B)``. The term chosen
  is the one that makes the most other coefficients simple fractions, then a constant term
  that is not negligible, then the largest coefficient;
* floats that are an integer or a simple fraction to within ``EXACT`` become exact.

Folding is exact algebra (the formula's values do not change beyond rounding), so it can run
before snapping, which then sees one parameter per independent constant.

:func:`shortest_constants` writes a finished formula in whichever of two exact forms needs fewer
significant digits for its constants: the folded one, or the one with each product distributed
over its sums (``1.84·x₀·(1 − 0.788044·x₁)`` → ``1.84·x₀ − 1.45·x₀·x₁``), so a law fitted as a sum
of terms keeps the coefficients it was fitted with rather than their ratios.

:func:`match_physical_constants` replaces a float that equals a known physical constant (or its
square or inverse) to 4 significant digits by the constant's value and reports the match.
"""

from __future__ import annotations

import math
from fractions import Fraction

import sympy

EXACT = 2e-6  # relative distance within which a float is taken as the exact simple number
NEGLIGIBLE = 1e-3  # a sum's constant term this much smaller than its largest coefficient is no pivot
SIMPLE_DENOMINATOR = 12
SIMPLE_NUMERATOR = 1000

# CODATA 2018 values (exact where the SI defines them); name → (value, description)
PHYSICAL_CONSTANTS: dict[str, tuple[float, str]] = {
    "c": (299792458.0, "speed of light in vacuum, m/s"),
    "G": (6.67430e-11, "Newtonian constant of gravitation, m^3/(kg s^2)"),
    "h": (6.62607015e-34, "Planck constant, J s"),
    "hbar": (1.054571817e-34, "reduced Planck constant, J s"),
    "e": (1.602176634e-19, "elementary charge, C"),
    "k_B": (1.380649e-23, "Boltzmann constant, J/K"),
    "N_A": (6.02214076e23, "Avogadro constant, 1/mol"),
    "R": (8.314462618, "molar gas constant, J/(mol K)"),
    "epsilon_0": (8.8541878128e-12, "vacuum electric permittivity, F/m"),
    "mu_0": (1.25663706212e-6, "vacuum magnetic permeability, N/A^2"),
    "k_e": (8.9875517923e9, "Coulomb constant 1/(4 pi epsilon_0), N m^2/C^2"),
    "m_e": (9.1093837015e-31, "electron mass, kg"),
    "m_p": (1.67262192369e-27, "proton mass, kg"),
    "sigma_SB": (5.670374419e-8, "Stefan-Boltzmann constant, W/(m^2 K^4)"),
    "g_n": (9.80665, "standard acceleration of gravity, m/s^2"),
    "mu_B": (9.2740100783e-24, "Bohr magneton, J/T"),
    "a_0": (5.29177210903e-11, "Bohr radius, m"),
}
MATCH_DIGITS = 4


def _known_values() -> list[tuple[str, str, float]]:
    """Each constant, its square and the inverses of both, as ``(label, name, value)``."""
    values = []
    for name, (value, _) in PHYSICAL_CONSTANTS.items():
        values += [(name, name, value), (f"1/{name}", name, 1 / value), (f"{name}^2", name, value * value),
                   (f"1/{name}^2", name, 1 / (value * value))]
    return values


def simple_number(value: float) -> sympy.Rational | None:
    """The integer or fraction ``p/q`` (``q ≤ SIMPLE_DENOMINATOR``, ``|p| ≤ SIMPLE_NUMERATOR``)
    within ``EXACT`` of ``value``, if any."""
    if not math.isfinite(value) or value == 0:
        return None
    fraction = Fraction(value).limit_denominator(SIMPLE_DENOMINATOR)
    if fraction.numerator == 0 or abs(fraction.numerator) > SIMPLE_NUMERATOR:
        return None
    if abs(float(fraction) - value) <= EXACT * abs(value):
        return sympy.Rational(fraction.numerator, fraction.denominator)
    return None


def _is_simple_exact(number: sympy.Expr) -> bool:
    """Exact numbers worth keeping exact: integers below 10^6, fractions p/q with
    ``q ≤ SIMPLE_DENOMINATOR`` and ``|p| ≤ SIMPLE_NUMERATOR``, either times π^±1 or π^±2."""
    rational, rest = number.as_coeff_Mul()
    if rest != 1 and not (rest == sympy.pi or rest.is_Pow and rest.base == sympy.pi and rest.exp in (-2, -1, 2)):
        return False
    if not isinstance(rational, sympy.Rational):
        return False
    if rational.q == 1:
        return abs(rational.p) < 10**6
    return rational.q <= SIMPLE_DENOMINATOR and abs(rational.p) <= SIMPLE_NUMERATOR


def _number(value: sympy.Expr) -> sympy.Expr:
    """A number in canonical form: simple exact numbers stay, floats near one become it, the
    rest is a float."""
    if isinstance(value, sympy.Float) or not _is_simple_exact(value):
        as_float = float(value)
        if not math.isfinite(as_float) or (as_float == 0 and value != 0):  # beyond float64: 1e+400, or 1e-400 (not 0)
            return value
        exact = simple_number(as_float)
        return exact if exact is not None else sympy.Float(as_float)
    return value


def _split(expr: sympy.Expr, constant_pivot: bool = True) -> tuple[sympy.Expr, sympy.Expr]:
    """``expr`` = ``coefficient · rest`` with a numeric coefficient pulled out as far as exact
    algebra allows (see the module docstring); ``rest`` is itself canonical. ``constant_pivot``:
    a sum's constant term may be its unit (else only its other terms are)."""
    if expr.is_number:
        return _number(expr), sympy.Integer(1)
    if expr.is_Symbol:
        return sympy.Integer(1), expr
    if isinstance(expr, sympy.Mul):
        coefficient, rest = sympy.Integer(1), sympy.Integer(1)
        for factor in expr.args:
            c, r = _split(factor, constant_pivot)
            coefficient, rest = coefficient * c, rest * r
        return _number(coefficient), rest
    if isinstance(expr, sympy.Add):
        return _split_sum(expr, constant_pivot)
    if isinstance(expr, sympy.Pow) and expr.exp.is_number:
        c, base = _split(expr.base, constant_pivot)
        positive = bool(c.is_positive)
        if expr.exp.is_integer or positive:
            return _number(c**expr.exp), base**expr.exp
        return sympy.Integer(1), (c * base) ** expr.exp
    if isinstance(expr, sympy.Abs):
        c, inner = _split(expr.args[0], constant_pivot)
        return _number(abs(c)), sympy.Abs(inner)
    if expr.args:
        return sympy.Integer(1), expr.func(*[_joined(a, constant_pivot) for a in expr.args])
    return sympy.Integer(1), expr


def _joined(expr: sympy.Expr, constant_pivot: bool = True) -> sympy.Expr:
    coefficient, rest = _split(expr, constant_pivot)
    return coefficient * rest


def _split_sum(expr: sympy.Add, constant_pivot: bool = True) -> tuple[sympy.Expr, sympy.Expr]:
    """A sum as ``pivot coefficient · Σ (c_i / c_pivot) · r_i`` (the pivot not its constant term
    unless ``constant_pivot``, or the sum has no other term)."""
    parts = [_split(term, constant_pivot) for term in expr.args]
    values = [float(c) for c, _ in parts]
    if any(not math.isfinite(v) or v == 0 for v in values):
        return sympy.Integer(1), sympy.Add(*[c * r for c, r in parts])

    largest = max(abs(v) for v in values)

    def preference(p: int) -> tuple[int, int, float]:
        simple = sum(simple_number(v / values[p]) is not None for i, v in enumerate(values) if i != p)
        # a constant term that is not negligible, then the largest coefficient: a negligible
        # offset must stay a prunable coefficient, not become the sum's unit
        constant = int(parts[p][1] == 1 and abs(values[p]) >= NEGLIGIBLE * largest)
        if not constant_pivot:
            return int(parts[p][1] != 1), simple, abs(values[p])
        return simple, constant, abs(values[p])

    pivot = max(range(len(parts)), key=preference)
    scale = parts[pivot][0]
    terms = [(_number(c / scale) if i != pivot else sympy.Integer(1)) * r for i, (c, r) in enumerate(parts)]
    return scale, sympy.Add(*terms)


def fold_constants(expr: sympy.Expr, digits: int | None = None) -> sympy.Expr:
    """``expr`` with its constants folded (module docstring; unchanged when a number in it has no
    float value); floats rounded to ``digits`` significant digits when given."""
    if not isinstance(expr, sympy.Expr) or expr.atoms(sympy.core.function.AppliedUndef):
        return expr
    try:
        folded = _joined(expr)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):  # a number without a float value (zoo, nan)
        folded = expr
    return round_floats(folded, digits) if digits is not None else folded


def number_digits(number: sympy.Expr, digits: int) -> int:
    """The significant digits it takes to write ``number`` to ``digits`` digits: a float's
    mantissa without trailing zeros, a fraction's numerator, denominator and bar (or its decimal's
    digits where that is shorter), an integer's digits without trailing zeros (0 for ±1 and 0)."""
    if isinstance(number, sympy.Float):
        value = float(number)
        if value == 0 or not math.isfinite(value):
            return 0
        mantissa = f"{abs(value):.{digits - 1}e}".split("e")[0].replace(".", "").rstrip("0")
        return len(mantissa)
    if isinstance(number, sympy.Rational):
        numerator = str(abs(number.p)).rstrip("0") if abs(number.p) != 1 else ""
        denominator = str(number.q).rstrip("0") if number.q != 1 else ""
        as_fraction = len(numerator) + len(denominator) + (number.q != 1)  # the bar counts, so 1/11 is not "shorter" than 0.1
        if number.q != 1 and 10**digits % number.q == 0:  # a short decimal (159/20 = 7.95) counts as one
            return min(as_fraction, number_digits(sympy.Float(float(number)), digits))
        return as_fraction
    return 0


def constant_digits(expr: sympy.Expr, digits: int) -> int:
    """The significant digits of all of ``expr``'s constants at ``digits`` digits
    (:func:`number_digits`); rational exponents are structure, not constants, and do not count."""
    if expr.is_Number:
        return number_digits(expr, digits)
    if isinstance(expr, sympy.Pow) and expr.exp.is_Rational:
        return constant_digits(expr.base, digits)
    return sum(constant_digits(argument, digits) for argument in expr.args if isinstance(argument, sympy.Expr))


def distributed(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with its numerator and its denominator each multiplied out (products over sums),
    the quotient itself kept."""
    numerator, denominator = sympy.fraction(expr)
    return sympy.expand_mul(numerator) / sympy.expand_mul(denominator)


def absorbed_logs(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with each pair of terms ``a·g·log(h) + b·g`` of a sum (numbers ``a``, ``b``; the
    same factor ``g``) written ``a·g·log(e^{b/a}·h)``: exact wherever ``log(h)`` is real."""
    def absorb(node: sympy.Add) -> sympy.Expr:
        terms = list(node.args)
        for i, term in enumerate(terms):
            a, body = term.as_coeff_Mul()
            logs = [f for f in sympy.Mul.make_args(body) if isinstance(f, sympy.log)]
            if len(logs) != 1 or a == 0:
                continue
            rest = body / logs[0]
            for j, other in enumerate(terms):
                b, other_body = other.as_coeff_Mul()
                if j != i and other_body == rest and b != 0:
                    inside = sympy.Float(math.exp(float(b) / float(a)), 15) * logs[0].args[0]
                    kept = [t for k, t in enumerate(terms) if k not in (i, j)]
                    return sympy.Add(*kept, a * rest * sympy.log(inside))
        return node

    return expr.replace(lambda node: isinstance(node, sympy.Add), absorb)


def shortest_constants(expr: sympy.Expr, digits: int) -> sympy.Expr:
    """``expr`` folded (:func:`fold_constants`) and rounded to ``digits``, or in another exact
    form whose constants take fewer significant digits to write: multiplied out
    (:func:`distributed`), with offsets taken into logarithms (:func:`absorbed_logs`), or both,
    or with sums written relative to a term that is not their constant (``x²/(x² + 449.44)``
    rather than ``0.00222·x²/(1 + 0.00222·x²)``), multiplied out or not.
    The other forms' constants are products of rounded ones, good to one digit less, so both
    forms are counted, and another form written, at ``digits − 1``."""
    folded = fold_constants(expr)
    shortest = round_floats(folded, digits)
    if not isinstance(folded, sympy.Expr) or folded.atoms(sympy.core.function.AppliedUndef) or digits < 2:
        return shortest
    least = constant_digits(round_floats(folded, digits - 1), digits - 1)
    def made(rewrite, *args) -> sympy.Expr | None:
        try:
            return rewrite(*args) if all(a is not None for a in args) else None
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):  # a number without a float value
            return None

    spread = made(lambda e: _joined(distributed(e)), folded)
    unit_terms = made(_joined, folded, False)
    forms = [spread, made(absorbed_logs, folded), made(absorbed_logs, spread), unit_terms,
             made(lambda e: _joined(distributed(e), False), unit_terms)]
    for form in forms:
        if form is None:
            continue
        other = round_floats(form, digits - 1)
        if (length := constant_digits(other, digits - 1)) < least:
            shortest, least = other, length
    return shortest


def match_physical_constants(expr: sympy.Expr) -> tuple[sympy.Expr, list[dict]]:
    """Floats of ``expr`` equal to a physical constant, its square or an inverse to
    ``MATCH_DIGITS`` significant digits, replaced by that value; returns the new formula and one
    record per match (``value``, ``constant``, ``exact``, ``description``)."""
    known = _known_values()
    mapping, matches = {}, []
    for number in expr.atoms(sympy.Float):
        value = abs(float(number))
        if value == 0 or not math.isfinite(value):
            continue
        text = f"{value:.{MATCH_DIGITS - 1}e}"
        for label, name, exact in known:
            if f"{exact:.{MATCH_DIGITS - 1}e}" == text:
                signed = math.copysign(exact, float(number))
                mapping[number] = sympy.Float(signed, 15)
                matches.append({"value": float(number), "constant": label, "exact": signed,
                                "description": PHYSICAL_CONSTANTS[name][1]})
                break
    return expr.xreplace(mapping), matches


def round_floats(expr: sympy.Expr, digits: int) -> sympy.Expr:
    """Round every floating constant to ``digits`` significant digits (near-integers become
    integers)."""
    mapping = {}
    for number in expr.atoms(sympy.Float):
        value = float(number)
        if not math.isfinite(value):
            continue
        rounded = float(f"{value:.{digits}g}")
        if rounded == 0:
            mapping[number] = sympy.Integer(0)
        elif rounded == int(rounded) and abs(rounded) < 1e6:
            mapping[number] = sympy.Integer(int(rounded))
        else:
            mapping[number] = sympy.Float(rounded, digits)
    return expr.xreplace(mapping)


def positive_forms(expr: sympy.Expr, positive: set[sympy.Symbol]) -> sympy.Expr:
    """The form of ``expr`` that the data's signs allow, for ``positive`` symbols (every
    sample > 0): radicals of positive factors merged (``√a·√b/√c`` → ``√(a·b/c)``) and logarithms
    of positive arguments combined (``log a − log b`` → ``log(a/b)``). Both are identities only
    where the factors are positive, so other symbols are left alone."""
    if not positive or not isinstance(expr, sympy.Expr):
        return expr
    merged = expr.replace(lambda node: isinstance(node, sympy.Mul), lambda node: _merge_radicals(node, positive))
    return merged.replace(lambda node: isinstance(node, sympy.Add), lambda node: _merge_logs(node, positive))


def _merge_logs(node: sympy.Add, positive: set[sympy.Symbol]) -> sympy.Expr:
    """Within one sum: the terms ``±log(a_i)`` (integer coefficients, positive ``a_i``) become
    one ``log(Π a_i^±1)``."""
    logs, rest = [], []
    for term in node.args:
        coefficient, body = term.as_coeff_Mul()
        if (isinstance(body, sympy.log) and isinstance(coefficient, sympy.Integer)
                and _is_positive_factor(body.args[0], positive)):
            logs.append(body.args[0] ** coefficient)
        else:
            rest.append(term)
    if len(logs) < 2:
        return node
    return sympy.Add(*rest, sympy.log(sympy.Mul(*logs)))


def _is_positive_factor(base: sympy.Expr, positive: set[sympy.Symbol]) -> bool:
    """A product of powers of ``positive`` symbols (and positive numbers)."""
    if base.is_number:
        return bool(base.is_positive)
    if base.is_Symbol:
        return base in positive
    if isinstance(base, sympy.Pow):
        return base.exp.is_number and _is_positive_factor(base.base, positive)
    if isinstance(base, sympy.Mul):
        return all(_is_positive_factor(a, positive) for a in base.args)
    return False


def _merge_radicals(node: sympy.Mul, positive: set[sympy.Symbol]) -> sympy.Expr:
    """Within one product: the powers ``b_i^(p_i/q)`` of positive factors that share a root
    ``q > 1`` become one root ``(Π b_i^p_i)^(1/q)``."""
    groups: dict[int, list[tuple[sympy.Expr, int]]] = {}
    rest = []
    for factor in node.args:
        if (isinstance(factor, sympy.Pow) and isinstance(factor.exp, sympy.Rational) and factor.exp.q > 1
                and _is_positive_factor(factor.base, positive) and not factor.base.is_number):
            groups.setdefault(factor.exp.q, []).append((factor.base, factor.exp.p))
        else:
            rest.append(factor)
    if not any(len(members) > 1 for members in groups.values()):
        return node
    for root, members in groups.items():
        if len(members) == 1:
            base, power = members[0]
            rest.append(base ** sympy.Rational(power, root))
            continue
        inside = sympy.Mul(*[base**power for base, power in members])
        rest.append(sympy.Pow(inside, sympy.Rational(1, root), evaluate=False))
    return sympy.Mul(*rest)


# --------------------------------------------------------------------------- numbers float64 can hold
def beyond_float64(number: sympy.Expr) -> bool:
    """Whether the sympy number ``number`` has no float64 value: it overflows to infinity or a
    non-zero number underflows to 0 (sympy's floats have an unbounded exponent)."""
    try:
        value = float(number)
    except (TypeError, ValueError, OverflowError):
        return True
    return not math.isfinite(value) or (value == 0 and number != 0)


def representable(expr: sympy.Expr) -> tuple[sympy.Expr, list[sympy.Float]]:
    """``expr`` with its numbers brought into float64's range where exact algebra allows, and the
    numbers still beyond it (none, almost always).

    sympy pulls a float out of an ``exp``: ``exp(u + 55026.7)`` becomes ``1.2e+23897·exp(u)``, a
    number no float64 (and so no printed formula a reader, or ``kanx.functions.parser``, can use)
    holds, while ``u`` is near −55026 on the data and the product is moderate. A factor ``c``
    beyond float64 beside an ``exp`` goes back into its exponent as the integer ``n`` nearest
    ``log|c|``: ``c·exp(u)`` → ``±(c/eⁿ)·exp(u + n)``. sympy leaves an integer inside ``exp`` (it
    only pulls out floats), so the form survives every later rebuild of the expression."""
    if not any(beyond_float64(f) for f in expr.atoms(sympy.Float)):
        return expr, []

    def absorbs(node: sympy.Basic) -> bool:
        return (isinstance(node, sympy.Mul) and any(isinstance(a, sympy.exp) for a in node.args)
                and any(isinstance(a, sympy.Float) and beyond_float64(a) for a in node.args))

    def absorb(node: sympy.Mul) -> sympy.Expr:
        huge = [a for a in node.args if isinstance(a, sympy.Float) and beyond_float64(a)]
        power = next(a for a in node.args if isinstance(a, sympy.exp))
        rest = [a for a in node.args if a is not power and not any(a is h for h in huge)]
        coefficient = sympy.Mul(*huge)
        shift = sympy.Integer(int(sympy.floor(sympy.log(abs(coefficient)) + sympy.Rational(1, 2))))
        remainder = sympy.Float((coefficient * sympy.exp(-shift)).evalf(30), 15)
        return sympy.Mul(remainder, *rest, sympy.exp(power.args[0] + shift))

    fixed = expr.replace(absorbs, absorb)
    return fixed, sorted((f for f in fixed.atoms(sympy.Float) if beyond_float64(f)), key=sympy.default_sort_key)
