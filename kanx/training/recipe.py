"""The training recipe: how kanx trains a network to serve as an oracle of a law.

This is the one place where the recipe lives. ``kanx train`` (with its defaults), ``kanx
discover`` and every benchmark runner use it. It is chosen from the data, not from a
benchmark:

- **width** ``[n, min(2n + 1, HIDDEN_CAP), m]`` from the number of inputs ``n`` and targets
  ``m`` (a classifier's logits): the Kolmogorov–Arnold width, capped so that laws of many inputs
  stay cheap;
- **targets over decades**: one-signed targets whose 1st..99th percentile spans two decades or
  more are fitted as ``log|y|`` (``target_transform="auto"``, ``kanx.training.targets``);
- **inputs in any units**: handled by the network itself (knots relative to each input's size,
  no ``silu`` branch for inputs outside ``[1e-2, 1e2]``);
- **early stopping** on held-out rows (``VALIDATION_FRACTION`` of the rows; ``PATIENCE`` steps)
  keeps the network of its best held-out step, so noise is not learned; with fewer than
  ``MIN_VALIDATION_ROWS`` held-out rows the held-out error is too noisy to stop on, and all
  steps run;
- an **LBFGS polish** of ``POLISH_STEPS`` steps on the same rows (with its own early stopping)
  after the Adam phase.

The measurements behind these choices (early stopping on noisy rows, the polish, the target
transform on SRSD) are recorded in benchmarks/feynman/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from kanx.core.errors import KanxError, KanxFailure
from kanx.io.data import Dataset
from kanx.training.kan import StepCallback, TrainResult, TrainSettings, continuing_settings, train_kan

HIDDEN_CAP = 12
VALIDATION_FRACTION = 0.2
PATIENCE = 150
POLISH_STEPS = 100
POLISH_PATIENCE = 10
MIN_VALIDATION_ROWS = 20


def recipe_width(n_inputs: int, n_outputs: int) -> list[int]:
    """The recipe's layer widths ``[n, min(2n + 1, HIDDEN_CAP), m]``."""
    return [n_inputs, min(2 * n_inputs + 1, HIDDEN_CAP), n_outputs]


@dataclass(frozen=True)
class Recipe:
    """A training run in two phases: ``train`` (Adam by default, with early stopping) and, when
    ``polish_steps`` > 0, an LBFGS polish of the network it gave, on the same rows and the same
    held-out split, stopped after ``polish_patience`` steps without a better held-out error."""

    train: TrainSettings
    polish_steps: int = POLISH_STEPS
    polish_patience: int = POLISH_PATIENCE

    def __post_init__(self) -> None:
        if self.polish_steps < 0:
            raise KanxError(f"--polish {self.polish_steps}: must be >= 0")

    def polish_settings(self, model) -> TrainSettings:
        """The polish phase's settings for ``model`` (its architecture kept)."""
        s = self.train
        patience = self.polish_patience if s.test_fraction > 0 else 0
        return continuing_settings(model, optimizer="lbfgs", steps=self.polish_steps, update_grid=0, seed=s.seed,
                            test_fraction=s.test_fraction, patience=patience, lamb=s.lamb, lamb_l1=s.lamb_l1,
                            lamb_entropy=s.lamb_entropy, device=s.device, max_memory=s.max_memory, sample_rows=s.sample_rows)

    def to_dict(self) -> dict:
        return {"polish_steps": self.polish_steps, "polish_patience": self.polish_patience}


def recipe_for(dataset: Dataset, **given) -> Recipe:
    """The recipe for ``dataset``; ``given`` holds ``TrainSettings`` fields the user chose (a
    value of ``None`` means "not given") and ``polish_steps``. Whatever is not given comes from
    the data: the width from the numbers of inputs and targets, early stopping from the number
    of held-out rows, no polish after an LBFGS first phase."""
    chosen = {key: value for key, value in given.items() if value is not None}
    polish = chosen.pop("polish_steps", None)
    rows = dataset.x.shape[0]
    fraction = chosen.get("test_fraction", VALIDATION_FRACTION)
    enough_held_out = fraction > 0 and round(rows * fraction) >= MIN_VALIDATION_ROWS
    outputs = dataset.classes.logit_count if dataset.classes is not None else dataset.y.shape[1]
    defaults = {"widths": recipe_width(dataset.x.shape[1], outputs), "test_fraction": fraction,
                "patience": PATIENCE if enough_held_out else 0,
                "target_transform": "auto" if dataset.classes is None else "none"}
    settings = TrainSettings(**(defaults | chosen))
    if polish is None:
        polish = POLISH_STEPS if settings.optimizer == "adam" else 0
    return Recipe(settings, polish)


def train_recipe(dataset: Dataset, recipe: Recipe, on_step: StepCallback | None = None,
                 on_polish_step: StepCallback | None = None) -> TrainResult:
    """Train a network for ``dataset`` by ``recipe``: the first phase, then the polish."""
    return polish(dataset, recipe, train_kan(dataset, recipe.train, on_step), on_polish_step)


def polish(dataset: Dataset, recipe: Recipe, first: TrainResult, on_step: StepCallback | None = None) -> TrainResult:
    """``recipe``'s LBFGS polish of the network ``first`` gave (kept only where it does not
    raise the held-out error and did not diverge). The checkpoint's record gains ``recipe``."""
    result = first
    polished = None
    if recipe.polish_steps > 0:
        try:
            polished = train_kan(dataset, recipe.polish_settings(first.model), on_step, init=first.model)
        except KanxFailure:  # the polish diverged: the first phase's network stands
            polished = None
    if polished is not None:
        if not (polished.test.error > first.test.error):  # NaN (no held-out rows) keeps the polish
            result = polished
            record = result.model.meta.training
            record["polish_early_stopping"] = record.pop("early_stopping", None)
            if "early_stopping" in first.model.meta.training:
                record["early_stopping"] = first.model.meta.training["early_stopping"]
            record["settings"] = {**first.model.meta.training["settings"], "polish": polished.model.meta.training["settings"]}
            result.model.meta.provenance = dict(first.model.meta.provenance)
    result.model.meta.training["recipe"] = recipe.to_dict() | {"polished": result is not first}
    return result

