"""Helpers shared by the importers: state-dict grouping, shape checks, tensor assignment."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from kanx.core.errors import KanxError
from kanx.families.kan.layer import KANLayer
from kanx.families.kan.network import KAN

_INDEXED_PREFIX = re.compile(r"^(?P<container>(?:[^.]+\.)*?)(?P<index>\d+)\.$")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


@dataclass
class Imported:
    """An importer's result: the kanx model, the detected layout and the inferred hyper-parameters."""

    model: KAN
    layout: str
    inferred: dict = field(default_factory=dict)


def state_dict_of(payload: object, where: str) -> tuple[dict[str, torch.Tensor], str]:
    """The ``name → tensor`` dict inside a loaded payload, unwrapping ``{"state_dict": {...}}``.

    Returns the state dict and a note on the wrapper (``""`` for a bare state dict).
    """
    if isinstance(payload, dict) and not _is_state_dict(payload):
        for key in _WRAPPER_KEYS:
            if isinstance(payload.get(key), dict) and _is_state_dict(payload[key]):
                return dict(payload[key]), f"wrapped in {{{key!r}: ...}}"
    if isinstance(payload, dict) and _is_state_dict(payload):
        return dict(payload), ""
    raise KanxError(f"{where}: not a kanx checkpoint (no 'format': 'kanx' header) and not a state dict of tensors")


def _is_state_dict(value: dict) -> bool:
    return bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def group_layers(
    state: dict[str, torch.Tensor], tails: Iterable[str], where: str, label: str
) -> tuple[str, list[dict[str, torch.Tensor]]]:
    """Split ``state`` into per-layer dicts keyed by parameter name (``tails``).

    Accepts ``<container><l>.<tail>`` keys (``layers.0.grid``, ``0.cheby_coeffs``) and a single
    bare layer (``grid``); ``label`` names the library in errors. Returns the layout (e.g. ``"layers.{l}.*"``) and the layers in order.
    """
    tails = sorted(tails, key=len, reverse=True)
    containers: set[str] = set()
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        tail = next((t for t in tails if key == t or key.endswith("." + t)), None)
        if tail is None:
            raise KanxError(f"{where}: unexpected key {key!r} for a {label} state dict")
        prefix = key[: len(key) - len(tail)]
        match = _INDEXED_PREFIX.match(prefix)
        if prefix and match is None:
            raise KanxError(f"{where}: key {key!r} has no layer index")
        containers.add(match["container"] if match else "")
        layers.setdefault(int(match["index"]) if match else -1, {})[tail] = tensor
    if len(containers) > 1:
        raise KanxError(f"{where}: keys mix several layer containers ({', '.join(sorted(containers))})")
    if -1 in layers:
        if len(layers) > 1:
            raise KanxError(f"{where}: keys mix a bare layer with indexed layers")
        return "single layer", [layers[-1]]
    indices = sorted(layers)
    if indices != list(range(indices[0], indices[0] + len(indices))):
        raise KanxError(f"{where}: layer indices {indices} are not consecutive")
    container = containers.pop()
    return f"{container}{{l}}.*", [layers[i] for i in indices]


def only_known_keys(state: dict[str, torch.Tensor], tails: Iterable[str]) -> bool:
    """True when every key is ``tail`` or ends with ``.tail`` for one of ``tails``."""
    return all(any(key == t or key.endswith("." + t) for t in tails) for key in state)


def require(layer: dict[str, torch.Tensor], name: str, ndim: int, where: str) -> torch.Tensor:
    """Tensor ``name`` of a layer with ``ndim`` dimensions, finite, as float64."""
    if name not in layer:
        raise KanxError(f"{where}: missing key {name!r}")
    tensor = layer[name]
    if tensor.dim() != ndim:
        raise KanxError(f"{where}: {name!r} has shape {list(tensor.shape)}, expected {ndim} dimensions")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise KanxError(f"{where}: {name!r} holds NaN or Inf")
    return tensor.detach().contiguous().double() if tensor.is_floating_point() else tensor.detach().contiguous()


def expect_shape(tensor: torch.Tensor, shape: tuple[int, ...], name: str, where: str, why: str) -> None:
    """Raise a one-line error when ``tensor`` does not have ``shape`` (``why`` names the source)."""
    if tuple(tensor.shape) != tuple(shape):
        raise KanxError(f"{where}: {name!r} has shape {list(tensor.shape)}, expected {list(shape)} ({why})")


def chain_widths(sizes: list[tuple[int, int]], where: str) -> list[int]:
    """Node widths from per-layer ``(n_in, n_out)``, checking that consecutive layers connect."""
    for index in range(1, len(sizes)):
        if sizes[index][0] != sizes[index - 1][1]:
            raise KanxError(
                f"{where}: layer {index} takes {sizes[index][0]} inputs but layer {index - 1} gives {sizes[index - 1][1]} outputs"
            )
    return [sizes[0][0]] + [n_out for _, n_out in sizes]


@torch.no_grad()
def assign(layer: KANLayer, **tensors: torch.Tensor) -> None:
    """Copy tensors into a layer's parameters/buffers of the same name (shapes must agree)."""
    for name, value in tensors.items():
        target = getattr(layer, name)
        target.copy_(value.reshape(target.shape).to(target.dtype))


def knot_ranges(knots: torch.Tensor, order: int) -> list[tuple[float, float]]:
    """Per-input ``(lo, hi)`` of the interior of B-spline knot rows ``[n_in, M]``."""
    lo, hi = knots[:, order], knots[:, knots.shape[1] - 1 - order]
    return [(float(a), float(b)) for a, b in zip(lo, hi)]


def check_knots(knots: torch.Tensor, name: str, where: str) -> None:
    """Knot rows must be non-decreasing."""
    if knots.shape[1] > 1 and bool((knots.diff(dim=1) < 0).any()):
        raise KanxError(f"{where}: {name!r} knots are not non-decreasing")


def same_value(values: list, what: str, where: str):
    """The common value of a per-layer hyper-parameter (kanx keeps one basis per model)."""
    if len(set(values)) > 1:
        raise KanxError(f"{where}: layers differ in {what} ({values}); kanx needs one basis for the whole model")
    return values[0]
