"""Batched fits of library functions to 1-D edge data.

Every edge ``e`` (samples ``x[e]``, ``y[e]``, each ``[N]``) and every library function ``f``
is fitted as ``y ≈ c * f(a * x + b) + d`` in one vectorised pass:

1. both sides are standardised per edge (``x̃ = (x - μx)/σx``, ``ỹ = (y - μy)/σy``);
2. a grid over the inner affine ``(α, β)`` of ``u = α x̃ + β`` is scored with the closed-form
   least-squares outer affine ``(c, d)`` — chunked over edges and grid points so memory stays
   bounded by ``budget`` elements;
3. the best grid point of each (edge, function) is refined by a batched Levenberg–Marquardt
   on all four parameters (analytic Jacobian, ``f'`` by autograd since ``f`` is elementwise);
4. parameters are mapped back to raw units in kanx's convention ``(a, b, c, d)``.

A candidate is valid only when every sample lies in ``f``'s safe domain; invalid or
non-finite fits score ``R² = -inf`` so no NaN/Inf ever reaches a comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kanx.core import numerics
from kanx.core.resources import working_bytes
from kanx.functions.library import LibraryFunction, unrestricted

GRID_ALPHA = 16  # magnitudes of α per sign
GRID_BETA = 33
NEG_INF = float("-inf")


@dataclass
class EdgeFits:
    """Fits of ``F`` functions to ``E`` edges.

    ``params [E, F, 4]`` = (a, b, c, d) in raw units, meaning ``c * f(a*x + b) + d``;
    ``r2 [E, F]`` (``-inf`` where the fit is invalid); ``names`` the ``F`` function names;
    ``complexity [F]``.
    """

    params: torch.Tensor
    r2: torch.Tensor
    names: list[str]
    complexity: torch.Tensor


def inner_grid(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """Grid of inner affines ``(α, β)`` on standardised inputs: ``[G, 2]``."""
    magnitudes = torch.logspace(-1.3, 1.0, GRID_ALPHA, dtype=dtype, device=device)
    alphas = torch.cat([magnitudes, -magnitudes])
    betas = torch.linspace(-4.0, 4.0, GRID_BETA, dtype=dtype, device=device)
    return torch.cartesian_prod(alphas, betas)


def symmetric(function: LibraryFunction) -> bool:
    """Whether ``f`` is even or odd (checked numerically on ``±u``, ``u`` in [0.05, 0.95]). For such
    an ``f`` the grid point ``(-α, β)`` fits exactly as well as ``(α, -β)`` (with ``c`` negated for
    odd ``f``), so the grid search needs only ``α > 0``."""
    u = torch.linspace(0.05, 0.95, 64, dtype=torch.float64, device="cpu")
    if not bool(function.domain(u).all() and function.domain(-u).all()):
        return False
    with torch.no_grad():
        plus, minus = function.torch_fn(u).expand_as(u), function.torch_fn(-u).expand_as(u)
    if not bool(torch.isfinite(plus).all() and torch.isfinite(minus).all()):
        return False
    scale = float(plus.abs().max()) + 1e-300
    return bool((minus - plus).abs().max() <= 1e-12 * scale or (minus + plus).abs().max() <= 1e-12 * scale)


def evaluate(function: LibraryFunction, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``f(u)`` with invalid entries zeroed, and the validity mask (same shape as ``u``;
    ``None`` for functions defined everywhere)."""
    if unrestricted(function):  # non-finite values surface as a non-finite score instead
        with torch.no_grad():
            values = function.torch_fn(u)
        return (values if values.shape == u.shape else values.expand_as(u)), None
    valid = function.domain(u)
    safe_u = torch.where(valid, u, torch.ones_like(u) * 0.5)
    with torch.no_grad():
        values = function.torch_fn(safe_u)
    if values.shape != u.shape:
        values = values.expand_as(u)
    # a non-finite value inside the domain makes the score non-finite, hence -inf
    return torch.where(valid, values, torch.zeros_like(values)), valid


def closed_form_scores(values: torch.Tensor, valid: torch.Tensor | None, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Best ``(c, d)`` for ``y ≈ c*values + d`` and its R², over the last axis.

    ``values``/``valid`` ``[..., N]`` (``valid=None``: all valid), ``y`` broadcastable to them
    (standardised, mean 0). Returns ``(r2, c, d)`` each ``[...]``; ``r2 = -inf`` unless all
    samples are valid and the statistics finite.
    """
    n = values.shape[-1]
    mean_u = values.sum(-1) / n
    centred = values - mean_u.unsqueeze(-1)  # centring first avoids float32 cancellation
    var_u = torch.einsum("...n,...n->...", centred, centred) / n
    cov = torch.einsum("...n,...n->...", centred, y.expand_as(values)) / n
    ok = (var_u > 1e-10) & torch.isfinite(var_u) & torch.isfinite(cov)
    if valid is not None:
        ok = ok & valid.all(-1)
    c = torch.where(ok, cov / var_u.clamp_min(1e-10), torch.zeros_like(cov))
    var_y = (y * y).mean(-1).clamp_min(1e-12)
    # R² (kanx.core.numerics.r2) of the least-squares affine c·u + d, without forming it: its
    # residual variance is var_y - c·cov, so the grid over every candidate stays one einsum
    r2 = 1 - (var_y - c * cov) / var_y
    r2 = torch.where(ok & torch.isfinite(r2), r2, torch.full_like(r2, NEG_INF))
    d = -c * mean_u
    return r2, c, d


def grid_search(
    xs: torch.Tensor, ys: torch.Tensor, functions: list[LibraryFunction], budget: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best grid start per (edge, function) on standardised data ``xs``, ``ys`` ``[E, N]``.

    Returns ``params [E, F, 4]`` = (α, β, c, d) and ``r2 [E, F]``. Peak extra memory is about
    ``budget`` float elements (default: from the working memory budget) whatever ``E`` is.
    """
    budget = budget if budget is not None else element_budget()
    grid = inner_grid(xs.dtype, xs.device)
    n_edges, n = xs.shape
    best_r2 = torch.full((n_edges, len(functions)), NEG_INF, dtype=xs.dtype, device=xs.device)
    best = torch.zeros(n_edges, len(functions), 4, dtype=xs.dtype, device=xs.device)
    grid_chunk = max(1, min(len(grid), budget // max(n, 1)))
    edge_chunk = max(1, budget // (grid_chunk * n))
    # the grid's first half holds α > 0 (inner_grid): enough for even and odd functions
    limits = [len(grid) // 2 if symmetric(function) else len(grid) for function in functions]
    for e0 in range(0, n_edges, edge_chunk):
        x, y = xs[e0 : e0 + edge_chunk], ys[e0 : e0 + edge_chunk]
        for g0 in range(0, len(grid), grid_chunk):
            full = grid[g0 : g0 + grid_chunk]
            u_full = full[:, 0, None, None] * x + full[:, 1, None, None]  # [G, e, N]
            for index, function in enumerate(functions):
                if g0 >= limits[index]:
                    continue
                g, u = full[: limits[index] - g0], u_full[: limits[index] - g0]
                values, valid = evaluate(function, u)
                r2, c, d = closed_form_scores(values, valid, y)  # [G, e]
                top, where = r2.max(dim=0)
                better = top > best_r2[e0 : e0 + len(x), index]
                rows = torch.arange(len(x), device=x.device)
                candidate = torch.stack([g[where, 0], g[where, 1], c[where, rows], d[where, rows]], dim=-1)
                best_r2[e0 : e0 + len(x), index] = torch.where(better, top, best_r2[e0 : e0 + len(x), index])
                best[e0 : e0 + len(x), index] = torch.where(better[:, None], candidate, best[e0 : e0 + len(x), index])
    return best, best_r2


def _residuals(
    function: LibraryFunction, p: torch.Tensor, x: torch.Tensor, y: torch.Tensor, jacobian: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Residuals ``[B, N]`` of ``c*f(α x + β) + d - y`` (``inf`` where out of domain) and,
    if asked, the Jacobian ``[B, N, 4]``."""
    alpha, beta, c, d = p.unbind(-1)
    u = alpha[:, None] * x + beta[:, None]
    if unrestricted(function):
        valid, safe_u = None, u
    else:
        valid = function.domain(u)
        safe_u = torch.where(valid, u, torch.full_like(u, 0.5))
    if jacobian:
        safe_u = safe_u.detach().requires_grad_(True)
        with torch.enable_grad():
            values = function.torch_fn(safe_u)
            if values.shape != u.shape:
                values = values.expand_as(u)
            slope = None
            if values.requires_grad:
                (slope,) = torch.autograd.grad(values.sum(), safe_u, allow_unused=True)
        values = values.detach()
        slope = torch.zeros_like(u) if slope is None else slope
    else:
        values, slope = function.torch_fn(safe_u), None
        if values.shape != u.shape:
            values = values.expand_as(u)
    residual = c[:, None] * values + d[:, None] - y
    if valid is not None:
        residual = torch.where(valid, residual, torch.full_like(residual, float("inf")))
    residual = torch.nan_to_num(residual, nan=float("inf"), posinf=float("inf"), neginf=float("inf"))
    if not jacobian:
        return residual, None
    cs = c[:, None] * slope
    jac = torch.stack([cs * x, cs, values, torch.ones_like(values)], dim=-1)
    jac = torch.nan_to_num(jac, nan=0.0, posinf=0.0, neginf=0.0)
    return residual, jac


def levenberg_marquardt(
    function: LibraryFunction, p: torch.Tensor, x: torch.Tensor, y: torch.Tensor, iterations: int = 20
) -> torch.Tensor:
    """Refine ``p [B, 4]`` = (α, β, c, d) for ``B`` independent problems ``x``, ``y`` ``[B, N]``."""
    damping = torch.full((len(p),), 1e-3, dtype=p.dtype, device=p.device)
    residual, jac = _residuals(function, p, x, y, jacobian=True)
    sse = (residual * residual).sum(-1)
    eye = torch.eye(4, dtype=p.dtype, device=p.device)
    for _ in range(iterations):
        jtj = jac.transpose(1, 2) @ jac
        jtr = (jac.transpose(1, 2) @ torch.where(torch.isfinite(residual), residual, 0.0)[..., None])[..., 0]
        diag = torch.diagonal(jtj, dim1=1, dim2=2).clamp_min(1e-9)
        system = jtj + damping[:, None, None] * (torch.diag_embed(diag) + 1e-9 * eye)
        step = torch.linalg.solve(system, -jtr[..., None])[..., 0]
        step = torch.where(torch.isfinite(step), step, torch.zeros_like(step))
        trial = p + step
        new_residual, new_jac = _residuals(function, trial, x, y, jacobian=True)
        new_sse = (new_residual * new_residual).sum(-1)
        accept = torch.isfinite(new_sse) & (new_sse < sse)
        p = torch.where(accept[:, None], trial, p)
        residual = torch.where(accept[:, None], new_residual, residual)
        jac = torch.where(accept[:, None, None], new_jac, jac)
        sse = torch.where(accept, new_sse, sse)
        damping = torch.where(accept, damping * 0.3, damping * 4).clamp(1e-9, 1e9)
    return p


def element_budget() -> int:
    """Float elements one batched fitting step may hold (a share of the working memory budget:
    each element lives in a few temporaries at once)."""
    return max(1 << 16, working_bytes() // 64)


def fit_edges(
    x: torch.Tensor,
    y: torch.Tensor,
    functions: list[LibraryFunction],
    grid_samples: int = 128,
    iterations: int = 20,
    budget: int | None = None,
) -> EdgeFits:
    """Fit every function to every edge. ``x``, ``y``: ``[E, N]`` (edge inputs and values).

    The grid stage uses at most ``grid_samples`` evenly spaced (in sorted order) samples;
    the refinement uses all of them in float64. Edges are taken in chunks so the working memory
    stays near ``budget`` float elements (default: from ``kanx.core.resources``) whatever ``E``
    is, besides the ``[E, N]`` inputs and the ``[E, F]`` results.
    """
    budget = budget if budget is not None else element_budget()
    step = max(1, budget // (8 * max(x.shape[1], 1)))  # float64 copies of a chunk's x, y and their standardised forms
    if x.shape[0] <= step:
        return fit_edge_chunk(x, y, functions, grid_samples, iterations, budget)
    parts = [fit_edge_chunk(x[e0 : e0 + step], y[e0 : e0 + step], functions, grid_samples, iterations, budget)
             for e0 in range(0, x.shape[0], step)]
    return EdgeFits(torch.cat([p.params for p in parts]), torch.cat([p.r2 for p in parts]), parts[0].names,
                    parts[0].complexity)


def fit_edge_chunk(x: torch.Tensor, y: torch.Tensor, functions: list[LibraryFunction], grid_samples: int,
                   iterations: int, budget: int) -> EdgeFits:
    """:func:`fit_edges` on one chunk of edges ``x``, ``y`` ``[E, N]``."""
    x, y = x.double(), y.double()
    mu_x, sd_x = x.mean(-1, keepdim=True), x.std(-1, keepdim=True).clamp_min(1e-12)
    mu_y, sd_y = y.mean(-1, keepdim=True), y.std(-1, keepdim=True).clamp_min(1e-12)
    xs, ys = (x - mu_x) / sd_x, (y - mu_y) / sd_y
    n_edges, n = xs.shape
    if n > grid_samples:
        order = xs.argsort(dim=-1)
        pick = order[:, torch.linspace(0, n - 1, grid_samples, device=xs.device).round().long()]
        gx, gy = xs.gather(1, pick), ys.gather(1, pick)
    else:
        gx, gy = xs, ys
    gy = gy - gy.mean(-1, keepdim=True)
    starts, _ = grid_search(gx.float(), gy.float(), functions, budget)
    starts = starts.double()
    params = torch.zeros(n_edges, len(functions), 4, dtype=torch.float64, device=xs.device)
    r2 = torch.full((n_edges, len(functions)), NEG_INF, dtype=torch.float64, device=xs.device)
    chunk = max(1, budget // (16 * n))  # LM holds a few [chunk, N, 4] float64 tensors
    for e0 in range(0, n_edges, chunk):
        part = slice(e0, e0 + chunk)
        for index, function in enumerate(functions):
            p = levenberg_marquardt(function, starts[part, index], xs[part], ys[part], iterations)
            residual, _ = _residuals(function, p, xs[part], ys[part], jacobian=False)
            score = numerics.r2(ys[part] + residual, ys[part])
            r2[part, index] = torch.where(torch.isfinite(score), score, torch.full_like(score, NEG_INF))
            params[part, index] = p
    raw = to_raw(params, mu_x, sd_x, mu_y, sd_y)
    finite = torch.isfinite(raw).all(-1)
    r2 = torch.where(finite, r2, torch.full_like(r2, NEG_INF))
    raw = torch.where(finite[..., None], raw, torch.zeros_like(raw))
    complexity = torch.tensor([float(f.complexity) for f in functions], dtype=torch.float64, device=xs.device)
    constant = (y.std(-1) <= 1e-9 * (y.abs().mean(-1) + 1e-12))[:, None]
    r2 = torch.where(constant, torch.ones_like(r2), r2)
    return EdgeFits(raw, r2, [f.name for f in functions], complexity)


def to_raw(
    p: torch.Tensor, mu_x: torch.Tensor, sd_x: torch.Tensor, mu_y: torch.Tensor, sd_y: torch.Tensor
) -> torch.Tensor:
    """Standardised ``(α, β, c, d)`` ``[E, F, 4]`` → raw ``(a, b, c, d)`` with
    ``y = c * f(a*x + b) + d``."""
    alpha, beta, c, d = p.unbind(-1)
    a = alpha / sd_x
    b = beta - alpha * mu_x / sd_x
    return torch.stack([a, b, c * sd_y, d * sd_y + mu_y], dim=-1)


def pareto_front(r2: torch.Tensor, complexity: torch.Tensor) -> torch.Tensor:
    """Mask ``[E, F]`` of candidates no other candidate beats on both complexity and R²
    (ties on complexity keep the better R²)."""
    simpler_or_equal = complexity[None, :, None] <= complexity[None, None, :]  # [1, F(other), F(self)]
    strictly = complexity[None, :, None] < complexity[None, None, :]
    other, me = r2[:, :, None], r2[:, None, :]
    dominated = (simpler_or_equal & (other > me)) | (strictly & (other >= me))
    return ~dominated.any(dim=1) & torch.isfinite(r2)


def choose(
    r2: torch.Tensor, complexity: torch.Tensor, tolerance: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per edge, the simplest candidate whose R² is within ``tolerance`` of the best (ties on
    complexity go to the higher R²). Returns ``(index [E], best_r2 [E])``."""
    best = r2.max(dim=1).values
    good = r2 >= (best - tolerance)[:, None]
    key = torch.where(good, complexity[None, :] * 10.0 - r2.clamp(-1, 1), torch.full_like(r2, math.inf))
    return key.argmin(dim=1), best
