"""Reading torch files safely: ``torch.load(..., weights_only=True)`` on CPU, every failure a
one-line ``KanxError`` naming the file."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from kanx.core.errors import KanxError


def read_payload(path: str | os.PathLike) -> object:
    """``torch.load`` with ``weights_only=True`` on CPU, turning every failure into a
    ``KanxError`` that names the file."""
    source = Path(path)
    if not source.exists():
        raise KanxError(f"{source}: no such file")
    if source.is_dir():
        raise KanxError(f"{source}: is a folder, expected a checkpoint file")
    try:
        with warnings.catch_warnings():
            # torch warns (on stderr) about pickle protocols it reads anyway; the outcome is all we report
            warnings.simplefilter("ignore")
            return torch.load(source, map_location="cpu", weights_only=True)
    except PermissionError:
        raise KanxError(f"{source}: permission denied") from None
    except pickle.UnpicklingError as exc:
        raise KanxError(f"{source}: not a loadable checkpoint: {unpickling_reason(str(exc))}") from None
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises many types on corrupt input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KanxError(f"{source}: not a readable torch checkpoint (truncated or corrupt: {reason})") from None


def unpickling_reason(message: str) -> str:
    """One line from torch's weights-only unpickler error: code it refused, or an unreadable file."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    refused = next((line for line in lines if "GLOBAL" in line or "Unsupported global" in line), None)
    if refused is not None:
        return f"it carries Python objects or code, which kanx refuses to unpickle ({refused[:120]})"
    detail = message.split("WeightsUnpickler error:", 1)[1].strip() if "WeightsUnpickler error:" in message else ""
    return f"not a torch file of tensors ({(detail.splitlines() or ['unreadable pickle'])[0][:120]})"
