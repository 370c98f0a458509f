"""Training stage: fit a KAN (``kan``) or a KarSein model (``karsein``) to data.

Public names load on first use (``kanx.core.lazy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.lazy import lazy_exports

__all__ = ["KarSeinResult", "KarSeinSettings", "TrainResult", "TrainSettings", "train", "train_karsein"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "KarSeinResult": "kanx.training.karsein",
    "KarSeinSettings": "kanx.training.karsein",
    "TrainResult": "kanx.training.kan",
    "TrainSettings": "kanx.training.kan",
    "train": "kanx.training.kan",
    "train_karsein": "kanx.training.karsein",
})

if TYPE_CHECKING:
    from kanx.training.kan import TrainResult, TrainSettings, train
    from kanx.training.karsein import KarSeinResult, KarSeinSettings, train_karsein
