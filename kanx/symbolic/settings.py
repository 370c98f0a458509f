"""``SymbolifySettings``: every symbolify option, validated where it is stored."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from kanx.core.choices import ENGINES, FALLBACKS, STRATEGIES
from kanx.core.errors import KanxError
from kanx.core.resources import check_resources
from kanx.functions.library import build_library

DEFAULT_WORK = 1_000_000  # work units of structure search per output (kanx.core.budget)


@dataclass(frozen=True)
class SymbolifySettings:
    """Options of ``kanx.symbolify`` (CLI flag in brackets).

    ``engine`` [--engine] builtin | operon | pysr; ``lib`` [--lib] the builtin functions to try
    (comma text or names; all by default) and ``lib_add`` [--lib-add] functions of ``x`` to add;
    an edge becomes symbolic when a fit reaches ``r2_threshold`` [--r2-threshold], the simplest
    within ``tolerance`` [--tolerance] of the best winning; edges whose attribution is below
    ``negligible_threshold`` [--negligible-threshold] become constants; edges nothing fits stay
    ``fallback`` [--fallback] numeric or become a cubic (poly). ``finetune_steps`` [--finetune]
    LBFGS steps refit the formula's constants end to end; constants print with ``digits``
    [--digits] significant digits and snap to simple values within ``snap_tolerance``;
    ``simplify_timeout`` bounds sympy in seconds. ``strategy`` [--strategy] auto | edges |
    structure-first (``auto``: for a KAN with targets in the data both, and per output the
    formula that fits the held-out targets better), with ``budget`` [--budget] work units of search per output
    (``kanx.core.budget``: oracle rows, 1-D fits and refits counted; the same options give the same formula on any machine)
    and an optional wall-clock cap ``time_limit`` [--time-limit] in seconds per output (``None``: none); ``compose_limit``
    caps the terms a KarSein formula is expanded to, and the edge expressions one KAN subnode may
    inline (beyond it a layer's hidden nodes stay named, ``h1_1`` …, with their definitions). ``seed`` [--seed] fixes splits and engines.
    ``refine`` [--refine]: LBFGS steps of training on the data (which must hold the outputs)
    before extraction; ``None`` (``auto``) refines only a network whose R² on the data is below
    what the strategy needs (``kanx.symbolic.oracle``), 0 never refines.
    """

    engine: str = "builtin"
    lib: str | list[str] | None = None
    lib_add: tuple[str, ...] = field(default_factory=tuple)
    r2_threshold: float = 0.99
    tolerance: float = 2e-3
    negligible_threshold: float = 1e-2
    fallback: str = "numeric"
    finetune_steps: int = 0
    digits: int = 4
    snap_tolerance: float = 5e-4
    simplify_timeout: float = 10.0
    seed: int = 0
    strategy: str = "auto"
    budget: int = DEFAULT_WORK
    time_limit: float | None = None
    compose_limit: int = 1500
    refine: int | None = None
    device: str = "cpu"
    max_memory: str | int | None = None

    def __post_init__(self) -> None:
        check_resources(self.device, self.max_memory)
        object.__setattr__(self, "lib_add", tuple(self.lib_add))
        if self.engine not in ENGINES:
            raise KanxError(f"--engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.fallback not in FALLBACKS:
            raise KanxError(f"--fallback {self.fallback!r}: use numeric or poly")
        if self.strategy not in STRATEGIES:
            raise KanxError(f"--strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        if not 0 < self.r2_threshold <= 1:
            raise KanxError(f"--r2-threshold {self.r2_threshold}: must be in (0, 1]")
        if not 0 <= self.tolerance < 1:
            raise KanxError(f"--tolerance {self.tolerance}: must be in [0, 1)")
        if not self.negligible_threshold >= 0:
            raise KanxError(f"--negligible-threshold {self.negligible_threshold}: must be >= 0")
        if not 1 <= self.digits <= 15:
            raise KanxError(f"--digits {self.digits}: must be between 1 and 15")
        if self.finetune_steps < 0:
            raise KanxError(f"--finetune {self.finetune_steps}: must be >= 0")
        if self.refine == "auto":
            object.__setattr__(self, "refine", None)
        if self.refine is not None and (isinstance(self.refine, bool) or not isinstance(self.refine, int)
                                        or not 0 <= self.refine <= 100_000):
            raise KanxError(f"--refine {self.refine!r}: must be auto or a number of steps >= 0")
        if isinstance(self.budget, float) and math.isfinite(self.budget) and self.budget == int(self.budget):
            object.__setattr__(self, "budget", int(self.budget))
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise KanxError(f"--budget {self.budget!r}: must be a whole number of work units >= 1")
        if self.time_limit is not None and not (isinstance(self.time_limit, int | float) and self.time_limit > 0):
            raise KanxError(f"--time-limit {self.time_limit!r}: must be > 0 seconds")
        if not self.simplify_timeout > 0 or not self.snap_tolerance >= 0 or self.compose_limit < 1:
            raise KanxError("symbolify: simplify_timeout and compose_limit must be positive, snap_tolerance >= 0")
        build_library(self.lib, list(self.lib_add))  # --lib / --lib-add names and formulas, checked now

    def to_dict(self) -> dict:
        return asdict(self)
