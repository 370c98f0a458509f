"""Interaction stage: which inputs interact, at what order, with what share of the variance.

Public names load on first use (``kanx.core.lazy``), so a light submodule such as
``kanx.interaction.settings`` can be imported without its heavy siblings. ``dispatch`` holds the entry
point; the per-family work is in ``kan`` and ``karsein``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.lazy import lazy_exports

__all__ = ['InteractionReport', 'InteractionSettings', 'KarSeinInteractionReport', 'interactions']
__getattr__, __dir__ = lazy_exports(__name__, {
    "InteractionReport": "kanx.interaction.report",
    "InteractionSettings": "kanx.interaction.settings",
    "KarSeinInteractionReport": "kanx.interaction.karsein",
    "interactions": "kanx.interaction.dispatch",
})

if TYPE_CHECKING:
    from kanx.interaction.dispatch import interactions
    from kanx.interaction.karsein import KarSeinInteractionReport
    from kanx.interaction.report import InteractionReport
    from kanx.interaction.settings import InteractionSettings
