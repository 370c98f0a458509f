"""Prediction stage: evaluate any kanx model on inputs, and write predictions as CSV."""

from __future__ import annotations

import csv
import io

import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.core.resources import map_rows, memory_budget, parse_memory, resolve_device
from kanx.core.stage import inputs_and_targets
from kanx.families.registry import family_of, placed


def predict(model: nn.Module, data: object, device: str = "cpu", max_memory: str | int | None = None) -> torch.Tensor:
    """Evaluate ``model`` on ``data`` (rows, ``kanx.Rows`` or a ``Dataset``, or a tensor of inputs
    ``[N, n_inputs]``) without gradients: ``[N, n_outputs]`` on the inputs' device (a KarSein
    model gives click probabilities). The work runs on ``device`` (cpu, cuda, auto) in chunks of
    rows that take about ``max_memory`` (bytes, or e.g. ``"2GB"``)."""
    x, _ = inputs_and_targets(data, "predict")
    if x is None:
        raise KanxError("predict: needs the rows to evaluate the model on")
    with memory_budget(parse_memory(max_memory)):
        target = resolve_device(device)
        network = placed(model, target)
        network.eval()
        with torch.no_grad():
            return map_rows(lambda rows: network(rows.to(target).float()).to(x.device), x, network.row_bytes())


def predictions_csv(model: nn.Module, values: torch.Tensor) -> str:
    """Predictions ``[N, n_outputs]`` as CSV text with the model's output names as the header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(family_of(model).output_names(model))
    for row in values.tolist():
        writer.writerow([repr(float(v)) for v in row])
    return buffer.getvalue()
