"""Formula for a function of one variable from samples: library fits, power laws and fits
of a transformed target.

Candidates (each a sympy expression in ``symbol`` with float constants, refitted end to end
against ``y`` by Levenberg–Marquardt):

* every library function ``c·f(a·x + b) + d`` (the batched fit of ``kanx.symbolic.fit``);
* power laws ``c·x^p + d`` with free ``p`` (positive ``x``), started from the log-log slope;
* ``T⁻¹(c·f(a·x + b) + d)`` for the target transforms ``T`` = log|y|, 1/y, y², √|y|, 1/y², 1/√|y|
  (e.g. ``exp(-θ²/2)`` is ``exp`` of an ``x²`` fit to ``log y``).

The choice is the simplest candidate whose R² is within a noise-scaled tolerance of the best
(``kanx.symbolic.selection.select``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy
import torch

from kanx.functions.library import LibraryFunction
from kanx.symbolic.cleaning import TAYLOR_WIDTH, Cleaner, CleanSettings
from kanx.symbolic.engines import Candidate
from kanx.symbolic.fit import fit_edges
from kanx.symbolic.refit import parametrise, to_expr
from kanx.symbolic.selection import select, within_tolerance

TRANSFORM_COST = 1.5
POWER_COMPLEXITY = 1.2  # c·x^p + d: one shape parameter, simpler than a 4-constant library fit
SHORTLIST = 3


@dataclass(frozen=True)
class Transform:
    """A target transform ``T`` and its inverse applied to a sympy expression."""

    name: str
    forward: object  # Callable[[Tensor], Tensor]
    inverse: object  # Callable[[sympy.Expr], sympy.Expr]
    needs_positive: bool
    needs_nonzero: bool


TRANSFORMS = (
    Transform("log", lambda y: torch.log(y.abs()), sympy.exp, True, True),
    Transform("inverse", lambda y: 1 / y, lambda e: 1 / e, False, True),
    Transform("square", lambda y: y * y, sympy.sqrt, True, False),
    Transform("sqrt", lambda y: torch.sqrt(y.abs()), lambda e: e**2, True, False),
    Transform("inverse-square", lambda y: 1 / (y * y), lambda e: 1 / sympy.sqrt(e), True, True),
    Transform("inverse-sqrt", lambda y: 1 / torch.sqrt(y.abs()), lambda e: 1 / e**2, True, True),
)


def sign_definite(y: torch.Tensor, margin: float = 1e-6) -> int:
    """+1 / -1 when every value has that sign and stays away from 0 (relative ``margin``), else 0."""
    scale = float(y.abs().max()) if y.numel() else 0.0
    if scale == 0:
        return 0
    if bool((y > margin * scale).all()):
        return 1
    if bool((y < -margin * scale).all()):
        return -1
    return 0


@dataclass
class UnivariateFit:
    """The chosen formula ``expr`` (in ``symbol``), its R² against the samples and complexity;
    ``alternatives``: the other candidates the samples do not tell apart from it (within the
    selection's margin), as ``(expr, r2, label)``, simplest first, at most ``MAX_ALTERNATIVES``
    with the best-R² one among them."""

    expr: sympy.Expr
    r2: float
    complexity: float
    label: str
    alternatives: list[tuple[sympy.Expr, float, str]] = field(default_factory=list)


MAX_ALTERNATIVES = 3


def library_expression(function: LibraryFunction, affine: tuple[float, ...], symbol: sympy.Symbol) -> sympy.Expr:
    a, b, c, d = (sympy.Float(v) for v in affine)
    if function.name == "0":
        return d
    if function.name == "x":
        return c * (a * symbol + b) + d
    return c * function.sympy_fn(a * symbol + b) + d


NEAR_ZERO = 1e-3  # |y| below this share of max|y| is within a network's error of 0


def dominant_sign(y: torch.Tensor) -> int:
    """+1 / -1 when every value that is not within ``NEAR_ZERO`` of 0 has that sign and they are
    at least a quarter of ``y`` (a decaying law whose tail a network renders as ±noise), else 0."""
    scale = float(y.abs().max()) if y.numel() else 0.0
    clear = y.abs() > NEAR_ZERO * scale
    if scale == 0 or int(clear.sum()) * 4 < y.numel():
        return 0
    signs = torch.sign(y[clear])
    return int(signs[0]) if bool((signs == signs[0]).all()) else 0


def _targets(x: torch.Tensor, y: torch.Tensor) -> list[tuple[Transform | None, torch.Tensor, torch.Tensor]]:
    """``(transform, x, T(y))`` per target. Transforms that need a sign (or no zero) use the
    points clear of 0 only; the dropped points are replaced by copies of kept ones so that all
    targets keep ``N`` rows and fit in one batch."""
    sign = dominant_sign(y)
    out: list[tuple[Transform | None, torch.Tensor, torch.Tensor]] = [(None, x, y)]
    clear = (y * sign) > NEAR_ZERO * float(y.abs().max()) if sign else torch.ones_like(y, dtype=torch.bool)
    kept = torch.nonzero(clear)[:, 0]
    rows = kept[torch.arange(y.numel()) % kept.numel()] if kept.numel() else torch.arange(y.numel())
    for transform in TRANSFORMS:
        if sign == 0 and (transform.needs_positive or transform.needs_nonzero):
            continue
        xs, ys = (x[rows], y[rows]) if sign else (x, y)
        value = transform.forward(ys * sign) if transform.needs_positive else transform.forward(ys)
        if bool(torch.isfinite(value).all()) and float(value.std()) > 0:
            out.append((transform, xs, value))
    return out


def _raw_candidates(x: torch.Tensor, y: torch.Tensor, symbol: sympy.Symbol,
                    functions: list[LibraryFunction]) -> list[tuple[sympy.Expr, float, str, float | None]]:
    """(expression, complexity, label, R² or ``None`` when it needs a refit against ``y``) for
    the library functions on ``y`` and the shortlisted ones on each transformed target."""
    targets = _targets(x, y)
    fits = fit_edges(torch.stack([t for _, t, _ in targets]), torch.stack([t for _, _, t in targets]), functions)
    sign = dominant_sign(y)
    out = []
    for e, (transform, _, _) in enumerate(targets):
        for f in _shortlist(fits.r2[e], functions, keep=len(functions) if transform is None else SHORTLIST):
            function = functions[f]
            inner = library_expression(function, tuple(fits.params[e, f].tolist()), symbol)
            if transform is None:
                out.append((inner, float(function.complexity), function.name, float(fits.r2[e, f])))
                continue
            outer = transform.inverse(inner)
            if transform.needs_positive and sign < 0:
                outer = -outer
            out.append((outer, float(function.complexity) + TRANSFORM_COST, f"{transform.name}:{function.name}", None))
    if bool((x > 0).all()):
        out.extend((expr, complexity, label, None) for expr, complexity, label in _power_law(x, y, symbol))
    return out


def _shortlist(r2: torch.Tensor, functions: list[LibraryFunction], keep: int = SHORTLIST) -> list[int]:
    """Indices of the functions worth refitting for one target: the ``keep`` best by R², plus
    any simpler one within 1e-3 of the best (``r2``: ``[F]``)."""
    order = [int(f) for f in torch.argsort(r2, descending=True) if math.isfinite(float(r2[f])) and functions[f].name != "0"]
    if not order:
        return []
    best = float(r2[order[0]])
    near = [f for f in order[keep:] if float(r2[f]) >= best - 1e-6 and functions[f].complexity < functions[order[0]].complexity]
    return sorted(set(order[:keep]) | set(near))


def _power_law(x: torch.Tensor, y: torch.Tensor, symbol: sympy.Symbol) -> list[tuple[sympy.Expr, float, str]]:
    """``c·x^p + d`` started from the log-log slope of ``y − min`` (and of ``y``)."""
    sign = sign_definite(y)
    starts = []
    if sign:
        logx, logy = torch.log(x), torch.log(y.abs())
        slope = float(((logx - logx.mean()) * (logy - logy.mean())).sum() / ((logx - logx.mean()) ** 2).sum())
        starts.append((sign * math.exp(float(logy.mean()) - slope * float(logx.mean())), slope))
    out = []
    for scale, power in starts + [(1.0, 0.5), (1.0, -1.0)]:
        if not (math.isfinite(scale) and math.isfinite(power)):
            continue
        expr = sympy.Float(scale) * symbol ** sympy.Float(power) + sympy.Float(0.0)
        out.append((expr, POWER_COMPLEXITY, "power"))
    return out


def fit_univariate(x: torch.Tensor, y: torch.Tensor, symbol: sympy.Symbol, functions: list[LibraryFunction],
                   tolerance: float = 2e-3, noise: float = 0.0) -> UnivariateFit | None:
    """Best formula of ``y ≈ g(x)`` (``x``, ``y``: ``[N]``); ``None`` when nothing evaluates.
    ``noise``: the share of ``y``'s variance within which candidates count as equal (the
    oracle's error), so the simpler one wins."""

    x, y = x.double(), y.double()
    if float(y.std()) <= 1e-12 * (float(y.abs().mean()) + 1e-300):
        return UnivariateFit(sympy.Float(float(y.mean())), 1.0, 0.0, "constant")
    cleaner = Cleaner([symbol], x[:, None], y, CleanSettings())
    fitted: list[tuple[sympy.Expr, Candidate]] = []
    for expr, complexity, label, known in _raw_candidates(x, y, symbol, functions):
        if known is None:
            param, known = cleaner.fit(parametrise(expr))
            expr = to_expr(param)
        if math.isfinite(known):
            fitted.append((expr, Candidate(label, (1.0, 0.0, 1.0, 0.0), known, complexity)))
    if not fitted:
        return None
    fitted = without_taylor_lookalikes(fitted, x, symbol, tolerance)
    chosen = select([c for _, c in fitted], tolerance, noise)
    expr = next(e for e, c in fitted if c is chosen)
    return UnivariateFit(expr, chosen.r2, chosen.complexity, chosen.name, alternatives(fitted, chosen, tolerance, noise))


def alternatives(fitted: list[tuple[sympy.Expr, Candidate]], chosen: Candidate, tolerance: float,
                 noise: float) -> list[tuple[sympy.Expr, float, str]]:
    """The candidates of ``fitted`` within the selection margin other than ``chosen``: the best-R²
    one and the simplest others, ``MAX_ALTERNATIVES`` at most (:class:`UnivariateFit`)."""
    equal = [c for c in within_tolerance([c for _, c in fitted], tolerance, noise) if c is not chosen]
    if not equal:
        return []
    best = max(equal, key=lambda c: c.r2)
    picked = [best] + [c for c in sorted(equal, key=lambda c: (c.complexity, -c.r2)) if c is not best][: MAX_ALTERNATIVES - 1]
    return [(next(e for e, c in fitted if c is candidate), candidate.r2, candidate.name) for candidate in picked]


ODD_SMALL = (sympy.sin, sympy.tan, sympy.tanh, sympy.sinh, sympy.asin, sympy.atan, sympy.asinh, sympy.atanh)
EVEN_SMALL = (sympy.cos, sympy.cosh)


def in_taylor_regime(expr: sympy.Expr, x: torch.Tensor, symbol: sympy.Symbol) -> bool:
    """Whether some odd function of ``expr`` (sin, tan, tanh, …) or even one (cos, cosh) only
    sees arguments below ``TAYLOR_WIDTH`` (the clean-up's, ``kanx.symbolic.cleaning``) on the samples ``x [N]``: there it is the straight
    line or parabola of its first Taylor term, a look-alike of a power of ``x``."""
    from kanx.core.lambdify import torch_function

    for node in expr.atoms(sympy.Function):
        if not isinstance(node, ODD_SMALL + EVEN_SMALL) or node.args[0].free_symbols != {symbol}:
            continue
        try:
            argument = torch_function([symbol], node.args[0])(x)
        except Exception:  # noqa: BLE001 - an argument that does not evaluate is no evidence
            continue
        if isinstance(argument, torch.Tensor) and bool(torch.isfinite(argument).all()) and float(argument.abs().max()) < TAYLOR_WIDTH:
            return True
    return False


def without_taylor_lookalikes(fitted: list[tuple[sympy.Expr, Candidate]], x: torch.Tensor, symbol: sympy.Symbol,
                              tolerance: float) -> list[tuple[sympy.Expr, Candidate]]:
    """Drop the candidates that work in a Taylor regime (:func:`in_taylor_regime`) when a simpler
    candidate is within ``tolerance`` of their R²: ``x`` beats ``sin(εx)`` and ``x²`` beats
    ``1 − cos(εx)`` unless the data show the curvature clearly, not merely within a network's
    noise (the usual selection only gives way to a noise-scaled margin, which a look-alike that
    bends with the noise can win)."""
    kept = []
    for expr, candidate in fitted:
        simpler = [c for _, c in fitted if c.complexity < candidate.complexity and c.r2 >= candidate.r2 - tolerance]
        if simpler and in_taylor_regime(expr, x, symbol):
            continue
        kept.append((expr, candidate))
    return kept
