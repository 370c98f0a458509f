"""Class labels of a classifier and what its logits mean: probabilities, decisions, metrics.

A classifier over ``C`` classes has one logit (``C = 2``: the log-odds of the second class) or
``C`` logits (softmax). :class:`ClassLabels` holds the classes in the order their logits take;
the functions below turn logits ``[N, L]`` into probabilities ``[N, C]``, decisions ``[N]`` and
the metrics every stage reports (accuracy, log-loss, AUC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from kanx.core.errors import KanxError
from kanx.core.numerics import roc_auc

MAX_CLASSES = 100  # more distinct values than this in a label column is a regression target


@dataclass(frozen=True)
class ClassLabels:
    """The classes of a label column, in the order of the model's logits (numbers in numeric
    order, text in text order)."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise KanxError(f"classes: need at least two, got {list(self.names)}")
        if len(set(self.names)) != len(self.names):
            raise KanxError(f"classes: {list(self.names)} names a class twice")

    @property
    def logit_count(self) -> int:
        """Logits of a model kanx trains over these classes: 1 for two classes, one per class
        otherwise."""
        return 1 if len(self.names) == 2 else len(self.names)

    def accepts(self, logits: int) -> bool:
        """Whether a model with ``logits`` outputs can classify these classes: one per class, or
        one for two classes (an imported two-class model may have either)."""
        return logits == len(self.names) or (logits == 1 and len(self.names) == 2)

    def logit_names(self, logits: int) -> list[str]:
        """The output names of a model with ``logits`` outputs: ``logit(c)`` of the second class
        (one logit), or of each class."""
        named = self.names[1:] if logits == 1 else self.names
        return [f"logit({name})" for name in named]

    def indices(self, cells: list[str], where: str) -> torch.Tensor:
        """Class indices ``[N]`` (int64) of the label texts ``cells``; a label outside the
        classes is a ``KanxError`` naming ``where`` and the label."""
        index = {name: i for i, name in enumerate(self.names)}
        result = []
        for cell in cells:
            key = label_key(cell)
            if key not in index:
                raise KanxError(f"{where}: label {cell!r} is not one of the model's classes ({', '.join(self.names)})")
            result.append(index[key])
        return torch.tensor(result, dtype=torch.int64)

    @classmethod
    def from_cells(cls, cells: list[str], where: str) -> ClassLabels:
        """The classes found in the label texts ``cells``: numbers (``1`` and ``1.0`` are one
        class) in numeric order, otherwise texts in text order. Blank labels, a single class or
        more than ``MAX_CLASSES`` are ``KanxError`` naming ``where``."""
        if any(not cell.strip() for cell in cells):
            raise KanxError(f"{where}: a label cell is empty")
        distinct = sorted({label_key(cell) for cell in cells})
        numbers = [number_of(name) for name in distinct]
        if all(value is not None for value in numbers):
            distinct = [name for _, name in sorted(zip(numbers, distinct))]
        if len(distinct) < 2:
            only = distinct[0] if distinct else "none"
            raise KanxError(f"{where}: the labels hold one class only ({only}); a classifier needs two or more")
        if len(distinct) > MAX_CLASSES:
            raise KanxError(f"{where}: the labels hold {len(distinct)} distinct values, more than {MAX_CLASSES} classes; "
                            "is it a regression target (leave out --task classify)?")
        return cls(tuple(distinct))


def number_of(text: str) -> float | None:
    """``text`` as a finite number, or ``None``."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def label_key(cell: str) -> str:
    """The class a label text names: stripped, and a whole number written as one (``1.0`` → ``1``)."""
    text = cell.strip()
    value = number_of(text)
    if value is not None and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return text


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``[N, C]`` of logits ``[N, L]``: ``[1 − σ(z), σ(z)]`` for one logit,
    the softmax otherwise (computed in float64; no overflow at any logit)."""
    z = logits.double()
    if z.shape[1] == 1:
        positive = torch.sigmoid(z[:, 0])
        return torch.stack([1 - positive, positive], dim=1)
    return torch.softmax(z, dim=1)


def decisions(logits: torch.Tensor) -> torch.Tensor:
    """The predicted class index ``[N]`` of logits ``[N, L]`` (ties: the lower index)."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``log`` of :func:`probabilities`, ``[N, C]``, stable for large logits."""
    z = logits.double()
    if z.shape[1] == 1:
        return torch.stack([torch.nn.functional.logsigmoid(-z[:, 0]), torch.nn.functional.logsigmoid(z[:, 0])], dim=1)
    return torch.log_softmax(z, dim=1)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy (log-loss, nats) of logits ``[N, L]`` against class indices ``labels
    [N]``; ``weights [C]`` weigh each row by its class (a weighted mean). Differentiable."""
    labels = labels.long().reshape(-1)
    if logits.shape[1] == 1:
        per_row = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype), reduction="none")
    else:
        per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    if weights is None:
        return per_row.mean()
    row_weights = weights.to(per_row)[labels]
    return (per_row * row_weights).sum() / row_weights.sum()


def probability_log_loss(probabilities: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Mean log-loss (nats) of the positive class's probabilities ``[N]`` against 0/1 labels
    ``[N]``: :func:`cross_entropy` of their log-odds (probabilities clipped to [1e-7, 1 − 1e-7],
    so a confident mistake costs at most ~16 nats)."""
    p = torch.as_tensor(np.asarray(probabilities), dtype=torch.float64).reshape(-1).clamp(1e-7, 1 - 1e-7)
    log_odds = torch.log(p) - torch.log1p(-p)
    return float(cross_entropy(log_odds[:, None], torch.as_tensor(np.asarray(labels)).reshape(-1)))


def balanced_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``[C]`` weights ``N / (C · count_c)``: every class weighs as much in the loss as the others
    together would if they were as frequent (a class absent from ``labels`` gets weight 0)."""
    counts = torch.bincount(labels.long().reshape(-1), minlength=classes).double()
    return torch.where(counts > 0, len(labels) / (classes * counts.clamp(min=1)), torch.zeros_like(counts))


@dataclass
class ClassificationMetrics:
    """Accuracy, log-loss (nats) and AUC (one-vs-rest, averaged over classes, for more than two)
    of a classifier's logits on labelled rows; ``nan`` where there are no rows (AUC: where a
    class is missing)."""

    accuracy: float
    log_loss: float
    auc: float

    @property
    def error(self) -> float:
        """The held-out error that early stopping and the polish compare: the log-loss."""
        return self.log_loss

    @property
    def score(self) -> float:
        """Higher is better (for choosing among networks): minus the log-loss."""
        return -self.log_loss


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> ClassificationMetrics:
    """:class:`ClassificationMetrics` of logits ``[N, L]`` on class indices ``labels [N]``. A row
    whose logits are not all finite (a formula without a value there) counts as a wrong decision;
    log-loss and AUC read its non-finite logits as 0 (or ±the largest float)."""
    labels = labels.long().reshape(-1).cpu()
    if not len(labels):
        return ClassificationMetrics(float("nan"), float("nan"), float("nan"))
    finite = torch.isfinite(logits.detach().cpu()).all(dim=1)
    logits = torch.nan_to_num(logits.detach().cpu())
    accuracy = float(((decisions(logits) == labels) & finite).double().mean())
    loss = float(cross_entropy(logits.double(), labels))
    return ClassificationMetrics(accuracy, loss, class_auc(logits, labels))


def class_auc(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """AUC of the logits ``[N, L]`` against class indices ``labels [N]``: of the one logit for
    two classes; for more, each class's probability against the rest, averaged over the classes
    present with rows of other classes beside them (``nan`` when there is none)."""
    labels_np = labels.long().reshape(-1).cpu().numpy()
    if logits.shape[1] == 1:
        return roc_auc(logits[:, 0].double().cpu().numpy(), labels_np == 1)
    p = probabilities(logits).cpu().numpy()
    scores = [roc_auc(p[:, c], labels_np == c) for c in range(p.shape[1])]
    scores = [s for s in scores if not math.isnan(s)]
    return float(np.mean(scores)) if scores else float("nan")


def decision_agreement(first: torch.Tensor, second: torch.Tensor) -> float:
    """The share of rows on which logits ``first`` and ``second`` (``[N, L]`` each) decide the
    same class (``nan`` without rows; rows where either is not finite disagree)."""
    if not len(first):
        return float("nan")
    finite = torch.isfinite(first).all(dim=1) & torch.isfinite(second).all(dim=1)
    same = (decisions(torch.nan_to_num(first)) == decisions(torch.nan_to_num(second))) & finite
    return float(same.double().mean())
