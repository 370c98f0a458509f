"""One KAN layer: a learnable 1-D function on every edge, then node operations.

Edge ``(i, j)`` of a layer with ``n_in`` inputs and ``n_sub`` subnodes computes

    phi_ij(x) = w_base[i, j] * b(x) + w_sp[i, j] * sum_k coef[i, j, k] * K_k(z)

where ``b`` is the base function (silu, identity or none), ``K_k`` the basis and ``z`` the
spline input (``x`` itself, or the layer-normalised input vector for FastKAN-style layers).
A symbolic edge instead computes ``c * f(a * x + b) + d``. Subnodes sum their incoming edges,
go through a subnode affine, are multiplied in groups to form multiplication nodes (sum nodes
pass through), and end with a node affine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from kanx.core.choices import BASE_FUNCTIONS
from kanx.families.kan.basis import basis_size, bspline_basis, chebyshev_basis, knot_spans, rbf_basis, uniform_knots
from kanx.functions.library import LibraryFunction


@dataclass(frozen=True)
class LayerShape:
    """Node structure of a layer's output side.

    ``n_out`` nodes, of which the last ``len(mult_arities)`` are multiplication nodes with the
    given arities (each >= 2). ``n_sub`` = number of summing subnodes = edge targets.
    """

    n_in: int
    n_out: int
    mult_arities: tuple[int, ...] = ()

    @property
    def n_sum(self) -> int:
        return self.n_out - len(self.mult_arities)

    @property
    def n_sub(self) -> int:
        return self.n_sum + sum(self.mult_arities)


def base_function(name: str, x: torch.Tensor) -> torch.Tensor:
    """Evaluate the residual base function ``b(x)``."""
    if name == "silu":
        return torch.nn.functional.silu(x)
    if name == "identity":
        return x
    return torch.zeros_like(x)


class KANLayer(nn.Module):
    """A KAN layer with masks, symbolic-override slots and node operations.

    Tensors (all indexed input-major ``[i, j]``):
      coef ``[n_in, n_sub, K]``, w_base/w_sp/mask/sym_active/sym_index ``[n_in, n_sub]``,
      sym_affine ``[n_in, n_sub, 4]`` = (a, b, c, d), knots ``[n_in, G+2k+1]`` (B-spline) or
      centers ``[n_in, K]`` (RBF), norm_weight/norm_bias ``[n_in]`` (layer norm),
      sub_scale/sub_bias ``[n_sub]``, node_scale/node_bias ``[n_out]``.
    """

    def __init__(
        self,
        shape: LayerShape,
        basis: dict,
        base_fn: str = "silu",
        layer_norm: bool = False,
        input_range: tuple[torch.Tensor, torch.Tensor] | None = None,
        noise_scale: float = 0.3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if base_fn not in BASE_FUNCTIONS:
            raise ValueError(f"base function must be one of {BASE_FUNCTIONS}, got {base_fn!r}")
        self.shape = shape
        self.basis_spec = dict(basis)
        self.base_fn = base_fn
        self.layer_norm = layer_norm
        self.symbolic_table: list[LibraryFunction] = []
        n_in, n_sub, n_out = shape.n_in, shape.n_sub, shape.n_out
        k_basis = basis_size(basis)

        def uniform(*size: int) -> torch.Tensor:
            return torch.rand(*size, generator=generator) * 2 - 1

        scale = 1 / math.sqrt(n_in)
        self.coef = nn.Parameter(uniform(n_in, n_sub, k_basis) * noise_scale / k_basis)
        self.w_base = nn.Parameter(uniform(n_in, n_sub) * scale)
        self.w_sp = nn.Parameter(torch.full((n_in, n_sub), scale))
        self.register_buffer("mask", torch.ones(n_in, n_sub))
        self.register_buffer("sym_active", torch.zeros(n_in, n_sub))
        self.register_buffer("sym_index", torch.zeros(n_in, n_sub, dtype=torch.long))
        self.sym_affine = nn.Parameter(torch.tensor([1.0, 0.0, 1.0, 0.0]).repeat(n_in, n_sub, 1))
        self.sub_scale = nn.Parameter(torch.ones(n_sub), requires_grad=False)
        self.sub_bias = nn.Parameter(torch.zeros(n_sub), requires_grad=False)
        self.node_scale = nn.Parameter(torch.ones(n_out), requires_grad=False)
        self.node_bias = nn.Parameter(torch.zeros(n_out), requires_grad=False)
        if layer_norm:
            self.norm_weight = nn.Parameter(torch.ones(n_in))
            self.norm_bias = nn.Parameter(torch.zeros(n_in))
        self._reusing = False  # reuse of the basis values between training steps (reuse_basis)
        self._basis_cache: tuple | None = None
        kind = basis["kind"]
        if kind == "bspline":
            lo, hi = input_range if input_range is not None else (-torch.ones(n_in), torch.ones(n_in))
            self.register_buffer("knots", uniform_knots(lo.float(), hi.float(), int(basis["grid"]), int(basis["k"])))
        elif kind == "rbf":
            lo, hi = float(basis.get("min", -2.0)), float(basis.get("max", 2.0))
            self.register_buffer("centers", torch.linspace(lo, hi, k_basis).repeat(n_in, 1))

    # ----------------------------------------------------------------- edge evaluation
    def spline_input(self, x: torch.Tensor) -> torch.Tensor:
        """The argument of the basis: ``x``, or its layer norm over inputs. ``[N, n_in]``."""
        if not self.layer_norm:
            return x
        eps = float(self.basis_spec.get("norm_eps", 1e-5))
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * self.norm_weight + self.norm_bias

    def basis_values(self, x: torch.Tensor) -> torch.Tensor:
        """Basis functions at the layer inputs: ``[N, n_in]`` → ``[N, n_in, K]``."""
        z = self.spline_input(x)
        kind = self.basis_spec["kind"]
        if kind == "bspline":
            return self.bspline_values(z)
        if kind == "rbf":
            return rbf_basis(z, self.centers, float(self.basis_spec["h"]))
        return chebyshev_basis(z, int(self.basis_spec["degree"]))

    def bspline_values(self, z: torch.Tensor) -> torch.Tensor:
        """B-spline basis at ``z [N, n_in]``: ``[N, n_in, K]``. While :meth:`reuse_basis` is on
        and gradients are recorded, the values for an input that carries none are kept until the
        input or the knots change: full-batch training asks for the same first-layer basis at
        every step (the same numbers, computed once per grid)."""
        order = int(self.basis_spec["k"])
        if not self._reusing or z.requires_grad or not torch.is_grad_enabled():
            return bspline_basis(z, self.knots, order, self._cached_spans())
        key = (self.knots.data_ptr(), self.knots._version, z._version)
        cache = self._basis_cache
        if cache is not None and cache[0] is z and cache[1] == key:
            return cache[2]
        values = bspline_basis(z, self.knots, order, self._cached_spans())
        self._basis_cache = (z, key, values)
        return values

    def reuse_basis(self, enabled: bool) -> None:
        """Turn the reuse of :meth:`bspline_values` on or off (off drops what was kept, and the
        input it belongs to)."""
        self._reusing = enabled
        self._basis_cache = None

    def _cached_spans(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Knot spans for the B-spline recursion, recomputed only when the knots change."""
        key = (self.knots.data_ptr(), self.knots._version, self.knots.dtype)
        cache = getattr(self, "_span_cache", None)
        if cache is None or cache[0] != key:
            cache = (key, knot_spans(self.knots, int(self.basis_spec["k"])))
            self._span_cache = cache
        return cache[1]

    def numeric_edges(self, x: torch.Tensor) -> torch.Tensor:
        """Numeric (spline + base) value of every edge, ignoring masks: ``[N, n_in, n_sub]``."""
        spline = torch.einsum("nik,ijk->nij", self.basis_values(x), self.coef)
        return base_function(self.base_fn, x).unsqueeze(-1) * self.w_base + spline * self.w_sp

    def symbolic_parts(self, x: torch.Tensor, only_unmasked: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
        """Per library function in use: the edges ``(i, j)`` (``[E_f]`` each) that compute it and
        their values ``c*f(a*x_i+b)+d`` on ``x`` (``[N, E_f]``). Only those edges are evaluated, so
        memory is ``N x`` (symbolic edges), never ``N x n_in x n_sub`` per function. Loops over
        the distinct functions in use, not over edges."""
        active = self.sym_active > 0
        if only_unmasked:
            active = active & (self.mask > 0)
        for index in torch.unique(self.sym_index[active]).tolist():
            i, j = (active & (self.sym_index == index)).nonzero(as_tuple=True)
            a, b, c, d = self.sym_affine[i, j].unbind(-1)
            values = self.symbolic_table[index].torch_fn(a * x[:, i] + b)
            yield i, j, c * values.expand(x.shape[0], len(i)) + d

    def symbolic_edges(self, x: torch.Tensor) -> torch.Tensor:
        """Symbolic value ``c*f(a*x+b)+d`` of every edge with an active symbolic override
        (0 elsewhere): ``[N, n_in, n_sub]``."""
        out = x.new_zeros(x.shape[0], *self.sym_active.shape)
        for i, j, values in self.symbolic_parts(x):
            out[:, i, j] = values
        return out

    def has_symbolic(self) -> bool:
        return bool((self.sym_active * self.mask).any())

    def edge_values(self, x: torch.Tensor) -> torch.Tensor:
        """What every edge contributes to its subnode (masks and overrides applied):
        ``[N, n_in, n_sub]``."""
        numeric = self.numeric_edges(x)
        if self.has_symbolic():
            sym = self.sym_active
            numeric = numeric * (1 - sym) + self.symbolic_edges(x) * sym
        return numeric * self.mask

    # ----------------------------------------------------------------- node operations
    def subnode_sums(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of incoming edges per subnode without materialising every edge: ``[N, n_sub]``."""
        numeric_weight = self.mask * (1 - self.sym_active)
        spline_coef = self.coef * (self.w_sp * numeric_weight).unsqueeze(-1)
        sums = torch.einsum("nik,ijk->nj", self.basis_values(x), spline_coef)
        if self.base_fn != "zero":
            sums = sums + base_function(self.base_fn, x) @ (self.w_base * numeric_weight)
        if self.has_symbolic():  # only the unmasked symbolic edges, added to their subnodes
            for _, j, values in self.symbolic_parts(x, only_unmasked=True):
                sums = sums.index_add(1, j, values)
        return sums

    def nodes_from_subnodes(self, sub: torch.Tensor) -> torch.Tensor:
        """Subnode affine → multiplication groups → node affine: ``[N, n_sub]`` → ``[N, n_out]``."""
        sub = sub * self.sub_scale + self.sub_bias
        n_sum = self.shape.n_sum
        parts = [sub[:, :n_sum]]
        start = n_sum
        for arity in self.shape.mult_arities:
            parts.append(sub[:, start : start + arity].prod(dim=1, keepdim=True))
            start += arity
        nodes = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return nodes * self.node_scale + self.node_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, n_in]`` → ``[N, n_out]``."""
        return self.nodes_from_subnodes(self.subnode_sums(x))

    # ----------------------------------------------------------------- grid refresh
    @torch.no_grad()
    def refresh_grid(self, x: torch.Tensor, grid_eps: float = 0.02, margin: float = 0.01) -> None:
        """Move the B-spline knots to span the data ``x`` (``[N, n_in]``) and re-fit ``coef`` by
        least squares so each edge's spline part keeps its shape on the data.

        New knots mix quantile-adaptive and uniform placement: ``grid_eps`` = 1 is uniform on
        ``[min, max]`` (widened by ``margin`` of the range), 0 is fully quantile-adaptive.
        """
        if self.basis_spec["kind"] != "bspline":
            raise ValueError("grid refresh is defined for B-spline bases only")
        grid, order = int(self.basis_spec["grid"]), int(self.basis_spec["k"])
        z = self.spline_input(x)
        old_basis = bspline_basis(z, self.knots, order)
        target = torch.einsum("nik,ijk->nij", old_basis, self.coef)  # [N, n_in, n_sub]
        self.knots.copy_(adaptive_knots(z, grid, order, grid_eps, margin))
        solution = least_squares_coef(bspline_basis(z, self.knots, order), target, ridge=1e-8)
        self.coef.copy_(solution.to(self.coef.dtype))


def least_squares_coef(basis: torch.Tensor, target: torch.Tensor, ridge: float) -> torch.Tensor:
    """Coefficients ``[n_in, n_sub, K]`` with ``sum_k coef[i, j, k] basis[n, i, k] ≈ target[n, i, j]``
    (``basis`` ``[N, n_in, K]``, ``target`` ``[N, n_in, n_sub]``), in float64, one normal system per
    input with a ``ridge`` relative to its diagonal so an empty knot interval is not singular."""
    per_input = basis.double().transpose(0, 1)  # [n_in, N, K]
    gram = per_input.transpose(1, 2) @ per_input  # [n_in, K, K]
    rhs = per_input.transpose(1, 2) @ target.double().transpose(0, 1)  # [n_in, K, n_sub]
    scale = ridge * gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12)
    gram = gram + scale[:, None, None] * torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram, rhs).transpose(1, 2)


def adaptive_knots(z: torch.Tensor, grid: int, order: int, grid_eps: float, margin: float) -> torch.Tensor:
    """Knots per input spanning the samples ``z`` (``[N, n_in]``): ``[n_in, grid + 2*order + 1]``."""
    sorted_z = torch.sort(z, dim=0).values
    n = sorted_z.shape[0]
    lo, hi = sorted_z[0], sorted_z[-1]
    # relative to the inputs' own size: inputs measured in units of 1e-28 get knots of that size
    size = torch.maximum(lo.abs(), hi.abs())
    span = torch.maximum(hi - lo, 1e-4 * size).clamp_min(torch.finfo(z.dtype).tiny / 1e-4)
    lo, hi = lo - margin * span, hi + margin * span
    positions = torch.linspace(0, n - 1, grid + 1, device=z.device).round().long()
    adaptive = sorted_z[positions].T.clone()  # [n_in, grid + 1]
    adaptive[:, 0], adaptive[:, -1] = lo, hi
    uniform = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0, 1, grid + 1, dtype=z.dtype, device=z.device)[None, :]
    inner = grid_eps * uniform + (1 - grid_eps) * adaptive
    step = (hi - lo) / grid
    left = lo[:, None] - step[:, None] * torch.arange(order, 0, -1, dtype=z.dtype, device=z.device)[None, :]
    right = hi[:, None] + step[:, None] * torch.arange(1, order + 1, dtype=z.dtype, device=z.device)[None, :]
    return torch.cat([left, inner, right], dim=1)
