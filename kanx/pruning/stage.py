"""The prune algorithm, written once for every family.

importance → masks (auto: the guarded search of ``kanx.pruning.search``; threshold: a share of
each layer's best) → the family's exact clean-up → optional retraining under the guard → report
and provenance. A family supplies a :class:`FamilyPruner`: its units, guard, masks, retraining and
report (``kanx.pruning.kan``, ``kanx.pruning.karsein``); the dispatcher picks it by the model's
family.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from kanx.core.numerics import split_rows
from kanx.pruning.search import FidelityGuard
from kanx.pruning.settings import PruneSettings


@dataclass
class PruneRows:
    """The rows a pruning works on: all inputs ``x`` with targets ``y`` (or ``None``), and the
    split into fitting rows (``fit``) and the held-out rows the guard judges (``held_out``)."""

    x: torch.Tensor
    y: torch.Tensor | None
    fit: torch.Tensor
    held_out: torch.Tensor

    @property
    def x_fit(self) -> torch.Tensor:
        return self.x[self.fit]

    @property
    def y_fit(self) -> torch.Tensor | None:
        return None if self.y is None else self.y[self.fit]


class FamilyPruner(Protocol):
    """What a model family supplies to the prune stage."""

    def context(self) -> contextlib.AbstractContextManager:
        """The context the family's pruning runs in (e.g. one thread for small tensors)."""

    def checked_rows(self, model: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None,
                     settings: PruneSettings) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
        """The settings checked for this family, and the inputs (default: the model's sample) and
        targets checked for shape, as float32; with notes for the report."""

    def guard(self, model: nn.Module, x_hold: torch.Tensor, y_hold: torch.Tensor | None,
              settings: PruneSettings) -> tuple[FidelityGuard, Any]:
        """The fidelity guard on the held-out rows, and what the family keeps of them."""

    def thresholds(self, settings: PruneSettings) -> dict[str, float]:
        """The family's threshold options that were given (``--option`` → value); none: auto mode."""

    def importance(self, model: nn.Module, x_fit: torch.Tensor) -> Any:
        """The importance of every unit on the fitting rows."""

    def auto_masks(self, model: nn.Module, x_fit: torch.Tensor, guard: FidelityGuard) -> Any:
        """The masks the guarded search keeps."""

    def threshold_masks(self, model: nn.Module, before: Any, settings: PruneSettings) -> Any:
        """The masks the thresholds keep."""

    def applied(self, model: nn.Module, masks: Any, x_fit: torch.Tensor, option: str) -> tuple[nn.Module, Any, list[str]]:
        """A pruned copy carrying ``masks`` after the family's exact clean-up, what it kept, notes."""

    def retraining_targets(self, original: nn.Module, x_fit: torch.Tensor, y_fit: torch.Tensor | None) -> torch.Tensor:
        """What the survivors are retrained on: the targets, else the original's outputs."""

    def retrained(self, pruned: nn.Module, x_fit: torch.Tensor, target: torch.Tensor, settings: PruneSettings) -> nn.Module:
        """A copy of ``pruned`` retrained ``settings.finetune_steps`` steps, masks unchanged."""

    def passes(self, tuned: nn.Module, guard: FidelityGuard, held: Any, settings: PruneSettings) -> bool:
        """Whether a retrained network still keeps the guard on the held-out rows."""

    def tuned_note(self, steps: int, labelled: bool) -> str:
        """The report's note on a retraining that was kept."""

    def report(self, model: nn.Module, pruned: nn.Module, kept: Any, before: Any, rows: PruneRows, guard: FidelityGuard,
               held: Any, mode: str, settings: PruneSettings, notes: list[str]) -> Any:
        """The family's report of the pruning."""

    def provenance_entry(self, report: Any) -> dict:
        """The compact record of the pruning stored in the checkpoint."""


def prune_with(pruner: FamilyPruner, model: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None,
               settings: PruneSettings) -> tuple[nn.Module, Any]:
    """Prune a copy of ``model`` (left untouched) on inputs ``x [N, n_in]`` (default: its stored
    sample) and targets ``y`` (or ``None``): threshold mode when the family's thresholds are given,
    else auto mode, which keeps R² >= ``min_fidelity`` against the original on held-out rows (and
    the family's own conditions, e.g. against the targets). Returns ``(pruned, report)``."""
    with pruner.context():
        return pruned_by(pruner, model, x, y, settings)


def pruned_by(pruner: FamilyPruner, model: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None,
              settings: PruneSettings) -> tuple[nn.Module, Any]:
    """:func:`prune_with` inside the family's context."""
    x, y, notes = pruner.checked_rows(model, x, y, settings)
    model = copy.deepcopy(model).eval()
    fit, held_out = split_rows(x.shape[0], settings.holdout, settings.seed)
    rows = PruneRows(x, y, fit, held_out)
    guard, held = pruner.guard(model, x[held_out], None if y is None else y[held_out], settings)
    given = pruner.thresholds(settings)
    mode = "threshold" if given else "auto"
    before = pruner.importance(model, rows.x_fit)
    with torch.no_grad():
        masks = pruner.auto_masks(model, rows.x_fit, guard) if mode == "auto" else pruner.threshold_masks(model, before, settings)
    option = " ".join(f"{name} {value}" for name, value in given.items()) or "auto pruning"
    pruned, kept, cleanup_notes = pruner.applied(model, masks, rows.x_fit, option)
    if settings.finetune_steps:
        pruned, note = retrained_under_guard(pruner, model, pruned, rows, guard, held, mode, settings)
        cleanup_notes.append(note)
    report = pruner.report(model, pruned, kept, before, rows, guard, held, mode, settings, cleanup_notes)
    report.notes.extend(notes)
    pruned.provenance = {**pruned.provenance, "pruning": pruner.provenance_entry(report)}
    return pruned, report


def retrained_under_guard(pruner: FamilyPruner, original: nn.Module, pruned: nn.Module, rows: PruneRows,
                          guard: FidelityGuard, held: Any, mode: str, settings: PruneSettings) -> tuple[nn.Module, str]:
    """The survivors retrained on the targets (or the original's outputs); in auto mode the
    result is kept only when it still passes the guard."""
    steps = settings.finetune_steps
    with torch.no_grad():
        target = pruner.retraining_targets(original, rows.x_fit, rows.y_fit)
    tuned = pruner.retrained(pruned, rows.x_fit, target, settings)
    if mode == "auto" and not pruner.passes(tuned, guard, held, settings):
        return pruned, f"fine-tuning ({steps} steps) broke the fidelity guard; kept the un-tuned weights"
    return tuned, pruner.tuned_note(steps, rows.y is not None)
