"""Training KarSein click-through-rate models.

Loss = BCE(p, click) + lamb * sum over KarSein layers of
    (lamb_l1 * sum_ij A_ij + lamb_entropy * sum_j H_j),
with ``A_ij = |w_base[i, j]| + |w_sp[i, j]|`` the magnitude of the mixing weights of edge
``i → j`` and ``H_j`` the entropy of ``p_ij = A_ij / sum_i A_ij`` (sparse, few-input nodes).

Vocabularies are built from the training rows (tokens sorted; index ``len(vocab)`` is the
out-of-vocabulary row, which unknown tokens at predict time map to). kanx-trained models
combine the branches as ``sigmoid(vec_logit + bit_logit)`` (``combine = "sum"``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from kanx.core.classes import probability_log_loss
from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.core.numerics import magnitude_penalty, roc_auc, split_rows
from kanx.core.resources import check_resources, resolve_device
from kanx.families.karsein.model import KarSein, labels_from, normalise_token
from kanx.io.ctr import ClickTable
from kanx.training.kan import check_training_options

StepCallback = Callable[[int, float, float], None]


@dataclass
class KarSeinSettings:
    """Hyper-parameters of KarSein training (``kanx.train`` on a ``ClickTable``). ``pairwise`` lists vector-wise layer indices
    (0-based) whose input gets the pairwise products; ``epochs`` passes over the training rows;
    ``device`` where training runs (the model comes back on the CPU)."""

    emb_dim: int = 4
    bit_width: tuple[int, ...] = (8,)
    vec_width: tuple[int, ...] = (4,)
    pairwise: tuple[int, ...] = (0, 1)
    grid: int = 5
    k: int = 3
    epochs: int = 8
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 1e-5
    lamb: float = 0.0
    lamb_l1: float = 1.0
    lamb_entropy: float = 1.0
    seed: int = 0
    test_fraction: float = 0.2
    sample_rows: int = 1000
    device: str = "cpu"
    max_memory: str | int | None = None

    def __post_init__(self) -> None:
        check_resources(self.device, self.max_memory)
        for option, value, low in (("--emb-dim", self.emb_dim, 1), ("--epochs", self.epochs, 1),
                                   ("--batch-size", self.batch_size, 1), ("--grid", self.grid, 1), ("--k", self.k, 1)):
            if value < low:
                raise KanxError(f"{option} {value}: must be at least {low}")
        check_training_options(self.test_fraction, self.lr, self.lamb, self.lamb_l1, self.lamb_entropy)
        if min((*self.bit_width, *self.vec_width), default=1) < 1:
            raise KanxError("--bit-width and --vec-width: layer sizes must be positive")
        if any(not 0 <= p <= len(self.vec_width) for p in self.pairwise):
            raise KanxError(f"--pairwise {','.join(map(str, self.pairwise))}: layers must lie in 0..{len(self.vec_width)} "
                            "(one per --vec-width entry plus the last)")


@dataclass
class CTRMetrics:
    auc: float
    log_loss: float


@dataclass
class KarSeinResult:
    """A trained KarSein model with its AUC and log-loss on the training and the held-out rows."""

    model: KarSein
    train: CTRMetrics
    test: CTRMetrics

    def to_dict(self) -> dict:
        info = self.model.training_info
        return {"arch": "karsein", "fields": self.model.fields, "dense": self.model.dense,
                "vocabulary_sizes": {f: len(v) for f, v in self.model.vocabularies.items()},
                "train": asdict(self.train), "test": asdict(self.test),
                "epochs": info["settings"]["epochs"], "data_fingerprint": info["data_fingerprint"]}

    def __repr__(self) -> str:
        return f"KarSeinResult(fields {self.model.fields}, test AUC {self.test.auc:.4f}, log-loss {self.test.log_loss:.4f})"

    def _repr_html_(self) -> str:
        info = self.model.training_info
        rows = [(split, info[f"{split}_rows"], f"{m.auc:.4f}", f"{m.log_loss:.4f}")
                for split, m in (("train", self.train), ("test", self.test))]
        return html_table(("rows", "count", "AUC", "log-loss"), rows, f"kanx train: KarSein over {', '.join(self.model.fields)}")


def build_vocabularies(columns: dict[str, list[str]], fields: list[str]) -> dict[str, list[str]]:
    """Sorted distinct (normalised) tokens per field."""
    return {f: sorted({normalise_token(v) for v in columns[f]}) for f in fields}


def sparsity_penalty(model: KarSein, lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
    """L1 of the mixing-weight magnitudes plus each output node's entropy over its inputs."""
    total = model.head.weight.new_zeros(())
    for _, layer in model.all_layers():
        total = total + magnitude_penalty(layer.w_base.abs() + layer.w_sp.abs(), lamb_l1, lamb_entropy)
    return total


def ctr_metrics(model: KarSein, x: torch.Tensor, y: torch.Tensor) -> CTRMetrics:
    """AUC and log-loss of ``model`` on ``x [N, n_in]``, labels ``y [N]``."""
    if len(y) == 0:
        return CTRMetrics(float("nan"), float("nan"))
    with torch.no_grad():
        p = model(x)[:, 0].double().cpu().numpy()
    return CTRMetrics(auc=roc_auc(p, y.cpu().numpy()), log_loss=probability_log_loss(p, y.cpu().numpy()))


def train_karsein(table: ClickTable, settings: KarSeinSettings, on_step: StepCallback | None = None) -> KarSeinResult:
    """Fit a KarSein model to a click table (its fields, dense features and 0/1 target).

    ``on_step(epoch, train_loss, test_auc)`` is called after every epoch."""
    columns, target, fields, dense, source = table.columns, table.target, table.fields, table.dense, table.source
    if table.rows < 10:
        raise KanxError(f"{source or 'data'}: need at least 10 rows to train")
    y = labels_from(columns[target], target)
    model = KarSein(fields, build_vocabularies(columns, fields), settings.emb_dim, list(settings.bit_width),
                    list(settings.vec_width), list(settings.pairwise), dense, settings.grid, settings.k,
                    combine="sum", oov=True, output_name=target, seed=settings.seed)
    x = model.encode(columns, source or "data")
    train_idx, test_idx = split_rows(len(y), settings.test_fraction, settings.seed)
    device = resolve_device(settings.device)
    model.to(device)
    fit_karsein(model, x[train_idx].to(device), y[train_idx].to(device), settings, x[test_idx].to(device),
                y[test_idx].to(device), on_step)
    model.cpu().eval()
    sample = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(settings.seed))[: settings.sample_rows]
    model.sample_inputs = x[train_idx][sample].clone()
    train_metrics, test_metrics = ctr_metrics(model, x[train_idx], y[train_idx]), ctr_metrics(model, x[test_idx], y[test_idx])
    model.training_info = {
        "data_source": source, "data_fingerprint": fingerprint(x, y), "target": target, "seed": settings.seed,
        "train_rows": len(train_idx), "test_rows": len(test_idx), "settings": _jsonable(asdict(settings)),
        "metrics": {"train": asdict(train_metrics), "test": asdict(test_metrics)},
    }
    return KarSeinResult(model, train_metrics, test_metrics)


def fit_karsein(model: KarSein, x: torch.Tensor, y: torch.Tensor, settings: KarSeinSettings,
                x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
                on_step: StepCallback | None = None) -> None:
    """Mini-batch Adam on BCE + sparsity penalty, in place. ``x [N, n_in]``, ``y [N]``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed + 1)
    bce = torch.nn.BCEWithLogitsLoss()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order, total = torch.randperm(len(y), generator=generator), 0.0
        for start in range(0, len(y), settings.batch_size):
            batch = order[start : start + settings.batch_size].to(x.device)
            loss = bce(model.logit(x[batch])[:, 0], y[batch])
            if settings.lamb > 0:
                loss = loss + settings.lamb * sparsity_penalty(model, settings.lamb_l1, settings.lamb_entropy)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        model.eval()
        test_auc = ctr_metrics(model, x_test, y_test).auc if x_test is not None and y_test is not None else float("nan")
        if on_step is not None:
            on_step(epoch, total / len(y), test_auc)


def fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(x.numpy()).tobytes() + np.ascontiguousarray(y.numpy()).tobytes())
    return digest.hexdigest()[:16]


def _jsonable(value: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
