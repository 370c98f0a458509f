"""``InteractionSettings``: every interaction option, validated where it is stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from kanx.core.errors import KanxError
from kanx.core.resources import check_resources

if TYPE_CHECKING:
    import sympy

MAX_ORDER = 8  # a set of k inputs costs up to 2^k evaluations of the rows


@dataclass(frozen=True)
class InteractionSettings:
    """Options of ``kanx.interactions`` (CLI flag in brackets).

    ``threshold`` [--threshold]: the own share of the output (KAN) or score (KarSein) variance an
    interaction set must carry to be reported, beside the noise floor; ``None`` takes the family's
    default (KAN 3e-5: weak terms of a law matter, and none when held-out targets test the sets;
    KarSein 0.05: only visible shares of a click score do); ``product_threshold`` [--product-threshold]:
    residual below which a KAN product split is accepted; at most ``max_samples`` [--samples] rows are used; ``monte_carlo`` base points per
    functional-ANOVA estimate (KAN); ``max_order`` [--max-order]: the largest set tested; ``seed``
    [--seed] fixes subsampling, the partner rows and Monte Carlo draws; ``formulas`` [--formula]
    (KAN): one formula per output, as text in the input names (read by the safe parser) or a sympy
    expression, analysed beside the network.
    """

    threshold: float | None = None
    product_threshold: float = 0.1
    max_samples: int = 1000
    monte_carlo: int = 64
    max_order: int = 5
    seed: int = 0
    device: str = "cpu"
    max_memory: str | int | None = None
    formulas: tuple[str | sympy.Expr, ...] = ()

    def __post_init__(self) -> None:
        check_resources(self.device, self.max_memory)
        object.__setattr__(self, "formulas", tuple(self.formulas))
        if any(not isinstance(formula, str) and not is_expression(formula) for formula in self.formulas):
            raise KanxError("--formula: give each formula as text or a sympy expression")
        if (self.threshold is not None and not 0 < self.threshold < 1) or not self.product_threshold > 0:
            raise KanxError("--threshold must lie in (0, 1) and --product-threshold must be positive")
        if self.max_samples < 10:
            raise KanxError(f"--samples {self.max_samples}: need at least 10")
        if self.monte_carlo < 1:
            raise KanxError("interactions: monte_carlo must be >= 1")
        if not 2 <= self.max_order <= MAX_ORDER:
            raise KanxError(f"--max-order {self.max_order}: must lie in 2..{MAX_ORDER}")

    def to_dict(self) -> dict:
        return asdict(self) | {"formulas": [f if isinstance(f, str) else str(f) for f in self.formulas]}


def is_expression(value: object) -> bool:
    """Whether ``value`` is a sympy expression (sympy is imported only when a formula is given)."""
    import sympy

    return isinstance(value, sympy.Expr)
