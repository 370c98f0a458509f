"""kanx: read trained Kolmogorov–Arnold networks — prune, plot, extract formulas, find interactions."""

from __future__ import annotations

__version__ = "0.1.0"

from kanx.errors import KanxError, KanxFailure  # noqa: E402
from kanx.interactions import InteractionReport, interactions  # noqa: E402
from kanx.io.checkpoint import load_model, save_model  # noqa: E402
from kanx.model.network import KAN  # noqa: E402
from kanx.plot import plot_activations, plot_network  # noqa: E402
from kanx.prune import prune  # noqa: E402
from kanx.symbolic import SymbolicResult, symbolify  # noqa: E402
from kanx.train import TrainResult, train  # noqa: E402

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
