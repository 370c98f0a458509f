"""Prediction stage: evaluate any kanx model on inputs, and write predictions as CSV."""

from __future__ import annotations

import csv
import io

import torch
from torch import nn

from kanx.families.registry import family_of


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``model`` on ``x`` ``[N, n_inputs]`` without gradients: ``[N, n_outputs]``
    (a KarSein model gives click probabilities)."""
    model.eval()
    with torch.no_grad():
        return model(x.float())


def predictions_csv(model: nn.Module, values: torch.Tensor) -> str:
    """Predictions ``[N, n_outputs]`` as CSV text with the model's output names as the header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(family_of(model).output_names(model))
    for row in values.tolist():
        writer.writerow([repr(float(v)) for v in row])
    return buffer.getvalue()
