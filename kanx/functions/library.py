"""The library of candidate 1-D functions for symbolic edges.

Each entry carries a torch implementation (vectorised, used by the model's symbolic edges and
by the batched fitter), a sympy counterpart (used for composition), a complexity weight (used
for choosing between fits) and a safe domain (where the torch function is finite, so no
NaN/Inf leaks into a score).

An edge in symbolic form computes ``c * f(a * x + b) + d``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy
import torch

from kanx.core.errors import KanxError
from kanx.core.lambdify import torch_function
from kanx.functions.parser import parse_expression

TorchFn = Callable[[torch.Tensor], torch.Tensor]
SympyFn = Callable[[sympy.Expr], sympy.Expr]
DomainFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LibraryFunction:
    """One candidate function ``f``.

    ``domain(u)`` returns a boolean mask of arguments ``u`` where ``torch_fn`` is finite and
    well-conditioned (NaN arguments compare False; callers still check the values);
    ``expression`` is the sympy source for user-added functions.
    """

    name: str
    torch_fn: TorchFn
    sympy_fn: SympyFn
    complexity: float
    domain: DomainFn
    expression: str | None = None


def _everywhere(u: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(u)


def unrestricted(function: LibraryFunction) -> bool:
    """True when ``function`` is defined on every finite argument (no domain mask needed)."""
    return function.domain is _everywhere


def _away_from_zero(u: torch.Tensor) -> torch.Tensor:
    return u.abs() > 1e-3


def _positive(u: torch.Tensor) -> torch.Tensor:
    return u > 1e-6


def _non_negative(u: torch.Tensor) -> torch.Tensor:
    return u >= 0


def _open_unit(u: torch.Tensor) -> torch.Tensor:
    return u.abs() < 1 - 1e-6


def _closed_unit(u: torch.Tensor) -> torch.Tensor:
    return u.abs() <= 1


def _tan_domain(u: torch.Tensor) -> torch.Tensor:
    # keep clear of the poles at pi/2 + n*pi
    return torch.cos(u).abs() > 1e-2


def _exp_domain(u: torch.Tensor) -> torch.Tensor:
    return u < 80


def _x(u):
    return u


_BUILTIN: list[LibraryFunction] = [
    LibraryFunction("0", lambda u: torch.zeros_like(u), lambda s: sympy.Integer(0), 0, _everywhere),
    LibraryFunction("x", _x, lambda s: s, 1, _everywhere),
    LibraryFunction("x^2", lambda u: u**2, lambda s: s**2, 1.5, _everywhere),
    LibraryFunction("x^3", lambda u: u**3, lambda s: s**3, 2.5, _everywhere),
    LibraryFunction("x^4", lambda u: u**4, lambda s: s**4, 3, _everywhere),
    LibraryFunction("1/x", lambda u: 1 / u, lambda s: 1 / s, 2, _away_from_zero),
    LibraryFunction("1/x^2", lambda u: 1 / u**2, lambda s: 1 / s**2, 2, _away_from_zero),
    LibraryFunction("sqrt", torch.sqrt, sympy.sqrt, 2, _non_negative),
    LibraryFunction("1/sqrt", torch.rsqrt, lambda s: 1 / sympy.sqrt(s), 2, _positive),
    LibraryFunction("exp", torch.exp, sympy.exp, 2, _exp_domain),
    LibraryFunction("log", torch.log, sympy.log, 2, _positive),
    LibraryFunction("sin", torch.sin, sympy.sin, 2, _everywhere),
    LibraryFunction("cos", torch.cos, sympy.cos, 2, _everywhere),
    LibraryFunction("tan", torch.tan, sympy.tan, 3, _tan_domain),
    LibraryFunction("tanh", torch.tanh, sympy.tanh, 3, _everywhere),
    LibraryFunction("arctan", torch.arctan, sympy.atan, 4, _everywhere),
    LibraryFunction("arcsin", torch.arcsin, sympy.asin, 4, _closed_unit),
    LibraryFunction("arctanh", torch.arctanh, sympy.atanh, 4, _open_unit),
    LibraryFunction("abs", torch.abs, sympy.Abs, 3, _everywhere),
    LibraryFunction("gaussian", lambda u: torch.exp(-(u**2)), lambda s: sympy.exp(-(s**2)), 3, _everywhere),
]

_ALIASES = {
    "x^1": "x", "x**2": "x^2", "x**3": "x^3", "x**4": "x^4", "x2": "x^2", "x3": "x^3", "x4": "x^4",
    "1/x**2": "1/x^2", "x^0.5": "sqrt", "1/sqrt(x)": "1/sqrt", "sqrt(x)": "sqrt", "atan": "arctan",
    "asin": "arcsin", "atanh": "arctanh", "gauss": "gaussian", "zero": "0",
    "1/x^0.5": "1/sqrt",  # pykan's SYMBOLIC_LIB spelling
}

BUILTIN_FUNCTIONS: dict[str, LibraryFunction] = {f.name: f for f in _BUILTIN}

def canonical_name(name: str) -> str:
    """Map user spellings (``x**2``, ``atan``…) to library names."""
    stripped = name.strip()
    return _ALIASES.get(stripped, stripped)


def custom_function(name: str, source: str, complexity: float | None = None, where: str = "--lib-add") -> LibraryFunction:
    """A user-supplied function of ``x`` given as formula text, e.g. ``"x*exp(-x)"``.

    The text goes through the safe parser (:func:`kanx.functions.parser.parse_expression`); ``where``
    names its origin (the option, or the checkpoint and its config key) in errors.
    """
    x = sympy.Symbol("x")
    expr = parse_expression(source, {"x": x}, where)
    lambdified = torch_function(x, expr)

    def torch_fn(u: torch.Tensor) -> torch.Tensor:
        out = lambdified(u)
        return out if isinstance(out, torch.Tensor) else torch.full_like(u, float(out))

    def sympy_fn(s: sympy.Expr) -> sympy.Expr:
        return expr.subs(x, s)

    weight = complexity if complexity is not None else float(sympy.count_ops(expr) + 1)
    return LibraryFunction(name, torch_fn, sympy_fn, weight, _everywhere, expression=str(expr))


def resolve(name: str, custom: dict[str, str] | None = None, where: str = "custom_functions") -> LibraryFunction:
    """Look a function up by name among the builtins and ``custom`` (name → formula text in
    ``x``, parsed safely; ``where`` names the text's origin in errors)."""
    key = canonical_name(name)
    if key in BUILTIN_FUNCTIONS:
        return BUILTIN_FUNCTIONS[key]
    if custom and key in custom:
        return custom_function(key, custom[key], where=f"{where}[{key!r}]")
    known = ", ".join(BUILTIN_FUNCTIONS)
    raise KanxError(f"unknown symbolic function {name!r} (known: {known})")


def parse_lib(spec: str | None) -> list[str]:
    """``--lib "x,x^2,sin"`` → canonical builtin names (all builtins when ``spec`` is empty)."""
    if not spec or not spec.strip():
        return list(BUILTIN_FUNCTIONS)
    names: list[str] = []
    for part in spec.split(","):
        key = canonical_name(part)
        if not key:
            continue
        if key not in BUILTIN_FUNCTIONS:
            known = ", ".join(BUILTIN_FUNCTIONS)
            raise KanxError(f"--lib: unknown function {part.strip()!r} (known: {known})")
        if key not in names:
            names.append(key)
    if not names:
        raise KanxError(f"--lib {spec!r}: names no function")
    return names


def build_library(
    lib: str | list[str] | None = None, lib_add: list[str] | tuple[str, ...] = ()
) -> tuple[list[LibraryFunction], dict[str, str]]:
    """The candidate functions for a fit: builtins selected by ``lib`` (comma text or list of
    names) plus user functions ``lib_add`` (sympy text in ``x``).

    Returns ``(functions, custom)`` where ``custom`` maps each added function's name to its
    sympy text (what a model stores in ``custom_functions``). ``"0"`` is always included, so
    that negligible edges have a candidate.
    """
    names = parse_lib(",".join(lib) if isinstance(lib, list) else lib)
    if "0" not in names:
        names.insert(0, "0")
    functions = [BUILTIN_FUNCTIONS[n] for n in names]
    custom: dict[str, str] = {}
    for source in lib_add:
        text = source.strip()
        if not text:
            raise KanxError("--lib-add: empty function text")
        function = custom_function(text.replace("^", "**"), text.replace("^", "**"))
        if function.name in BUILTIN_FUNCTIONS or function.name in custom:
            continue
        custom[function.name] = function.expression or text
        functions.append(function)
    return functions, custom
