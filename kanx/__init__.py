"""kanx: read trained Kolmogorov–Arnold networks — prune, plot, extract formulas, find interactions."""

from __future__ import annotations

from kanx.core.errors import KanxError, KanxFailure  # noqa: E402
from kanx.core.version import __version__  # noqa: E402
from kanx.families.kan.network import KAN  # noqa: E402
from kanx.interactions import InteractionReport, interactions  # noqa: E402
from kanx.io.checkpoint import save_model  # noqa: E402
from kanx.io.load import load_model
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
