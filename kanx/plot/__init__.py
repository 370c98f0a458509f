"""Plotting stage: every learned activation, symbolic overlays, the network diagram.

Public names load on first use (``kanx.core.lazy``), so a light submodule such as
``kanx.plot.dispatch`` can be imported without its heavy siblings. ``dispatch`` holds the entry
points; the per-family work is in ``kan`` and ``karsein``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.lazy import lazy_exports

__all__ = ['PlotSettings', 'figure_names', 'plot_activations', 'plot_network']
__getattr__, __dir__ = lazy_exports(__name__, {
    "PlotSettings": "kanx.plot.settings",
    "figure_names": "kanx.plot.dispatch",
    "plot_activations": "kanx.plot.dispatch",
    "plot_network": "kanx.plot.dispatch",
})

if TYPE_CHECKING:
    from kanx.plot.dispatch import figure_names, plot_activations, plot_network
    from kanx.plot.settings import PlotSettings
