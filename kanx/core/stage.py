"""The call shape every stage shares: ``stage(model, data=None, settings=None, **options)``.

``data`` is one rows type, :class:`Rows` (inputs, optional targets, where they came from), or
anything with ``.x`` and ``.y`` (a ``kanx.io.data.Dataset``), or a bare tensor of inputs.
``settings`` is the stage's frozen settings class; keyword ``options`` build it, or replace fields
of a given one. Results share :func:`result_dict` for their ``to_dict``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from kanx.core.errors import KanxError

if TYPE_CHECKING:
    import torch

SettingsT = TypeVar("SettingsT")


@dataclass
class Rows:
    """Rows for a model: inputs ``x [N, n_in]``; targets ``y`` when known (``[N, n_out]`` for a
    KAN, 0/1 labels ``[N]`` for KarSein; ``None`` otherwise); the file columns the targets came
    from (``target_columns``) and ``notes`` on choices made while reading them (to tell the user)."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    target_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def as_rows(data: object | None, stage: str) -> Rows | object | None:
    """``data`` as a rows object (``.x``, ``.y``): ``None`` stays ``None``, a tensor becomes
    inputs without targets, a rows object is returned as it is."""
    import torch

    if data is None or (hasattr(data, "x") and hasattr(data, "y")):
        return data
    if isinstance(data, torch.Tensor):
        return Rows(data)
    raise KanxError(f"{stage}: data must be rows (kanx.Rows, a Dataset) or a tensor of inputs, not {type(data).__name__}")


def inputs_and_targets(data: object | None, stage: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(x, y)`` of ``data`` (see :func:`as_rows`); ``(None, None)`` without rows."""
    rows = as_rows(data, stage)
    return (None, None) if rows is None else (rows.x, rows.y)


def rows_on(data: object | None, device: torch.device, stage: str = "data") -> object | None:
    """A shallow copy of ``data`` as rows (:func:`as_rows`) with its tensors on ``device``."""
    import torch

    rows = as_rows(data, stage)
    if rows is None:
        return None
    moved = copy.copy(rows)
    for name in ("x", "y"):
        value = getattr(rows, name, None)
        if isinstance(value, torch.Tensor):
            setattr(moved, name, value.to(device))
    return moved


def settings_of(kind: type[SettingsT], settings: SettingsT | None, options: dict, stage: str) -> SettingsT:
    """The stage's settings: ``kind(**options)`` without ``settings``; ``settings`` with the
    fields named in ``options`` replaced otherwise. A wrong type or an unknown option is a
    ``KanxError`` naming it."""
    if settings is not None and not isinstance(settings, kind):
        raise KanxError(f"{stage}: settings must be {kind.__name__}, not {type(settings).__name__}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise KanxError(f"{stage}: unknown option {', '.join(unknown)} (the fields of {kind.__name__}: {', '.join(sorted(known))})")
    if settings is None:
        return kind(**options)
    return dataclasses.replace(settings, **options) if options else settings


def result_dict(result: object, leave_out: tuple[str, ...] = ("model",)) -> dict:
    """The fields of a result dataclass as plain values (``dataclasses.asdict``), without the
    fields named in ``leave_out`` (the model a result carries is not part of its report)."""
    return {f.name: plain(getattr(result, f.name)) for f in dataclasses.fields(result) if f.name not in leave_out}


def plain(value: object) -> object:
    """``value`` with dataclasses turned into dicts and containers copied, as ``asdict`` does."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return copy.deepcopy(value)
