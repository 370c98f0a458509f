"""The formula view of interactions: the additive terms of an expanded expression, each with its
variables, order and variance share on the samples."""

from __future__ import annotations

import numpy as np
import sympy
import torch

from kanx.core.lambdify import numpy_function
from kanx.families.kan.compose import compose_with_hidden
from kanx.families.kan.network import KAN
from kanx.interaction.report import DEFAULT_THRESHOLD
from kanx.interaction.sets import (
    maximal_sets,
    set_components,
)

FORMULA_TERMS = 1500  # a fully symbolic model's own formula is analysed only up to this size


def formula_report(expr: sympy.Expr, names: list[str], x: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Additive terms of ``expr`` (expanded over products and integer powers of sums), each with its
    variables, order and variance share on samples ``x``; the interaction sets (the largest variable
    sets of terms of two or more inputs whose variance share exceeds ``threshold``); and the additive
    groups (connected variable sets)."""
    symbols = [sympy.Symbol(name) for name in names]
    expanded = sympy.expand(expr, power_exp=False, log=False)
    terms = [t for t in sympy.Add.make_args(expanded) if t.free_symbols]
    arrays = x.double().cpu().numpy()

    def evaluate(term: sympy.Expr) -> np.ndarray:
        function = numpy_function(symbols, term)
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(function(*arrays.T), dtype=np.float64), (len(arrays),))

    total = evaluate(expr)
    total_var = max(float(np.var(total)), 1e-300)
    term_sets = [sorted(str(s) for s in t.free_symbols) for t in terms]
    index = {name: i for i, name in enumerate(names)}
    present = sorted({index[v] for vs in term_sets for v in vs})
    groups = []
    for group in set_components(len(names), ([index[v] for v in vs] for vs in term_sets), present):
        group_names = [names[i] for i in group]
        members = [t for t, vs in zip(terms, term_sets) if set(vs) <= set(group_names)]
        share = float(np.var(evaluate(sympy.Add(*members)))) / total_var
        groups.append({"variables": group_names, "order": len(group), "variance_share": share})
    term_shares = [float(np.var(evaluate(t))) / total_var for t in terms]
    sets = maximal_sets(tuple(index[v] for v in vs) for vs, share in zip(term_sets, term_shares)
                        if len(vs) >= 2 and share > threshold)
    return {
        "expression": str(expr),
        "terms": [{"term": str(t), "variables": vs, "order": len(vs), "variance_share": share}
                  for t, vs, share in zip(terms, term_sets, term_shares)],
        "sets": [[names[i] for i in s] for s in sets],
        "groups": groups,
        "max_order": max([len(s) for s in sets] or [1 if present else 0]),
    }


def model_formulas(model: KAN) -> list[sympy.Expr] | None:
    """The composed formulas of a model whose active edges are all symbolic, else None (also when
    the formulas would be too large to expand: more than ``FORMULA_TERMS`` edge expressions)."""
    layers = model.layers
    if not all(bool(((layer.sym_active > 0) | (layer.mask == 0)).all()) for layer in layers):
        return None
    formulas, hidden = compose_with_hidden(model, max_terms=FORMULA_TERMS)
    return None if hidden else formulas
