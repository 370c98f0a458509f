"""Targets that keep one sign and span decades, fitted as logarithms.

A sum of splines renders ``y = x0·x1/x2`` over four decades well where ``y`` is large and badly
where it is small: the squared error is dominated by the largest values. ``log|y|`` of such a
law is a sum of logarithms, which a KAN fits evenly. With ``--target-transform log`` (or
``auto``, for a column of one sign whose 1st..99th percentile of ``|y|`` spans at least
``LOG_SPAN``) the network fits ``log|y_k|`` and gets one more layer of fixed symbolic edges,
``sign_k·exp(·)`` on those outputs and the identity on the others. The checkpoint holds that
layer, so every later stage (predict, prune, plot, symbolify, interactions) sees the function of
``y`` itself; further training (``train --init``, ``symbolify --refine``, pruning's retraining)
fits the layers below it to ``log|y|`` again (:func:`fitted_targets`, :func:`core_view`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN

LOG_SPAN = 100.0


def log_targets(y: torch.Tensor, choice: str) -> list[bool]:
    """Per target column of ``y [N, n_out]``: fit it as ``log|y|`` (``choice``: none, log, auto)."""
    out = []
    for column in y.double().T:
        definite = bool((column > 0).all()) or bool((column < 0).all())
        if choice == "log" and not definite:
            raise KanxError("--target-transform log: a target takes both signs or 0, so it has no logarithm; "
                            "use auto or none")
        if choice == "auto" and definite and column.numel() >= 10:
            bounds = torch.tensor([0.01, 0.99], dtype=torch.float64, device=column.device)
            low, high = torch.quantile(column.abs(), bounds)
            out.append(bool(high >= LOG_SPAN * low))
        else:
            out.append(choice == "log")
    return out


def with_output_edges(core: KAN, logs: list[bool], signs: list[float]) -> KAN:
    """``core`` (fitted to ``log|y_k|`` where ``logs[k]``) followed by the output layer of fixed
    edges ``sign_k·exp(·)`` (log outputs) or the identity (the others); built on the CPU."""
    widths = list(core.widths) + [core.n_outputs]
    model = KAN(widths=widths, basis=core.basis, mult=[list(m) for m in core.mult] + [[]], base_fn=core.base_fn,
                layer_norm=list(core.layer_norm) + [False], input_ranges=core.meta.input_ranges,
                input_names=core.meta.input_names, output_names=core.meta.output_names)
    for target, source in zip(model.layers, core.layers):
        target.load_state_dict(source.state_dict())
    last = model.layers[-1]
    with torch.no_grad():
        last.mask.zero_()
        for k, (log, sign) in enumerate(zip(logs, signs)):
            last.mask[k, k] = 1.0
            model.set_symbolic(len(widths) - 2, k, k, "exp" if log else "x", (1.0, 0.0, sign if log else 1.0, 0.0))
    model.sample_inputs = core.sample_inputs
    model.held_out_inputs, model.held_out_targets = core.held_out_inputs, core.held_out_targets
    model.meta.provenance = core.meta.provenance
    return model


def output_logs(model: KAN) -> list[bool]:
    """Which outputs of ``model`` are ``exp`` of a fitted ``log|y|`` (from its training record,
    :func:`transform_record`); all ``False`` for other models and inside :func:`core_view`."""
    training = model.meta.training if isinstance(model.meta.training, dict) else {}
    recorded = training.get("target_transforms")
    if (not isinstance(recorded, dict) or recorded.get("layers") != len(model.layers)
            or not isinstance(recorded.get("outputs"), list) or len(recorded["outputs"]) != model.n_outputs):
        return [False] * model.n_outputs
    return [item == "log" for item in recorded["outputs"]]


def transform_record(model: KAN, logs: list[bool]) -> dict:
    """The training record of the output transforms of ``model`` (with its output layer)."""
    return {"outputs": ["log" if log else "none" for log in logs], "layers": len(model.layers)}


def fitted_targets(y: torch.Tensor, logs: list[bool]) -> torch.Tensor:
    """``y [N, n_out]`` with the ``logs`` columns replaced by ``log|y|``."""
    if not any(logs):
        return y
    return torch.stack([column.abs().log() if log else column for column, log in zip(y.T, logs)], dim=1)


@contextmanager
def core_view(model: KAN) -> Iterator[KAN]:
    """While open, ``model`` is its layers below the fixed output layer (the network that fits
    ``log|y|``); training it trains ``model``'s own parameters."""
    layers, widths, mult = model.layers, model.widths, model.mult
    model.layers, model.widths, model.mult = nn.ModuleList(list(layers)[:-1]), widths[:-1], mult[:-1]
    try:
        yield model
    finally:
        model.layers, model.widths, model.mult = layers, widths, mult
