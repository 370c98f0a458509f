"""Import efficient-kan (Blealtan/efficient-kan) ``KAN`` / ``KANLinear`` state dicts.

Per layer (``[out, in]`` index order): ``base_weight [out, in]``, ``spline_weight [out, in, G+k]``,
optional ``spline_scaler [out, in]`` (``enable_standalone_scale_spline``), ``grid [in, G+2k+1]``.
Edge ``phi_ji(x) = base_weight[j,i]*silu(x) + spline_scaler[j,i]*sum_k spline_weight[j,i,k]*B_k(x)``.
"""

from __future__ import annotations

import torch

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.io.importers.common import (
    Imported,
    assign,
    chain_widths,
    check_knots,
    expect_shape,
    group_layers,
    knot_ranges,
    only_known_keys,
    require,
    same_value,
)

SOURCE = "efficient-kan"
TAILS = ("base_weight", "spline_weight", "spline_scaler", "grid")


def matches(state: dict[str, torch.Tensor]) -> bool:
    """True when the keys look like an efficient-kan layer stack."""
    keys = list(state)
    marked = any(k.endswith("spline_weight") for k in keys) and any(k.endswith("base_weight") for k in keys)
    return marked and only_known_keys(state, TAILS)


def read_layer(layer: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor | int]:
    """Check one layer's tensors; return them with ``n_in``, ``n_out``, ``grid`` G and ``order`` k."""
    base = require(layer, "base_weight", 2, where)
    spline = require(layer, "spline_weight", 3, where)
    knots = require(layer, "grid", 2, where)
    n_out, n_in = base.shape
    expect_shape(spline, (n_out, n_in, spline.shape[2]), "spline_weight", where, "from base_weight [out, in]")
    n_basis = spline.shape[2]
    order = knots.shape[1] - n_basis - 1
    if knots.shape[0] != n_in or order < 0 or n_basis - order < 1:
        raise KanxError(
            f"{where}: 'grid' has shape {list(knots.shape)}, expected [{n_in}, G+2k+1] matching spline_weight's G+k = {n_basis}"
        )
    check_knots(knots, "grid", where)
    scaler = None
    if "spline_scaler" in layer:
        scaler = require(layer, "spline_scaler", 2, where)
        expect_shape(scaler, (n_out, n_in), "spline_scaler", where, "from base_weight [out, in]")
    return {"base": base, "spline": spline, "knots": knots, "scaler": scaler,
            "n_in": n_in, "n_out": n_out, "grid": n_basis - order, "order": order}


def convert(state: dict[str, torch.Tensor], where: str, options: dict) -> Imported:
    """Build the kanx model for an efficient-kan state dict (``options``: ``base_fn``)."""
    layout, raw = group_layers(state, TAILS, where, "efficient-kan")
    layers = [read_layer(layer, f"{where}: layer {index}") for index, layer in enumerate(raw)]
    scaled = [layer["scaler"] is not None for layer in layers]
    if len(set(scaled)) > 1:
        raise KanxError(f"{where}: missing key 'spline_scaler' in layer {scaled.index(False)} (other layers have one)")
    grid = same_value([layer["grid"] for layer in layers], "grid size", where)
    order = same_value([layer["order"] for layer in layers], "spline order", where)
    widths = chain_widths([(layer["n_in"], layer["n_out"]) for layer in layers], where)
    base_fn = options.get("base_fn") or "silu"
    model = KAN(widths, basis={"kind": "bspline", "grid": grid, "k": order}, base_fn=base_fn,
                input_ranges=knot_ranges(layers[0]["knots"], order))
    for target, layer in zip(model.layers, layers):
        w_sp = layer["scaler"].T if layer["scaler"] is not None else torch.ones(layer["n_in"], layer["n_out"])
        assign(target, coef=layer["spline"].permute(1, 0, 2), w_base=layer["base"].T, w_sp=w_sp, knots=layer["knots"])
    inferred = {
        "grid": grid, "spline_order": order,
        "base_activation": f"{base_fn} ({'from --base-fn' if options.get('base_fn') else 'efficient-kan default SiLU, not stored'})",
        "standalone_scale_spline": scaled[0],
        "input_ranges": "interior of layer 0's grid buffer",
    }
    single = layout == "single layer"
    return Imported(model, "efficient_kan.KANLinear state_dict" if single else f"efficient_kan.KAN state_dict ({layout})", inferred)
