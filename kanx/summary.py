"""A plain-data description of a model (what ``kanx info`` shows)."""

from __future__ import annotations

from torch import nn

from kanx.families.kan.network import KAN
from kanx.families.karsein.model import KarSein
from kanx.families.registry import family_of


def describe_karsein(model: KarSein) -> dict:
    """Fields, vocabularies, branches (widths, pairwise layers), combine mode and provenance."""
    return {
        "family": model.family,
        "fields": [{"name": f, "vocabulary_size": len(model.vocabularies[f]), "oov_row": model.oov} for f in model.fields],
        "dense": list(model.dense),
        "emb_dim": model.emb_dim,
        "basis": {"kind": "bspline", "grid": model.grid, "k": model.k},
        "branches": {
            "bit_wise": {"widths": model.bit_widths},
            "vector_wise": {"widths": model.vec_widths, "pairwise_layers": list(model.pairwise), "head": f"Linear({model.emb_dim}, 1)"},
        },
        "combine": model.combine,
        "output": model.output_name,
        "parameters": model.parameter_count(),
        "stored_sample_rows": int(model.sample_inputs.shape[0]),
        "provenance": dict(model.provenance),
        "training": dict(model.training_info),
    }


def describe(model: nn.Module) -> dict:
    """What ``kanx info`` shows, for any model family."""
    return DESCRIBERS[family_of(model).name](model)


def describe_kan(model: KAN) -> dict:
    """Widths, basis, parameter count, per-layer edge counts, symbolic edges and provenance."""
    layers = []
    for index, (layer, counts) in enumerate(zip(model.layers, model.edge_counts())):
        layers.append(
            {
                "layer": index,
                "inputs": layer.shape.n_in,
                "nodes": layer.shape.n_out,
                "multiplication_arities": list(layer.shape.mult_arities),
                "layer_norm": layer.layer_norm,
                **counts,
            }
        )
    symbolic = []
    for index, layer in enumerate(model.layers):
        for i, j in (layer.sym_active * layer.mask).nonzero().tolist():
            name, affine = model.symbolic_edge(index, i, j)
            symbolic.append({"layer": index, "input": i, "subnode": j, "function": name, "affine": list(affine)})
    return {
        "family": model.family,
        "widths": list(model.widths),
        "multiplication_nodes": {str(index): m for index, m in enumerate(model.mult) if m},
        "basis": dict(model.basis),
        "base_function": model.base_fn,
        "parameters": model.parameter_count(),
        "inputs": [
            {"name": name, "min": lo, "max": hi}
            for name, (lo, hi) in zip(model.meta.input_names, model.meta.input_ranges)
        ],
        "outputs": list(model.meta.output_names),
        "task": ({"kind": "classify", "label": model.meta.label, "classes": list(model.meta.classes)}
                 if model.classes is not None else {"kind": "regression"}),
        "stored_sample_rows": int(model.sample_inputs.shape[0]),
        "stored_held_out_rows": int(model.held_out_inputs.shape[0]),
        "layers": layers,
        "edges": {
            "total": sum(layer["total"] for layer in layers),
            "active": sum(layer["active"] for layer in layers),
            "symbolic": sum(layer["symbolic"] for layer in layers),
        },
        "symbolic_edges": symbolic,
        "provenance": dict(model.meta.provenance),
        "training": dict(model.meta.training),
    }


DESCRIBERS = {"kan": describe_kan, "karsein": describe_karsein}
