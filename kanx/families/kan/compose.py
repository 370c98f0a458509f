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
    return compose_with_hidden(model, subnodes)[0]


def hidden_symbol(model: KAN, layer: int, node: int) -> sympy.Symbol:
    """The name of hidden node ``node`` (0-based) of node layer ``layer``: ``h{layer}_{node+1}``
    as in the plots (``_hidden`` appended should an input have that name)."""
    name = f"h{layer}_{node + 1}"
    return sympy.Symbol(name + "_hidden" if name in model.meta.input_names else name, real=True)


def inlined_sizes(layer, sizes: list[int]) -> list[int]:
    """Edge expressions each subnode of ``layer`` would hold with its inputs inlined, given the
    inputs' own sizes (an input symbol or a hidden node counts 0)."""
    active = (layer.mask > 0).tolist()
    return [sum(1 + sizes[i] for i in range(layer.shape.n_in) if active[i][j]) for j in range(layer.shape.n_sub)]


def compose_with_hidden(model: KAN, subnodes: dict[tuple[int, int], sympy.Expr] | None = None,
                        max_terms: int | None = None) -> tuple[list[sympy.Expr], dict[sympy.Symbol, sympy.Expr]]:
    """:func:`compose`, except that when inlining a hidden node layer into the next would make a
    subnode hold more than ``max_terms`` edge expressions, that layer's nodes stay named
    (``h1_1``, ...): the outputs are written in them and their definitions come back in order,
    each in the input symbols and earlier hidden nodes. Inlined through a wide network a formula
    grows as the product of the widths (a [784, 64, 10] KAN's would repeat each 784-term hidden
    node in all 10 outputs); named hidden nodes keep it linear in the edges."""
    subnodes = subnodes or {}
    nodes: list[sympy.Expr] = list(input_symbols(model))
    sizes = [0] * len(nodes)
    hidden: dict[sympy.Symbol, sympy.Expr] = {}
    for index, layer in enumerate(model.layers):
        shape = layer.shape
        if index > 0 and max_terms is not None and max(inlined_sizes(layer, sizes), default=0) > max_terms:
            names = [hidden_symbol(model, index, k) for k in range(len(nodes))]
            hidden.update(zip(names, nodes))
            nodes, sizes = list(names), [0] * len(nodes)
        sizes = inlined_sizes(layer, sizes)
        subs = []
        for j in range(shape.n_sub):
            total = subnodes.get((index, j))
            if total is None:
                total = sympy.Add(*[edge_expression(model, index, i, j, nodes[i]) for i in range(shape.n_in)])
            subs.append(total * sympy.Float(float(layer.sub_scale[j])) + sympy.Float(float(layer.sub_bias[j])))
        outs = subs[: shape.n_sum]
        start = shape.n_sum
        node_sizes = sizes[: shape.n_sum]
        for arity in shape.mult_arities:
            outs.append(sympy.Mul(*subs[start : start + arity]))
            node_sizes.append(sum(sizes[start : start + arity]))
            start += arity
        sizes = node_sizes
        nodes = [
            out * sympy.Float(float(layer.node_scale[k])) + sympy.Float(float(layer.node_bias[k]))
            for k, out in enumerate(outs)
        ]
    return nodes, hidden


# --------------------------------------------------------------------------- time-limited sympy
