"""Refit a formula's one-variable pieces to the data, through the structure the network gave.

The structure search fits each 1-D piece to a slice of the network. Where a piece's effect is
small beside the rest of the law (a relativistic factor ``1/√(1 − v²/c²)`` of a few percent
beside a factor spanning decades), the network renders that slice a few percent off, and the
form chosen on it is a look-alike (a parabola for ``1/√(1 − v²/c²)``, a line for ``1/(1 − v/c)``).
The data hold the piece exactly: for ``y = A·(B + g(v))`` with ``A``, ``B`` free of ``v``, each
row gives ``g(v) = y/A − B``. :func:`backfit` inverts the formula along the path to the largest
sub-expression of ``v`` alone, fits that 1-D target with the function library and puts the fit
in its place when the formula, its constants refitted, fits the data clearly better. The caller
cleans the result against the targets and keeps it only where it wins there (it is one more
candidate, never a replacement by itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy
import torch

from kanx.core.budget import WorkBudget
from kanx.functions.library import LibraryFunction
from kanx.symbolic.cleaning import Cleaner, CleanSettings
from kanx.symbolic.refit import parametrise, to_expr
from kanx.symbolic.structure.search import FIT_WORK, POLISH_WORK, formula_values
from kanx.symbolic.structure.univariate import fit_univariate

DIVISOR_FLOOR = 1e-3  # rows where a divisor is below this share of its median magnitude are left out
MIN_ROWS = 32  # fewer usable rows than this: the piece is not refitted
KEEP_SHARE = 0.5  # a new piece must leave at most this share of the formula's misfit to the data


@dataclass
class Isolated:
    """The largest sub-expression ``piece`` of a formula that depends on one variable alone (with
    the constants beside it in its sum or product), the values ``target [M]`` it must take on the
    rows ``rows [M]`` (indices into the data) for the formula to equal the data there, and
    ``path``: the steps from the formula down to it, as ``(sympy.Add | sympy.Mul, other
    arguments)`` or ``(sympy.Pow, ())`` for a reciprocal (:meth:`rebuild`)."""

    piece: sympy.Expr
    target: torch.Tensor
    rows: torch.Tensor
    path: list[tuple[type, tuple[sympy.Expr, ...]]]

    def rebuild(self, piece: sympy.Expr) -> sympy.Expr:
        """The formula with ``piece`` in place of :attr:`piece`."""
        for func, others in reversed(self.path):
            piece = 1 / piece if func is sympy.Pow else func(*others, piece)
        return piece


def isolate(expr: sympy.Expr, variable: sympy.Symbol, symbols: list[sympy.Symbol], x: torch.Tensor,
            y: torch.Tensor) -> Isolated | None:
    """Invert ``expr = y`` (rows ``x [N, k]``, ``y [N]``) down to the largest sub-expression of
    ``variable`` alone: through sums (subtract the other terms), products (divide by the other
    factors, away from their zeros) and reciprocals. ``None`` when ``variable`` sits in a term or
    factor together with other variables beside terms or factors of its own, in two such mixed
    ones, or inside another function of other variables."""
    rows = torch.arange(y.numel())
    path: list[tuple[type, tuple[sympy.Expr, ...]]] = []
    while expr.free_symbols != {variable}:
        if isinstance(expr, (sympy.Add, sympy.Mul)):
            own = [a for a in expr.args if a.free_symbols <= {variable}]
            mixed = [a for a in expr.args if variable in a.free_symbols and a.free_symbols != {variable}]
            if len(mixed) > 1 or (mixed and any(variable in a.free_symbols for a in own)):
                return None
            inner = mixed[0] if mixed else expr.func(*own)
            others = tuple(a for a in expr.args if a is not inner) if mixed else tuple(a for a in expr.args if a not in own)
            rest = formula_values(expr.func(*others), symbols, x[rows])
            if rest is None:
                return None
            if isinstance(expr, sympy.Add):
                y = y - rest
            else:
                clear = rest.abs() > DIVISOR_FLOOR * float(rest.abs().median())
                rows, y = rows[clear], y[clear] / rest[clear]
            path.append((expr.func, others))
            expr = inner
        elif isinstance(expr, sympy.Pow) and expr.exp == -1:
            clear = y.abs() > DIVISOR_FLOOR * float(y.abs().median())
            rows, y, expr = rows[clear], 1 / y[clear], expr.base
            path.append((sympy.Pow, ()))
        else:
            return None
        if rows.numel() < MIN_ROWS:
            return None
    return Isolated(expr, y, rows, path)


def backfit(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor, y: torch.Tensor,
            functions: list[LibraryFunction], tolerance: float, budget: WorkBudget | None = None) -> tuple[sympy.Expr, list[str]]:
    """``expr`` (over ``symbols``, the columns of ``x [N, k]``) with the one-variable piece of each
    variable, in turn, replaced where the data ``y [N]`` ask for it; and the names of the
    variables whose piece changed.

    The values the data require of the piece (:func:`isolate`) are fitted in 1-D
    (:func:`fit_univariate`, ``tolerance`` as there); the fit and its alternatives each go into
    the formula, whose constants are then all refitted to the data, and the best one replaces
    the piece when the formula's misfit falls to at most ``KEEP_SHARE`` of what it was. The
    required values carry the other pieces' errors (the formula's constants were fitted around
    the look-alike), so the joint refit, not the 1-D fit, decides; a variable whose piece is
    right gains nothing and keeps it. A piece that is its variable times a constant (a line
    through 0, the simplest law the network could show) is not refitted; no new variable or
    option is tried once ``budget`` (work units: ``FIT_WORK`` per 1-D fit, ``POLISH_WORK`` per refit) is spent
    (``None``: no limit)."""
    budget = budget if budget is not None else WorkBudget(2**62)
    x, y = x.double(), y.double()
    cleaner = Cleaner(symbols, x, y, CleanSettings())
    param, current = cleaner.fit(parametrise(expr))
    if not math.isfinite(current):
        return expr, []
    expr = to_expr(param)
    changed = []
    for variable in symbols:
        if variable not in expr.free_symbols or budget.exhausted():
            continue
        isolated = isolate(expr, variable, symbols, x, y)
        if isolated is None or isolated.piece.as_coeff_Mul()[1] == variable or not bool(torch.isfinite(isolated.target).all()):
            continue
        dummy = sympy.Dummy("t")
        budget.charge(FIT_WORK)
        fit = fit_univariate(x[isolated.rows, symbols.index(variable)], isolated.target, dummy, functions, tolerance)
        if fit is None:
            continue
        best: tuple[sympy.Expr, float] | None = None
        for option in [fit.expr, *(e for e, _, _ in fit.alternatives)]:
            piece = option.xreplace({dummy: variable})
            if piece.free_symbols != {variable} or budget.exhausted():
                continue
            budget.charge(POLISH_WORK)
            param, r2 = cleaner.fit(parametrise(isolated.rebuild(piece)))
            if math.isfinite(r2) and (best is None or r2 > best[1]):
                best = (to_expr(param), r2)
        if best is not None and 1 - best[1] <= KEEP_SHARE * (1 - current):
            expr, current = best
            changed.append(str(variable))
    return expr, changed
