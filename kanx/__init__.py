"""kanx: read trained Kolmogorov–Arnold networks — prune, plot, extract formulas, find interactions.

The public names below load on first use, so ``import kanx`` (and the ``kanx`` command's
``--help``) does not pay for torch, sympy and matplotlib until a function needs them. No
subpackage is named like a function (``kanx.pruning`` holds ``prune``, ``kanx.training``
``train``, ``kanx.interaction`` ``interactions``, ``kanx.discovery`` ``discover``), so importing a
module never replaces a function here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.errors import KanxError, KanxFailure
from kanx.core.lazy import lazy_exports
from kanx.core.version import __version__

__all__ = [
    "ClassLabels", "CompiledFormula",
    "ClickTable", "DiscoverSettings", "DiscoveryResult", "Figures", "InteractionReport", "InteractionSettings", "KAN", "KanxError",
    "KanxFailure", "KarSeinResult", "KarSeinSettings", "PlotSettings", "PruneSettings", "Rows", "SymbolicResult", "SymbolifySettings",
    "TrainResult", "TrainSettings", "compile_formula",
    "declared_classifier", "describe", "discover", "from_module", "interactions", "load_model",
    "plot_activations", "plot_network", "predict", "prune", "refine_grid", "save_model", "symbolify", "train",
    "__version__",
]
__getattr__, __dir__ = lazy_exports(__name__, {
    "KAN": "kanx.families.kan.network",
    "ClassLabels": "kanx.core.classes",
    "CompiledFormula": "kanx.symbolic.compile",
    "compile_formula": "kanx.symbolic.compile",
    "refine_grid": "kanx.families.kan.edit",
    "declared_classifier": "kanx.io.load",
    "DiscoverSettings": "kanx.discovery",
    "DiscoveryResult": "kanx.discovery",
    "discover": "kanx.discovery",
    "InteractionReport": "kanx.interaction.report",
    "InteractionSettings": "kanx.interaction.settings",
    "KarSeinSettings": "kanx.training.karsein",
    "PruneSettings": "kanx.pruning.settings",
    "PlotSettings": "kanx.plot.settings",
    "Figures": "kanx.io.figures",
    "Rows": "kanx.core.stage",
    "SymbolifySettings": "kanx.symbolic.settings",
    "TrainSettings": "kanx.training.kan",
    "describe": "kanx.summary",
    "predict": "kanx.prediction",
    "KarSeinResult": "kanx.training.karsein",
    "ClickTable": "kanx.io.ctr",
    "SymbolicResult": "kanx.symbolic.results",
    "TrainResult": "kanx.training.kan",
    "from_module": "kanx.io.modules",
    "interactions": "kanx.interaction.dispatch",
    "load_model": "kanx.io.load",
    "plot_activations": "kanx.plot.dispatch",
    "plot_network": "kanx.plot.dispatch",
    "prune": "kanx.pruning.dispatch",
    "save_model": "kanx.io.checkpoint",
    "symbolify": "kanx.symbolic.dispatch",
    "train": "kanx.training.dispatch",
})

if TYPE_CHECKING:
    from kanx.core.classes import ClassLabels
    from kanx.core.stage import Rows
    from kanx.discovery import DiscoverSettings, DiscoveryResult, discover
    from kanx.families.kan.edit import refine_grid
    from kanx.families.kan.network import KAN
    from kanx.interaction import InteractionReport, interactions
    from kanx.interaction.settings import InteractionSettings
    from kanx.io.checkpoint import save_model
    from kanx.io.ctr import ClickTable
    from kanx.io.figures import Figures
    from kanx.io.load import declared_classifier, load_model
    from kanx.io.modules import from_module
    from kanx.plot import PlotSettings, plot_activations, plot_network
    from kanx.prediction import predict
    from kanx.pruning import prune
    from kanx.pruning.settings import PruneSettings
    from kanx.summary import describe
    from kanx.symbolic import SymbolicResult, symbolify
    from kanx.symbolic.settings import SymbolifySettings
    from kanx.training import TrainResult, train
    from kanx.training.kan import TrainSettings
    from kanx.training.karsein import KarSeinResult, KarSeinSettings
