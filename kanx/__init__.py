"""kanx: read trained Kolmogorov–Arnold networks — prune, plot, extract formulas, find interactions.

The public names below load on first use, so ``import kanx`` (and the ``kanx`` command's
``--help``) does not pay for torch, sympy and matplotlib until a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.errors import KanxError, KanxFailure
from kanx.core.lazy import lazy_exports
from kanx.core.version import __version__

__all__ = [
    "KAN", "DiscoverSettings", "DiscoveryResult", "InteractionReport", "InteractionSettings", "KarSeinSettings",
    "KanxError", "KanxFailure", "PruneSettings", "SymbolicResult", "SymbolifySettings", "TrainResult", "TrainSettings",
    "__version__", "describe", "discover", "from_module", "interactions", "load_model", "plot_activations",
    "plot_network", "predict", "prune", "save_model", "symbolify", "train", "train_karsein",
]
__getattr__, __dir__ = lazy_exports(__name__, {
    "KAN": "kanx.families.kan.network",
    "DiscoverSettings": "kanx.discover",
    "DiscoveryResult": "kanx.discover",
    "discover": "kanx.discover",
    "InteractionReport": "kanx.interactions.kan",
    "InteractionSettings": "kanx.interactions.settings",
    "KarSeinSettings": "kanx.train.karsein",
    "PruneSettings": "kanx.prune.settings",
    "SymbolifySettings": "kanx.symbolic.settings",
    "TrainSettings": "kanx.train.kan",
    "describe": "kanx.summary",
    "predict": "kanx.prediction",
    "train_karsein": "kanx.train.karsein",
    "SymbolicResult": "kanx.symbolic.results",
    "TrainResult": "kanx.train.kan",
    "from_module": "kanx.io.modules",
    "interactions": "kanx.interactions.dispatch",
    "load_model": "kanx.io.load",
    "plot_activations": "kanx.plot.dispatch",
    "plot_network": "kanx.plot.kan",
    "prune": "kanx.prune.dispatch",
    "save_model": "kanx.io.checkpoint",
    "symbolify": "kanx.symbolic.symbolify",
    "train": "kanx.train.kan",
})

# ``prune``, ``train`` and ``interactions`` name both a function (above) and a subpackage. Importing
# the (light) subpackages now, then dropping the module binding, means the import system never
# rebinds these names later: ``kanx.prune`` is always the function.
import kanx.interactions  # noqa: E402
import kanx.prune  # noqa: E402
import kanx.train  # noqa: E402, F401

del interactions, prune, train  # noqa: F821

if TYPE_CHECKING:
    from kanx.discover import DiscoverSettings, DiscoveryResult, discover
    from kanx.families.kan.network import KAN
    from kanx.interactions import InteractionReport, interactions
    from kanx.interactions.settings import InteractionSettings
    from kanx.io.checkpoint import save_model
    from kanx.io.load import load_model
    from kanx.io.modules import from_module
    from kanx.plot import plot_activations, plot_network
    from kanx.prediction import predict
    from kanx.prune import prune
    from kanx.prune.settings import PruneSettings
    from kanx.summary import describe
    from kanx.symbolic import SymbolicResult, symbolify
    from kanx.symbolic.settings import SymbolifySettings
    from kanx.train import TrainResult, train
    from kanx.train.kan import TrainSettings
    from kanx.train.karsein import KarSeinSettings, train_karsein
