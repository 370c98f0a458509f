"""The SRBench ground-truth criterion for a recovered formula (La Cava et al. 2021).

Constants of the model are rounded (|c| < 1e-4 → 0, others to 3 decimals; for SRSD, whose
physical constants such as 4.427e-12 that rule would erase, to 3 significant digits); the model
is a *symbolic solution* when ``simplify(true − model)`` is a constant (for SRSD both sides'
floats rounded), or
``simplify(model / true)`` is a non-zero constant. Exact numbers (integers, rationals, π) are not
rounded. An *accuracy solution* has R² > 0.999 on held-out samples.
"""

from __future__ import annotations

import sympy


def round_constants(expr: sympy.Expr, rounding: str = "decimals") -> sympy.Expr:
    """SRBench rounding (``decimals``): floats below 1e-4 in magnitude become 0, the rest 3
    decimals; ``significant``: every float to 3 significant digits."""
    mapping = {}
    for number in expr.atoms(sympy.Float):
        value = float(number)
        if rounding == "significant":
            mapping[number] = sympy.Float(float(f"{value:.3g}")) if value != 0 else sympy.Integer(0)
        else:
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
