"""``load_model``: any checkpoint kanx can read (its own, or a foreign one through the importers);
``declared_classifier``: a KAN whose outputs are declared the logits of classes."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from kanx.core.classes import ClassLabels
from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.io import importers
from kanx.io.checkpoint import model_from_payload
from kanx.io.torchfile import read_payload


def load_model(path: str | os.PathLike, source: str | None = None) -> nn.Module:
    """Load and validate a kanx checkpoint; never unpickles arbitrary objects.

    A checkpoint of another KAN library (pykan, efficient-kan, FastKAN, ChebyKAN) is detected and
    imported through ``kanx.io.importers``; ``source`` forces the library (e.g. ``"pykan"``).
    """
    target = Path(path)
    if source is not None or importers.pykan.locate(target) is not None:
        return importers.import_checkpoint(target, source)
    payload = read_payload(target)
    if isinstance(payload, dict) and "format" in payload:
        return model_from_payload(payload, str(target))
    return importers.import_payload(payload, target)


def declared_classifier(model: nn.Module, classes: Sequence[str], label: str = "class") -> KAN:
    """A copy of the KAN ``model`` whose outputs are the logits of ``classes`` (in that order) for
    the label column ``label``: one logit per class, or one (the second class's log-odds) for
    two classes. From then on every stage treats it as a classifier kanx trained (``kanx import
    --task classify --classes a,b,c``). A model of another family, or outputs that do not match
    the classes, is a ``KanxError`` naming ``--classes``."""
    if not isinstance(model, KAN):
        raise KanxError(f"--task classify: declares a KAN's outputs class logits, not a {type(model).__name__}'s")
    names = tuple(str(name).strip() for name in classes)
    if len(names) < 2 or len(set(names)) != len(names) or not all(names):
        raise KanxError(f"--classes {','.join(names)}: name two or more distinct classes")
    labels = ClassLabels(names)
    if not labels.accepts(model.n_outputs):
        raise KanxError(f"--classes {','.join(names)}: {len(names)} classes need {labels.logit_count} output(s)"
                        f"{' or 2' if len(names) == 2 else ''}; the model has {model.n_outputs}")
    if not label.strip():
        raise KanxError("--label: name the label column")
    declared = copy.deepcopy(model)
    declared.make_classifier(label.strip(), labels)
    return declared

