"""``load_model``: any checkpoint kanx can read (its own, or a foreign one through the importers)."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from kanx.io import importers
from kanx.io.checkpoint import model_from_payload
from kanx.io.torchfile import read_payload


def load_model(path: str | os.PathLike, source: str | None = None) -> nn.Module:
    """Load and validate a kanx checkpoint; never unpickles arbitrary objects.

    A checkpoint of another KAN library (pykan, efficient-kan, FastKAN, ChebyKAN) is detected and
    imported through ``kanx.io.importers``; ``source`` forces the library (e.g. ``"pykan"``).
    """
    target = Path(path)
    if source is not None or importers.pykan.locate(target) is not None:
        return importers.import_checkpoint(target, source)
    payload = read_payload(target)
    if isinstance(payload, dict) and "format" in payload:
        return model_from_payload(payload, str(target))
    return importers.import_payload(payload, target)
