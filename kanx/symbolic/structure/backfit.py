"""Refit a formula's one-variable pieces to the data, through the structure the network gave.

The structure search fits each 1-D piece to a slice of the network. Where a piece's effect is
small beside the rest of the law (a relativistic factor ``1/√(1 − v²/c²)`` of a few percent
beside a factor spanning decades), the network renders that slice a few percent off, and the
form chosen on it is a look-alike (a parabola for ``1/√(1 − v²/c²)``, a line for ``1/(1 − v/c)``).
The data hold the piece exactly: for ``y = A·(B + g(v))`` with ``A``, ``B`` free of ``v``, each
row gives ``g(v) = y/A − B``. :func:`backfit` inverts the formula along the path to the largest
sub-expression of ``v`` alone, fits that 1-D target with the function library and puts the fit
in its place; the caller cleans the result against the targets and keeps it only where it wins
there (it is one more candidate, never a replacement by itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy
import torch

from kanx.core.lambdify import torch_function
from kanx.core.numerics import r2_value
from kanx.functions.library import LibraryFunction
from kanx.symbolic.structure.univariate import fit_univariate

DIVISOR_FLOOR = 1e-3  # rows where a divisor is below this share of its median magnitude are left out
MIN_ROWS = 32  # fewer usable rows than this: the piece is not refitted
KEEP_SHARE = 0.5  # a refitted piece must leave at most this share of the current one's misfit


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


def values_of(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor) -> torch.Tensor | None:
    """``expr`` on the rows ``x [N, k]`` (columns in ``symbols``' order) → ``[N]`` float64, or
    ``None`` when it does not evaluate."""
    try:
        out = torch_function(symbols, expr)(*[x[:, k] for k in range(x.shape[1])])
    except Exception:  # noqa: BLE001 - a formula that does not evaluate has no values
        return None
    if not isinstance(out, torch.Tensor):
        out = torch.full((x.shape[0],), float(out), dtype=torch.float64)
    return out.double().expand(x.shape[0]).clone() if out.dim() == 0 else out.double()


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
            rest = values_of(expr.func(*others), symbols, x[rows])
            if rest is None or not bool(torch.isfinite(rest).all()):
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
            functions: list[LibraryFunction], tolerance: float) -> tuple[sympy.Expr, list[str]]:
    """``expr`` (over ``symbols``, the columns of ``x [N, k]``) with the one-variable piece of each
    variable, in turn, replaced by the 1-D fit (:func:`fit_univariate`, ``tolerance`` as there)
    of the values the data ``y [N]`` require of it (:func:`isolate`), where that fit leaves at
    most ``KEEP_SHARE`` of the current piece's misfit to them; and the names of the variables
    whose piece changed. A piece whose misfit is the other pieces' error (which no function of
    its variable removes) stays as it is, so it does not pass that error on. Constants are the
    1-D fits'; the caller refits them jointly."""
    changed = []
    for variable in symbols:
        if variable not in expr.free_symbols:
            continue
        isolated = isolate(expr, variable, symbols, x.double(), y.double())
        if isolated is None or not bool(torch.isfinite(isolated.target).all()):
            continue
        column = x[isolated.rows, symbols.index(variable)].double()
        current = values_of(isolated.piece, [variable], column[:, None])
        current_r2 = r2_value(current, isolated.target) if current is not None else float("-inf")
        dummy = sympy.Dummy("t")
        fit = fit_univariate(column, isolated.target, dummy, functions, tolerance)
        if fit is None or not math.isfinite(fit.r2) or (1 - fit.r2) > KEEP_SHARE * (1 - current_r2):
            continue
        piece = fit.expr.xreplace({dummy: variable})
        if piece.free_symbols == {variable} and piece != isolated.piece:
            expr = isolated.rebuild(piece)
            changed.append(str(variable))
    return expr, changed
