"""Prediction stage: evaluate any kanx model on inputs, and write predictions as CSV."""

from __future__ import annotations

import csv
import io

import torch
from torch import nn

from kanx.core.classes import ClassLabels, probabilities
from kanx.core.errors import KanxError
from kanx.core.resources import map_rows, memory_budget, parse_memory, resolve_device
from kanx.core.stage import inputs_and_targets
from kanx.families.registry import family_of, placed


def predict(model: nn.Module, data: object, device: str = "cpu", max_memory: str | int | None = None) -> torch.Tensor:
    """Evaluate ``model`` on ``data`` (rows, ``kanx.Rows`` or a ``Dataset``, or a tensor of inputs
    ``[N, n_inputs]``) without gradients: ``[N, n_outputs]`` on the inputs' device (a KarSein
    model gives click probabilities; a KAN classifier the probabilities of its classes ``[N, C]``,
    float64, in the order of ``model.classes``). The work runs on ``device`` (cpu, cuda, auto) in
    chunks of rows that take about ``max_memory`` (bytes, or e.g. ``"2GB"``)."""
    x, _ = inputs_and_targets(data, "predict")
    if x is None:
        raise KanxError("predict: needs the rows to evaluate the model on")
    with memory_budget(parse_memory(max_memory)):
        target = resolve_device(device)
        network = placed(model, target)
        network.eval()
        with torch.no_grad():
            values = map_rows(lambda rows: network(rows.to(target).float()).to(x.device), x, network.row_bytes())
    return probabilities(values) if classes_of(model) is not None else values


def classes_of(model: nn.Module) -> ClassLabels | None:
    """The classes of a classifier whose outputs are logits (a KAN's), else ``None``."""
    classes = getattr(model, "classes", None)
    return classes if isinstance(classes, ClassLabels) else None


def prediction_columns(model: nn.Module) -> list[str]:
    """The columns of :func:`predictions_csv`: the model's outputs, or a classifier's label
    column (the predicted class) and ``P(c)`` of each class."""
    classes = classes_of(model)
    if classes is None:
        return family_of(model).output_names(model)
    return [model.meta.label] + [f"P({name})" for name in classes.names]


def predicted_labels(model: nn.Module, values: torch.Tensor) -> list[str]:
    """A classifier's predicted class names from :func:`predict`'s probabilities ``[N, C]`` (the
    most probable class; ties: the first)."""
    classes = classes_of(model)
    return [classes.names[i] for i in values.argmax(dim=1).tolist()]


def predictions_csv(model: nn.Module, values: torch.Tensor) -> str:
    """Predictions ``[N, n_outputs]`` as CSV text under :func:`prediction_columns` (a classifier:
    the predicted label, then the class probabilities)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(prediction_columns(model))
    labels = predicted_labels(model, values) if classes_of(model) is not None else None
    for index, row in enumerate(values.tolist()):
        cells = [repr(float(v)) for v in row]
        writer.writerow([labels[index], *cells] if labels is not None else cells)
    return buffer.getvalue()
