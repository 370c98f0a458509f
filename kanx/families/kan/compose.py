"""How a KAN's symbolic edges compose into one sympy expression per output (node affines,
sums and multiplication nodes applied layer by layer)."""

from __future__ import annotations

import sympy

from kanx.families.kan.network import KAN
from kanx.functions.library import resolve


def input_symbols(model: KAN) -> list[sympy.Symbol]:
    """One real sympy symbol per model input, named as the input."""
    return [sympy.Symbol(name, real=True) for name in model.meta.input_names]


def edge_expression(model: KAN, layer: int, i: int, j: int, arg: sympy.Expr) -> sympy.Expr:
    """The expression of edge ``(layer, i, j)`` applied to ``arg`` (``0`` if masked). A numeric
    edge becomes an undefined function ``phi_{layer}_{i}_{j}(arg)``."""
    target = model.layers[layer]
    if float(target.mask[i, j]) == 0:
        return sympy.Integer(0)
    symbolic = model.symbolic_edge(layer, i, j)
    if symbolic is None:
        return sympy.Function(f"phi_{layer}_{i}_{j}")(arg)
    name, (a, b, c, d) = symbolic
    function = resolve(name, model.custom_functions)
    if function.name == "0":
        return sympy.Float(d)
    inner = sympy.Float(a) * arg + sympy.Float(b)
    return sympy.Float(c) * function.sympy_fn(inner) + sympy.Float(d)


def compose(model: KAN, subnodes: dict[tuple[int, int], sympy.Expr] | None = None) -> list[sympy.Expr]:
    """Raw expression of every output in the input symbols (floating constants).

    ``subnodes`` maps ``(layer, j)`` to a formula in the input symbols that stands for the sum of
    the edges entering subnode ``j`` of that layer (before its affine), in place of the edges."""
    subnodes = subnodes or {}
    nodes: list[sympy.Expr] = list(input_symbols(model))
    for index, layer in enumerate(model.layers):
        shape = layer.shape
        subs = []
        for j in range(shape.n_sub):
            total = subnodes.get((index, j))
            if total is None:
                total = sympy.Add(*[edge_expression(model, index, i, j, nodes[i]) for i in range(shape.n_in)])
            subs.append(total * sympy.Float(float(layer.sub_scale[j])) + sympy.Float(float(layer.sub_bias[j])))
        outs = subs[: shape.n_sum]
        start = shape.n_sum
        for arity in shape.mult_arities:
            outs.append(sympy.Mul(*subs[start : start + arity]))
            start += arity
        nodes = [
            out * sympy.Float(float(layer.node_scale[k])) + sympy.Float(float(layer.node_bias[k]))
            for k, out in enumerate(outs)
        ]
    return nodes


# --------------------------------------------------------------------------- time-limited sympy
