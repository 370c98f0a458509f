"""A KAN network: a stack of ``KANLayer`` with names, ranges and provenance attached."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import nn

from kanx.core.classes import ClassLabels
from kanx.families.kan.basis import BASIS_KINDS
from kanx.families.kan.layer import BASE_FUNCTIONS, KANLayer, LayerShape
from kanx.functions.library import LibraryFunction, canonical_name, resolve


@dataclass
class EdgeTrace:
    """Per-layer record of a forward pass.

    ``inputs``: ``[N, n_in]`` values entering the layer; ``edges``: ``[N, n_in, n_sub]`` what
    each edge contributes (masks and symbolic overrides applied); ``outputs``: ``[N, n_out]``.
    """

    inputs: torch.Tensor
    edges: torch.Tensor
    outputs: torch.Tensor


@dataclass
class ModelMeta:
    """Everything about a model that is not a weight: names, data ranges, provenance, for a
    classifier the label column and its classes (``label`` ``None``: a regression model), and the
    order its diagram draws the nodes in (``node_order``: per node layer, node indices left to
    right, as ``kanx plot-activations --save-order`` stores it; empty: none stored)."""

    input_names: list[str]
    output_names: list[str]
    input_ranges: list[tuple[float, float]] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    label: str | None = None
    classes: list[str] = field(default_factory=list)
    node_order: list[list[int]] = field(default_factory=list)


def default_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i + 1}" for i in range(count)]


def is_node_order(order: object, widths: list[int]) -> bool:
    """Whether ``order`` holds one list per node layer, each a permutation of that layer's node
    indices ``0..widths[l]-1`` (integers, not bools)."""
    if not isinstance(order, list) or len(order) != len(widths):
        return False
    for row, width in zip(order, widths):
        if not isinstance(row, list) or len(row) != width:
            return False
        if any(isinstance(k, bool) or not isinstance(k, int) for k in row) or sorted(row) != list(range(width)):
            return False
    return True


def kept_node_order(order: list[list[int]], keep: list[list[bool]]) -> list[list[int]]:
    """A stored node order restricted to the kept nodes (``keep[l][k]``: node ``k`` of node layer
    ``l`` stays) and renumbered as the smaller network numbers them (kept nodes keep their index
    order); empty when ``order`` is, or when it does not fit ``keep``."""
    if not is_node_order(order, [len(flags) for flags in keep]):
        return []
    result = []
    for row, flags in zip(order, keep):
        new_index = list(itertools.accumulate(int(flag) for flag in flags))  # kept node k becomes new_index[k] - 1
        result.append([new_index[k] - 1 for k in row if flags[k]])
    return result


def validate_architecture(widths: list[int], mult: list[list[int]], basis: dict, base_fn: str) -> None:
    """Raise ``ValueError`` describing the first inconsistency in an architecture spec."""
    if len(widths) < 2 or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must list at least 2 positive layer sizes, got {widths}")
    if len(mult) != len(widths):
        raise ValueError(f"mult must have one entry per node layer ({len(widths)}), got {len(mult)}")
    if mult[0]:
        raise ValueError("the input layer cannot hold multiplication nodes")
    for layer, arities in enumerate(mult):
        if any(int(a) < 2 for a in arities):
            raise ValueError(f"multiplication nodes in layer {layer} need arity >= 2, got {arities}")
        if len(arities) > widths[layer]:
            raise ValueError(f"layer {layer} has {widths[layer]} nodes but {len(arities)} multiplication nodes")
    kind = basis.get("kind")
    if kind not in BASIS_KINDS:
        raise ValueError(f"basis kind must be one of {BASIS_KINDS}, got {kind!r}")
    required = {"bspline": ("grid", "k"), "rbf": ("num", "h"), "chebyshev": ("degree",)}[kind]
    missing = [key for key in required if key not in basis]
    if missing:
        raise ValueError(f"{kind} basis needs {', '.join(missing)}")
    if base_fn not in BASE_FUNCTIONS:
        raise ValueError(f"base function must be one of {BASE_FUNCTIONS}, got {base_fn!r}")


class KAN(nn.Module):
    """A Kolmogorov–Arnold network.

    ``widths[l]`` is the number of nodes of node layer ``l`` (``widths[0]`` inputs,
    ``widths[-1]`` outputs); ``mult[l]`` lists the arities of the multiplication nodes among the
    nodes of layer ``l`` (they are the last ones of the layer). ``basis`` is e.g.
    ``{"kind": "bspline", "grid": 5, "k": 3}``, ``{"kind": "rbf", "num": 8, "h": 0.57}`` or
    ``{"kind": "chebyshev", "degree": 4}``. ``layer_norm[l]`` applies a layer norm over layer
    ``l``'s inputs before its basis (FastKAN).
    """

    family = "kan"

    def __init__(
        self,
        widths: list[int],
        basis: dict | None = None,
        mult: list[list[int]] | None = None,
        base_fn: str = "silu",
        layer_norm: list[bool] | None = None,
        input_ranges: list[tuple[float, float]] | None = None,
        input_names: list[str] | None = None,
        output_names: list[str] | None = None,
        seed: int = 0,
        noise_scale: float = 0.3,
    ) -> None:
        super().__init__()
        basis = dict(basis or {"kind": "bspline", "grid": 5, "k": 3})
        widths = [int(w) for w in widths]
        mult = [list(map(int, m)) for m in (mult or [[] for _ in widths])]
        validate_architecture(widths, mult, basis, base_fn)
        self.widths = widths
        self.mult = mult
        self.basis = basis
        self.base_fn = base_fn
        self.layer_norm = list(layer_norm or [False] * (len(widths) - 1))
        n_in = widths[0]
        ranges = input_ranges or [(-1.0, 1.0)] * n_in
        self.meta = ModelMeta(
            input_names=list(input_names or default_names("x", n_in)),
            output_names=list(output_names or default_names("y", widths[-1])),
            input_ranges=[(float(lo), float(hi)) for lo, hi in ranges],
        )
        self.sample_inputs = torch.empty(0, n_in)
        # held-out rows with their targets, kept by ``kanx train`` to test what the network claims against data
        self.held_out_inputs = torch.empty(0, n_in)
        self.held_out_targets = torch.empty(0, widths[-1])  # a classifier's: class indices [N, 1]
        self.symbolic_functions: list[str] = []
        self.custom_functions: dict[str, str] = {}
        generator = torch.Generator().manual_seed(seed)
        layers = []
        for index in range(len(widths) - 1):
            shape = LayerShape(widths[index], widths[index + 1], tuple(mult[index + 1]))
            first_range = None
            if index == 0:
                first_range = (torch.tensor([r[0] for r in ranges]), torch.tensor([r[1] for r in ranges]))
            layers.append(
                KANLayer(shape, basis, base_fn, self.layer_norm[index], first_range, noise_scale, generator)
            )
        self.layers = nn.ModuleList(layers)

    def extra_repr(self) -> str:
        """``widths=[2, 5, 1], basis=bspline(grid=5, k=3), inputs=x1,x2, outputs=y``
        (multiplication nodes when there are any)."""
        settings = ", ".join(f"{key}={value}" for key, value in self.basis.items() if key != "kind")
        parts = [f"widths={self.widths}"]
        if any(self.mult):
            parts.append(f"mult={self.mult}")
        if self.classes is not None:
            parts.append(f"classifier of {self.meta.label} ({','.join(self.classes.names)})")
        parts += [f"basis={self.basis.get('kind')}({settings})", f"inputs={','.join(self.meta.input_names)}",
                  f"outputs={','.join(self.meta.output_names)}"]
        return ", ".join(parts)

    # ----------------------------------------------------------------- evaluation
    @property
    def n_inputs(self) -> int:
        return self.widths[0]

    @property
    def n_outputs(self) -> int:
        return self.widths[-1]

    @property
    def classes(self) -> ClassLabels | None:
        """The classes of a classifier (its outputs are their logits); ``None`` for regression."""
        return ClassLabels(tuple(self.meta.classes)) if self.meta.label is not None else None

    def make_classifier(self, label: str, classes: ClassLabels) -> None:
        """Declare the outputs the logits of ``classes`` of the label column ``label`` (their
        number: one per class, or one for two classes); the outputs are renamed ``logit(c)``."""
        if not classes.accepts(self.n_outputs):
            raise ValueError(f"{len(classes.names)} classes need {classes.logit_count} output(s)"
                             f"{' (or 2)' if len(classes.names) == 2 else ''}, the model has {self.n_outputs}")
        self.meta.label, self.meta.classes = label, list(classes.names)
        self.meta.output_names = classes.logit_names(self.n_outputs)
        self.held_out_inputs, self.held_out_targets = torch.empty(0, self.n_inputs), torch.empty(0, 1)

    def stored_node_order(self) -> list[list[int]] | None:
        """The diagram's node order stored with the model (``meta.node_order``), or ``None`` when
        there is none or it no longer fits the widths."""
        order = self.meta.node_order
        return [list(row) for row in order] if order and is_node_order(order, self.widths) else None

    def set_node_order(self, order: list[list[int]]) -> None:
        """Store the diagram's node order: per node layer, its node indices left to right (a
        permutation of each layer's indices; ``[]`` removes a stored order)."""
        rows = [[int(k) for k in row] for row in order]
        if rows and not is_node_order(rows, self.widths):
            raise ValueError(f"a node order needs one permutation of each layer's node indices (widths {self.widths})")
        self.meta.node_order = rows

    @property
    def provenance(self) -> dict:
        """Where the model came from (``meta.provenance``; every family has ``provenance``)."""
        return self.meta.provenance

    @provenance.setter
    def provenance(self, value: dict) -> None:
        self.meta.provenance = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, n_inputs]`` → ``[N, n_outputs]``."""
        for layer in self.layers:
            x = layer(x)
        return x

    def edge_activations(self, x: torch.Tensor) -> list[EdgeTrace]:
        """Every layer's inputs, per-edge values and outputs for inputs ``x`` ``[N, n_inputs]``."""
        traces = []
        for layer in self.layers:
            edges = layer.edge_values(x)
            outputs = layer.nodes_from_subnodes(edges.sum(dim=1))
            traces.append(EdgeTrace(x, edges, outputs))
            x = outputs
        return traces

    @torch.no_grad()
    def refresh_grids(self, x: torch.Tensor, grid_eps: float = 0.02) -> None:
        """Re-fit every B-spline layer on a grid spanning the activations that ``x`` produces."""
        for layer in self.layers:
            layer.refresh_grid(x, grid_eps=grid_eps)
            x = layer(x)

    # ----------------------------------------------------------------- symbolic edges
    def function_index(self, name: str) -> int:
        """Index of a library function in this model's symbolic table (added if new)."""
        key = canonical_name(name)
        if key not in self.symbolic_functions:
            resolve(key, self.custom_functions)  # raises for unknown names
            self.symbolic_functions.append(key)
            self._sync_symbolic_tables()
        return self.symbolic_functions.index(key)

    def _sync_symbolic_tables(self) -> None:
        table: list[LibraryFunction] = [resolve(n, self.custom_functions) for n in self.symbolic_functions]
        for layer in self.layers:
            layer.symbolic_table = table

    def set_symbolic(self, layer: int, i: int, j: int, name: str, affine: tuple[float, float, float, float]) -> None:
        """Make edge ``(layer, i, j)`` compute ``c*f(a*x+b)+d`` with ``affine = (a, b, c, d)``."""
        index = self.function_index(name)
        target = self.layers[layer]
        with torch.no_grad():
            target.sym_index[i, j] = index
            target.sym_affine[i, j] = torch.tensor(affine, dtype=target.sym_affine.dtype, device=target.sym_affine.device)
            target.sym_active[i, j] = 1.0

    def set_numeric(self, layer: int, i: int, j: int) -> None:
        """Return edge ``(layer, i, j)`` to its numeric (spline) form."""
        self.layers[layer].sym_active[i, j] = 0.0

    def symbolic_edge(self, layer: int, i: int, j: int) -> tuple[str, tuple[float, ...]] | None:
        """``(function name, (a, b, c, d))`` of a symbolic edge, or ``None`` if numeric."""
        target = self.layers[layer]
        if target.sym_active[i, j] <= 0:
            return None
        name = self.symbolic_functions[int(target.sym_index[i, j])]
        return name, tuple(float(v) for v in target.sym_affine[i, j].detach())

    # ----------------------------------------------------------------- summaries
    def edge_counts(self) -> list[dict[str, int]]:
        """Per layer: total, active (unmasked) and symbolic edge counts."""
        counts = []
        for layer in self.layers:
            active = layer.mask > 0
            counts.append(
                {
                    "total": int(active.numel()),
                    "active": int(active.sum()),
                    "pruned": int((~active).sum()),
                    "symbolic": int((active & (layer.sym_active > 0)).sum()),
                }
            )
        return counts

    def row_bytes(self) -> int:
        """Working bytes one input row takes through ``edge_activations`` (every layer's
        ``[n_in, n_sub]`` edge values in float32 and float64, plus the basis temporaries): what
        chunked evaluation (``kanx.core.resources``) plans with."""
        total = 0
        for layer in self.layers:
            n_in, n_sub = layer.mask.shape
            total += 12 * n_in * n_sub + 32 * n_in * (layer.coef.shape[-1] + 8)
        return total

    def parameter_count(self) -> int:
        """Number of scalar parameters (trainable or not) in the weight tensors."""
        return sum(p.numel() for p in self.parameters())
