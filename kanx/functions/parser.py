"""The one way text becomes a sympy expression in kanx: parsed, never evaluated.

Every formula that reaches kanx as text (a checkpoint's custom functions, ``--lib-add``,
``--formula``, ``--var`` bounds, the output of the Operon and PySR engines, equation files) is
read by :func:`parse_expression`. It parses the text with Python's ``ast`` module (which builds a
syntax tree and runs nothing), walks that tree against an allowlist and builds the sympy objects
directly:

* numbers (integer and decimal literals; ``True``/``False``, strings, complex literals refused),
* the variables the caller declares, and the constants ``pi`` and ``E`` (a declared variable of
  the same name wins, so an equation may call a variable ``E``),
* ``+ - * / **`` and unary ``-``/``+``; ``^`` is read as a power, as in written mathematics,
* calls, by plain name and with positional arguments only, of the functions in
  :data:`FUNCTIONS` (elementary functions, their inverses, ``Abs``, ``sqrt``, ...).

Anything else (attributes, subscripts, keywords, lambdas, comprehensions, comparisons, names that
are neither declared nor known) is a :class:`~kanx.core.errors.KanxError` naming where the text came
from, the text, and what is not allowed. Limits on the text's length, the syntax tree's size and
depth, and the size of numeric powers keep a hostile formula from hanging the process or
exhausting its memory.

``sympify``, ``parse_expr`` and ``eval`` are not used anywhere in kanx; the test suite scans the
package source to keep it so.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import sympy

from kanx.core.errors import KanxError


@dataclass(frozen=True)
class ParseLimits:
    """Bounds a formula must stay within.

    ``max_length``: characters of text; ``max_nodes``: nodes of the syntax tree; ``max_depth``:
    nesting depth of the tree; ``max_exponent``: the largest |exponent| of a power whose exponent
    is a number; ``max_digits``: the largest number of decimal digits a power of two numbers may
    produce (``10**400`` has 401).
    """

    max_length: int = 4000
    max_nodes: int = 2000
    max_depth: int = 60
    max_exponent: float = 100.0
    max_digits: int = 400


DEFAULT_LIMITS = ParseLimits()

SympyBuilder = Callable[..., sympy.Expr]


def _square(arg: sympy.Expr) -> sympy.Expr:
    return arg**2


def _cube(arg: sympy.Expr) -> sympy.Expr:
    return arg**3


# name → (sympy constructor, number of arguments)
FUNCTIONS: dict[str, tuple[SympyBuilder, int]] = {
    "sin": (sympy.sin, 1), "cos": (sympy.cos, 1), "tan": (sympy.tan, 1), "cot": (sympy.cot, 1),
    "sec": (sympy.sec, 1), "csc": (sympy.csc, 1),
    "asin": (sympy.asin, 1), "acos": (sympy.acos, 1), "atan": (sympy.atan, 1),
    "arcsin": (sympy.asin, 1), "arccos": (sympy.acos, 1), "arctan": (sympy.atan, 1),
    "sinh": (sympy.sinh, 1), "cosh": (sympy.cosh, 1), "tanh": (sympy.tanh, 1),
    "asinh": (sympy.asinh, 1), "acosh": (sympy.acosh, 1), "atanh": (sympy.atanh, 1),
    "arcsinh": (sympy.asinh, 1), "arccosh": (sympy.acosh, 1), "arctanh": (sympy.atanh, 1),
    "exp": (sympy.exp, 1), "log": (sympy.log, 1), "ln": (sympy.log, 1), "sqrt": (sympy.sqrt, 1),
    "Abs": (sympy.Abs, 1), "abs": (sympy.Abs, 1),
    "square": (_square, 1), "cube": (_cube, 1),
}

CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_PREVIEW = 80


class _Refused(Exception):
    """Internal: the reason a formula is refused (turned into a KanxError by the caller)."""


def parse_expression(
    text: str,
    variables: Iterable[str] | Mapping[str, sympy.Symbol],
    where: str,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> sympy.Expr:
    """Parse ``text`` into a sympy expression in the declared ``variables``.

    ``variables``: names (each becomes ``sympy.Symbol(name)``) or a name → symbol mapping.
    ``where`` names the file or option the text came from; it starts every error message.
    Raises ``KanxError`` for anything outside the allowlist or the ``limits``.
    """
    if not isinstance(text, str):
        raise KanxError(f"{where}: expected formula text, got {type(text).__name__}")
    symbols = dict(variables) if isinstance(variables, Mapping) else {name: sympy.Symbol(name) for name in variables}
    try:
        return _parse(text, symbols, limits)
    except _Refused as reason:
        raise KanxError(f"{where}: {_preview(text)}: {reason}") from None


def _preview(text: str) -> str:
    shown = text if len(text) <= _PREVIEW else text[:_PREVIEW] + "..."
    return repr(shown)


def _parse(text: str, symbols: dict[str, sympy.Symbol], limits: ParseLimits) -> sympy.Expr:
    if len(text) > limits.max_length:
        raise _Refused(f"longer than {limits.max_length} characters")
    if not text.strip():
        raise _Refused("empty formula")
    try:
        # "^" is a power in written formulas; Python's "^" (xor) binds looser than "+", so replace the text
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise _Refused(f"does not parse ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _Refused(f"does not parse ({type(exc).__name__})") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > limits.max_nodes:
        raise _Refused(f"more than {limits.max_nodes} syntax nodes")
    builder = _Builder(symbols, limits)
    try:
        expr = builder.build(tree.body, 1)
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise _Refused(f"too large to build ({type(exc).__name__})") from None
    except (TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
        # sympy refusing a combination (e.g. a function applied to a non-expression)
        raise _Refused(f"not a valid expression ({type(exc).__name__})") from None
    if not isinstance(expr, sympy.Expr):
        raise _Refused("is not an arithmetic expression")
    return expr


class _Builder:
    """Walks an ``ast`` tree, building sympy objects for the allowed nodes only."""

    def __init__(self, symbols: dict[str, sympy.Symbol], limits: ParseLimits) -> None:
        self.symbols = symbols
        self.limits = limits

    def build(self, node: ast.AST, depth: int) -> sympy.Expr:
        if depth > self.limits.max_depth:
            raise _Refused(f"nested deeper than {self.limits.max_depth} levels")
        if isinstance(node, ast.Constant):
            return self.number(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.build(node.operand, depth + 1)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise _Refused(f"{_describe(node)} is not allowed in a formula")

    def number(self, value: object) -> sympy.Expr:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Refused(f"the literal {value!r} is not a number")
        if isinstance(value, int):
            return sympy.Integer(value)
        if not math.isfinite(value):
            raise _Refused("a number overflows to infinity")
        return sympy.Float(value)

    def name(self, identifier: str) -> sympy.Expr:
        if identifier in self.symbols:
            return self.symbols[identifier]
        if identifier in CONSTANTS:
            return CONSTANTS[identifier]
        if identifier in FUNCTIONS:
            raise _Refused(f"the function {identifier!r} needs an argument")
        declared = ", ".join(sorted(self.symbols)) or "none"
        raise _Refused(f"undeclared name {identifier!r} (variables: {declared}; constants: pi, E)")

    def binary(self, node: ast.BinOp, depth: int) -> sympy.Expr:
        if isinstance(node.op, ast.Pow):
            return self.power(self.build(node.left, depth + 1), self.build(node.right, depth + 1))
        operation = _BINARY.get(type(node.op))
        if operation is None:
            raise _Refused(f"the operator {_describe(node.op)} is not allowed in a formula")
        return operation(self.build(node.left, depth + 1), self.build(node.right, depth + 1))

    def power(self, base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
        if exponent.is_Number:
            if exponent.is_finite is False or abs(float(exponent)) > self.limits.max_exponent:
                raise _Refused(f"an exponent larger than {self.limits.max_exponent:g} in magnitude")
            if base.is_Number and base != 0 and base.is_finite:
                digits = abs(float(exponent)) * abs(math.log10(abs(float(base))))
                if digits > self.limits.max_digits:
                    raise _Refused(f"a power of numbers with more than {self.limits.max_digits} digits")
        result = base**exponent
        # (x**50)**50 folds into x**2500: bound the exponent sympy produced as well
        if isinstance(result, sympy.Pow) and result.exp.is_Number and abs(float(result.exp)) > self.limits.max_exponent:
            raise _Refused(f"an exponent larger than {self.limits.max_exponent:g} in magnitude")
        return result

    def call(self, node: ast.Call, depth: int) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            raise _Refused(f"only plain function names may be called, not {_describe(node.func)}")
        name = node.func.id
        if name not in FUNCTIONS:
            known = ", ".join(FUNCTIONS)
            raise _Refused(f"unknown function {name!r} (allowed: {known})")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _Refused(f"{name}() takes positional arguments only")
        function, arity = FUNCTIONS[name]
        if len(node.args) != arity:
            raise _Refused(f"{name}() takes {arity} argument(s), got {len(node.args)}")
        return function(*(self.build(arg, depth + 1) for arg in node.args))


def _describe(node: ast.AST) -> str:
    """A short human name for a syntax node (``attribute access``, ``'%'``...)."""
    names = {
        ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "a lambda",
        ast.Compare: "a comparison", ast.BoolOp: "a boolean operation", ast.IfExp: "a conditional",
        ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator", ast.List: "a list",
        ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set", ast.JoinedStr: "an f-string",
        ast.NamedExpr: "an assignment", ast.Starred: "unpacking", ast.Mod: "'%'", ast.FloorDiv: "'//'",
        ast.MatMult: "'@'", ast.BitAnd: "'&'", ast.BitOr: "'|'", ast.LShift: "'<<'", ast.RShift: "'>>'",
        ast.Invert: "'~'", ast.Not: "'not'", ast.Call: "a call",
    }
    return names.get(type(node), type(node).__name__)


def parse_number(text: str, where: str) -> float:
    """A finite number written as a formula without variables (``"-1"``, ``"2*pi"``, ``"1e-3"``)."""
    expr = parse_expression(text, (), where)
    if expr.free_symbols:
        raise KanxError(f"{where}: {_preview(text)} is not a number")
    try:
        value = float(expr.evalf())
    except (TypeError, ValueError, OverflowError):
        raise KanxError(f"{where}: {_preview(text)} is not a real number") from None
    if not math.isfinite(value):
        raise KanxError(f"{where}: {_preview(text)} is not finite")
    return value
