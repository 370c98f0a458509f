"""The model families kanx knows, in one explicit list, and the protocol each one supplies.

A :class:`Family` is what the checkpoint format and the stages need to know about a kind of model
without knowing which kind it is: its checkpoint codec, its input and output names, and how to
turn raw columns of a data file into model inputs. Stages (prune, plot, symbolify, interactions)
look the family up with :func:`family_of` and dispatch on its ``name`` through their own
per-family tables, so adding a family means adding one entry here and one per stage.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.families.checks import float32_columns, number_columns
from kanx.families.kan import codec as kan_codec
from kanx.families.kan.network import KAN
from kanx.families.karsein import codec as karsein_codec
from kanx.families.karsein.model import KarSein, labels_from

Columns = dict[str, list[str]]


@dataclass(frozen=True)
class Family:
    """One model family.

    ``to_config(model)`` / ``to_state(model)``: the checkpoint's JSON-able config and tensors;
    ``validate(config, state, where)``: raise ``KanxError`` naming the first problem;
    ``build(config, state)``: the model from a validated config and state;
    ``input_names(model)`` / ``output_names(model)``: column names;
    ``encode(model, columns, where)``: text columns (name → cells) → model inputs ``[N, n_in]``;
    ``targets(model, columns, where)``: the target columns (named by ``target_names(model)``) →
    what the model is fitted to (``[N, n_out]`` numbers for a KAN, class indices ``[N, 1]`` for a
    KAN classifier, ``[N]`` 0/1 labels for KarSein);
    ``target_names(model)``: the data columns that hold the targets (a regression KAN's outputs,
    a classifier's label column).
    """

    name: str
    model_type: type[nn.Module]
    to_config: Callable[[nn.Module], dict]
    to_state: Callable[[nn.Module], dict[str, torch.Tensor]]
    validate: Callable[[dict, dict, str], None]
    build: Callable[[dict, dict], nn.Module]
    input_names: Callable[[nn.Module], list[str]]
    output_names: Callable[[nn.Module], list[str]]
    encode: Callable[[nn.Module, Columns, str], torch.Tensor]
    targets: Callable[[nn.Module, Columns, str], torch.Tensor]
    target_names: Callable[[nn.Module], list[str]]


def encode_numeric(model: KAN, columns: Columns, where: str) -> torch.Tensor:
    """Numeric text columns in the model's input order → ``[N, n_in]`` float32."""
    return numeric_tensor(columns, model.meta.input_names, where)


def numeric_targets(model: KAN, columns: Columns, where: str) -> torch.Tensor:
    """Numeric output columns → ``[N, n_out]`` float32; a classifier's label column → its class
    indices ``[N, 1]`` (float32)."""
    classes = model.classes
    if classes is not None:
        return classes.indices(columns[model.meta.label], f"{where}: column {model.meta.label}").float()[:, None]
    return numeric_tensor(columns, model.meta.output_names, where)


def kan_target_names(model: KAN) -> list[str]:
    """The columns a KAN's targets come from: its outputs, or a classifier's label column."""
    return [model.meta.label] if model.meta.label is not None else list(model.meta.output_names)


def numeric_tensor(columns: Columns, names: list[str], where: str) -> torch.Tensor:
    return float32_columns(number_columns(columns, names, where), names, where)


def encode_tokens(model: KarSein, columns: Columns, where: str) -> torch.Tensor:
    """Field tokens and dense numbers → KarSein inputs ``[N, F + n_dense]``."""
    return model.encode(columns, where)


def click_labels(model: KarSein, columns: Columns, where: str) -> torch.Tensor:
    """The output column as 0/1 click labels ``[N]``."""
    try:
        return labels_from(columns[model.output_name], model.output_name)
    except KanxError:
        raise KanxError(f"{where}: column {model.output_name} must hold 0/1 labels") from None


FAMILIES: tuple[Family, ...] = (
    Family("kan", KAN, kan_codec.kan_config, kan_codec.kan_state, kan_codec.validate_kan, kan_codec.build_kan,
           lambda m: list(m.meta.input_names), lambda m: list(m.meta.output_names), encode_numeric, numeric_targets,
           kan_target_names),
    Family("karsein", KarSein, karsein_codec.karsein_config, karsein_codec.karsein_state, karsein_codec.validate_karsein,
           karsein_codec.build_karsein, lambda m: list(m.input_names), lambda m: [m.output_name], encode_tokens, click_labels,
           lambda m: [m.output_name]),
)
FAMILY_NAMES = tuple(family.name for family in FAMILIES)


def family_named(name: object, where: str) -> Family:
    """The family called ``name`` (a checkpoint's ``config['family']``), or a one-line error."""
    for family in FAMILIES:
        if isinstance(name, str) and name == family.name:
            return family
    shown = repr(name) if isinstance(name, str) and len(name) <= 40 else type(name).__name__
    raise KanxError(f"{where}: unknown model family {shown} (known: {', '.join(FAMILY_NAMES)})")


def family_of(model: object) -> Family:
    """The family of a model object; ``TypeError`` for anything that is not a kanx model."""
    for family in FAMILIES:
        if isinstance(model, family.model_type):
            return family
    raise TypeError(f"{type(model).__name__} is not a kanx model (known families: {', '.join(FAMILY_NAMES)})")


def device_of(model: nn.Module) -> torch.device:
    """The device holding ``model``'s weights (CPU for a model without tensors)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


STORED_ROWS = ("sample_inputs", "held_out_inputs", "held_out_targets")  # plain tensors a model carries


def placed(model: nn.Module, device: torch.device | str) -> nn.Module:
    """``model`` on ``device``: the model itself when it is there already, else a moved copy (so
    the caller's model stays where it is). The stored rows (``sample_inputs``, and a KAN's held-out
    rows and targets) move too."""
    device = torch.device(device)
    stored = [name for name in STORED_ROWS if isinstance(getattr(model, name, None), torch.Tensor)]
    if device_of(model) == device and all(getattr(model, name).device == device for name in stored):
        return model
    moved = copy.deepcopy(model).to(device)
    for name in stored:
        setattr(moved, name, getattr(moved, name).to(device))
    return moved

