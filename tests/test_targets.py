"""Naming the target: a data file whose columns do not match the model's outputs is never silently
read as inputs only (--target on symbolify, prune, interactions; the same in Python)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import SAMPLES, assert_clean_failure, invoke

from kanx.core.errors import KanxError
from kanx.io.data import read_model_rows
from kanx.io.load import load_model


def rename_columns(source: Path, target: Path, renames: dict[str, str], extra: dict[str, str] | None = None) -> Path:
    """Copy a CSV with columns renamed and (optionally) constant extra columns appended."""
    with source.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = [renames.get(name, name) for name in rows[0]] + list(extra or {})
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(row + list((extra or {}).values()) for row in rows[1:])
    return target


@pytest.fixture
def renamed(tmp_path: Path) -> Path:
    """exp_sin's data with its output column f called 'measured' (as a user's own file would be)."""
    return rename_columns(SAMPLES / "exp_sin.csv", tmp_path / "measured.csv", {"f": "measured"})


def test_single_extra_column_is_taken_as_the_output_and_said(runner, renamed: Path) -> None:
    result = invoke(runner, "symbolify", SAMPLES / "exp_sin.pt", "--data", renamed, "--json")
    assert result.exit_code == 0, result.output
    assert "took column 'measured' as the model's output 'f'" in result.stderr
    fidelity = json.loads(result.stdout)["outputs"][0]["fidelity"]
    assert fidelity["data"] is not None and fidelity["data"]["r2"] > 0.999  # the formula was checked against the data


def test_ambiguous_columns_exit_2_and_list_them(runner, tmp_path: Path) -> None:
    path = rename_columns(SAMPLES / "exp_sin.csv", tmp_path / "two.csv", {"f": "measured"}, {"run": "7"})
    for command in ("symbolify", "prune", "interactions"):
        line = assert_clean_failure(invoke(runner, command, SAMPLES / "exp_sin.pt", "--data", path), "two.csv", "--target")
        assert "measured, run" in line
    assert not (tmp_path / "two.pruned.pt").exists()


def test_target_names_the_column(runner, tmp_path: Path) -> None:
    path = rename_columns(SAMPLES / "exp_sin.csv", tmp_path / "two.csv", {"f": "measured"}, {"run": "7"})
    result = invoke(runner, "prune", SAMPLES / "exp_sin.pt", "--data", path, "--target", "measured",
                    "-o", tmp_path / "p.pt", "--json")
    assert result.exit_code == 0, result.output
    before, after = json.loads(result.stdout)["target_r2"]
    assert before > 0.999 and after > 0.99
    assert "note:" not in result.stderr


@pytest.mark.parametrize(("target", "fragment"), [
    ("nope", "--target nope: no such column"),
    ("x", "--target x: is a model input"),
    ("measured,run", "has 1 output(s)"),
])
def test_bad_targets(runner, tmp_path: Path, target: str, fragment: str) -> None:
    path = rename_columns(SAMPLES / "exp_sin.csv", tmp_path / "two.csv", {"f": "measured"}, {"run": "7"})
    assert_clean_failure(invoke(runner, "symbolify", SAMPLES / "exp_sin.pt", "--data", path, "--target", target), fragment)


def test_python_reader_follows_the_same_rules(renamed: Path, tmp_path: Path) -> None:
    model = load_model(SAMPLES / "exp_sin.pt")
    rows = read_model_rows(model, renamed)
    assert rows.target_columns == ["measured"] and rows.y.shape == (rows.x.shape[0], 1) and rows.notes
    explicit = read_model_rows(model, renamed, targets=["measured"])
    assert explicit.notes == [] and bool((explicit.y == rows.y).all())
    two = rename_columns(SAMPLES / "exp_sin.csv", tmp_path / "two.csv", {"f": "measured"}, {"run": "7"})
    with pytest.raises(KanxError, match="--target"):
        read_model_rows(model, two)
    assert read_model_rows(model, two, infer_targets=False).y is None  # prediction reads inputs only
    assert read_model_rows(model, SAMPLES / "exp_sin.csv").target_columns == ["f"]
    inputs_only = tmp_path / "inputs.csv"
    inputs_only.write_text("x,y\n" + "".join(f"{i / 20},{-i / 30}\n" for i in range(20)))
    plain = read_model_rows(model, inputs_only)
    assert plain.y is None and plain.notes == []  # a file of inputs only is just that


def test_predict_ignores_extra_columns(runner, tmp_path: Path) -> None:
    path = rename_columns(SAMPLES / "exp_sin.csv", tmp_path / "two.csv", {"f": "measured"}, {"run": "7"})
    result = invoke(runner, "predict", SAMPLES / "exp_sin.pt", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"] == ["f"]


def test_karsein_label_column_under_another_name(runner, tmp_path: Path) -> None:
    path = rename_columns(SAMPLES / "karsein_ctr.csv", tmp_path / "clicks.csv", {"click": "clicked"})
    result = invoke(runner, "prune", SAMPLES / "karsein_ctr.pt", "--data", path, "-o", tmp_path / "p.pt", "--json")
    assert result.exit_code == 0, result.output
    assert "took column 'clicked' as the model's output 'click'" in result.stderr
    assert json.loads(result.stdout)["metrics"]["before"]["auc"] > 0.6
