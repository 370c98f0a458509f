"""Training stage: fit a KAN (``kan``) or a KarSein model (``karsein``) to data."""

from kanx.train.kan import TrainResult, TrainSettings, train
from kanx.train.karsein import KarSeinResult, KarSeinSettings, train_karsein

__all__ = ["KarSeinResult", "KarSeinSettings", "TrainResult", "TrainSettings", "train", "train_karsein"]
