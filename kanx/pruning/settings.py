"""``PruneSettings``: every pruning option, validated where it is stored (the CLI only builds it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kanx.core.errors import KanxError
from kanx.core.resources import check_resources


@dataclass(frozen=True)
class PruneSettings:
    """Options of ``kanx.prune`` (CLI flag in brackets).

    Threshold mode when a threshold is given, else auto mode:
    ``edge_threshold`` / ``node_threshold`` (KAN; [--edge-threshold] / [--node-threshold]) keep edges
    / hidden nodes scoring at least this fraction of their layer's best; ``feature_threshold``
    (KarSein; [--feature-threshold]) the same for features. Auto mode removes what it can while R²
    against the original on a held-out ``holdout`` fraction of the rows stays >= ``min_fidelity``
    [--min-fidelity] (and, with labels, KarSein's AUC drops by at most ``max_auc_drop``
    [--max-auc-drop]). ``finetune_steps`` [--finetune] > 0 retrains the survivors with sparsity
    weight ``lamb`` [--lamb] (default: the model's training value) and learning rate ``lr`` [--lr].
    ``seed`` [--seed] fixes the held-out split and the retraining.
    """

    edge_threshold: float | None = None
    node_threshold: float | None = None
    feature_threshold: float | None = None
    min_fidelity: float = 0.99
    max_auc_drop: float = 0.005
    finetune_steps: int = 0
    lamb: float | None = None
    lr: float = 1e-3
    holdout: float = 0.3
    seed: int = 0
    device: str = "cpu"
    max_memory: str | int | None = None

    def __post_init__(self) -> None:
        check_resources(self.device, self.max_memory)
        for option, value in (("--edge-threshold", self.edge_threshold), ("--node-threshold", self.node_threshold),
                              ("--feature-threshold", self.feature_threshold)):
            if value is not None and not 0 <= value <= 1:
                raise KanxError(f"{option} {value}: must be in [0, 1] (a fraction of the layer's largest score)")
        if not 0 < self.min_fidelity <= 1:
            raise KanxError(f"--min-fidelity {self.min_fidelity}: must be in (0, 1]")
        if not 0 <= self.max_auc_drop <= 1:
            raise KanxError(f"--max-auc-drop {self.max_auc_drop}: must be in [0, 1]")
        if self.finetune_steps < 0:
            raise KanxError(f"--finetune {self.finetune_steps}: must be >= 0")
        if self.lamb is not None and self.lamb < 0:
            raise KanxError(f"--lamb {self.lamb}: must be >= 0")
        if not self.lr > 0:
            raise KanxError(f"--lr {self.lr}: must be positive")
        if not 0 < self.holdout < 1:
            raise KanxError(f"holdout {self.holdout}: must be in (0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)
