"""Kernel bases on which each KAN edge function is expanded.

Every basis maps layer inputs ``x`` of shape ``[N, n_in]`` to basis values of shape
``[N, n_in, K]``; an edge's spline part is then ``sum_k c[i, j, k] * basis[n, i, k]``.
The knot / centre tensors are stored per input so imported, data-adapted grids survive.
"""

from __future__ import annotations

import torch


def uniform_knots(lo: torch.Tensor, hi: torch.Tensor, grid: int, order: int) -> torch.Tensor:
    """Uniform B-spline knots spanning ``[lo, hi]`` with ``grid`` intervals, extended by
    ``order`` knots on each side.

    ``lo``/``hi``: ``[n_in]``. Returns ``[n_in, grid + 2*order + 1]``.
    """
    steps = torch.arange(-order, grid + order + 1, dtype=lo.dtype, device=lo.device)
    width = (hi - lo) / grid
    return lo[:, None] + steps[None, :] * width[:, None]


def knot_spans(knots: torch.Tensor, order: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per recursion level ``p = 1..order``: the knots ``t_m`` and inverse spans
    ``1 / (t_{m+p} - t_m)`` for ``m = 0..M-p-1``, each ``[1, n_in, M - p]`` (zero spans get 0).

    Depends only on the knots, so a layer can cache it between forward passes.
    """
    t = knots.unsqueeze(0)
    levels = []
    for p in range(1, order + 1):
        span = t[..., p:] - t[..., :-p]
        inverse = torch.where(span > 0, 1 / torch.where(span > 0, span, 1), 0)
        levels.append((t[..., :-p], inverse))
    return levels


def bspline_basis(
    x: torch.Tensor, knots: torch.Tensor, order: int, spans: list[tuple[torch.Tensor, torch.Tensor]] | None = None
) -> torch.Tensor:
    """Cox–de Boor B-spline basis of degree ``order`` on per-input knot vectors.

    ``x``: ``[N, n_in]``; ``knots``: ``[n_in, M]`` (non-decreasing rows). Returns
    ``[N, n_in, M - order - 1]``. The degree-0 case is half-open (``t_m <= x < t_{m+1}``), so
    every basis function is exactly 0 outside ``[t_0, t_{M-1})`` — no extrapolation, matching
    pykan, efficient-kan and KarSein. ``spans`` = ``knot_spans(knots, order)`` if precomputed.

    Uses ``B_{m,p} = w_m B_{m,p-1} + (1 - w_{m+1}) B_{m+1,p-1}`` with
    ``w_m = (x - t_m) / (t_{m+p} - t_m)``, which needs one weight vector per level.
    """
    x = x.unsqueeze(-1)  # [N, n_in, 1]
    t = knots.unsqueeze(0)  # [1, n_in, M]
    basis = ((x >= t[..., :-1]) & (x < t[..., 1:])).to(x.dtype)
    for start_knots, inverse_span in spans or knot_spans(knots, order):
        weighted = (x - start_knots) * inverse_span * basis  # w_m * B_{m,p-1}
        basis = weighted[..., :-1] + basis[..., 1:] - weighted[..., 1:]
    return basis


def rbf_basis(x: torch.Tensor, centers: torch.Tensor, width: float) -> torch.Tensor:
    """Gaussian radial basis ``exp(-((x - g_k) / h)^2)``.

    ``x``: ``[N, n_in]``; ``centers``: ``[n_in, K]``; ``width`` h > 0. Returns ``[N, n_in, K]``.
    """
    return torch.exp(-(((x.unsqueeze(-1) - centers.unsqueeze(0)) / width) ** 2))


def chebyshev_basis(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Chebyshev polynomials ``T_d(tanh x)`` for ``d = 0..degree`` via the three-term recurrence.

    ``x``: ``[N, n_in]``. Returns ``[N, n_in, degree + 1]``.
    """
    t = torch.tanh(x)
    terms = [torch.ones_like(t), t]
    for _ in range(2, degree + 1):
        terms.append(2 * t * terms[-1] - terms[-2])
    return torch.stack(terms[: degree + 1], dim=-1)


BASIS_KINDS = ("bspline", "rbf", "chebyshev")


def basis_size(spec: dict) -> int:
    """Number of basis functions K per edge for a basis spec (see ``KANLayer``)."""
    kind = spec["kind"]
    if kind == "bspline":
        return int(spec["grid"]) + int(spec["k"])
    if kind == "rbf":
        return int(spec["num"])
    if kind == "chebyshev":
        return int(spec["degree"]) + 1
    raise ValueError(f"unknown basis kind {kind!r}")
