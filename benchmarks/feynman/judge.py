"""The SRBench ground-truth criterion for a recovered formula (La Cava et al. 2021).

Constants of the model are rounded (|c| < 1e-4 → 0, others to 3 decimals; for SRSD, whose
physical constants such as 4.427e-12 that rule would erase, to 3 significant digits); the model
is a *symbolic solution* when ``simplify(true − model)`` is a constant (for SRSD both sides'
floats rounded), or
``simplify(model / true)`` is a non-zero constant. Exact numbers (integers, rationals, π) are not
rounded. An *accuracy solution* has R² > 0.999 on held-out samples.

:func:`same_expanded_law` is a second, stricter-in-form reading used only to describe results
(``rejudge.py``), never for the rates: whether the model is the true law written with other
constants, which the rounding of the rule above can hide.
"""

from __future__ import annotations

import sympy


def round_constants(expr: sympy.Expr, rounding: str = "decimals") -> sympy.Expr:
    """SRBench rounding (``decimals``): floats below 1e-4 in magnitude become 0, the rest 3
    decimals; ``significant``: every float and every fraction that is not an integer to 3
    significant digits (on both sides, so an exact ``x/3`` meets a written ``0.333333·x``)."""
    mapping = {}
    if rounding == "significant":  # exact fractions too: 8/3 and 2.66666666666667 both become 2.67
        numbers = expr.atoms(sympy.Float) | {q for q in expr.atoms(sympy.Rational) if not q.is_Integer}
        for number in numbers:
            value = float(number)
            mapping[number] = sympy.Float(float(f"{value:.3g}")) if value != 0 else sympy.Integer(0)
        return expr.xreplace(mapping)
    for number in expr.atoms(sympy.Float):
        value = float(number)
        mapping[number] = sympy.Integer(0) if abs(value) < 1e-4 else sympy.Float(round(value, 3))
    return expr.xreplace(mapping)


def _is_constant(expr: sympy.Expr) -> bool:
    return not expr.free_symbols and expr.is_finite is not False


def is_symbolic_solution(true: sympy.Expr, model: sympy.Expr, rounding: str = "decimals") -> bool:
    """SRBench's rule, after rounding the model's constants (``rounding``: see :func:`round_constants`).

    With ``significant`` rounding the true formula's floats are rounded the same way: SRSD writes
    its physical constants to 15 digits (``1.11265005605362e-17`` for 1/c²), and a model's
    constant rounded to 3 digits could never equal such a float inside a sum."""
    model = round_constants(model, rounding)
    if rounding == "significant":
        true = round_constants(true, rounding)
    if model.free_symbols - true.free_symbols:
        return False
    difference = sympy.simplify(true - model)
    if _is_constant(difference):
        return True
    if model == 0:
        return False
    ratio = sympy.simplify(model / true)
    return _is_constant(ratio) and ratio != 0


def expanded_terms(expr: sympy.Expr) -> dict[sympy.Expr, float]:
    """``expr`` expanded (products, powers and logarithms of products split) into
    ``{term without its numeric factor: summed factor}``, with the floats left inside a term
    rounded to 3 significant digits."""
    expanded = sympy.expand(sympy.expand_log(sympy.expand(expr), force=True))
    terms: dict[sympy.Expr, float] = {}
    for part in sympy.Add.make_args(expanded):
        factor, rest = part.as_coeff_Mul()
        key = round_constants(rest, "significant")
        terms[key] = terms.get(key, 0.0) + float(factor)
    return terms


def same_expanded_law(true: sympy.Expr, model: sympy.Expr, rel: float = 1e-3) -> bool:
    """Whether ``model`` expands to the terms of ``true`` with every numeric factor within
    ``rel`` of the true one (terms whose factor is below ``rel`` of the largest are ignored on
    both sides): the same law in another parameterisation (``−0.0106·x·(x − 74.3)`` for
    ``0.79·x·(1 − x/74.3)``), which SRBench's rounding before ``simplify`` can reject."""
    if model.free_symbols - true.free_symbols:
        return False
    wanted, found = expanded_terms(true), expanded_terms(model)
    scale = max([abs(c) for c in [*wanted.values(), *found.values()]] + [0.0])
    wanted = {k: c for k, c in wanted.items() if abs(c) > rel * scale}
    found = {k: c for k, c in found.items() if abs(c) > rel * scale}
    if set(wanted) != set(found) or not wanted:
        return False
    return all(abs(found[k] - c) <= rel * abs(c) for k, c in wanted.items())
