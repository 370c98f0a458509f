"""Training stage: fit a KAN (``kan``) or a KarSein model (``karsein``) to data.

Public names load on first use (``kanx.core.lazy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanx.core.lazy import lazy_exports

__all__ = ["KarSeinResult", "KarSeinSettings", "TrainResult", "TrainSettings", "train", "train_karsein"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "KarSeinResult": "kanx.train.karsein",
    "KarSeinSettings": "kanx.train.karsein",
    "TrainResult": "kanx.train.kan",
    "TrainSettings": "kanx.train.kan",
    "train": "kanx.train.kan",
    "train_karsein": "kanx.train.karsein",
})

if TYPE_CHECKING:
    from kanx.train.kan import TrainResult, TrainSettings, train
    from kanx.train.karsein import KarSeinResult, KarSeinSettings, train_karsein
