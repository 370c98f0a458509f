"""kanx: read trained Kolmogorov–Arnold networks — prune, plot, extract formulas, find interactions."""

from __future__ import annotations

from kanx.core.errors import KanxError, KanxFailure
from kanx.core.version import __version__
from kanx.families.kan.network import KAN
from kanx.interactions import InteractionReport, interactions
from kanx.io.checkpoint import save_model
from kanx.io.load import load_model
from kanx.plot import plot_activations, plot_network
from kanx.prune import prune
from kanx.symbolic import SymbolicResult, symbolify
from kanx.train import TrainResult, train

__all__ = [
    "KAN",
    "InteractionReport",
    "KanxError",
    "KanxFailure",
    "SymbolicResult",
    "TrainResult",
    "interactions",
    "load_model",
    "plot_activations",
    "plot_network",
    "prune",
    "save_model",
    "symbolify",
    "train",
    "__version__",
]
