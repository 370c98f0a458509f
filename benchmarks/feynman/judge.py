"""The SRBench ground-truth criterion for a recovered formula (La Cava et al. 2021).

Constants of the model are rounded (|c| < 1e-4 → 0, others to 3 decimals); the model is a
*symbolic solution* when ``simplify(true − model)`` is a constant, or ``simplify(model / true)``
is a non-zero constant. An *accuracy solution* has R² > 0.999 on held-out samples.
"""

from __future__ import annotations

import sympy


def round_constants(expr: sympy.Expr) -> sympy.Expr:
    """SRBench rounding: floats below 1e-4 in magnitude become 0, the rest 3 decimals."""
    mapping = {}
    for number in expr.atoms(sympy.Float):
        value = float(number)
        mapping[number] = sympy.Integer(0) if abs(value) < 1e-4 else sympy.Float(round(value, 3))
    return expr.xreplace(mapping)


def _is_constant(expr: sympy.Expr) -> bool:
    return not expr.free_symbols and expr.is_finite is not False


def is_symbolic_solution(true: sympy.Expr, model: sympy.Expr) -> bool:
    """SRBench's rule, after rounding the model's constants."""
    model = round_constants(model)
    if model.free_symbols - true.free_symbols:
        return False
    difference = sympy.simplify(true - model)
    if _is_constant(difference):
        return True
    if model == 0:
        return False
    ratio = sympy.simplify(model / true)
    return _is_constant(ratio) and ratio != 0
