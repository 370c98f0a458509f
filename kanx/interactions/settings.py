"""``InteractionSettings``: every interaction option, validated where it is stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kanx.core.errors import KanxError
from kanx.core.resources import check_resources


@dataclass(frozen=True)
class InteractionSettings:
    """Options of ``kanx.interactions`` (CLI flag in brackets).

    ``threshold`` [--threshold]: pairwise strength (KAN) or share of the score variance (KarSein
    field sets) above which inputs interact; ``product_threshold`` [--product-threshold]: residual
    below which a KAN product split is accepted; at most ``max_samples`` [--samples] rows are used;
    ``monte_carlo`` base points per functional-ANOVA estimate (KAN); ``max_order``: the largest
    KarSein field set tested; ``seed`` [--seed] fixes subsampling and Monte Carlo draws.
    """

    threshold: float = 0.05
    product_threshold: float = 0.1
    max_samples: int = 1000
    monte_carlo: int = 64
    max_order: int = 4
    seed: int = 0
    device: str = "cpu"
    max_memory: str | int | None = None

    def __post_init__(self) -> None:
        check_resources(self.device, self.max_memory)
        if not self.threshold > 0 or not self.product_threshold > 0:
            raise KanxError("--threshold and --product-threshold must be positive")
        if self.max_samples < 10:
            raise KanxError(f"--samples {self.max_samples}: need at least 10")
        if self.monte_carlo < 1 or self.max_order < 2:
            raise KanxError("interactions: monte_carlo must be >= 1 and max_order >= 2")

    def to_dict(self) -> dict:
        return asdict(self)
