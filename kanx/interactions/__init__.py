"""Interaction stage: which inputs interact, at what order, with what share of the variance.

Public names load on first use (``kanx.core.lazy``), so a light submodule such as
``kanx.interactions.settings`` can be imported without its heavy siblings. ``dispatch`` holds the entry
point; the per-family work is in ``kan`` and ``karsein``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.lazy import lazy_exports

__all__ = ['InteractionReport', 'InteractionSettings', 'KarSeinInteractionReport', 'interactions']
__getattr__, __dir__ = lazy_exports(__name__, {
    "InteractionReport": "kanx.interactions.kan",
    "InteractionSettings": "kanx.interactions.settings",
    "KarSeinInteractionReport": "kanx.interactions.karsein",
    "interactions": "kanx.interactions.dispatch",
})

if TYPE_CHECKING:
    from kanx.interactions.dispatch import interactions
    from kanx.interactions.kan import InteractionReport
    from kanx.interactions.karsein import KarSeinInteractionReport
    from kanx.interactions.settings import InteractionSettings
