"""Judging the network before trusting it as an oracle, and refining it on the data.

A formula extracted from a network is only as good as the network. With data that holds the
model's outputs, symbolify first measures the network's own R² on it, per output:

- ``good``: at least what the strategy needs (``NEEDED_R2``);
- ``poor``: below that, but the network still explains ``FAILED_BELOW`` of the variance;
- ``failed``: below ``FAILED_BELOW``: its formula is not presented as the law.

``refine`` continues training the network on the data (LBFGS, the model's own architecture)
before extraction: always for ``refine=N`` steps, or, by default (``None``), only when the
verdict is not ``good``. The judgement after refinement is what the result reports.

The judgement also estimates how noisy the targets are (``OracleQuality.noise``: the share of
each target's variance that is noise, from replicate rows or from the differences of the
network's residuals between nearby rows, :func:`kanx.core.numerics.noise_share`; ``None`` where
the rows cannot tell noise from the network's own error). Structure-first sets its acceptance and
"simplest within noise" margins from it (an unknown share counts as 0, the strict case), and
fidelity against the data is read against the floor ``1 − noise`` that no formula can beat on
noisy rows, only where the noise is known.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch

from kanx.core.numerics import noise_share, r2, split_rows
from kanx.families.kan.network import KAN
from kanx.training.kan import continuing_settings, fit

NEEDED_R2 = {"edges": 0.99, "structure-first": 0.999, "auto": 0.999}
FAILED_BELOW = 0.9
AUTO_REFINE_STEPS = 50
HELD_OUT_FRACTION = 0.2


@dataclass
class OracleQuality:
    """The network's R² on the data, per output, before and after refinement.

    ``r2``: per output, on the held-out rows of the data (all rows when there are too few);
    ``before``: the same before refinement (``None`` when not refined); ``needed``: the R² the
    strategy needs; ``verdict``: ``good`` | ``poor`` | ``failed``; ``refine_steps``: LBFGS steps
    of refinement run (0 = none); ``rows``: held-out rows judged on; ``noise``: per output, the
    estimated share of the target's variance that is noise (``σ²/Var y``; the SRBench noise
    level is its square root), ``None`` where the rows cannot tell it (unknown).
    """

    r2: list[float]
    needed: float
    verdict: str
    before: list[float] | None = None
    refine_steps: int = 0
    rows: int = 0
    noise: list[float | None] | None = None

    @property
    def threshold_noise(self) -> list[float] | None:
        """``noise`` with an unknown share read as 0 (no noise excuses any misfit), per output:
        what thresholds that allow for noise are set from; ``None`` without an estimate."""
        return None if self.noise is None else [0.0 if share is None else share for share in self.noise]

    def noise_text(self, output_names: list[str]) -> str:
        """One line: per output, the estimated noise level (its standard deviation as a
        percentage of the target's), e.g. ``… y 1.02%``, or ``unknown``; empty without an estimate."""
        if self.noise is None:
            return ""
        levels = ", ".join(f"{name} " + ("unknown (the rows cannot tell noise from the network's error)" if share is None
                                         else f"{100 * share ** 0.5:.3g}%") for name, share in zip(output_names, self.noise))
        return f"estimated noise in the targets (standard deviation, as a share of the target's): {levels}"

    @property
    def is_law(self) -> bool:
        """False when the network failed: its formula describes the network, not the data."""
        return self.verdict != "failed"

    def message(self, output_names: list[str]) -> str:
        """One line for the user: how well the network explains the data, and what it means."""
        scores = ", ".join(f"{name} {share(value)}" for name, value in zip(output_names, self.r2))
        refined = f" after {self.refine_steps} refinement steps (before: " + ", ".join(
            share(value) for value in self.before) + ")" if self.before is not None else ""
        text = f"the network explains {scores} of the data's variance{refined}"
        if self.verdict == "good":
            return text
        if self.verdict == "poor":
            return (f"{text}, below the {100 * self.needed:g}% this strategy needs: the formula describes the network and may "
                    f"not be the law (more training: --refine N, or kanx train DATA --init MODEL)")
        return (f"{text}: the network failed to learn the data, so its formula is NOT the law "
                f"(retrain it: --refine N, or kanx train DATA --init MODEL)")

    def to_dict(self) -> dict:
        return {**asdict(self), "is_law": self.is_law}


def share(value: float) -> str:
    """An R² as the share of the variance explained (``none (R² -1.6)`` when negative)."""
    return f"{100 * value:.2f}%" if value >= 0 else f"none (R² {value:.3g})"


def verdict(scores: list[float], needed: float) -> str:
    worst = min(scores)
    return "good" if worst >= needed else "failed" if worst < FAILED_BELOW else "poor"


def held_out_rows(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows to refine on and rows to judge on; with fewer than 10 rows both are all rows."""
    if n < 10:
        every = torch.arange(n)
        return every, every
    return split_rows(n, HELD_OUT_FRACTION, seed)


def network_r2(model: KAN, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The network's R² per output on ``x [N, n_in]`` against ``y [N, n_out]``."""
    with torch.no_grad():
        return [float(v) for v in r2(model(x).double(), y.double(), dim=0)]


def judge_and_refine(model: KAN, x: torch.Tensor, y: torch.Tensor, strategy: str, refine: int | None,
                     seed: int) -> tuple[KAN, OracleQuality]:
    """Judge ``model`` on data ``x [N, n_in]``, ``y [N, n_out]``; refine a copy when asked (or, with
    ``refine=None``, when it is not good). Returns the model to extract from (``model`` itself when
    not refined) and the judgement."""
    needed = NEEDED_R2[strategy]
    fit_rows, test_rows = held_out_rows(len(x), seed)
    scores = network_r2(model, x[test_rows], y[test_rows])
    steps = refine if refine is not None else (0 if verdict(scores, needed) == "good" else AUTO_REFINE_STEPS)
    if steps == 0:
        return model, OracleQuality(scores, needed, verdict(scores, needed), rows=len(test_rows), noise=target_noise(model, x, y, seed))
    refined = copy.deepcopy(model)
    refined.train()
    settings = continuing_settings(refined, steps=steps, optimizer="lbfgs", lamb=0.0, update_grid=0, seed=seed)
    torch.manual_seed(seed)
    with torch.enable_grad():
        fit(refined, x[fit_rows].float(), y[fit_rows].float(), settings)
    refined.eval()
    after = network_r2(refined, x[test_rows], y[test_rows])
    if not sum(after) >= sum(scores):  # worse on held-out rows (or NaN: it diverged): keep the original
        return model, OracleQuality(scores, needed, verdict(scores, needed), scores, steps, len(test_rows),
                                    target_noise(model, x, y, seed))
    refined.provenance = {**refined.provenance, "refined": {"steps": steps, "r2_before": scores, "r2_after": after}}
    return refined, OracleQuality(after, needed, verdict(after, needed), scores, steps, len(test_rows),
                                  target_noise(refined, x, y, seed))


def target_noise(model: KAN, x: torch.Tensor, y: torch.Tensor, seed: int) -> list[float | None]:
    """Per output, the estimated noise share of ``y [N, n_out]``'s variance, from the residuals of
    ``model`` on all rows ``x [N, n_in]`` (:func:`kanx.core.numerics.noise_share`); ``None``
    where it is unknown."""
    with torch.no_grad():
        residual = y.double() - model(x).double()
    return noise_share(x, residual, y, seed)
