"""Turning sympy expressions into numeric functions: the one place kanx calls ``sympy.lambdify``.

``torch_function`` evaluates with torch (what the model, the fitter and the fidelity checks use),
``numpy_function`` with numpy (formula datasets, the benchmarks), ``mpmath_function`` in arbitrary
precision (formulas whose intermediate constants overflow float64). Expressions only: text never
reaches these functions (it is parsed by ``kanx.functions.parser`` first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy
import torch

TorchFn = Callable[[torch.Tensor], torch.Tensor]


def _accepting_numbers(function: TorchFn) -> TorchFn:
    """Wrap a torch function so that a plain number (a constant sub-expression such as
    ``log(2)`` in lambdified code) is evaluated too."""

    def wrapped(value):
        if not isinstance(value, torch.Tensor):
            value = torch.tensor(float(value), dtype=torch.float64)
        return function(value)

    return wrapped


# Names sympy's printer emits, mapped to torch.
TORCH_NAMESPACE: dict[str, object] = {
    name: _accepting_numbers(function)
    for name, function in {
        "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp, "log": torch.log,
        "sqrt": torch.sqrt, "tanh": torch.tanh, "sinh": torch.sinh, "cosh": torch.cosh,
        "atan": torch.arctan, "asin": torch.arcsin, "acos": torch.arccos, "atanh": torch.arctanh,
        "Abs": torch.abs, "sign": torch.sign, "asinh": torch.arcsinh, "acosh": torch.arccosh,
        "cot": lambda u: 1 / torch.tan(u), "sec": lambda u: 1 / torch.cos(u), "csc": lambda u: 1 / torch.sin(u),
    }.items()
}
TORCH_NAMESPACE.update({"pi": torch.pi, "E": torch.e})


def torch_function(symbols: Sequence[sympy.Symbol] | sympy.Symbol, expr: sympy.Expr, extra: dict | None = None) -> Callable:
    """``expr`` as a function of ``symbols`` on torch tensors (``extra``: more names, e.g.
    numeric stand-ins for undefined functions). The result may be a plain number for a
    constant expression."""
    modules = [extra, TORCH_NAMESPACE, "math"] if extra else [TORCH_NAMESPACE, "math"]
    return sympy.lambdify(symbols, expr, modules=modules)


def formula_on_rows(expr: sympy.Expr, symbols: Sequence[sympy.Symbol], columns: Sequence[torch.Tensor], rows: int,
                    extra: dict | None = None) -> torch.Tensor:
    """The one evaluation of a formula on rows: ``expr`` over ``symbols`` with ``columns[k]`` the
    values ``[rows]`` of ``symbols[k]`` (computed in their dtype and device; a column's memory
    layout can change the last bits of vectorised functions, so callers pass the columns they
    mean) → ``[rows]`` float64; a constant formula gives a constant column. ``extra`` as in
    :func:`torch_function`. Whatever the formula raises (an undefined name, a domain error)
    propagates, and non-finite values are returned as they are: each caller decides what an
    unevaluable formula means for it."""
    function = torch_function(symbols, expr, extra)
    with torch.no_grad():
        out = function(*columns)
    device = columns[0].device if columns else torch.device("cpu")
    out = torch.as_tensor(out, dtype=torch.float64, device=device) if not isinstance(out, torch.Tensor) else out
    return (out.expand(rows) if out.dim() == 0 else out).double()


def numpy_function(symbols: Sequence[sympy.Symbol], expr: sympy.Expr) -> Callable:
    """``expr`` as a function of ``symbols`` on numpy arrays."""
    return sympy.lambdify(symbols, expr, modules="numpy")


def mpmath_function(symbols: Sequence[sympy.Symbol], expr: sympy.Expr) -> Callable:
    """``expr`` as a function of ``symbols`` in mpmath's arbitrary precision (scalars)."""
    return sympy.lambdify(symbols, expr, modules="mpmath")


def math_function(symbols: Sequence[sympy.Symbol], expr: sympy.Expr) -> Callable:
    """``expr`` as a function of ``symbols`` on Python floats (the ``math`` module)."""
    return sympy.lambdify(symbols, expr, modules="math")
