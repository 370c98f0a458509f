"""Importers for KAN checkpoints written by other libraries.

``import_checkpoint(path, source=None, **options)`` maps a foreign checkpoint's parameters onto a
kanx ``KAN`` exactly (nothing is retrained); ``detect(path)`` names the library that wrote it.
Supported: pykan 0.2.x ``saveckpt`` files, efficient-kan, FastKAN, ChebyKAN and KarSein state dicts.
Options (what a file does not store): ``rbf_width`` and ``norm_eps`` (FastKAN), ``base_fn``
(efficient-kan / FastKAN base activation, default silu), ``config`` (KarSein hyper-parameter JSON).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from kanx.core.choices import BASE_FUNCTIONS, SOURCES
from kanx.core.errors import KanxError
from kanx.core.version import __version__
from kanx.families.kan.network import KAN
from kanx.families.karsein.model import KarSein
from kanx.families.registry import family_of
from kanx.io.checkpoint import FORMAT_NAME
from kanx.io.importers import chebykan, efficient_kan, fastkan, karsein, pykan
from kanx.io.importers.common import Imported, state_dict_of
from kanx.io.torchfile import read_payload

# Order matters for detection: the most specific key patterns first.
STATE_DICT_IMPORTERS = {"karsein": karsein, "pykan": pykan, "chebykan": chebykan, "fastkan": fastkan, "efficient-kan": efficient_kan}
_SPELLINGS = {
    "pykan": "pykan", "efficient-kan": "efficient-kan", "efficient_kan": "efficient-kan", "efficientkan": "efficient-kan",
    "fastkan": "fastkan", "fast-kan": "fastkan", "fast_kan": "fastkan",
    "chebykan": "chebykan", "cheby-kan": "chebykan", "cheby_kan": "chebykan", "karsein": "karsein",
}
_LABELS = {"pykan": "pykan", "efficient-kan": "efficient-kan", "fastkan": "FastKAN", "chebykan": "ChebyKAN", "karsein": "KarSein"}
OPTION_NAMES = ("rbf_width", "norm_eps", "base_fn", "config")


def normalise_source(name: str) -> str:
    """Canonical library name for a ``--from`` value."""
    key = name.strip().lower()
    if key not in _SPELLINGS:
        raise KanxError(f"--from {name}: unknown library (choose from {', '.join(SOURCES)})")
    return _SPELLINGS[key]


def detect(path: str | os.PathLike) -> str | None:
    """The library that wrote ``path`` (one of ``SOURCES``), or ``None`` (kanx checkpoints and
    unrecognised files). Raises ``KanxError`` for missing or unreadable files."""
    if pykan.locate(path) is not None:
        return "pykan"
    payload = read_payload(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT_NAME:
        return None
    try:
        state, _ = state_dict_of(payload, str(path))
    except KanxError:
        return None
    return detect_state(state)


def detect_state(state: dict) -> str | None:
    """Library whose key pattern ``state`` (name → tensor) shows, or ``None``."""
    return next((name for name, module in STATE_DICT_IMPORTERS.items() if module.matches(state)), None)


def import_checkpoint(path: str | os.PathLike, source: str | None = None, **options) -> KAN | KarSein:
    """Import a foreign checkpoint at ``path`` (``source`` forces the library, else it is detected)."""
    path = Path(path)
    _check_options(options)
    source = normalise_source(source) if source is not None else None
    if source in (None, "pykan"):
        prefix = pykan.locate(path)
        if prefix is not None:
            return finish(pykan.convert_files(prefix, options), "pykan", path)
    return import_payload(read_payload(path), path, source, **options)


def import_payload(payload: object, path: str | os.PathLike, source: str | None = None, **options) -> KAN | KarSein:
    """Import an already-loaded ``torch.load`` payload read from ``path``."""
    where = str(path)
    _check_options(options)
    source = normalise_source(source) if source is not None else None
    if isinstance(payload, dict) and payload.get("format") == FORMAT_NAME:
        if source is None:
            raise KanxError(f"{where}: is already a kanx checkpoint, nothing to import")
        raise KanxError(f"--from {source}: {where} is a kanx checkpoint, not a {_LABELS[source]} file")
    try:
        state, wrapper = state_dict_of(payload, where)
    except KanxError:
        if source is None:
            raise KanxError(f"{where}: not a kanx checkpoint (no 'format': 'kanx' header) and not a state dict") from None
        raise KanxError(f"--from {source}: {where} is not a state dict written by {_LABELS[source]} (no tensors found)") from None
    detected = detect_state(state)
    if source is None and detected is None:
        raise KanxError(
            f"{where}: not a kanx checkpoint (no 'format': 'kanx' header) and not recognised as a "
            f"{', '.join(_LABELS.values())} checkpoint (pass --from to force one)"
        )
    if source is not None and detected is not None and detected != source:
        wanted, seen = _LABELS[source], _LABELS[detected]
        raise KanxError(f"--from {source}: {where} is not a state dict written by {wanted} (its keys look like {seen})")
    source = source or detected
    if options.get("config") is not None and source != "karsein":
        raise KanxError(f"--config: only KarSein imports read a config, and {where} is a {_LABELS[source]} checkpoint")
    if source == "pykan":
        prefix = pykan.locate(path)
        if prefix is None:
            config = f"{where[: -len('_state')]}_config.yml" if where.endswith("_state") else "<prefix>_config.yml"
            raise KanxError(f"{where}: a pykan state dict, but {config} is missing (pykan's saveckpt writes it beside the _state file)")
        imported = pykan.convert_files(prefix, options, state)
    else:
        imported = STATE_DICT_IMPORTERS[source].convert(state, where, options)
    if wrapper:
        imported.layout += f", {wrapper}"
    return finish(imported, source, Path(path))


def finish(imported: Imported, source: str, path: str | Path) -> KAN | KarSein:
    """Attach provenance and check the result against the kanx checkpoint rules."""
    model = imported.model
    provenance = {
        "imported_from": source,
        "source_file": str(path),
        "layout": imported.layout,
        "inferred": dict(imported.inferred),
        "importer": f"kanx {__version__}",
    }
    model.provenance = provenance
    family = family_of(model)
    family.validate(family.to_config(model), family.to_state(model), f"{path} (imported)")
    model.eval()
    return model


def _check_options(options: dict) -> None:
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"unknown import option {unknown[0]!r} (known: {', '.join(OPTION_NAMES)})")
    base_fn = options.get("base_fn")
    if base_fn is not None and base_fn not in BASE_FUNCTIONS:
        raise KanxError(f"--base-fn {base_fn}: must be silu, identity or zero")


# families whose reference inputs may come in another layout than one tensor (KarSein: the authors' dict)
REFERENCE_INPUTS = {"karsein": karsein.reference_inputs}


def reference_difference(model: KAN | KarSein, inputs: object, outputs: object, strict: bool) -> float | None:
    """Largest ``|model(inputs) - outputs|`` over a reference pair read from files: inputs
    ``[N, n_in]``, outputs ``[N, n_out]`` (KarSein inputs may also be the authors' ``{"dense",
    "sparse", "varsparse"}`` dict). A pair that does not fit is an error when ``strict``, else
    skipped (``None``)."""
    converter = REFERENCE_INPUTS.get(family_of(model).name)
    if converter is not None and not isinstance(inputs, torch.Tensor):
        inputs = converter(inputs, model)
    fits = isinstance(inputs, torch.Tensor) and inputs.dim() == 2 and inputs.shape[1] == model.n_inputs
    fits = fits and isinstance(outputs, torch.Tensor) and tuple(outputs.shape) == (inputs.shape[0], model.n_outputs)
    if not fits:
        if strict:
            raise KanxError(
                f"--check-inputs/--check-outputs: expected tensors [rows, {model.n_inputs}] and [rows, {model.n_outputs}]"
            )
        return None
    with torch.no_grad():
        return float((model(inputs.float()) - outputs.float()).abs().max())
