"""Pruning a trained KAN to its minimal structure, with a fidelity guard.

Pipeline (``prune``):
1. importance of every edge and node on the fit part of the samples (``kanx.families.kan.importance``);
2. choose masks: threshold mode (relative to each layer's largest score) or auto mode
   (greedy removal, least attributed first, while R² against the original network stays
   >= ``min_fidelity`` on held-out samples, and against the targets when given);
3. fold constants exactly: a node left without active incoming edges (a sum node, or a
   multiplication node with a factor that is identically 0) outputs a constant; its outgoing
   edges' values are added to the next layer's subnode biases and masked;
4. shrink: hidden nodes with no active path to the outputs leave the stored tensors;
5. optionally fine-tune the survivors (masks stay fixed: masked parameters get no gradient
   and are zeroed again afterwards).

Removal is masking, exactly as a hand-pruned KAN would compute; steps 3-4 keep the function
bit-for-bit (up to float rounding). Nodes feeding a layer-normalised layer are kept (removing
them would change the normalisation of the others).
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field

import torch

from kanx.core.classes import cross_entropy, decisions, log_probabilities, probabilities
from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.core.numerics import r2
from kanx.core.resources import made_on_cpu, rows_per_chunk
from kanx.core.stage import result_dict
from kanx.families.checks import recorded_number
from kanx.families.kan.importance import Importance, importance
from kanx.families.kan.layer import KANLayer, LayerShape
from kanx.families.kan.network import KAN, kept_node_order
from kanx.families.registry import device_of
from kanx.pruning.search import FidelityGuard, grouped, remove_candidates, single_units
from kanx.pruning.settings import PruneSettings
from kanx.pruning.stage import PruneRows
from kanx.training.kan import TrainSettings, fit

EDGE_TENSORS = ("coef", "w_base", "w_sp", "mask", "sym_active", "sym_index", "sym_affine")
INPUT_TENSORS = ("knots", "centers", "norm_weight", "norm_bias")
SUBNODE_TENSORS = ("sub_scale", "sub_bias")
NODE_TENSORS = ("node_scale", "node_bias")


# --------------------------------------------------------------------------- report
@dataclass
class PruneReport:
    """What ``prune`` did. Widths/edges/parameters before and after; ``fidelity``: min over
    outputs of R² of the pruned network against the original on held-out samples;
    ``target_r2``: (before, after) against the data targets when given; ``edges``: every
    kept edge with its importance in the pruned network; ``nodes``: per subnode of the
    original network, the entropy (nats) of its incoming-edge magnitudes. For a classifier,
    ``fidelity`` is the share of held-out rows on which the pruned network decides the class the
    original decides, and ``classification`` holds the mean KL divergence (nats) of its class
    probabilities from the original's and its log-loss (before, after) on the labels when given."""

    mode: str
    settings: dict
    widths_before: list[int]
    widths_after: list[int]
    edges_before: int
    edges_after: int
    parameters_before: int
    parameters_after: int
    fidelity: float
    target_r2: tuple[float, float] | None
    holdout_rows: int
    edges: list[dict]
    nodes: list[dict]
    unused_inputs: list[str]
    nothing_pruned: bool
    notes: list[str] = field(default_factory=list)
    classification: dict | None = None
    model: KAN | None = None  # the pruned network (set by ``kanx.prune``); not part of the report

    @property
    def fidelity_name(self) -> str:
        return "decision agreement" if self.classification is not None else "R²"

    def to_dict(self) -> dict:
        return result_dict(self)

    def __repr__(self) -> str:
        return (f"PruneReport(widths {self.widths_before} → {self.widths_after}, edges {self.edges_before} → "
                f"{self.edges_after}, fidelity {self.fidelity_name} {self.fidelity:.6g})")

    def _repr_html_(self) -> str:
        rows = [("widths", self.widths_before, self.widths_after), ("edges", self.edges_before, self.edges_after),
                ("parameters", self.parameters_before, self.parameters_after)]
        if self.target_r2 is not None:
            rows.append(("held-out R² (targets)", f"{self.target_r2[0]:.6g}", f"{self.target_r2[1]:.6g}"))
        if self.classification is not None and self.classification["log_loss"] is not None:
            before, after = self.classification["log_loss"]
            rows.append(("held-out log-loss (labels)", f"{before:.6g}", f"{after:.6g}"))
        rows.append((f"{self.fidelity_name} with the original", "", f"{self.fidelity:.6g}"))
        return html_table(("", "before", "after"), rows, f"kanx prune ({self.mode})")


# --------------------------------------------------------------------------- structure helpers
def subnode_owner(shape: LayerShape, device: torch.device | str = "cpu") -> torch.Tensor:
    """Node index of every subnode: ``[n_sub]`` long (sum nodes own one, mult nodes ``arity``)."""
    sizes = torch.tensor([1] * shape.n_sum + list(shape.mult_arities), dtype=torch.long, device=device)
    return torch.repeat_interleave(torch.arange(shape.n_out, device=device), sizes)


def constant_nodes(layer: KANLayer) -> torch.Tensor:
    """Output nodes of ``layer`` that are constant because of its masks: ``[n_out]`` bool.

    A sum node is constant without an active incoming edge; a multiplication node when all
    its factors are, or when one factor is identically 0 (no active edge and zero bias).
    """
    shape, device = layer.shape, layer.mask.device
    owner = subnode_owner(shape, device)
    inactive = ~(layer.mask > 0).any(dim=0)  # [n_sub]
    zero_factor = inactive & (layer.sub_bias.detach() * layer.sub_scale.detach() == 0)
    zeros = torch.zeros(shape.n_out, device=device)
    count = zeros.clone().index_add_(0, owner, torch.ones(shape.n_sub, device=device))
    n_inactive = zeros.clone().index_add_(0, owner, inactive.float())
    n_zero = zeros.clone().index_add_(0, owner, zero_factor.float())
    is_mult = torch.arange(shape.n_out, device=device) >= shape.n_sum
    return (n_inactive == count) | (is_mult & (n_zero > 0))


def node_label(model: KAN, layer: int, node: int) -> str:
    """Input/output name, or ``h{layer}.{node}`` for hidden nodes (original indices)."""
    if layer == 0:
        return model.meta.input_names[node]
    if layer == len(model.widths) - 1:
        return model.meta.output_names[node]
    return f"h{layer}.{node}"


def active_edges(model: KAN) -> int:
    return int(sum((layer.mask > 0).sum() for layer in model.layers))


# --------------------------------------------------------------------------- batched evaluation
def batched_outputs(model: KAN, x: torch.Tensor, masks: list[torch.Tensor],
                    first_edges: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs of ``model`` under ``B`` alternative mask sets (``masks[l]`` ``[B, n_in, n_sub]``,
    each <= the layer's own mask) on inputs ``x`` ``[N, n_in]``: ``[B, N, n_out]``.
    ``first_edges``: the first layer's ``edge_values(x)`` when already known (they do not depend
    on the masks). Configurations are evaluated in chunks that fit the working memory budget."""
    widest = max(layer.shape.n_in * layer.shape.n_sub for layer in model.layers)
    chunk = rows_per_chunk(16 * x.shape[0] * widest)
    if first_edges is None:
        first_edges = model.layers[0].edge_values(x)  # [N, n_in, n_sub], shared by every config
    parts = []
    for start in range(0, masks[0].shape[0], chunk):
        parts.append(_batched_chunk(model, first_edges, [m[start : start + chunk] for m in masks]))
    return torch.cat(parts)


def _batched_chunk(model: KAN, first_edges: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    n_configs, n_rows = masks[0].shape[0], first_edges.shape[0]
    sub = torch.einsum("nij,bij->bnj", first_edges, masks[0])
    h = model.layers[0].nodes_from_subnodes(sub.reshape(n_configs * n_rows, -1))
    for layer, mask in zip(model.layers[1:], masks[1:]):
        edges = layer.edge_values(h).reshape(n_configs, n_rows, layer.shape.n_in, layer.shape.n_sub)
        sub = torch.einsum("bnij,bij->bnj", edges, mask)
        h = layer.nodes_from_subnodes(sub.reshape(n_configs * n_rows, -1))
    return h.reshape(n_configs, n_rows, -1)


def flat_mask(masks: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer edge masks ``[n_in, n_sub]`` → one flat ``[T]`` bool mask (layer by layer)."""
    return torch.cat([(m > 0).flatten() for m in masks])


def layer_masks(model: KAN, flat: torch.Tensor) -> list[torch.Tensor]:
    """Flat ``[T]`` or ``[B, T]`` bool masks → per-layer float masks ``[(B,) n_in, n_sub]``."""
    shapes = [(layer.shape.n_in, layer.shape.n_sub) for layer in model.layers]
    parts = torch.split(flat, [a * b for a, b in shapes], dim=-1)
    return [part.reshape(*flat.shape[:-1], *shape).float() for part, shape in zip(parts, shapes)]


def node_members(model: KAN) -> torch.Tensor:
    """``[H, T]`` bool: the outgoing edges of each hidden node (node layers 1 .. L-1, in order)."""
    device = device_of(model)
    sizes = [layer.shape.n_in * layer.shape.n_sub for layer in model.layers]
    offsets = [sum(sizes[:index]) for index in range(len(sizes))]
    members = torch.zeros(sum(model.widths[1:-1]), sum(sizes), dtype=torch.bool, device=device)
    row = 0
    for index in range(1, len(model.widths) - 1):
        n_in, n_sub = model.layers[index].shape.n_in, model.layers[index].shape.n_sub
        block = members[row : row + n_in, offsets[index] : offsets[index] + sizes[index]].view(n_in, n_in, n_sub)
        block.diagonal(dim1=0, dim2=1).fill_(True)  # node k owns its own row of the layer's edges
        row += n_in
    return members


def auto_masks(model: KAN, x_fit: torch.Tensor, guard: FidelityGuard) -> list[torch.Tensor]:
    """Auto mode: remove whole hidden nodes first (least node score first), then edges (least
    attribution, recomputed on the node-pruned network), while ``guard`` passes."""
    current = flat_mask([layer.mask for layer in model.layers])
    with torch.no_grad():
        scores = importance(model, x_fit).node_scores
        hidden = torch.cat([scores[index] for index in range(1, len(model.widths) - 1)] or [torch.zeros(0, device=current.device)])
        current = remove_candidates(guard, current, grouped(node_members(model), hidden, current))
        work = with_masks(model, layer_masks(model, current))
        attribution = torch.cat([a.flatten() for a in importance(work, x_fit).attribution])
        current = remove_candidates(guard, current, single_units(attribution, current))
    return layer_masks(model, current)


# --------------------------------------------------------------------------- threshold mode
def threshold_masks(model: KAN, scores: Importance, edge_threshold: float | None, node_threshold: float | None) -> list[torch.Tensor]:
    """Keep hidden nodes scoring >= ``node_threshold`` x their layer's best and edges scoring
    >= ``edge_threshold`` x their layer's best attribution (``None``: no cut)."""
    masks = [layer.mask.clone() for layer in model.layers]
    if node_threshold is not None:
        for index in range(1, len(model.widths) - 1):
            node = scores.node_scores[index]
            drop = node < node_threshold * node.max()
            masks[index][drop] = 0
            owner = subnode_owner(model.layers[index - 1].shape)
            masks[index - 1][:, drop[owner]] = 0
    if edge_threshold is not None:
        for index, attribution in enumerate(scores.attribution):
            masks[index] = masks[index] * (attribution >= edge_threshold * attribution.max()).to(masks[index].dtype)
    return masks


# --------------------------------------------------------------------------- exact simplification
def with_masks(model: KAN, masks: list[torch.Tensor]) -> KAN:
    """A deep copy of ``model`` carrying ``masks``."""
    work = copy.deepcopy(model)
    with torch.no_grad():
        for layer, mask in zip(work.layers, masks):
            layer.mask.copy_(mask)
    return work


@torch.no_grad()
def fold_constant_nodes(model: KAN, x_row: torch.Tensor) -> int:
    """Fold constant hidden nodes into the next layer, in place; returns how many were folded.

    For each constant node (``constant_nodes``) its outgoing edges' values ``phi(c)`` are added
    (times ``sub_scale``) to the receiving subnodes' ``sub_bias`` and masked; exact. Skipped
    for layer-normalised layers, where ``phi`` also depends on the other inputs.
    ``x_row``: one input row ``[1, n_in]``.
    """
    folded, h = 0, x_row
    for index, layer in enumerate(model.layers):
        if index > 0 and not layer.layer_norm:
            rows = constant_nodes(model.layers[index - 1]) & (layer.mask > 0).any(dim=1)
            if rows.any():
                phi = layer.edge_values(h)[0]  # [n_in, n_sub]
                layer.sub_bias += layer.sub_scale * (phi * rows[:, None]).sum(dim=0)
                layer.mask[rows] = 0
                folded += int(rows.sum())
        h = layer(h)
    return folded


def check_outputs_reachable(model: KAN, option: str) -> None:
    """Refuse masks that leave an output constant (every path to it cut)."""
    dead = constant_nodes(model.layers[-1]).nonzero().flatten().tolist()
    if dead:
        names = ", ".join(repr(model.meta.output_names[i]) for i in dead)
        raise KanxError(f"{option}: would cut every path to output {names}; lower the threshold")


def kept_nodes(model: KAN) -> list[torch.Tensor]:
    """Per node layer, which nodes stay: inputs and outputs always; a hidden node if it has an
    active edge into a kept node, or if it feeds a layer-normalised layer. ``[widths[l]]`` bool."""
    keep = [torch.ones(w, dtype=torch.bool, device=device_of(model)) for w in model.widths]
    for index in range(len(model.layers) - 1, 0, -1):
        layer = model.layers[index]
        if layer.layer_norm:
            continue
        useful_sub = keep[index + 1][subnode_owner(layer.shape, layer.mask.device)]
        keep[index] = ((layer.mask > 0) & useful_sub[None]).any(dim=1)
    return keep


def slice_tensor(name: str, tensor: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, outs: torch.Tensor) -> torch.Tensor:
    """Select the kept inputs (``rows``), subnodes (``cols``) and nodes (``outs``) of one layer tensor."""
    if name in EDGE_TENSORS:
        return tensor[rows][:, cols].clone()
    if name in INPUT_TENSORS:
        return tensor[rows].clone()
    if name in SUBNODE_TENSORS:
        return tensor[cols].clone()
    if name in NODE_TENSORS:
        return tensor[outs].clone()
    raise KanxError(f"cannot shrink a layer tensor named {name!r}")


def shrink(model: KAN, keep: list[torch.Tensor]) -> KAN:
    """A smaller KAN holding only the kept nodes (``keep[l]`` ``[widths[l]]`` bool), same function."""
    widths = [int(k.sum()) for k in keep]
    mult = [[]]
    for index in range(1, len(model.widths)):
        n_sum = model.widths[index] - len(model.mult[index])
        mult.append([a for a, kept in zip(model.mult[index], keep[index][n_sum:].tolist()) if kept])
    device = device_of(model)
    with made_on_cpu():  # built where its seeded initialisation is defined, then moved
        small = KAN(widths, model.basis, mult, model.base_fn, model.layer_norm, model.meta.input_ranges,
                    model.meta.input_names, model.meta.output_names)
    small.to(device)
    state = {}
    for index, layer in enumerate(model.layers):
        rows = keep[index].nonzero().flatten()
        cols = keep[index + 1][subnode_owner(layer.shape, device)].nonzero().flatten()
        outs = keep[index + 1].nonzero().flatten()
        for name, tensor in layer.state_dict().items():
            state[f"layers.{index}.{name}"] = slice_tensor(name, tensor, rows, cols, outs)
    small.load_state_dict(state)
    small.custom_functions = dict(model.custom_functions)
    small.symbolic_functions = list(model.symbolic_functions)
    small._sync_symbolic_tables()
    small.sample_inputs = model.sample_inputs.clone()
    small.held_out_inputs, small.held_out_targets = model.held_out_inputs.clone(), model.held_out_targets.clone()
    small.meta = copy.deepcopy(model.meta)
    small.meta.node_order = kept_node_order(model.meta.node_order, [k.tolist() for k in keep])  # renumbered
    return small


@torch.no_grad()
def zero_masked(model: KAN) -> None:
    """Zero the numeric parameters of masked edges (they contribute nothing either way)."""
    for layer in model.layers:
        layer.coef.mul_(layer.mask.unsqueeze(-1))
        layer.w_base.mul_(layer.mask)
        layer.w_sp.mul_(layer.mask)


# --------------------------------------------------------------------------- fine-tuning
def retrain_survivors(model: KAN, x: torch.Tensor, y: torch.Tensor, steps: int, lamb: float | None, lr: float, seed: int) -> None:
    """Retrain ``model`` in place on ``x`` ``[N, n_in]``, ``y`` ``[N, n_out]`` with the sparsity
    loss of its training run (or ``lamb``); masks are buffers, so masked edges get zero
    gradient and stay zero (checked)."""
    trained = model.meta.training
    settings = TrainSettings(
        widths=list(model.widths), mult=[list(m) for m in model.mult], steps=steps, lr=lr,
        lamb=recorded_number(trained, "settings", "lamb", default=0.0) if lamb is None else lamb,
        lamb_l1=recorded_number(trained, "settings", "lamb_l1", default=1.0),
        lamb_entropy=recorded_number(trained, "settings", "lamb_entropy", default=2.0),
        update_grid=0, seed=seed,
    )
    masks = [layer.mask.clone() for layer in model.layers]
    torch.manual_seed(seed)
    model.train()
    fit(model, x, y, settings)
    model.eval()
    zero_masked(model)
    if any(not torch.equal(m, layer.mask) for m, layer in zip(masks, model.layers)):
        raise RuntimeError("fine-tuning changed a pruning mask")


# --------------------------------------------------------------------------- report pieces
def kept_edge_rows(model: KAN, original_index: list[torch.Tensor], scores: Importance) -> list[dict]:
    """Every active edge of the pruned ``model`` with its importance, labelled with original
    node indices; sorted by layer, then decreasing attribution."""
    rows = []
    last = len(model.layers)

    def label(layer: int, node: int) -> str:
        return node_label(model, layer, node) if layer in (0, last) else f"h{layer}.{int(original_index[layer][node])}"

    for index, layer in enumerate(model.layers):
        owner = subnode_owner(layer.shape).tolist()
        first_sub = [owner.index(node) for node in range(layer.shape.n_out)]  # first subnode of each node
        src, sub = (layer.mask > 0).nonzero(as_tuple=True)
        attribution = scores.attribution[index][src, sub].tolist()
        magnitude = scores.magnitude[index][src, sub].tolist()
        for s, j, a, m in sorted(zip(src.tolist(), sub.tolist(), attribution, magnitude), key=lambda t: -t[2]):
            node = owner[j]
            factor = j - first_sub[node] if node >= layer.shape.n_sum else None
            rows.append({
                "layer": index,
                "source": label(index, s),
                "target": label(index + 1, node),
                "factor": factor,
                "attribution": a,
                "magnitude": m,
            })
    return rows


def node_rows(model: KAN, scores: Importance, keep: list[torch.Tensor]) -> list[dict]:
    """Per subnode of the original ``model`` (``factor``: position in a multiplication node, else
    None): entropy (nats) of its incoming-edge magnitudes, the effective number of inputs
    ``exp(H)``, node score and whether the node was kept."""
    rows = []
    for index, layer in enumerate(model.layers):
        owner = subnode_owner(layer.shape)
        first_sub = torch.searchsorted(owner, owner)  # first subnode of each subnode's node
        active_in = (layer.mask > 0).sum(dim=0)
        for j, (node, h, count) in enumerate(zip(owner.tolist(), scores.entropy[index].tolist(), active_in.tolist())):
            rows.append({
                "layer": index + 1, "node": node_label(model, index + 1, node), "subnode": j,
                "factor": j - int(first_sub[j]) if node >= layer.shape.n_sum else None,
                "entropy": h, "effective_inputs": math.exp(h), "active_inputs": int(count),
                "score": float(scores.node_scores[index + 1][node]), "kept": bool(keep[index + 1][node]),
            })
    return rows


# --------------------------------------------------------------------------- the family's part of the prune stage
class KANPruner:
    """A KAN's part of the prune stage (``kanx.pruning.stage``): edges and hidden nodes as units,
    R² against the original (and against the targets when given) as the guard, constant nodes
    folded and useless nodes dropped exactly, survivors retrained with the training run's
    sparsity loss."""

    def context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def checked_rows(self, model: KAN, x: torch.Tensor | None, y: torch.Tensor | None,
                     settings: PruneSettings) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
        if settings.feature_threshold is not None:
            raise KanxError("--feature-threshold applies to KarSein models; use --edge-threshold/--node-threshold for a KAN")
        x = model.sample_inputs if x is None else x
        if x.ndim != 2 or x.shape[1] != model.n_inputs or x.shape[0] < 10:
            raise KanxError(f"--data: pruning needs at least 10 input rows of {model.n_inputs} columns; the model stores fewer")
        targets = 1 if model.classes is not None else model.n_outputs
        if y is not None and (y.ndim != 2 or y.shape != (x.shape[0], targets)):
            raise KanxError(f"targets must have shape [{x.shape[0]}, {targets}]")
        return x.float(), y, []

    def guard(self, model: KAN, x_hold: torch.Tensor, y_hold: torch.Tensor | None,
              settings: PruneSettings) -> tuple[FidelityGuard, HeldOut]:
        if model.classes is not None:
            return classifier_guard(model, x_hold, None if y_hold is None else y_hold[:, 0], settings.min_fidelity)
        return make_guard(model, x_hold, None if y_hold is None else y_hold.float(), settings.min_fidelity)

    def thresholds(self, settings: PruneSettings) -> dict[str, float]:
        return {name: value for name, value in (("--edge-threshold", settings.edge_threshold),
                                                ("--node-threshold", settings.node_threshold)) if value is not None}

    def importance(self, model: KAN, x_fit: torch.Tensor) -> Importance:
        with torch.no_grad():
            return importance(model, x_fit)

    def auto_masks(self, model: KAN, x_fit: torch.Tensor, guard: FidelityGuard) -> list[torch.Tensor]:
        return auto_masks(model, x_fit, guard)

    def threshold_masks(self, model: KAN, before: Importance, settings: PruneSettings) -> list[torch.Tensor]:
        return threshold_masks(model, before, settings.edge_threshold, settings.node_threshold)

    def applied(self, model: KAN, masks: list[torch.Tensor], x_fit: torch.Tensor,
                option: str) -> tuple[KAN, list[torch.Tensor], list[str]]:
        return pruned_network(model, masks, x_fit[:1], option)

    def retraining_targets(self, original: KAN, x_fit: torch.Tensor, y_fit: torch.Tensor | None) -> torch.Tensor:
        if original.classes is not None or y_fit is None:  # a classifier's survivors learn the original's logits
            with torch.no_grad():
                return original(x_fit)
        return y_fit.float()

    def retrained(self, pruned: KAN, x_fit: torch.Tensor, target: torch.Tensor, settings: PruneSettings) -> KAN:
        tuned = copy.deepcopy(pruned)
        retrain_survivors(tuned, x_fit, target, settings.finetune_steps, settings.lamb, settings.lr, settings.seed)
        return tuned

    def passes(self, tuned: KAN, guard: FidelityGuard, held: HeldOut, settings: PruneSettings) -> bool:
        return model_passes(guard, held, tuned)

    def tuned_note(self, steps: int, labelled: bool) -> str:
        return f"fine-tuned {steps} steps"

    def report(self, model: KAN, pruned: KAN, kept: list[torch.Tensor], before: Importance, rows: PruneRows,
               guard: FidelityGuard, held: HeldOut, mode: str, settings: PruneSettings, notes: list[str]) -> PruneReport:
        reported = {"edge_threshold": settings.edge_threshold, "node_threshold": settings.node_threshold,
                    "min_fidelity": settings.min_fidelity, "finetune_steps": settings.finetune_steps, "seed": settings.seed,
                    "holdout": settings.holdout}
        return build_report(model, pruned, kept, before, rows.x_fit, guard, held, mode, reported, notes)

    def provenance_entry(self, report: PruneReport) -> dict:
        return provenance_entry(report)


def pruned_network(model: KAN, masks: list[torch.Tensor], x_row: torch.Tensor, option: str) -> tuple[KAN, list[torch.Tensor], list[str]]:
    """Apply ``masks``, fold constants, refuse a cut output (naming ``option``), drop useless
    hidden nodes and zero masked parameters: ``(pruned, kept nodes per layer, notes)``."""
    work = with_masks(model, masks)
    folded = fold_constant_nodes(work, x_row)
    check_outputs_reachable(work, option)
    keep = kept_nodes(work)
    pruned = shrink(work, keep)
    zero_masked(pruned)
    notes = [f"folded {folded} constant node(s) into the next layer's biases"] if folded else []
    if any(model.layer_norm[1:]):
        notes.append("nodes feeding layer-normalised layers are kept (only masked)")
    return pruned, keep, notes


@dataclass
class HeldOut:
    """The held-out rows the guard judges on: inputs ``x [N, n_in]``, optional targets ``y [N, n_out]``
    and the floor for R² against them, and the original network's R² on them. For a classifier:
    ``labels [N]`` (class indices, optional), the original's class ``probabilities [N, C]`` and
    its log-loss on the labels (``log_loss_before``)."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    target_floor: float = -float("inf")
    target_before: float | None = None
    labels: torch.Tensor | None = None
    probabilities: torch.Tensor | None = None
    log_loss_before: float | None = None

    def target_r2(self, outputs: torch.Tensor) -> torch.Tensor:
        """``[B, N, O]`` → R² against the targets, min over outputs: ``[B]``."""
        return r2(outputs, self.y, dim=-2).min(dim=-1).values

    def divergence(self, outputs: torch.Tensor) -> torch.Tensor:
        """A classifier's logits ``[B, N, L]`` → the mean KL divergence (nats) of the original's
        class probabilities from theirs: ``[B]``."""
        logs = torch.stack([log_probabilities(logits) for logits in outputs])
        p = self.probabilities.double()
        return (p * (torch.log(p.clamp(min=1e-300)) - logs)).sum(dim=-1).mean(dim=-1)

    def label_log_loss(self, outputs: torch.Tensor) -> torch.Tensor:
        """A classifier's logits ``[B, N, L]`` → log-loss on the labels: ``[B]``."""
        return torch.stack([cross_entropy(logits.double(), self.labels) for logits in outputs])


KL_ALLOWANCE = 0.02  # nats per row that a pruned classifier's probabilities may drift (and its log-loss rise)


def classifier_guard(model: KAN, x_hold: torch.Tensor, labels: torch.Tensor | None,
                     min_agreement: float) -> tuple[FidelityGuard, HeldOut]:
    """A classifier's guard on held-out rows: the pruned network decides the original's class on
    at least ``min_agreement`` of them, its class probabilities stay within ``KL_ALLOWANCE`` nats
    (mean KL divergence) of the original's and, with ``labels [N]``, its log-loss on them rises
    by at most as much."""
    with torch.no_grad():
        reference = model(x_hold)
        first_edges = model.layers[0].edge_values(x_hold)

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        return batched_outputs(model, x_hold, layer_masks(model, flat), first_edges)

    chosen = decisions(reference)
    held = HeldOut(x_hold, labels=None if labels is None else labels.long(), probabilities=probabilities(reference))

    def agreement(out: torch.Tensor) -> torch.Tensor:
        return torch.stack([(decisions(logits) == chosen).double().mean() for logits in out])

    def close(out: torch.Tensor) -> torch.Tensor:
        ok = held.divergence(out) <= KL_ALLOWANCE
        if held.labels is not None:
            ok = ok & (held.label_log_loss(out) <= held.log_loss_before + KL_ALLOWANCE)
        return ok

    if held.labels is not None:
        held.log_loss_before = float(cross_entropy(reference.double(), held.labels))
    return FidelityGuard(outputs, reference, min_agreement, close, agreement), held


def make_guard(model: KAN, x_hold: torch.Tensor, y_hold: torch.Tensor | None, min_fidelity: float) -> tuple[FidelityGuard, HeldOut]:
    """The fidelity guard on held-out rows; against targets the floor is ``min_fidelity``, or the
    original's own R² minus the same allowance ``1 - min_fidelity`` when the original fits worse."""
    with torch.no_grad():
        reference = model(x_hold)
        first_edges = model.layers[0].edge_values(x_hold)

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        return batched_outputs(model, x_hold, layer_masks(model, flat), first_edges)

    if y_hold is None:
        return FidelityGuard(outputs, reference, min_fidelity), HeldOut(x_hold)
    before = float(r2(reference, y_hold, dim=0).min())
    held = HeldOut(x_hold, y_hold, min(min_fidelity, before - (1 - min_fidelity)), before)
    return FidelityGuard(outputs, reference, min_fidelity, lambda out: held.target_r2(out) >= held.target_floor), held


def model_passes(guard: FidelityGuard, held: HeldOut, model: KAN) -> bool:
    """Whether another network (a pruned or fine-tuned one) keeps the guard on the held-out rows."""
    with torch.no_grad():
        outputs = model(held.x)[None]
    ok = bool(guard.fidelity(outputs)[0] >= guard.min_fidelity)
    return ok and (guard.extra is None or bool(guard.extra(outputs)[0]))


def build_report(model: KAN, pruned: KAN, keep: list[torch.Tensor], before: Importance, x_fit: torch.Tensor,
                 guard: FidelityGuard, held: HeldOut, mode: str, settings: dict, notes: list[str]) -> PruneReport:
    with torch.no_grad():
        outputs = pruned(held.x)[None]
        fidelity = guard.fidelity(outputs)
        target = held.target_r2(outputs) if held.y is not None else None
        after = importance(pruned, x_fit)
        classification = None
        if held.probabilities is not None:
            classification = {"kl_divergence": float(held.divergence(outputs)[0]),
                              "log_loss": None if held.labels is None else (held.log_loss_before, float(held.label_log_loss(outputs)[0]))}
    original_index = [k.nonzero().flatten() for k in keep]
    edges = kept_edge_rows(pruned, original_index, after)
    used = (pruned.layers[0].mask > 0).any(dim=1)
    unused = [name for name, u in zip(pruned.meta.input_names, used.tolist()) if not u]
    nothing = pruned.widths == model.widths and active_edges(pruned) == active_edges(model)
    if nothing:
        measure = "decision agreement" if held.probabilities is not None else "R²"
        notes.append("nothing to prune: every edge is needed" + (f" for {measure} >= {guard.min_fidelity}" if mode == "auto" else ""))
    return PruneReport(
        mode=mode, settings=settings, widths_before=list(model.widths), widths_after=list(pruned.widths),
        edges_before=active_edges(model), edges_after=active_edges(pruned),
        parameters_before=model.parameter_count(), parameters_after=pruned.parameter_count(),
        fidelity=float(fidelity[0]), target_r2=None if target is None else (held.target_before, float(target[0])),
        holdout_rows=int(held.x.shape[0]), edges=edges, nodes=node_rows(model, before, keep),
        unused_inputs=unused, nothing_pruned=nothing, notes=notes, classification=classification,
    )


def provenance_entry(report: PruneReport) -> dict:
    """The compact record of the pruning stored in the checkpoint's provenance (unset options left out)."""
    entry = {"mode": report.mode, **{k: v for k, v in report.settings.items() if v is not None and k != "holdout"}}
    if report.mode == "threshold":
        entry.pop("min_fidelity")
    if not entry.get("finetune_steps"):
        entry.pop("finetune_steps")
    entry.update({"fidelity_r2": round(report.fidelity, 6), "widths_before": report.widths_before,
                  "edges": [report.edges_before, report.edges_after]})
    if report.target_r2 is not None:
        entry["target_r2"] = [round(v, 6) for v in report.target_r2]
    return entry
