"""Pruning stage: remove what a trained model does not need, with a fidelity guard.

Public names load on first use (``kanx.core.lazy``), so a light submodule such as
``kanx.pruning.settings`` can be imported without its heavy siblings. ``dispatch`` holds the entry
point; the per-family work is in ``kan`` and ``karsein``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.lazy import lazy_exports

__all__ = ['KarSeinPruneReport', 'PruneReport', 'PruneSettings', 'prune']
__getattr__, __dir__ = lazy_exports(__name__, {
    "KarSeinPruneReport": "kanx.pruning.karsein",
    "PruneReport": "kanx.pruning.kan",
    "PruneSettings": "kanx.pruning.settings",
    "prune": "kanx.pruning.dispatch",
})

if TYPE_CHECKING:
    from kanx.pruning.dispatch import prune
    from kanx.pruning.kan import PruneReport
    from kanx.pruning.karsein import KarSeinPruneReport
    from kanx.pruning.settings import PruneSettings
