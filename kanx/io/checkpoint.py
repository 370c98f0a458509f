"""The kanx checkpoint format (version 1).

A checkpoint is ``torch.save({"format": "kanx", "version": 1, "config": {...}, "state": {...}})``.
``config`` is JSON-able (architecture, names, ranges, symbolic table, provenance); ``state``
maps names to tensors only. Loading uses ``weights_only=True`` and validates every tensor
against the config before a model is built.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from kanx.core.errors import KanxError
from kanx.families.registry import family_named, family_of
from kanx.io.files import atomic_write

FORMAT_NAME = "kanx"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- save / load
def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as a kanx checkpoint, atomically."""
    family = family_of(model)
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": family.to_config(model), "state": family.to_state(model)}
    # Serialise in memory first: the archive inside a torch file is named after its target, so
    # writing the temporary file directly would make the bytes depend on the temp name.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def model_from_payload(payload: object, where: str) -> torch.nn.Module:
    """Validate a loaded kanx payload and build its model."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise KanxError(f"{where}: not a kanx checkpoint (no 'format': 'kanx' header)")
    version = payload.get("version")
    if version != FORMAT_VERSION:
        raise KanxError(f"{where}: unsupported kanx checkpoint version {version!r} (this kanx reads {FORMAT_VERSION})")
    config, state = payload.get("config"), payload.get("state")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise KanxError(f"{where}: checkpoint must hold a 'config' dict and a 'state' dict")
    family = family_named(config.get("family"), where)
    family.validate(config, state, where)
    return family.build(config, state)
