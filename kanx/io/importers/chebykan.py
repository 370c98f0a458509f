"""Import ChebyKAN (SynodicMonth/ChebyKAN) layer stacks.

The repository has no network class: users stack ``ChebyKANLayer`` in ``nn.Sequential``
(keys ``{l}.cheby_coeffs``) or their own module. Per layer: ``cheby_coeffs [in, out, D+1]``
(input-major) and the buffer ``arange [D+1]``. Edge ``phi_ij(x) = sum_d c[i,j,d] T_d(tanh x)``,
no base function, no bias.
"""

from __future__ import annotations

import torch

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.io.importers.common import Imported, assign, chain_widths, group_layers, only_known_keys, require, same_value

SOURCE = "chebykan"
TAILS = ("cheby_coeffs", "arange")


def matches(state: dict[str, torch.Tensor]) -> bool:
    """True when the keys look like ChebyKAN layers."""
    return any(k.endswith("cheby_coeffs") for k in state) and only_known_keys(state, TAILS)


def read_layer(layer: dict[str, torch.Tensor], where: str) -> dict:
    """Check one layer; return its coefficients ``[in, out, D+1]`` and sizes."""
    coef = require(layer, "cheby_coeffs", 3, where)
    n_in, n_out, terms = coef.shape
    if "arange" in layer:
        arange = require(layer, "arange", 1, where)
        if arange.shape[0] != terms or not torch.equal(arange.long(), torch.arange(terms)):
            raise KanxError(f"{where}: 'arange' must be [0, 1, ..., {terms - 1}] to match cheby_coeffs' last dimension {terms}")
    return {"coef": coef, "n_in": n_in, "n_out": n_out, "degree": terms - 1}


def convert(state: dict[str, torch.Tensor], where: str, options: dict) -> Imported:
    """Build the kanx model for a ChebyKAN state dict (no options)."""
    layout, raw = group_layers(state, TAILS, where, "ChebyKAN")
    layers = [read_layer(layer, f"{where}: layer {index}") for index, layer in enumerate(raw)]
    degree = same_value([layer["degree"] for layer in layers], "Chebyshev degree", where)
    widths = chain_widths([(layer["n_in"], layer["n_out"]) for layer in layers], where)
    model = KAN(widths, basis={"kind": "chebyshev", "degree": degree}, base_fn="zero")
    for target, layer in zip(model.layers, layers):
        shape = (layer["n_in"], layer["n_out"])
        assign(target, coef=layer["coef"], w_base=torch.zeros(shape), w_sp=torch.ones(shape))
    inferred = {"degree": degree, "input_squash": "tanh (inside every layer)", "input_ranges": "unknown (defaults [-1, 1])"}
    name = "ChebyKANLayer stack" if layout != "single layer" else "single ChebyKANLayer"
    return Imported(model, f"{name} state_dict ({layout})" if layout != "single layer" else f"{name} state_dict", inferred)
