"""The kanx checkpoint format (version 1).

A checkpoint is ``torch.save({"format": "kanx", "version": 1, "config": {...}, "state": {...}})``.
``config`` is JSON-able (architecture, names, ranges, symbolic table, provenance); ``state``
maps names to tensors only. Loading uses ``weights_only=True`` and validates every tensor
against the config before a model is built.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch

from kanx import __version__
from kanx.errors import KanxError
from kanx.io.files import atomic_write
from kanx.model.basis import basis_size
from kanx.model.karsein import build_karsein, karsein_config, karsein_state, validate_karsein
from kanx.model.layer import LayerShape
from kanx.model.network import KAN, validate_architecture
from kanx.symbolic.library import resolve

FORMAT_NAME = "kanx"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- config
def kan_config(model: KAN) -> dict:
    """The JSON-able description of a KAN (everything except tensors)."""
    meta = model.meta
    return {
        "family": "kan",
        "kanx_version": __version__,
        "widths": list(model.widths),
        "mult": [list(m) for m in model.mult],
        "basis": dict(model.basis),
        "base_fn": model.base_fn,
        "layer_norm": list(model.layer_norm),
        "input_names": list(meta.input_names),
        "output_names": list(meta.output_names),
        "input_ranges": [list(r) for r in meta.input_ranges],
        "symbolic_functions": list(model.symbolic_functions),
        "custom_functions": dict(model.custom_functions),
        "provenance": dict(meta.provenance),
        "training": dict(meta.training),
    }


def kan_state(model: KAN) -> dict[str, torch.Tensor]:
    state = {name: tensor.detach().clone().cpu() for name, tensor in model.state_dict().items()}
    state["sample_inputs"] = model.sample_inputs.detach().clone().cpu()
    return state


def expected_kan_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape that a KAN with this config must store."""
    widths, mult, basis = config["widths"], config["mult"], config["basis"]
    k_basis = basis_size(basis)
    shapes: dict[str, tuple[int, ...]] = {}
    for index in range(len(widths) - 1):
        shape = LayerShape(widths[index], widths[index + 1], tuple(mult[index + 1]))
        n_in, n_sub, n_out = shape.n_in, shape.n_sub, shape.n_out
        prefix = f"layers.{index}."
        shapes.update(
            {
                prefix + "coef": (n_in, n_sub, k_basis),
                prefix + "w_base": (n_in, n_sub),
                prefix + "w_sp": (n_in, n_sub),
                prefix + "mask": (n_in, n_sub),
                prefix + "sym_active": (n_in, n_sub),
                prefix + "sym_index": (n_in, n_sub),
                prefix + "sym_affine": (n_in, n_sub, 4),
                prefix + "sub_scale": (n_sub,),
                prefix + "sub_bias": (n_sub,),
                prefix + "node_scale": (n_out,),
                prefix + "node_bias": (n_out,),
            }
        )
        if config["layer_norm"][index]:
            shapes[prefix + "norm_weight"] = (n_in,)
            shapes[prefix + "norm_bias"] = (n_in,)
        if basis["kind"] == "bspline":
            shapes[prefix + "knots"] = (n_in, int(basis["grid"]) + 2 * int(basis["k"]) + 1)
        elif basis["kind"] == "rbf":
            shapes[prefix + "centers"] = (n_in, k_basis)
    return shapes


def _require(config: dict, key: str, kind: type | tuple[type, ...], where: str):
    if key not in config:
        raise KanxError(f"{where}: config has no {key!r}")
    value = config[key]
    if not isinstance(value, kind):
        raise KanxError(f"{where}: config {key!r} has the wrong type ({type(value).__name__})")
    return value


def validate_kan(config: dict, state: dict, where: str) -> None:
    """Check a KAN config and its tensors; raise ``KanxError`` naming the first problem."""
    widths = _require(config, "widths", list, where)
    mult = _require(config, "mult", list, where)
    basis = _require(config, "basis", dict, where)
    base_fn = _require(config, "base_fn", str, where)
    layer_norm = _require(config, "layer_norm", list, where)
    try:
        validate_architecture(widths, mult, basis, base_fn)
    except (ValueError, TypeError) as exc:
        raise KanxError(f"{where}: invalid architecture: {exc}") from None
    if len(layer_norm) != len(widths) - 1:
        raise KanxError(f"{where}: layer_norm must have {len(widths) - 1} entries")
    for key, count in (("input_names", widths[0]), ("output_names", widths[-1]), ("input_ranges", widths[0])):
        value = _require(config, key, list, where)
        if len(value) != count:
            raise KanxError(f"{where}: config {key!r} has {len(value)} entries, the model has {count}")
    table = _require(config, "symbolic_functions", list, where)
    custom = _require(config, "custom_functions", dict, where)
    for name in table:
        try:
            resolve(name, custom)
        except KanxError as exc:
            raise KanxError(f"{where}: {exc}") from None
    expected = expected_kan_shapes(config)
    expected["sample_inputs"] = (-1, widths[0])
    _validate_tensors(state, expected, where)
    for index in range(len(widths) - 1):
        prefix = f"layers.{index}."
        sym_index = state[prefix + "sym_index"]
        if sym_index.numel() and (int(sym_index.min()) < 0 or int(sym_index.max()) >= max(len(table), 1)):
            raise KanxError(f"{where}: tensor {prefix}sym_index points outside the symbolic function table")
        active = state[prefix + "sym_active"] > 0
        if active.any() and not table:
            raise KanxError(f"{where}: symbolic edges are active but no symbolic functions are listed")
        if prefix + "knots" in state and (state[prefix + "knots"].diff(dim=1) < 0).any():
            raise KanxError(f"{where}: tensor {prefix}knots is not non-decreasing")


def _validate_tensors(state: dict, expected: dict[str, tuple[int, ...]], where: str) -> None:
    missing = sorted(set(expected) - set(state))
    if missing:
        raise KanxError(f"{where}: missing tensor {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = sorted(set(state) - set(expected))
    if extra:
        raise KanxError(f"{where}: unexpected tensor {extra[0]!r} for this architecture")
    for name, shape in expected.items():
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            raise KanxError(f"{where}: entry {name!r} is not a tensor")
        actual = tuple(tensor.shape)
        if len(actual) != len(shape) or any(s != -1 and s != a for s, a in zip(shape, actual)):
            raise KanxError(f"{where}: tensor {name!r} has shape {list(actual)}, config implies {list(shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise KanxError(f"{where}: tensor {name!r} holds NaN or Inf")


def build_kan(config: dict, state: dict) -> KAN:
    """Construct a KAN from a validated config and state."""
    model = KAN(
        widths=config["widths"],
        basis=config["basis"],
        mult=config["mult"],
        base_fn=config["base_fn"],
        layer_norm=config["layer_norm"],
        input_ranges=[tuple(r) for r in config["input_ranges"]],
        input_names=config["input_names"],
        output_names=config["output_names"],
    )
    model.custom_functions = dict(config["custom_functions"])
    model.symbolic_functions = list(config["symbolic_functions"])
    model._sync_symbolic_tables()
    weights = {name: tensor for name, tensor in state.items() if name != "sample_inputs"}
    model.load_state_dict({n: t.to(model.state_dict()[n].dtype) for n, t in weights.items()})
    model.sample_inputs = state["sample_inputs"].float().clone()
    model.meta.provenance = dict(config.get("provenance", {}))
    model.meta.training = dict(config.get("training", {}))
    return model


FAMILIES = {
    "kan": (kan_config, kan_state, validate_kan, build_kan),
    "karsein": (karsein_config, karsein_state, validate_karsein, build_karsein),
}


# --------------------------------------------------------------------------- save / load
def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as a kanx checkpoint, atomically."""
    family = getattr(model, "family", None)
    if family not in FAMILIES:
        raise TypeError(f"cannot save a {type(model).__name__} as a kanx checkpoint")
    to_config, to_state, _, _ = FAMILIES[family]
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": to_config(model), "state": to_state(model)}
    # Serialise in memory first: the archive inside a torch file is named after its target, so
    # writing the temporary file directly would make the bytes depend on the temp name.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def read_payload(path: str | os.PathLike) -> object:
    """``torch.load`` with ``weights_only=True`` on CPU, turning every failure into a
    ``KanxError`` that names the file."""
    source = Path(path)
    if not source.exists():
        raise KanxError(f"{source}: no such file")
    if source.is_dir():
        raise KanxError(f"{source}: is a folder, expected a checkpoint file")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except PermissionError:
        raise KanxError(f"{source}: permission denied") from None
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable pickle"
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            first_line = "it carries Python objects or code, which kanx refuses to unpickle"
        raise KanxError(f"{source}: not a loadable checkpoint: {first_line}") from None
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises many types on corrupt input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KanxError(f"{source}: not a readable torch checkpoint (truncated or corrupt: {reason})") from None


def load_model(path: str | os.PathLike, source: str | None = None) -> torch.nn.Module:
    """Load and validate a kanx checkpoint; never unpickles arbitrary objects.

    A checkpoint of another KAN library (pykan, efficient-kan, FastKAN, ChebyKAN) is detected and
    imported through ``kanx.io.importers``; ``source`` forces the library (e.g. ``"pykan"``).
    """
    from kanx.io import importers  # lazy: the importers build on this module

    target = Path(path)
    if source is not None or importers.pykan.locate(target) is not None:
        return importers.import_checkpoint(target, source)
    payload = read_payload(target)
    if isinstance(payload, dict) and "format" in payload:
        return model_from_payload(payload, str(target))
    return importers.import_payload(payload, target)


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
    family = config.get("family")
    if family not in FAMILIES:
        raise KanxError(f"{where}: unknown model family {family!r}")
    _, _, validate, build = FAMILIES[family]
    validate(config, state, where)
    return build(config, state)

