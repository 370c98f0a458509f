"""Candidate engines: where each edge's list of candidate formulas comes from.

- ``builtin``: the batched library fit of ``kanx.symbolic.fit`` (every edge × every function).
- ``operon``: pyoperon's symbolic regression on each edge's 1-D data.
- ``pysr``: PySR (Julia) on the edges' 1-D data; edges that share an input are searched as one
  multi-output problem.

All engines return :class:`EdgeCandidates`: per edge, a list of ``Candidate`` with a function
name, kanx affine ``(a, b, c, d)`` (``c*f(a*x+b)+d``), R² on the edge data and complexity.
Symbolic-regression results are registered as custom functions (name → sympy text), so a
checkpoint that uses them stays loadable.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field

import sympy
import torch

from kanx.core.choices import ENGINES
from kanx.core.errors import KanxError
from kanx.core.numerics import r2_value
from kanx.functions.library import LibraryFunction, custom_function
from kanx.functions.parser import parse_expression
from kanx.symbolic.fit import fit_edges


@dataclass
class Candidate:
    """One fit of one edge."""

    name: str
    affine: tuple[float, float, float, float]
    r2: float
    complexity: float


@dataclass
class EdgeCandidates:
    """Candidates for ``E`` edges plus the custom functions they introduce (name → text)."""

    candidates: list[list[Candidate]]
    custom: dict[str, str] = field(default_factory=dict)


def builtin_candidates(x: torch.Tensor, y: torch.Tensor, functions: list[LibraryFunction]) -> EdgeCandidates:
    """Library fits for edges ``x``, ``y`` ``[E, N]``: one candidate per (edge, function)."""
    fits = fit_edges(x, y, functions)
    params, r2 = fits.params.tolist(), fits.r2.tolist()
    complexity = fits.complexity.tolist()
    out = [
        [Candidate(name, tuple(params[e][k]), r2[e][k], complexity[k]) for k, name in enumerate(fits.names)]
        for e in range(len(params))
    ]
    return EdgeCandidates(out)


def require(module: str, extra: str):
    """Import an optional engine's module or raise a one-line ``KanxError``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise KanxError(f"--engine {extra}: the {module} package is not installed (pip install {extra})") from None


def sr_function_name(text: str) -> str:
    """Stable custom-function name for a symbolic-regression formula."""
    return "sr_" + hashlib.sha1(text.encode()).hexdigest()[:10]


def _score(expr: sympy.Expr, x: torch.Tensor, y: torch.Tensor) -> tuple[float, LibraryFunction | None]:
    """R² of ``expr`` (in ``x``) on ``x``, ``y`` ``[N]``; ``-inf`` when not finite anywhere."""
    text = sympy.sstr(expr)
    try:
        function = custom_function(sr_function_name(text), text)
        with torch.no_grad():
            values = function.torch_fn(x.double())
    except (KanxError, TypeError, ValueError, NameError, AttributeError):
        return float("-inf"), None
    if not bool(torch.isfinite(values).all()):
        return float("-inf"), None
    return r2_value(values, y), function


def sympy_candidates(
    exprs: list[tuple[sympy.Expr, float]], x: torch.Tensor, y: torch.Tensor, custom: dict[str, str]
) -> list[Candidate]:
    """Candidates from sympy formulas in the symbol ``x`` with their complexities; each valid
    formula becomes a custom function (affine identity)."""
    out = []
    for expr, complexity in exprs:
        score, function = _score(expr, x, y)
        if function is None:
            continue
        custom[function.name] = function.expression or sympy.sstr(expr)
        out.append(Candidate(function.name, (1.0, 0.0, 1.0, 0.0), score, float(complexity)))
    zero = float(y.mean())
    out.append(Candidate("0", (1.0, 0.0, 1.0, zero), 0.0, 0.0))
    return out


OPERON_SYMBOLS = "add,sub,mul,div,constant,variable,square,sin,cos,exp,log,sqrt,tanh"


def operon_candidates(
    x: torch.Tensor, y: torch.Tensor, seed: int = 0, generations: int = 30, population: int = 300
) -> EdgeCandidates:
    """pyoperon symbolic regression on every edge ``x``, ``y`` ``[E, N]``: its Pareto front of
    (length, accuracy) becomes the edge's candidates."""
    sklearn_api = require("pyoperon.sklearn", "pyoperon")
    symbol = sympy.Symbol("x")
    result = EdgeCandidates([])
    for e in range(x.shape[0]):  # one search per edge: the engine is the unit of work here
        regressor = sklearn_api.SymbolicRegressor(
            allowed_symbols=OPERON_SYMBOLS, generations=generations, population_size=population,
            max_length=25, random_state=seed, n_threads=1, objectives=["r2", "length"],
        )
        xs, ys = x[e].double().numpy()[:, None], y[e].double().numpy()
        regressor.fit(xs, ys)
        exprs = []
        for entry in getattr(regressor, "pareto_front_", []) or []:
            text = regressor.get_model_string(entry["tree"], 8, ["x"])
            try:
                expr = parse_expression(text, {"x": symbol}, "--engine operon: a returned formula")
            except KanxError:
                continue
            exprs.append((expr, float(entry.get("complexity", entry.get("length", 10)))))
        result.candidates.append(sympy_candidates(exprs, x[e], y[e], result.custom))
    return result


PYSR_UNARY = ["sin", "cos", "exp", "log", "sqrt", "tanh"]


def pysr_candidates(
    x: torch.Tensor, y: torch.Tensor, seed: int = 0, iterations: int = 20
) -> EdgeCandidates:
    """PySR on every edge. Edges whose inputs are identical (same source node) are fitted as
    one multi-output search (``y`` columns), one search per distinct input."""
    pysr = require("pysr", "pysr")
    symbol = sympy.Symbol("x")
    result = EdgeCandidates([[] for _ in range(x.shape[0])])
    groups: dict[bytes, list[int]] = {}
    for e in range(x.shape[0]):
        groups.setdefault(x[e].double().numpy().tobytes(), []).append(e)
    for members in groups.values():
        regressor = pysr.PySRRegressor(
            niterations=iterations, binary_operators=["+", "-", "*", "/"], unary_operators=PYSR_UNARY,
            maxsize=20, random_state=seed, deterministic=True, parallelism="serial", verbosity=0, progress=False,
        )
        xs = x[members[0]].double().numpy()[:, None]
        ys = torch.stack([y[e] for e in members], dim=1).double().numpy()
        regressor.fit(xs, ys if len(members) > 1 else ys[:, 0], variable_names=["x"])
        tables = regressor.equations_ if isinstance(regressor.equations_, list) else [regressor.equations_]
        for e, table in zip(members, tables):
            exprs = []
            for _, row in table.iterrows():
                # PySR's equation text, read by the safe parser (its "safe_" operators are the plain ones
                # guarded against bad arguments; its own sympy_format column comes from sympy's text evaluator)
                text = str(row["equation"]).replace("safe_", "")
                try:
                    expr = parse_expression(text, {"x": symbol}, "--engine pysr: a returned formula")
                except KanxError:
                    continue
                exprs.append((expr, float(row["complexity"])))
            result.candidates[e] = sympy_candidates(exprs, x[e], y[e], result.custom)
    return result


def edge_candidates(
    engine: str, x: torch.Tensor, y: torch.Tensor, functions: list[LibraryFunction], seed: int = 0
) -> EdgeCandidates:
    """Dispatch to an engine (``builtin``, ``operon`` or ``pysr``)."""
    if engine == "builtin":
        return builtin_candidates(x, y, functions)
    if engine == "operon":
        return operon_candidates(x, y, seed)
    if engine == "pysr":
        return pysr_candidates(x, y, seed)
    raise KanxError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
