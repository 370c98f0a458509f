"""The train stage: one entry point for every model family, which the settings choose.

``train(data, settings)`` fits a KAN to rows (``kanx.io.data.Dataset``) with ``TrainSettings`` and
a KarSein model to a click table (``kanx.io.ctr.ClickTable``) with ``KarSeinSettings``; keyword
options build the settings of the family the data calls for.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from kanx.core.errors import KanxError
from kanx.core.stage import settings_of
from kanx.io.ctr import ClickTable
from kanx.io.data import Dataset
from kanx.training.kan import TrainResult, TrainSettings, train_kan
from kanx.training.karsein import KarSeinResult, KarSeinSettings, train_karsein


def train(data: Dataset | ClickTable, settings: TrainSettings | KarSeinSettings | None = None, *,
          init: nn.Module | None = None, on_step: Callable | None = None, **options) -> TrainResult | KarSeinResult:
    """A trained model for ``data``, the family taken from ``settings``: ``TrainSettings`` fit a
    KAN to a ``Dataset`` (inputs ``[N, n]``, targets ``[N, m]``), ``KarSeinSettings`` a KarSein
    model to a ``ClickTable``. Without settings, keyword ``options`` build the settings of the
    family the data calls for. ``init`` (KAN): continue training a copy of this model.
    ``on_step``: a progress callback, ``(step, train loss, held-out loss)`` for a KAN,
    ``(epoch, train loss, held-out AUC)`` for KarSein."""
    kind = type(settings) if settings is not None else KarSeinSettings if isinstance(data, ClickTable) else TrainSettings
    if kind not in TRAINERS:
        raise KanxError(f"train: settings must be TrainSettings or KarSeinSettings, not {kind.__name__}")
    if kind is TrainSettings and settings is None and hasattr(init, "widths") and "widths" not in options:
        options = {"widths": list(init.widths), "mult": [list(m) for m in init.mult], **options}  # the architecture is init's
    settings = settings_of(kind, settings, options, "train")
    data_type, trainer = TRAINERS[kind]
    if not isinstance(data, data_type):
        raise KanxError(f"train: {kind.__name__} trains on a {data_type.__name__}, not {type(data).__name__}")
    return trainer(data, settings, on_step, init)


def karsein_trainer(table: ClickTable, settings: KarSeinSettings, on_step: Callable | None,
                    init: nn.Module | None) -> KarSeinResult:
    """:func:`kanx.training.karsein.train_karsein` behind the trainers' common signature."""
    if init is not None:
        raise KanxError("train: continuing training (init) is supported for KAN models only")
    return train_karsein(table, settings, on_step)


# each family's settings class → the data it trains on and its trainer
TRAINERS = {TrainSettings: (Dataset, train_kan), KarSeinSettings: (ClickTable, karsein_trainer)}
