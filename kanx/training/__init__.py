"""Training stage: fit a KAN (``kan``) or a KarSein model (``karsein``) to data, through one
entry point, ``train`` (``kanx.training.dispatch``), which the settings' class dispatches.

Public names load on first use (``kanx.core.lazy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.lazy import lazy_exports

__all__ = ["KarSeinResult", "KarSeinSettings", "TrainResult", "TrainSettings", "train"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "KarSeinResult": "kanx.training.karsein",
    "KarSeinSettings": "kanx.training.karsein",
    "TrainResult": "kanx.training.kan",
    "TrainSettings": "kanx.training.kan",
    "train": "kanx.training.dispatch",
})

if TYPE_CHECKING:
    from kanx.training.dispatch import train
    from kanx.training.kan import TrainResult, TrainSettings
    from kanx.training.karsein import KarSeinResult, KarSeinSettings
