"""Refitting a formula's constants to data: a formula's floating constants become parameters
(``parametrise``), an ``Evaluator`` computes it on rows for any parameter values, and ``refit``
runs Levenberg–Marquardt (torch autograd Jacobians) on the chosen parameters."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy
import torch

from kanx.core.lambdify import torch_function


@dataclass
class Parametrised:
    """``expr`` with its floating constants replaced by ``symbols`` (current ``values``)."""

    expr: sympy.Expr
    symbols: list[sympy.Symbol]
    values: torch.Tensor  # [P] float64


def parametrise(expr: sympy.Expr) -> Parametrised:
    floats = sorted(expr.atoms(sympy.Float), key=lambda f: sympy.default_sort_key(f))
    symbols = [sympy.Symbol(f"_p{k}") for k in range(len(floats))]
    replaced = expr.xreplace(dict(zip(floats, symbols)))
    return Parametrised(replaced, symbols, torch.tensor([float(f) for f in floats], dtype=torch.float64))


def to_expr(param: Parametrised, values: torch.Tensor | None = None) -> sympy.Expr:
    values = param.values if values is None else values
    return param.expr.xreplace({s: sympy.Float(float(v)) for s, v in zip(param.symbols, values)})


class Evaluator:
    """Evaluates a parametrised expression on inputs ``x`` ``[N, n_in]`` (float64)."""

    def __init__(self, param: Parametrised, variables: list[sympy.Symbol], x: torch.Tensor) -> None:
        used = param.expr.free_symbols
        self.active = [k for k, s in enumerate(param.symbols) if s in used]
        self.columns = [x[:, k] for k in range(x.shape[1])]
        self.n = x.shape[0]
        function = torch_function(variables + [param.symbols[k] for k in self.active], param.expr)
        self.function = function

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """``[N]`` values at parameters ``values``: ``[P]``, or ``[N, P]`` with one copy per row."""
        out = self.function(*self.columns, *[values[..., k] for k in self.active])
        if not isinstance(out, torch.Tensor):
            out = torch.full((self.n,), float(out), dtype=torch.float64)
        return out.expand(self.n) if out.dim() == 0 else out


def rowwise_jacobian(residual: Callable[[torch.Tensor], torch.Tensor], p: torch.Tensor, rows: int) -> torch.Tensor:
    """``[rows, P]`` Jacobian of ``residual`` at ``p`` ``[P]``, for a residual whose row ``n``
    depends on the parameters and row ``n`` of the data only (a formula evaluated sample by
    sample). Every row gets its own copy of the parameters (``residual`` takes ``[rows, P]``), so
    one backward pass of the summed residual gives each row's gradient. Forward-mode AD
    (``torch.func.jacfwd``) gives the same numbers about ten times slower on CPU."""
    copies = p.detach().expand(rows, p.numel()).clone().requires_grad_(True)
    gradient = None
    with torch.enable_grad():
        out = residual(copies)
        if out.requires_grad:  # otherwise the residual does not depend on the parameters
            (gradient,) = torch.autograd.grad(out.sum(), copies, allow_unused=True)
    return gradient if gradient is not None else torch.zeros(rows, p.numel(), dtype=p.dtype, device=p.device)


def refit(evaluator: Evaluator, values: torch.Tensor, target: torch.Tensor, free: list[int], iterations: int = 40) -> torch.Tensor:
    """Levenberg–Marquardt on the ``free`` parameters (indices into ``values``)."""
    free = [k for k in free if k in evaluator.active]
    values = values.clone()
    if not free:
        return values

    def residual(sub: torch.Tensor) -> torch.Tensor:  # sub: [F], or [N, F] (one copy per row)
        full = values.expand(*sub.shape[:-1], values.numel()).clone()
        full[..., free] = sub
        return evaluator(full) - target

    p = values[free].clone()
    r = residual(p)
    sse = float((r * r).sum()) if bool(torch.isfinite(r).all()) else math.inf
    damping = 1e-3
    for _ in range(iterations):
        if not math.isfinite(sse):
            break
        jac = rowwise_jacobian(residual, p, evaluator.n)  # [N, F]
        if not bool(torch.isfinite(jac).all()):
            break
        jtj = jac.T @ jac
        grad = jac.T @ r
        improved = False
        for _ in range(8):
            system = jtj + damping * torch.diag(jtj.diagonal().clamp_min(1e-12))
            try:
                step = torch.linalg.solve(system, -grad)
            except RuntimeError:
                damping *= 10
                continue
            trial = p + step
            r_new = residual(trial)
            sse_new = float((r_new * r_new).sum()) if bool(torch.isfinite(r_new).all()) else math.inf
            if sse_new < sse:
                p, r, damping, improved = trial, r_new, max(damping * 0.3, 1e-12), True
                converged = sse - sse_new < 1e-12 * max(sse, 1e-30)
                sse = sse_new
                break
            damping *= 10
        if not improved or converged:
            break
    values[free] = p
    return values
