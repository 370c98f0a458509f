"""The structural bound of a KAN: the largest group of inputs the architecture can make interact
(inputs reachable through nonlinear edges and products) and the polynomial degree bound from
spline degree compounding across layers."""

from __future__ import annotations

import numpy as np

from kanx.families.kan.network import KAN
from kanx.interaction.report import StructuralBound

LINEAR_FUNCTIONS = {"x", "0"}
POLYNOMIAL_DEGREE = {"0": 0, "x": 1, "x^2": 2, "x^3": 3, "x^4": 4}


def structural_bound(model: KAN) -> list[StructuralBound]:
    """Per output: the largest input set the architecture can make interact, the inputs it
    can reach, and the polynomial degree bound (spline degree compounding; products add)."""
    names = model.meta.input_names
    node_groups: list[list[frozenset[int]]] = [[frozenset([i])] for i in range(model.n_inputs)]
    node_degree: list[float] = [1.0] * model.n_inputs
    for layer in model.layers:
        active = (layer.mask > 0).cpu().numpy()
        symbolic = (layer.sym_active > 0).cpu().numpy()
        sub_groups, sub_degree = [], []
        for j in range(layer.shape.n_sub):
            groups: list[frozenset[int]] = []
            degree = 0.0
            for i in np.nonzero(active[:, j])[0]:
                name = model.symbolic_functions[int(layer.sym_index[i, j])] if symbolic[i, j] else None
                linear = name in LINEAR_FUNCTIONS if name is not None else False
                incoming = node_groups[i] if linear else [frozenset().union(*node_groups[i])] if node_groups[i] else []
                groups.extend(incoming)
                degree = max(degree, node_degree[i] * edge_degree(model, layer, name))
            sub_groups.append(merge_overlapping(groups))
            sub_degree.append(degree)
        node_groups, node_degree = combine_subnodes(layer, sub_groups, sub_degree)
    bounds = []
    for k, output in enumerate(model.meta.output_names):
        groups = node_groups[k]
        reach = sorted(frozenset().union(*groups)) if groups else []
        degree = node_degree[k]
        bounds.append(
            StructuralBound(
                output=output,
                max_order=max((len(g) for g in groups), default=0),
                reachable=[names[i] for i in reach],
                degree_bound=None if not np.isfinite(degree) else int(degree),
            )
        )
    return bounds


def edge_degree(model: KAN, layer, name: str | None) -> float:
    """Polynomial degree an edge applies: spline degree k (or the basis degree) for numeric
    edges, the monomial's degree for polynomial symbolic edges, infinity otherwise."""
    if name is not None:
        return float(POLYNOMIAL_DEGREE.get(name, float("inf")))
    kind = model.basis["kind"]
    if kind == "bspline":
        return float(model.basis["k"])
    if kind == "chebyshev":
        return float("inf")  # polynomial in tanh(x), not in x
    return float("inf")


def merge_overlapping(groups: list[frozenset[int]]) -> list[frozenset[int]]:
    """Union of overlapping sets until all are disjoint."""
    merged: list[frozenset[int]] = []
    for group in groups:
        current = group
        keep = []
        for other in merged:
            if other & current:
                current = current | other
            else:
                keep.append(other)
        merged = keep + [current]
    return sorted(merged, key=lambda g: sorted(g))


def combine_subnodes(layer, sub_groups: list[list[frozenset[int]]], sub_degree: list[float]) -> tuple[list, list]:
    """Sum nodes keep their subnode's groups; a product node merges its factors' inputs."""
    n_sum = layer.shape.n_sum
    groups, degrees = list(sub_groups[:n_sum]), list(sub_degree[:n_sum])
    start = n_sum
    for arity in layer.shape.mult_arities:
        factor_sets = [frozenset().union(*g) for g in sub_groups[start : start + arity] if g]
        groups.append([frozenset().union(*factor_sets)] if factor_sets else [])
        degrees.append(float(sum(sub_degree[start : start + arity])))
        start += arity
    return groups, degrees
