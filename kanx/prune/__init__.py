"""Pruning stage: remove what a trained model does not need, with a fidelity guard."""

from kanx.prune.kan import PruneReport, prune

__all__ = ["PruneReport", "prune"]
