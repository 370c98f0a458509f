"""``from_module``: a kanx model from a KAN object held in memory (a notebook's live model).

Accepted: a pykan ``MultKAN``/``KAN``; an efficient-kan ``KAN``/``KANLinear``, a FastKAN or a
ChebyKAN ``nn.Module``; a KARSEIN module (with its ``config``); any of their ``state_dict()``s; and
kanx's own models (returned as they are). The conversion is the file importers' (same checks,
same one-line errors); only where the hyper-parameters come from differs: a live object carries
what a state dict lacks (FastKAN's RBF width and LayerNorm epsilon, the base activation, pykan's
config and cached inputs), so they are read from it unless an option gives them.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.families.karsein.model import KarSein
from kanx.io.importers import OPTION_NAMES, detect_state, finish, import_payload, normalise_source, pykan
from kanx.io.importers.common import state_dict_of

PYKAN_ATTRIBUTES = ("width", "grid", "k", "act_fun", "symbolic_fun")


def from_module(obj: object, source: str | None = None, **options) -> KAN | KarSein:
    """A kanx model (every stage accepts it) converted from ``obj``.

    ``obj``: a live KAN module of pykan, efficient-kan, FastKAN, ChebyKAN or KarSein, or one of
    their ``state_dict()``s (``{name: tensor}``). ``source`` forces the library (default:
    detected from the object's attributes or the state dict's keys). ``options`` as for
    ``kanx import``: ``rbf_width``, ``norm_eps``, ``base_fn`` and ``config`` (KarSein: the
    hyper-parameter dict or JSON path; pykan state dicts: the saveckpt config dict). Raises
    ``KanxError`` with a one-line reason when the object is not a convertible KAN.
    """
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r} (known: {', '.join(OPTION_NAMES)})")
    source = normalise_source(source) if source is not None else None
    if isinstance(obj, (KAN, KarSein)):
        return obj
    if isinstance(obj, nn.Module):
        return convert_module(obj, source, options)
    if isinstance(obj, Mapping):
        return convert_state(dict(obj), source, options, f"<{type(obj).__name__} state dict>")
    raise KanxError(f"from_module: expected a KAN nn.Module or its state_dict(), got a {type(obj).__name__}")


def convert_module(module: nn.Module, source: str | None, options: dict) -> KAN | KarSein:
    """Convert a live module: pykan through its attributes, the others through their state
    dict plus the hyper-parameters read off the module."""
    where = f"<{type(module).__name__} object>"
    state = plain_state(module.state_dict())
    is_pykan = all(hasattr(module, name) for name in PYKAN_ATTRIBUTES)
    if source == "pykan" or (source is None and is_pykan):
        if not is_pykan:
            raise KanxError(f"from_module(source='pykan'): {where} is not a pykan MultKAN (no width/act_fun/symbolic_fun)")
        imported = pykan.convert_parts(live_pykan_config(module, where), state, live_pykan_cache(module, state), where, where)
        imported.layout = f"live pykan {type(module).__name__} (config from its attributes, sample from cache_data)"
        return finish(imported, "pykan", where)
    detected = source or detect_state(state)
    for name, value in module_options(module, detected, where).items():
        options.setdefault(name, value)
    return convert_state(state, source, options, where)


def convert_state(state: dict, source: str | None, options: dict, where: str) -> KAN | KarSein:
    """Convert a state dict (``{name: tensor}``) as ``kanx import`` converts a file's."""
    state, _ = state_dict_of(plain_state(state), where)
    if (source or detect_state(state)) == "pykan":
        config = options.pop("config", None)
        if options:
            raise KanxError(f"{where}: pykan models take no {', '.join(sorted(options))} option")
        inferred = config is None
        config = pykan.config_from_state(state, where) if inferred else config
        if not isinstance(config, dict):
            raise KanxError(f"{where}: config for a pykan state dict must be the saveckpt config dict")
        imported = pykan.convert_parts(config, state, None, f"{where} config", where)
        imported.layout = "pykan state dict" + (" (widths inferred, product nodes of arity 2)" if inferred else " with its config dict")
        return finish(imported, "pykan", where)
    return import_payload(state, where, source, **options)


def plain_state(state: Mapping) -> dict:
    """Detached CPU copies of the tensors in a state dict (a model may live on a GPU); other
    entries are passed on for the importer to refuse."""
    return {key: value.detach().cpu() if isinstance(value, torch.Tensor) else value for key, value in state.items()}


def live_pykan_config(module: nn.Module, where: str) -> dict:
    """What pykan's ``saveckpt`` writes to ``_config.yml``, read from a live MultKAN."""
    input_id = getattr(module, "input_id", None)
    if isinstance(input_id, torch.Tensor) and not torch.equal(input_id.cpu().long(), torch.arange(input_id.numel())):
        raise KanxError(f"{where}: its inputs are re-indexed (input_id {input_id.tolist()}); "
                        "kanx reads pykan models whose inputs are in their original order")
    config = {name: getattr(module, attribute) for name, attribute in
              (("width", "width"), ("grid", "grid"), ("k", "k"), ("mult_arity", "mult_arity"),
               ("base_fun_name", "base_fun_name"), ("symbolic_enabled", "symbolic_enabled")) if hasattr(module, attribute)}
    for index, layer in enumerate(module.symbolic_fun):
        config[f"symbolic.funs_name.{index}"] = [list(row) for row in getattr(layer, "funs_name", [])]
    return config


def live_pykan_cache(module: nn.Module, state: dict) -> torch.Tensor | None:
    """The last input batch a MultKAN saw (``cache_data``), as the model's stored sample."""
    coef = state.get("act_fun.0.coef")
    n_in = int(coef.shape[0]) if isinstance(coef, torch.Tensor) and coef.dim() == 3 else 0
    return pykan.usable_cache(getattr(module, "cache_data", None), n_in)


def module_options(module: nn.Module, source: str | None, where: str) -> dict:
    """Import options a live efficient-kan / FastKAN module answers itself: the base activation,
    FastKAN's RBF width (``rbf.denominator``) and LayerNorm epsilon."""
    found: dict = {}
    if source in ("efficient-kan", "fastkan"):
        activations = {activation_name(m.base_activation, where) for m in module.modules() if hasattr(m, "base_activation")}
        found["base_fn"] = single(activations, "base activation", where)
    if source == "fastkan":
        widths = {float(m.denominator) for m in module.modules() if isinstance(getattr(m, "denominator", None), (int, float))}
        found["rbf_width"] = single(widths, "RBF width (rbf.denominator)", where)
        epsilons = {float(m.eps) for m in module.modules() if isinstance(m, nn.LayerNorm)}
        found["norm_eps"] = single(epsilons, "LayerNorm eps", where)
    return {name: value for name, value in found.items() if value is not None}


def activation_name(activation: object, where: str) -> str:
    """kanx's name for a module's base activation (a module instance, class or function)."""
    kind = activation if isinstance(activation, type) else type(activation)
    if activation is functional.silu or issubclass(kind, nn.SiLU):
        return "silu"
    if issubclass(kind, nn.Identity):
        return "identity"
    label = getattr(activation, "__name__", type(activation).__name__)
    raise KanxError(f"{where}: base activation {label} has no kanx counterpart (silu, identity or zero)")


def single(values: set, what: str, where: str) -> object:
    """The one value all layers share (``None`` when none has it)."""
    if len(values) > 1:
        raise KanxError(f"{where}: layers differ in {what} ({', '.join(map(str, sorted(values)))}); kanx needs one")
    return next(iter(values), None)
