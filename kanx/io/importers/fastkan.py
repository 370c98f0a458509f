"""Import FastKAN (ZiyaoLi/fast-kan) ``FastKAN`` / ``FastKANLayer`` state dicts.

Per layer: ``rbf.grid [K]`` (centres shared by all inputs), ``spline_linear.weight [out, in*K]``
(column ``i*K + g``), optional ``layernorm.weight/bias [in]``, optional ``base_linear.weight
[out, in]`` and ``base_linear.bias [out]``. The layer computes
``y_j = sum_i sum_g W[j,i,g] exp(-((z_i - c_g)/h)^2) + base_linear(silu(x))_j`` with
``z = LayerNorm(x)`` over the layer's input vector (RBF branch only). ``h`` is not stored: it is
the grid spacing by default (``denominator = (max - min)/(K - 1)``).
"""

from __future__ import annotations

import torch

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.io.importers.common import Imported, assign, chain_widths, expect_shape, group_layers, only_known_keys, require, same_value

SOURCE = "fastkan"
TAILS = ("layernorm.weight", "layernorm.bias", "rbf.grid", "spline_linear.weight", "base_linear.weight", "base_linear.bias")
DEFAULT_NORM_EPS = 1e-5


def matches(state: dict[str, torch.Tensor]) -> bool:
    """True when the keys look like a FastKAN layer stack."""
    return any(k.endswith("spline_linear.weight") for k in state) and only_known_keys(state, TAILS)


def read_layer(layer: dict[str, torch.Tensor], where: str) -> dict:
    """Check one layer's tensors; return them with ``n_in``/``n_out`` and the RBF centres."""
    centers = require(layer, "rbf.grid", 1, where)
    weight = require(layer, "spline_linear.weight", 2, where)
    n_basis = centers.shape[0]
    n_out, columns = weight.shape
    if n_basis < 2 or columns % n_basis:
        raise KanxError(f"{where}: 'spline_linear.weight' has {columns} columns, not a multiple of the {n_basis} RBF centres")
    n_in = columns // n_basis
    out = {"centers": centers, "coef": weight.view(n_out, n_in, n_basis).permute(1, 0, 2), "n_in": n_in, "n_out": n_out}
    out["norm"] = _optional_pair(layer, "layernorm.weight", "layernorm.bias", (n_in,), (n_in,), where)
    out["base"] = _optional_pair(layer, "base_linear.weight", "base_linear.bias", (n_out, n_in), (n_out,), where)
    return out


def _optional_pair(layer: dict, first: str, second: str, shape1: tuple, shape2: tuple, where: str):
    """``(first, second)`` tensors of an optional sub-module, or ``None`` when absent."""
    if first not in layer:
        if second in layer:
            raise KanxError(f"{where}: missing key {first!r} (found {second!r})")
        return None
    a = require(layer, first, len(shape1), where)
    expect_shape(a, shape1, first, where, "from spline_linear.weight")
    if second not in layer:
        return a, torch.zeros(shape2, dtype=a.dtype)
    b = require(layer, second, len(shape2), where)
    expect_shape(b, shape2, second, where, "from spline_linear.weight")
    return a, b


def rbf_width(centers: torch.Tensor, where: str) -> float:
    """The Gaussian width FastKAN uses by default: the (uniform) spacing of the centres."""
    spacing = centers.diff()
    step = float(centers[-1] - centers[0]) / (centers.shape[0] - 1)
    if step <= 0 or float((spacing - step).abs().max()) > 1e-4 * abs(step):
        raise KanxError(f"{where}: RBF centres are not evenly spaced, so their width cannot be inferred; pass --rbf-width")
    return step


def convert(state: dict[str, torch.Tensor], where: str, options: dict) -> Imported:
    """Build the kanx model for a FastKAN state dict (``options``: ``rbf_width``, ``norm_eps``, ``base_fn``)."""
    layout, raw = group_layers(state, TAILS, where, "FastKAN")
    layers = [read_layer(layer, f"{where}: layer {index}") for index, layer in enumerate(raw)]
    n_basis = same_value([layer["centers"].shape[0] for layer in layers], "number of RBF centres", where)
    width = options.get("rbf_width")
    if width is None:
        width = same_value([rbf_width(layer["centers"], f"{where}: layer {i}") for i, layer in enumerate(layers)], "RBF width", where)
    elif not float(width) > 0:
        raise KanxError(f"--rbf-width {width}: must be positive")
    eps = float(options.get("norm_eps") or DEFAULT_NORM_EPS)
    has_base = any(layer["base"] is not None for layer in layers)
    base_fn = (options.get("base_fn") or "silu") if has_base else "zero"
    basis = {"kind": "rbf", "num": n_basis, "h": float(width), "norm_eps": eps,
             "min": float(layers[0]["centers"][0]), "max": float(layers[0]["centers"][-1])}
    widths = chain_widths([(layer["n_in"], layer["n_out"]) for layer in layers], where)
    model = KAN(widths, basis=basis, base_fn=base_fn, layer_norm=[layer["norm"] is not None for layer in layers])
    for target, layer in zip(model.layers, layers):
        n_in, n_out = layer["n_in"], layer["n_out"]
        w_base, bias = layer["base"] if layer["base"] is not None else (torch.zeros(n_out, n_in), torch.zeros(n_out))
        assign(target, coef=layer["coef"], w_base=w_base.T, w_sp=torch.ones(n_in, n_out),
               centers=layer["centers"].expand(n_in, -1), node_bias=bias)
        if layer["norm"] is not None:
            assign(target, norm_weight=layer["norm"][0], norm_bias=layer["norm"][1])
    inferred = {
        "rbf_width": f"{float(width)!r} ({'from --rbf-width' if options.get('rbf_width') is not None else 'grid spacing'})",
        "layer_norm_eps": f"{eps!r} ({'from --norm-eps' if options.get('norm_eps') else 'nn.LayerNorm default, not stored'})",
        "base_activation": base_fn if has_base else "none (no base_linear)",
        "input_ranges": "unknown (defaults [-1, 1])",
    }
    name = "fastkan.FastKAN state_dict" if layout != "single layer" else "fastkan.FastKANLayer state_dict"
    return Imported(model, f"{name} ({layout})" if layout != "single layer" else name, inferred)
