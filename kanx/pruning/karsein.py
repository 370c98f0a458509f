"""Pruning a KarSein model feature by feature (``kanx prune`` on a KarSein checkpoint).

A feature (one input of one layer, see ``kanx.families.karsein.features``) is dropped by setting its
``mask`` to 0: its contribution becomes exactly zero and stays so in the saved checkpoint.

* threshold mode: keep features whose magnitude is at least ``feature_threshold`` × the best of
  their layer;
* auto mode: drop whole fields first (least attributed first), then single features (attribution
  recomputed on the field-pruned model), each removal kept only while a guard passes on held-out
  rows: R² of the pruned logit against the original >= ``min_fidelity`` and, when labels are given,
  AUC at most ``max_auc_drop`` below the original's. Candidates are tried as in ``kanx.pruning.kan``: a
  batched search for the longest passing prefix, then a batched sequential greedy pass.

Afterwards features that can no longer reach the logit are switched off too (exact), and the
report says which fields and dense features no active feature reads any more (dropped entirely).
``finetune_steps`` > 0 retrains the survivors full-batch (labels, or the original's probabilities
as soft labels); masks are buffers and masked weights are zero, so they get no update.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from kanx.core.classes import probability_log_loss
from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.core.numerics import r2, roc_auc, single_thread
from kanx.core.stage import result_dict
from kanx.families.checks import recorded_number
from kanx.families.karsein.features import (
    FeatureImportance,
    apply_masks,
    current_masks,
    default_rows,
    feature_importance,
    feature_layers,
    field_groups,
    field_usage,
    live_features,
    split_flat,
)
from kanx.families.karsein.model import KarSein, KarSeinLayer, pairwise_inputs
from kanx.pruning.search import FidelityGuard, grouped, remove_candidates, single_units
from kanx.pruning.settings import PruneSettings
from kanx.pruning.stage import PruneRows
from kanx.training.karsein import KarSeinSettings, fit_karsein

MAX_ELEMENTS = 1 << 24
MIN_ROWS = 10


# --------------------------------------------------------------------------- batched evaluation
@dataclass
class LayerInput:
    """A layer's activations on fixed input rows: ``silu`` and ``spline`` ``[M, n_in]``. Masks act
    after the activation, so the first layer of either branch is evaluated once for every mask set."""

    silu: torch.Tensor
    spline: torch.Tensor

    @classmethod
    def of(cls, layer: KarSeinLayer, rows: torch.Tensor) -> LayerInput:
        return cls(nn.functional.silu(rows), layer.activations(rows))

    def mixed(self, layer: KarSeinLayer, mask: torch.Tensor) -> torch.Tensor:
        """Outputs ``[B, M, n_out]`` under masks ``[B, n_in]`` (masks folded into the weights)."""
        keep = mask[:, :, None]
        return self.silu @ (keep * layer.w_base) + self.spline @ (keep * layer.w_sp)


def masked_layer(layer: KarSeinLayer, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``h [B, M, n_in]`` under masks ``mask [B, n_in]`` → ``[B, M, n_out]``."""
    flat = h.reshape(-1, layer.n_in)
    keep = mask[:, None, :]
    silu = nn.functional.silu(flat).reshape(h.shape) * keep
    spline = layer.activations(flat).reshape(h.shape) * keep
    return silu @ layer.w_base + spline @ layer.w_sp


class MaskedLogits:
    """Logits ``[B, N]`` of ``model`` on fixed rows ``x [N, F + n_dense]`` under ``B`` mask sets
    ``flat [B, T]``. The first bit-wise and vector-wise layers' activations are computed once; the
    later layers run batched over mask sets, in chunks bounded by ``MAX_ELEMENTS``."""

    def __init__(self, model: KarSein, x: torch.Tensor) -> None:
        self.model = model
        with torch.no_grad():
            self.emb = model.field_embeddings(x)  # [N, F, D]
            n, _, dim = self.emb.shape
            bit_rows = torch.cat([self.emb.reshape(n, -1), x[:, model.n_fields :]], dim=1)
            self.bit_first = LayerInput.of(model.bit_layers[0], bit_rows)
            m = self.emb[None]
            if 0 in model.pairwise:
                m = pairwise_inputs(m, m)
            self.vec_first = LayerInput.of(model.vec_layers[0], m.transpose(2, 3).reshape(n * dim, -1))
        later = [layer.n_in * max(1, layer.n_out, layer.coef.shape[1]) for layer in [*model.bit_layers[1:], *model.vec_layers[1:]]]
        widest = max([*later, model.bit_layers[0].n_out, model.vec_layers[0].n_out, 1])
        self.chunk = max(1, MAX_ELEMENTS // max(1, n * dim * widest))

    @torch.no_grad()
    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        n_bit = len(self.model.bit_layers)
        parts = []
        for start in range(0, flat.shape[0], self.chunk):
            masks = [m.float() for m in split_flat(self.model, flat[start : start + self.chunk])]
            bit = self.bit(masks[:n_bit])
            if self.model.combine == "double_sigmoid":
                bit = torch.sigmoid(bit)
            parts.append(self.vec(masks[n_bit:]) + bit)
        return torch.cat(parts)

    def bit(self, masks: list[torch.Tensor]) -> torch.Tensor:
        """Bit-wise logit ``[B, N]`` under per-layer masks ``[B, n_in]``."""
        h = self.bit_first.mixed(self.model.bit_layers[0], masks[0])
        for layer, mask in zip(self.model.bit_layers[1:], masks[1:]):
            h = masked_layer(layer, h, mask)
        return h[..., 0]

    def vec(self, masks: list[torch.Tensor]) -> torch.Tensor:
        """Vector-wise logit ``[B, N]`` under per-layer masks ``[B, n_in]``."""
        model, (n, _, dim) = self.model, self.emb.shape
        x1 = self.emb[None]
        out = self.vec_first.mixed(model.vec_layers[0], masks[0])  # [B, N*D, n_out]
        m = out.reshape(-1, n, dim, out.shape[-1]).transpose(2, 3)
        for v, (layer, mask) in enumerate(zip(model.vec_layers[1:], masks[1:]), start=1):
            if v in model.pairwise:
                m = pairwise_inputs(x1, m)
            rows = m.transpose(2, 3).reshape(m.shape[0], n * dim, -1)  # [B, N*D, rows]
            out = masked_layer(layer, rows, mask)  # [B, N*D, n_out]
            m = out.reshape(-1, n, dim, layer.n_out).transpose(2, 3)
        return m[:, :, 0, :] @ model.head.weight[0] + model.head.bias[0]


def batched_logits(model: KarSein, x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, N]`` of ``model`` on ``x [N, F + n_dense]`` under ``B`` mask sets ``flat [B, T]``."""
    return MaskedLogits(model, x)(flat)


# --------------------------------------------------------------------------- guard
@dataclass
class HeldOut:
    """Held-out rows ``x [N, F + n_dense]`` with the original's logits ``reference [N]`` and,
    when labelled, ``labels [N]`` and the lowest AUC a pruned model may have (``auc_floor``)."""

    x: torch.Tensor
    reference: torch.Tensor
    labels: np.ndarray | None = None
    auc_floor: float = -float("inf")


def guard_for(model: KarSein, held: HeldOut, min_fidelity: float) -> FidelityGuard:
    """The fidelity guard for masks of ``model``: logit R² against the original on the held-out
    rows >= ``min_fidelity`` and, with labels, AUC >= the floor."""

    logits = MaskedLogits(model, held.x)

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        return logits(flat)[..., None]

    def auc_holds(logits: torch.Tensor) -> torch.Tensor:
        aucs = [roc_auc(row, held.labels) for row in logits[..., 0].double().numpy()]
        return torch.tensor([not (a < held.auc_floor) for a in aucs])

    return FidelityGuard(outputs, held.reference[:, None], min_fidelity, auc_holds if held.labels is not None else None)


# --------------------------------------------------------------------------- search
def auto_masks(model: KarSein, x_fit: torch.Tensor, guard: FidelityGuard) -> torch.Tensor:
    """Fields first (by field attribution), then single features (attribution on the
    field-pruned model): ``[T]`` bool."""
    current = current_masks(model)
    scores = feature_importance(model, x_fit)
    current = remove_candidates(guard, current, grouped(field_groups(model), scores.fields, current))
    current = live_features(model, current)
    work = with_masks(model, current)
    current = remove_candidates(guard, current, single_units(feature_importance(work, x_fit).flat(), current))
    return live_features(model, current)


def threshold_masks(model: KarSein, scores: list[torch.Tensor], threshold: float) -> torch.Tensor:
    """Keep features with magnitude >= ``threshold`` × their layer's best: ``[T]`` bool."""
    keep = [s >= threshold * s.max() if s.numel() else s > 0 for s in scores]
    return live_features(model, current_masks(model) & torch.cat(keep) & (torch.cat(scores) > 0))


def with_masks(model: KarSein, flat: torch.Tensor) -> KarSein:
    """A deep copy of ``model`` carrying masks ``flat [T]`` (pruned parameters zeroed)."""
    work = copy.deepcopy(model)
    apply_masks(work, flat)
    return work


# --------------------------------------------------------------------------- report
@dataclass
class KarSeinPruneReport:
    """What ``kanx.prune`` did to a KarSein model.

    ``features_before``/``after``: active features per layer; ``fidelity``: R² of the pruned logit
    against the original on ``holdout_rows`` held-out rows; ``metrics``: AUC and log-loss of both
    models on all labelled rows (None without labels); ``dropped``: features switched off, with their
    importance in the original; ``dropped_fields``/``dropped_dense``: inputs no active feature reads;
    ``features``: every feature of the original with magnitude (share of its layer's best),
    attribution and whether it was kept."""

    mode: str
    settings: dict
    features_before: dict[str, int]
    features_after: dict[str, int]
    parameters_before: int
    parameters_after: int
    fidelity: float
    holdout_rows: int
    metrics: dict | None
    dropped: list[dict]
    dropped_fields: list[str]
    dropped_dense: list[str]
    features: list[dict]
    nothing_pruned: bool
    notes: list[str] = field(default_factory=list)
    model: KarSein | None = None  # the pruned model (set by ``kanx.prune``); not part of the report

    def to_dict(self) -> dict:
        return result_dict(self)

    def __repr__(self) -> str:
        before, after = sum(self.features_before.values()), sum(self.features_after.values())
        return f"KarSeinPruneReport(features {before} → {after}, fidelity R² {self.fidelity:.6g})"

    def _repr_html_(self) -> str:
        rows = [(f"features ({layer})", self.features_before[layer], self.features_after.get(layer, ""))
                for layer in self.features_before]
        rows.append(("parameters", self.parameters_before, self.parameters_after))
        if self.metrics is not None:
            rows += [(f"{name} ({self.metrics['rows']} labelled rows)", f"{self.metrics['before'][name]:.6g}",
                      f"{self.metrics['after'][name]:.6g}") for name in self.metrics["before"]]
        rows.append(("R² against the original", "", f"{self.fidelity:.6g}"))
        return html_table(("", "before", "after"), rows, f"kanx prune ({self.mode})")


def active_parameters(model: KarSein) -> int:
    """Parameters that still matter: active features' spline and mixing weights, the embedding
    tables of fields some feature reads, and the head."""
    flat = current_masks(model)
    used_fields, _ = field_usage(model, flat)
    count = sum(int(layer.mask.sum()) * (layer.coef.shape[1] + 2 * layer.n_out) for _, layer in model.all_layers())
    tables = sum(t.weight.numel() for t, used in zip(model.embeddings, used_fields.tolist()) if used)
    return count + tables + model.head.weight.numel() + model.head.bias.numel()


def feature_rows(model: KarSein, scores: FeatureImportance, kept: torch.Tensor) -> list[dict]:
    """Every feature of ``model`` with its importance (magnitude relative to the layer's best)."""
    rows = []
    for feature, mag, att, keep in zip(feature_layers(model), scores.magnitude, scores.attribution, split_flat(model, kept)):
        relative = mag / mag.max().clamp_min(1e-12)
        for i, label in enumerate(feature.labels):
            rows.append({"layer": feature.name, "feature": label, "magnitude": float(relative[i]),
                         "attribution": float(att[i]), "active": bool(feature.layer.mask[i] > 0), "kept": bool(keep[i])})
    return rows


def ctr_metrics(logits: torch.Tensor, labels: np.ndarray) -> dict:
    """AUC and log-loss of logits ``[N]`` on 0/1 ``labels``."""
    p = torch.sigmoid(logits.double()).numpy()
    return {"auc": roc_auc(p, labels), "log_loss": probability_log_loss(p, labels)}


def count_by_layer(model: KarSein, flat: torch.Tensor) -> dict[str, int]:
    return {name: int(m.sum()) for (name, _), m in zip(model.all_layers(), split_flat(model, flat))}


# --------------------------------------------------------------------------- API
def check_rows(model: KarSein, x: torch.Tensor, y: torch.Tensor | None) -> None:
    if x.ndim != 2 or x.shape[1] != model.n_inputs or x.shape[0] < MIN_ROWS:
        raise KanxError(f"need at least {MIN_ROWS} rows of {model.n_inputs} columns ({', '.join(model.input_names)}) "
                        "to prune; pass --data CSV")
    if y is not None and y.shape != (x.shape[0],):
        raise KanxError(f"labels must have shape [{x.shape[0]}]")


class KarSeinPruner:
    """KarSein's part of the prune stage (``kanx.pruning.stage``): features and whole fields as
    units, logit R² against the original (and AUC, with labels) as the guard, features that can
    no longer reach the logit switched off, survivors retrained full-batch on BCE."""

    def context(self) -> contextlib.AbstractContextManager:
        return single_thread()  # small tensors: a thread pool costs more than it saves

    def checked_rows(self, model: KarSein, x: torch.Tensor | None, y: torch.Tensor | None,
                     settings: PruneSettings) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
        if settings.edge_threshold is not None or settings.node_threshold is not None:
            raise KanxError("--edge-threshold/--node-threshold apply to KAN models; use --feature-threshold for KarSein")
        drawn = x is None and model.sample_inputs.shape[0] < MIN_ROWS
        x = (default_rows(model, 1000, settings.seed) if drawn else model.sample_inputs if x is None else x).float()
        check_rows(model, x, y)
        notes = ["the model stores no input sample: ids were drawn uniformly from the vocabularies (dense features 0); "
                 "pass --data for real rows"] if drawn else []
        return x, y, notes

    def guard(self, model: KarSein, x_hold: torch.Tensor, y_hold: torch.Tensor | None,
              settings: PruneSettings) -> tuple[FidelityGuard, HeldOut]:
        held = held_out(model, x_hold, y_hold, settings.max_auc_drop)
        return guard_for(model, held, settings.min_fidelity), held

    def thresholds(self, settings: PruneSettings) -> dict[str, float]:
        return {"--feature-threshold": settings.feature_threshold} if settings.feature_threshold is not None else {}

    def importance(self, model: KarSein, x_fit: torch.Tensor) -> FeatureImportance:
        return feature_importance(model, x_fit)

    def auto_masks(self, model: KarSein, x_fit: torch.Tensor, guard: FidelityGuard) -> torch.Tensor:
        return auto_masks(model, x_fit, guard)

    def threshold_masks(self, model: KarSein, before: FeatureImportance, settings: PruneSettings) -> torch.Tensor:
        return threshold_masks(model, before.magnitude, settings.feature_threshold)

    def applied(self, model: KarSein, masks: torch.Tensor, x_fit: torch.Tensor, option: str) -> tuple[KarSein, torch.Tensor, list[str]]:
        if not masks.any():
            raise KanxError(f"{option}: removes every feature; use a smaller value")
        return with_masks(model, masks), masks, []

    def retraining_targets(self, original: KarSein, x_fit: torch.Tensor, y_fit: torch.Tensor | None) -> torch.Tensor:
        return torch.sigmoid(original.logit(x_fit)[:, 0]) if y_fit is None else y_fit.float()

    def retrained(self, pruned: KarSein, x_fit: torch.Tensor, target: torch.Tensor, settings: PruneSettings) -> KarSein:
        tuned = copy.deepcopy(pruned)
        retrain_survivors(tuned, x_fit, target, settings.finetune_steps, settings.lamb, settings.lr, settings.seed)
        return tuned

    def passes(self, tuned: KarSein, guard: FidelityGuard, held: HeldOut, settings: PruneSettings) -> bool:
        return bool(guard_for(tuned, held, settings.min_fidelity).passes(current_masks(tuned)[None])[0])

    def tuned_note(self, steps: int, labelled: bool) -> str:
        return f"fine-tuned {steps} full-batch Adam steps on " + ("the labels" if labelled else "the original's probabilities")

    def report(self, model: KarSein, pruned: KarSein, kept: torch.Tensor, before: FeatureImportance, rows: PruneRows,
               guard: FidelityGuard, held: HeldOut, mode: str, settings: PruneSettings, notes: list[str]) -> KarSeinPruneReport:
        reported = {"feature_threshold": settings.feature_threshold, "min_fidelity": settings.min_fidelity,
                    "max_auc_drop": settings.max_auc_drop, "finetune_steps": settings.finetune_steps, "seed": settings.seed,
                    "holdout": settings.holdout}
        return build_report(model, pruned, before, rows.x, rows.y, held, mode, reported, notes)

    def provenance_entry(self, report: KarSeinPruneReport) -> dict:
        return provenance_entry(report)


def held_out(model: KarSein, x_hold: torch.Tensor, y_hold: torch.Tensor | None, max_auc_drop: float) -> HeldOut:
    with torch.no_grad():
        reference = model.logit(x_hold)[:, 0]
    held = HeldOut(x_hold, reference)
    if y_hold is not None:
        held.labels = y_hold.numpy()
        auc = roc_auc(reference.double().numpy(), held.labels)
        held.auc_floor = auc - max_auc_drop if auc == auc else -float("inf")
    return held


def retrain_survivors(model: KarSein, x: torch.Tensor, target: torch.Tensor, steps: int, lamb: float | None, lr: float,
                      seed: int) -> None:
    """Full-batch Adam on BCE against ``target [N]`` (0/1 or soft labels), in place; masks stay."""
    trained = model.training_info
    settings = KarSeinSettings(epochs=steps, batch_size=x.shape[0], lr=lr, seed=seed,
                               weight_decay=recorded_number(trained, "settings", "weight_decay", default=0.0),
                               lamb=recorded_number(trained, "settings", "lamb", default=0.0) if lamb is None else lamb,
                               lamb_l1=recorded_number(trained, "settings", "lamb_l1", default=1.0),
                               lamb_entropy=recorded_number(trained, "settings", "lamb_entropy", default=1.0))
    masks = current_masks(model)
    fit_karsein(model, x, target, settings)
    model.eval()
    apply_masks(model, masks)
    if not torch.equal(current_masks(model), masks):
        raise RuntimeError("retraining changed a pruning mask")


def build_report(model: KarSein, pruned: KarSein, before: FeatureImportance, x: torch.Tensor, y: torch.Tensor | None, held: HeldOut,
                 mode: str, settings: dict, notes: list[str]) -> KarSeinPruneReport:
    start, kept = current_masks(model), current_masks(pruned)
    with torch.no_grad():
        fidelity = float(r2(pruned.logit(held.x)[:, 0], held.reference))
        metrics = None
        if y is not None:
            labels = y.numpy()
            metrics = {"rows": int(x.shape[0]), "before": ctr_metrics(model.logit(x)[:, 0], labels),
                       "after": ctr_metrics(pruned.logit(x)[:, 0], labels)}
    rows = feature_rows(model, before, kept)
    dropped = [r for r in rows if r["active"] and not r["kept"]]
    fields_before, dense_before = field_usage(model, start)
    fields_after, dense_after = field_usage(pruned, kept)
    nothing = bool(torch.equal(start, kept))
    if nothing:
        notes.append("nothing to prune: every feature is needed" + (f" for R² >= {settings['min_fidelity']}" if mode == "auto" else ""))
    return KarSeinPruneReport(
        mode=mode, settings=settings, features_before=count_by_layer(model, start), features_after=count_by_layer(model, kept),
        parameters_before=active_parameters(model), parameters_after=active_parameters(pruned), fidelity=fidelity,
        holdout_rows=int(held.x.shape[0]), metrics=metrics, dropped=dropped,
        dropped_fields=[f for f, a, b in zip(model.fields, fields_before.tolist(), fields_after.tolist()) if a and not b],
        dropped_dense=[d for d, a, b in zip(model.dense, dense_before.tolist(), dense_after.tolist()) if a and not b],
        features=rows, nothing_pruned=nothing, notes=notes,
    )


def provenance_entry(report: KarSeinPruneReport) -> dict:
    """The compact record stored in the checkpoint's provenance (unset options left out)."""
    entry = {"mode": report.mode, **{k: v for k, v in report.settings.items() if v is not None and k != "holdout"}}
    if report.mode == "threshold":
        entry.pop("min_fidelity")
        entry.pop("max_auc_drop")
    if not entry.get("finetune_steps"):
        entry.pop("finetune_steps")
    entry.update({"fidelity_r2": round(report.fidelity, 6), "features": [sum(report.features_before.values()),
                                                                          sum(report.features_after.values())],
                  "dropped_fields": report.dropped_fields})
    return entry
