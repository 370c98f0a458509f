"""The per-feature view of a KarSein model, shared by ``prune``, ``plot-activations`` and ``symbolify``.

A *feature* is one input ``i`` of one KarSein layer: its activation ``s_i`` (spline) and its
SiLU path, mixed into every output ``j`` as ``c_ij(x) = w_base[i, j]·silu(x_i) + w_sp[i, j]·s_i(x_i)``.
Layers are listed in ``model.all_layers()`` order (bit-wise layers, then vector-wise layers).

Labels (``feature_labels``): bit-wise layer 0 reads ``user[2]`` (field, embedding coordinate)
and the dense names; later bit-wise layers ``b1.4`` (hidden unit 4 of bit node layer 1);
vector-wise rows are ``user`` (a field), ``v1.3`` (hidden row 3 of vector node layer 1) and
products ``user⊙item`` / ``user⊙v1.2`` in ``pairwise`` layers.

Importance (``feature_importance``) on rows ``x``:

* magnitude: mean over samples (and, in the vector-wise branch, over the ``D`` coordinates) of
  ``sum_j |c_ij|`` — the quantity the L1 penalty acts on;
* attribution: propagated back from the logit. A branch scores its share of the logit spread
  (``std(branch) / (std(bit) + std(vec))``); a layer output ``j`` passes its score ``o_j`` to
  its features as ``o_j · std(c_ij) / std(sum_i c_ij)``; a feature scores the sum over ``j``;
  a hidden unit scores what the features reading it score (in a pairwise layer every product
  row ``a⊙c`` passes its score to hidden row ``c``). The last vector-wise layer is projected
  through the head (``sum_d h_d c_i0(x_{i,d})``) before taking spreads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kanx.families.karsein.model import KarSein, KarSeinLayer, pairwise_inputs

PRODUCT = "⊙"
CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- inputs
def branch_inputs(model: KarSein, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Inputs of every bit-wise layer ``[N, n_in]`` and vector-wise layer ``[N*D, n_in]``."""
    with torch.no_grad():
        emb = model.field_embeddings(x)
        h = torch.cat([emb.reshape(len(x), -1), x[:, model.n_fields :]], dim=1)
        bit = []
        for layer in model.bit_layers:
            bit.append(h)
            h = layer(h)
        vec, m = [], emb
        for v, layer in enumerate(model.vec_layers):
            if v in model.pairwise:
                m = pairwise_inputs(emb, m)
            vec.append(m.transpose(1, 2).reshape(-1, m.shape[1]))
            m = layer.forward_rows(m)
    return bit, vec



def default_rows(model: KarSein, rows: int, seed: int) -> torch.Tensor:
    """The stored sample, or ids drawn uniformly from each vocabulary (dense features 0)."""
    device = model.head.weight.device
    if len(model.sample_inputs):
        return model.sample_inputs[:rows].float().to(device)
    generator = torch.Generator().manual_seed(seed)
    ids = [torch.randint(0, len(model.vocabularies[f]), (rows,), generator=generator, device="cpu").float()
           for f in model.fields]
    return torch.cat([torch.stack(ids, dim=1), torch.zeros(rows, len(model.dense), device="cpu")], dim=1).to(device)



# --------------------------------------------------------------------------- structure
@dataclass
class FeatureLayer:
    """One KarSein layer seen feature by feature.

    ``name``: state-dict prefix (``bit_layers.0``); ``branch``: ``"bit"`` or ``"vec"``; ``index``:
    layer index in its branch; ``labels``: ``[n_in]`` readable names; ``fields``: ``[n_in, F]`` bool,
    the fields a feature reads directly; ``dense``: ``[n_in, n_dense]`` bool, likewise for dense
    features; ``hidden``: ``[n_in]`` long, the previous layer's output a feature reads (-1: none).
    """

    name: str
    branch: str
    index: int
    layer: KarSeinLayer
    labels: list[str]
    fields: torch.Tensor
    dense: torch.Tensor
    hidden: torch.Tensor

    @property
    def n_in(self) -> int:
        return self.layer.n_in


def bit_feature_layer(model: KarSein, index: int) -> FeatureLayer:
    """Layer ``index`` of the bit-wise branch (inputs ``f*D + d``, then the dense features)."""
    layer, n_fields, dim = model.bit_layers[index], model.n_fields, model.emb_dim
    device = layer.coef.device
    fields = torch.zeros(layer.n_in, n_fields, dtype=torch.bool, device=device)
    dense = torch.zeros(layer.n_in, len(model.dense), dtype=torch.bool, device=device)
    hidden = torch.full((layer.n_in,), -1, dtype=torch.long, device=device)
    if index == 0:
        labels = [f"{f}[{d}]" for f in model.fields for d in range(dim)] + list(model.dense)
        fields[torch.arange(n_fields * dim, device=device), torch.arange(n_fields, device=device).repeat_interleave(dim)] = True
        extra = torch.arange(len(model.dense), device=device)
        dense[n_fields * dim + extra, extra] = True
    else:
        labels = [f"b{index}.{i}" for i in range(layer.n_in)]
        hidden = torch.arange(layer.n_in, device=device)
    return FeatureLayer(f"bit_layers.{index}", "bit", index, layer, labels, fields, dense, hidden)


def vec_feature_layer(model: KarSein, index: int) -> FeatureLayer:
    """Layer ``index`` of the vector-wise branch: rows ``M_{v-1}`` or ``concat(X1, X1 ⊙ M_{v-1})``."""
    layer, n_fields = model.vec_layers[index], model.n_fields
    device = layer.coef.device
    rows = model.vec_widths[index]
    previous = list(model.fields) if index == 0 else [f"v{index}.{c}" for c in range(rows)]
    eye = torch.eye(n_fields, dtype=torch.bool, device=device)
    prev_fields = eye if index == 0 else torch.zeros(rows, n_fields, dtype=torch.bool, device=device)
    prev_hidden = torch.full((rows,), -1, dtype=torch.long, device=device) if index == 0 else torch.arange(rows, device=device)
    if index in model.pairwise:
        labels = list(model.fields) + [f"{a}{PRODUCT}{c}" for a in model.fields for c in previous]
        own = eye.repeat_interleave(rows, dim=0)  # [F*R, F]: field a
        fields = torch.cat([eye, own | prev_fields.repeat(n_fields, 1)])
        hidden = torch.cat([torch.full((n_fields,), -1, dtype=torch.long, device=device), prev_hidden.repeat(n_fields)])
    else:
        labels, fields, hidden = previous, prev_fields, prev_hidden
    dense = torch.zeros(layer.n_in, len(model.dense), dtype=torch.bool, device=device)
    return FeatureLayer(f"vec_layers.{index}", "vec", index, layer, labels, fields, dense, hidden)


def feature_layers(model: KarSein) -> list[FeatureLayer]:
    """Every layer, in ``model.all_layers()`` order (bit-wise first)."""
    return [bit_feature_layer(model, i) for i in range(len(model.bit_layers))] + [
        vec_feature_layer(model, v) for v in range(len(model.vec_layers))
    ]


def layer_sizes(model: KarSein) -> list[int]:
    return [layer.n_in for _, layer in model.all_layers()]


def current_masks(model: KarSein) -> torch.Tensor:
    """All layers' masks concatenated: ``[T]`` bool, ``T = sum of n_in``."""
    return torch.cat([layer.mask > 0 for _, layer in model.all_layers()])


def split_flat(model: KarSein, flat: torch.Tensor) -> list[torch.Tensor]:
    """``[..., T]`` → one ``[..., n_in]`` tensor per layer."""
    return list(torch.split(flat, layer_sizes(model), dim=-1))


# --------------------------------------------------------------------------- evaluation
def layer_inputs(model: KarSein, x: torch.Tensor) -> list[torch.Tensor]:
    """Input of every layer: bit-wise ``[N, n_in]``, vector-wise ``[N*D, n_in]`` (row ``n*D + d``)."""
    bit, vec = branch_inputs(model, x)
    return bit + vec


def contributions(layer: KarSeinLayer, z: torch.Tensor) -> torch.Tensor:
    """``c_ij`` on inputs ``z [M, n_in]`` → ``[M, n_in, n_out]`` (masked features give 0)."""
    keep = layer.mask[None, :, None]
    silu = nn.functional.silu(z)[..., None] * layer.w_base[None]
    return (silu + layer.activations(z)[..., None] * layer.w_sp[None]) * keep


def _chunks(z: torch.Tensor, layer: KarSeinLayer) -> list[torch.Tensor]:
    rows = max(1, CHUNK_ELEMENTS // max(1, layer.n_in * layer.n_out))
    return list(torch.split(z, rows))


def magnitude(layer: KarSeinLayer, z: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``sum_j |c_ij|``: ``[n_in]`` (computed in row chunks)."""
    total = torch.zeros(layer.n_in, dtype=torch.float64, device=z.device)
    for part in _chunks(z, layer):
        total += contributions(layer, part).abs().sum(dim=(0, 2)).double()
    return (total / max(1, z.shape[0])).float()


def spreads(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Std over rows of each ``c_ij`` and of each output ``sum_i c_ij``: ``[n_in, n_out]``, ``[n_out]``."""
    return values.std(dim=0, unbiased=False), values.sum(dim=1).std(dim=0, unbiased=False)


def projected_last_vec(model: KarSein, z: torch.Tensor) -> torch.Tensor:
    """Contributions of the last vector-wise layer to the head output: ``[N, n_in, 1]``."""
    layer, dim = model.vec_layers[-1], model.emb_dim
    values = contributions(layer, z)[..., 0]  # [N*D, n_in]
    weights = model.head.weight[0]
    return (values.reshape(-1, dim, layer.n_in) * weights[None, :, None]).sum(dim=1)[..., None]


@dataclass
class FeatureImportance:
    """Per layer (``model.all_layers()`` order): ``magnitude[l]``, ``attribution[l]`` ``[n_in]``;
    ``fields``: ``[F]`` summed attribution of the features reading each field; ``branch_share``:
    ``{"bit": s, "vec": s}``."""

    magnitude: list[torch.Tensor]
    attribution: list[torch.Tensor]
    fields: torch.Tensor
    branch_share: dict[str, float]

    def flat(self, kind: str = "attribution") -> torch.Tensor:
        return torch.cat(getattr(self, kind))


def branch_logits(model: KarSein, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bit, vec)`` parts of the logit ``[N]`` (bit passed through sigmoid for ``double_sigmoid``)."""
    emb = model.field_embeddings(x)
    bit = model.bit_logit(emb, x[:, model.n_fields :])[:, 0]
    if model.combine == "double_sigmoid":
        bit = torch.sigmoid(bit)
    return bit, model.vec_logit(emb)[:, 0]


@torch.no_grad()
def feature_importance(model: KarSein, x: torch.Tensor) -> FeatureImportance:
    """Magnitude and attribution of every feature on rows ``x [N, F + n_dense]``."""
    layers = feature_layers(model)
    inputs = layer_inputs(model, x)
    bit, vec = branch_logits(model, x)
    spread = {"bit": float(bit.std(unbiased=False)), "vec": float(vec.std(unbiased=False))}
    total = max(spread["bit"] + spread["vec"], 1e-12)
    share = {k: v / total for k, v in spread.items()}
    mags = [magnitude(f.layer, z) for f, z in zip(layers, inputs)]
    attribution: list[torch.Tensor] = [torch.empty(0, device=x.device)] * len(layers)
    for branch in ("bit", "vec"):
        positions = [k for k, f in enumerate(layers) if f.branch == branch]
        out_score = torch.full((1,), share[branch], device=x.device)
        for k in reversed(positions):
            feature, z = layers[k], inputs[k]
            values = projected_last_vec(model, z) if k == positions[-1] and branch == "vec" else contributions(feature.layer, z)
            edge, node = spreads(values)
            attribution[k] = (edge * (out_score / (node + 1e-8))[None]).sum(dim=1)
            out_score = hidden_scores(feature, attribution[k], model)
    no_fields = torch.zeros(model.n_fields, device=x.device)
    fields = sum(((f.fields.float() * a[:, None]).sum(dim=0) for f, a in zip(layers, attribution)), no_fields)
    return FeatureImportance(mags, attribution, fields, share)


def hidden_scores(feature: FeatureLayer, scores: torch.Tensor, model: KarSein) -> torch.Tensor:
    """Scores of the previous layer's outputs: what the features reading them score."""
    rows = model.bit_widths[feature.index] if feature.branch == "bit" else model.vec_widths[feature.index]
    reads = feature.hidden >= 0
    return torch.zeros(rows, device=scores.device).index_add_(0, feature.hidden[reads], scores[reads])


# --------------------------------------------------------------------------- liveness
def live_features(model: KarSein, flat: torch.Tensor) -> torch.Tensor:
    """``flat [T]`` bool masks with every feature that cannot reach the logit switched off: a
    feature is live when its mask is on and it has a non-zero mixing weight into an output that
    some live feature of the next layer reads (the last layers' outputs are the logit)."""
    layers = feature_layers(model)
    masks = split_flat(model, flat.clone())
    for branch in ("bit", "vec"):
        positions = [k for k, f in enumerate(layers) if f.branch == branch]
        used = torch.ones(1, dtype=torch.bool, device=flat.device)
        for k in reversed(positions):
            layer = layers[k].layer
            weights = (layer.w_base != 0) | (layer.w_sp != 0)  # [n_in, n_out]
            masks[k] = masks[k] & (weights & used[None]).any(dim=1)
            read = layers[k].hidden[masks[k] & (layers[k].hidden >= 0)]
            used = torch.zeros(layers[k - 1].layer.n_out if k != positions[0] else 0, dtype=torch.bool, device=flat.device)
            used[read] = True
    return torch.cat(masks)


def field_usage(model: KarSein, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which fields ``[F]`` and dense features ``[n_dense]`` some active feature reads directly."""
    layers = feature_layers(model)
    masks = split_flat(model, flat)
    fields = torch.zeros(model.n_fields, dtype=torch.bool, device=flat.device)
    dense = torch.zeros(len(model.dense), dtype=torch.bool, device=flat.device)
    for feature, mask in zip(layers, masks):
        fields |= (feature.fields & mask[:, None]).any(dim=0)
        dense |= (feature.dense & mask[:, None]).any(dim=0)
    return fields, dense


def field_groups(model: KarSein) -> torch.Tensor:
    """``[F, T]`` bool: the features that read each field directly."""
    return torch.cat([f.fields.T for f in feature_layers(model)], dim=1)


@torch.no_grad()
def apply_masks(model: KarSein, flat: torch.Tensor) -> None:
    """Set the layers' masks from ``flat [T]`` and zero the pruned features' parameters in place
    (their contribution is zero either way)."""
    for (_, layer), mask in zip(model.all_layers(), split_flat(model, flat)):
        layer.mask.copy_(mask.float())
        layer.coef.mul_(layer.mask[:, None])
        layer.w_base.mul_(layer.mask[:, None])
        layer.w_sp.mul_(layer.mask[:, None])
