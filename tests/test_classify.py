"""Classifiers: class labels, training with cross-entropy, probabilities, and every stage on logits."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

import kanx
from kanx.core.classes import ClassLabels, class_auc, classification_metrics, cross_entropy, decision_agreement, decisions, probabilities
from kanx.core.errors import KanxError
from kanx.core.numerics import roc_auc
from kanx.io.data import load_csv, read_model_rows
from kanx.symbolic.logistic import chosen_law, logistic_laws
from kanx.training.recipe import recipe_for, train_recipe
from tests.conftest import FIXTURES, assert_clean_failure, invoke


def write_rows(path: Path, x: np.ndarray, labels: list, names: list[str], label: str) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, label])
        for row, value in zip(x.tolist(), labels):
            writer.writerow([*(repr(float(v)) for v in row), value])
    return path


def planted_logistic(path: Path, rows: int = 1200, seed: int = 2) -> Path:
    """Labels drawn from P(yes) = σ(4·(x1·x2 + sin(x3) − 0.2)) on x ∈ [−2, 2]³."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (rows, 3))
    logit = 4 * (x[:, 0] * x[:, 1] + np.sin(x[:, 2]) - 0.2)
    labels = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return write_rows(path, x, list(labels), ["x1", "x2", "x3"], "label")


def three_classes(path: Path, rows: int = 600, seed: int = 0) -> Path:
    """Three classes cut from x1 + x2²/2 at −0.3 and 0.4 (x3 plays no part)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (rows, 3))
    index = np.digitize(x[:, 0] + 0.5 * x[:, 1] ** 2, [-0.3, 0.4])
    return write_rows(path, x, [("setosa", "versicolor", "virginica")[i] for i in index], ["x1", "x2", "x3"], "species")


def trained(folder: Path, path: Path, label: str) -> tuple[Path, object, object]:
    """``(data file, dataset, TrainResult)`` of a classifier trained on ``path``'s ``label``
    (300 steps, no polish), its checkpoint saved beside the data as ``model.pt``."""
    dataset = load_csv(path, [label], task="classify")
    result = train_recipe(dataset, recipe_for(dataset, steps=300, polish_steps=0))
    kanx.save_model(result.model, folder / "model.pt")
    return path, dataset, result


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    folder = tmp_path_factory.mktemp("binary")
    return trained(folder, planted_logistic(folder / "planted.csv"), "label")


@pytest.fixture(scope="module")
def binary_formulas(binary):
    """The binary classifier's formulas from its labelled rows (symbolify's defaults)."""
    path, _, result = binary
    return kanx.symbolify(result.model, read_model_rows(result.model, path))


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multiclass")
    return trained(folder, three_classes(folder / "three.csv"), "species")


def test_class_labels_are_ordered_as_numbers_or_as_text_and_unknown_labels_are_named() -> None:
    assert ClassLabels.from_cells(["10", "2", "1.0", "2"], "f").names == ("1", "2", "10")
    assert ClassLabels.from_cells(["b", "a", "c", "a"], "f").names == ("a", "b", "c")
    labels = ClassLabels(("no", "yes"))
    assert labels.indices(["yes", "no", " yes"], "f").tolist() == [1, 0, 1]
    with pytest.raises(KanxError, match="label 'maybe' is not one of"):
        labels.indices(["maybe"], "data.csv")
    with pytest.raises(KanxError, match="one class only"):
        ClassLabels.from_cells(["a", "a"], "f")
    with pytest.raises(KanxError, match="empty"):
        ClassLabels.from_cells(["a", " "], "f")
    assert labels.logit_names(1) == ["logit(yes)"] and labels.accepts(2) and not labels.accepts(3)


def test_probabilities_decisions_and_metrics_of_logits() -> None:
    one = torch.tensor([[-2.0], [0.5], [800.0]])
    p = probabilities(one)
    assert torch.allclose(p.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert p[2, 1] == 1.0 and decisions(one).tolist() == [0, 1, 1]
    many = torch.tensor([[1.0, 2.0, 0.0], [3.0, -1.0, 0.0]])
    assert decisions(many).tolist() == [1, 0]
    labels = torch.tensor([0, 0, 1])
    metrics = classification_metrics(one, labels)
    assert metrics.accuracy == pytest.approx(2 / 3)
    assert metrics.log_loss == pytest.approx(float(cross_entropy(one.double(), labels)))
    assert metrics.auc == roc_auc(one[:, 0].numpy(), labels.numpy() == 1)
    assert class_auc(many, torch.tensor([1, 0])) == 1.0
    assert decision_agreement(one, torch.tensor([[-1.0], [1.0], [-3.0]])) == pytest.approx(2 / 3)
    assert decision_agreement(torch.tensor([[math.nan]]), torch.tensor([[1.0]])) == 0.0


def test_a_column_of_text_labels_needs_the_classify_task(tmp_path: Path) -> None:
    path = three_classes(tmp_path / "three.csv", rows=30)
    with pytest.raises(KanxError, match="kanx train --task classify"):
        load_csv(path, ["species"])
    dataset = load_csv(path, ["species"], task="classify")
    assert dataset.classes.names == ("setosa", "versicolor", "virginica") and dataset.y.shape == (30, 1)


def test_a_binary_classifier_trains_on_one_logit_and_predicts_probabilities(binary, tmp_path: Path) -> None:
    path, dataset, result = binary
    model = result.model
    assert model.widths[-1] == 1 and model.meta.output_names == ["logit(yes)"] and model.classes.names == ("no", "yes")
    assert result.test.accuracy > 0.85 and result.test.auc > 0.9  # the labels are Bernoulli draws: ~0.92 is the ceiling
    loaded = kanx.load_model(Path(path).parent / "model.pt")
    assert loaded.classes == model.classes and loaded.meta.label == "label"
    assert loaded.held_out_targets.shape[1] == 1 and set(loaded.held_out_targets.unique().tolist()) <= {0.0, 1.0}
    p = kanx.predict(loaded, dataset.x[:5])
    assert p.shape == (5, 2) and torch.allclose(p.sum(dim=1), torch.ones(5, dtype=torch.float64))
    assert "TrainResult(" in repr(result) and "accuracy" in result._repr_html_()


def test_the_planted_logistic_law_comes_back_from_the_labelled_rows(binary_formulas) -> None:
    formulas = binary_formulas
    assert formulas.strategy_used == ["sparse-logistic"]
    logit = formulas.expressions[0]
    x1, x2, x3 = sympy.symbols("x1 x2 x3")
    terms = logit.as_coefficients_dict()
    assert set(terms) == {x1 * x2, sympy.sin(x3), 1}, logit
    scale = float(terms[x1 * x2])
    assert float(terms[sympy.sin(x3)]) / scale == pytest.approx(1.0, abs=0.15)  # the shape x1·x2 + sin(x3) − 0.2, up to scale
    assert float(terms[1]) / scale == pytest.approx(-0.2, abs=0.12)
    report = formulas.classification
    assert report.agreement > 0.85 and report.formula.accuracy > 0.85
    assert [name for name, _ in formulas.probability_formulas()] == ["P(no)", "P(yes)"]
    assert formulas.to_dict()["classification"]["decision_agreement"] == report.agreement


def test_the_exported_module_returns_class_probabilities(binary_formulas, tmp_path: Path) -> None:
    formulas = binary_formulas
    module_path = tmp_path / "law.py"
    module_path.write_text(formulas.to_code("numpy"))
    spec = importlib.util.spec_from_file_location("law", module_path)
    law = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(law)
    p = law.probabilities(np.array([1.5, -1.5]), np.array([1.5, 1.5]), np.array([0.0, 0.0]))
    assert law.CLASSES == ("no", "yes") and p.shape == (2, 2)
    assert np.allclose(p.sum(axis=-1), 1.0) and p[0, 1] > 0.9 and p[1, 1] < 0.1


def test_a_multiclass_classifier_prunes_on_decisions_and_symbolifies_its_logits(multiclass) -> None:
    path, dataset, result = multiclass
    model = result.model
    assert model.widths[-1] == 3 and result.test.accuracy > 0.85
    rows = read_model_rows(model, path)
    pruned = kanx.prune(model, rows)
    assert pruned.classification is not None and pruned.fidelity >= 0.99
    assert pruned.classification["kl_divergence"] <= 0.02 and pruned.model.classes == model.classes
    formulas = kanx.symbolify(pruned.model, rows, strategy="edges", fallback="poly", lib="x,x^2,x^3")
    report = formulas.classification
    assert report.source == "the data given" and report.agreement is not None and report.network.accuracy > 0.85
    interactions = kanx.interactions(pruned.model, rows)  # on the logits: the labels are not their values
    assert interactions.to_dict()


def test_train_predict_and_import_from_the_command_line(runner, multiclass, tmp_path: Path) -> None:
    path, _, _ = multiclass
    model = tmp_path / "m.pt"
    result = invoke(runner, "train", path, "--target", "species", "--task", "classify", "--steps", "60", "--polish", "0",
                    "-o", model, "--json", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["classes"] == ["setosa", "versicolor", "virginica"] and 0 <= summary["test"]["accuracy"] <= 1
    predicted = invoke(runner, "predict", model, path)
    assert predicted.exit_code == 0, predicted.output
    header, first = predicted.stdout.splitlines()[:2]
    assert header == "species,P(setosa),P(versicolor),P(virginica)" and first.split(",")[0] in {"setosa", "versicolor", "virginica"}
    assert_clean_failure(invoke(runner, "train", path, "--target", "species", "-o", tmp_path / "r.pt"), "kanx train --task classify")
    imported = tmp_path / "imported.pt"
    result = invoke(runner, "import", FIXTURES / "efficient_kan" / "model.pt", "--task", "classify", "--classes", "no,yes",
                    "-o", imported, "--json")
    assert result.exit_code == 0, result.output
    assert kanx.load_model(imported).classes.names == ("no", "yes")
    assert_clean_failure(invoke(runner, "import", FIXTURES / "efficient_kan" / "model.pt", "--task", "classify",
                                "--classes", "a,b,c", "-o", tmp_path / "bad.pt"), "--classes a,b,c", "need 3 output(s)")


def test_a_checkpoint_whose_classes_do_not_match_its_outputs_is_refused(multiclass, tmp_path: Path) -> None:
    path, _, result = multiclass
    payload = torch.load(Path(path).parent / "model.pt", weights_only=True)
    payload["config"]["task"]["classes"] = ["a", "b"]
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(KanxError, match="lists 2 classes"):
        kanx.load_model(bad)


def test_logistic_laws_prefer_the_few_terms_that_generate_the_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1600, 2, generator=generator, dtype=torch.float64) * 4 - 2
    labels = (torch.rand(1600, generator=generator, dtype=torch.float64) < torch.sigmoid(3 * x[:, 0] - 2 * x[:, 1] ** 2 + 1)).double()
    symbols = list(sympy.symbols("a b"))
    law = chosen_law(logistic_laws(symbols, x[:1200], labels[:1200], x[1200:], labels[1200:]))
    terms = law.formulas(1)[0].as_coefficients_dict()
    assert set(terms) == {symbols[0], symbols[1] ** 2, 1}
    assert float(terms[symbols[1] ** 2]) / float(terms[symbols[0]]) == pytest.approx(-2 / 3, abs=0.15)


def test_a_classifier_whose_edges_fit_loosely_gets_a_formula_only_if_it_keeps_the_decisions(monkeypatch):
    import importlib

    from kanx.core.classes import ClassLabels
    from kanx.families.kan.edit import splines_from_symbolic
    from kanx.families.kan.network import KAN
    from kanx.symbolic.classify import formula_logits

    model = KAN([2, 1], {"kind": "bspline", "grid": 20, "k": 3}, input_ranges=[(-2, 2), (-2, 2)], input_names=["a", "b"])
    model.custom_functions["bumped"] = "tanh(2*x) + 0.6*exp(-((x - 1.5)/0.3)**2)"  # no library function fits it to R² 0.99
    model.set_symbolic(0, 0, 0, "bumped", (1, 0, 3, 0))
    model.set_symbolic(0, 1, 0, "x^2", (1, 0, 1, -1))
    x = torch.rand(2000, 2, generator=torch.Generator().manual_seed(1)) * 4 - 2
    model = splines_from_symbolic(model, x)
    model.sample_inputs = x[:1000]
    model.make_classifier("label", ClassLabels(("no", "yes")))
    first = kanx.symbolify(model, strategy="edges")
    assert formula_logits(first.expressions, model, x[:1]) is None  # the bump kept the edge numeric: 98.9% agreement is too few
    assert "classifier_r2_threshold" not in first.settings
    monkeypatch.setattr(importlib.import_module("kanx.symbolic.dispatch"), "DECISION_AGREEMENT", 0.98)
    looser = kanx.symbolify(model, strategy="edges")
    assert looser.settings["classifier_r2_threshold"] == 0.9
    assert looser.classification.agreement >= 0.98


def test_discover_gives_a_classifiers_law_its_fidelity_and_front(runner, tmp_path: Path) -> None:
    path = planted_logistic(tmp_path / "planted.csv", rows=400)
    done = invoke(runner, "discover", path, "--target", "label", "--task", "classify", "--steps", "200", "--no-interactions",
                  "--out", tmp_path / "found", "--json")
    assert done.exit_code == 0, done.output
    law = json.loads(done.stdout)["laws"][0]
    assert law["target"] == "label" and law["classes"] == ["no", "yes"] and list(law["logits"]) == ["logit(yes)"]
    held_out = law["held_out"]
    assert held_out["rows"] == 80 and held_out["formula"]["accuracy"] > 0.8 and held_out["decision_agreement"] > 0.8
    assert sum(candidate["chosen"] for candidate in law["front"]) == 1
    assert law["probabilities"][1].startswith("P(yes) = 1/(1 + exp(-logit(yes)))")
    assert (tmp_path / "found" / "report.json").is_file() and (tmp_path / "found" / "model.pt").is_file()
