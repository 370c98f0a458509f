"""CLI: train, info, predict, demo — and every bad input failing cleanly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_clean_failure, invoke
from typer.testing import CliRunner

from kanx.cli import app
from kanx.io.load import load_model


@pytest.mark.slow
def test_train_formula_reaches_target_and_info_shows_it(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    result = invoke(runner, "train", "--formula", "exp(sin(pi*x)+y**2)", "--var", "x=-1:1", "--var", "y=-1:1",
                    "--width", "2,5,1", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["test"]["r2"] >= 0.99
    info = invoke(runner, "info", out, "--json")
    assert info.exit_code == 0
    described = json.loads(info.stdout)
    assert described["widths"] == [2, 5, 1]
    assert [i["name"] for i in described["inputs"]] == ["x", "y"]
    assert described["edges"] == {"total": 15, "active": 15, "symbolic": 0}
    assert described["training"]["settings"]["widths"] == [2, 5, 1]
    text = invoke(runner, "info", out)
    assert text.exit_code == 0 and "edges per layer" in text.stdout


def test_train_csv_with_inputs_and_mult(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    out = tmp_path / "mult.pt"
    result = invoke(runner, "train", samples / "xy_sinz.csv", "--target", "f", "--inputs", "x,y,z", "--width", "3,3,1",
                    "--mult", "1:1", "--steps", "20", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert model.mult == [[], [2], []]
    assert model.layers[0].shape.n_sub == 4
    assert model.meta.output_names == ["f"]


def test_predict_csv_npy_pt_agree(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    model_path = samples / "exp_sin.pt"
    model = load_model(model_path)
    x = torch.rand(7, 2) * 2 - 1
    expected = model(x).detach()
    np.save(tmp_path / "x.npy", x.numpy())
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "x.csv").write_text("y,x,extra\n" + "".join(f"{b!r},{a!r},0\n" for a, b in x.tolist()))
    for source in ("x.npy", "x.pt", "x.csv"):
        result = invoke(runner, "predict", model_path, tmp_path / source, "--json")
        assert result.exit_code == 0, result.output
        got = torch.tensor(json.loads(result.stdout)["predictions"])
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    result = invoke(runner, "predict", model_path, tmp_path / "x.csv", "-o", tmp_path / "pred.csv")
    assert result.exit_code == 0
    assert (tmp_path / "pred.csv").read_text().splitlines()[0] == "f"


def test_demo_writes_outputs(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "demo", "--out", tmp_path / "demo", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["results"]["info"]["r2_on_sample"] > 0.999
    assert (tmp_path / "demo" / "model.pt").exists() and (tmp_path / "demo" / "info.json").exists()


def test_python_dash_m_and_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version")
    assert result.exit_code == 0 and result.stdout.startswith("kanx ")


# --------------------------------------------------------------------------- bad input
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    rows = "\n".join(f"{i / 20},{(i % 7) / 7},{i / 20 + 1}" for i in range(40))
    return write(tmp_path / "good.csv", "a,b,y\n" + rows + "\n")


BAD_TRAIN_CASES = [
    (["{dir}/absent.csv", "--target", "y"], ["absent.csv", "no such file"]),
    (["{good}", "--target", "nope"], ["no column 'nope'", "columns: a, b, y"]),
    (["{nonnumeric}", "--target", "y"], ["line 3", "'b'", "not a number"]),
    (["{nan}", "--target", "y"], ["NaN"]),
    (["{short}", "--target", "y"], ["only 3 data rows"]),
    (["{good}", "--target", "y", "--width", "3,4,1"], ["--width", "2 inputs"]),
    (["{good}", "--target", "y", "--width", "2,4,2"], ["--width", "1 targets"]),
    (["--formula", "sin(x", "--var", "x=-1:1"], ["--formula", "does not parse"]),
    (["--formula", "x*q", "--var", "x=-1:1"], ["undeclared", "q"]),
    (["--formula", "x", "--var", "x=1:-1"], ["--var", "LOW < HIGH"]),
    (["--formula", "log(x)", "--var", "x=-1:1"], ["not finite"]),
    (["{good}", "--target", "y", "--mult", "5:1"], ["--mult", "layer 5"]),
    (["{good}", "--target", "y", "--optimizer", "sgd"], ["--optimizer"]),
    (["{good}", "--target", "y", "-o", "{dir}/missing/m.pt"], ["--output", "does not exist"]),
    (["{good}", "--target", "y", "-o", "{good}"], ["refusing to overwrite"]),
]


@pytest.mark.parametrize("args,fragments", BAD_TRAIN_CASES)
def test_train_bad_input(runner: CliRunner, tmp_path: Path, good_csv: Path, args: list[str], fragments: list[str]) -> None:
    files = {
        "good": good_csv,
        "dir": tmp_path,
        "nonnumeric": write(tmp_path / "nn.csv", "a,b,y\n1,2,3\n1,x,3\n" + "1,2,3\n" * 20),
        "nan": write(tmp_path / "nan.csv", "a,b,y\n1,2,3\n1,nan,3\n" + "1,2,3\n" * 20),
        "short": write(tmp_path / "short.csv", "a,b,y\n1,2,3\n2,3,4\n3,4,5\n"),
    }
    before = sorted(p.name for p in tmp_path.iterdir())
    good_bytes = good_csv.read_bytes()
    result = invoke(runner, "train", *[a.format(**files) for a in args], "--steps", "2", "--quiet")
    assert_clean_failure(result, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert good_csv.read_bytes() == good_bytes


def test_model_file_errors_through_cli(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    assert_clean_failure(invoke(runner, "info", tmp_path / "none.pt"), "none.pt", "no such file")
    assert_clean_failure(invoke(runner, "info", write(tmp_path / "t.pt", "text")), "t.pt", "not a")
    cut = tmp_path / "cut.pt"
    data = (samples / "exp_sin.pt").read_bytes()
    cut.write_bytes(data[:3000])
    assert_clean_failure(invoke(runner, "info", cut), "cut.pt", "truncated")
    payload = torch.load(samples / "exp_sin.pt", weights_only=True)
    payload["state"]["layers.0.coef"] = payload["state"]["layers.0.coef"][:, :2]
    torch.save(payload, tmp_path / "shape.pt")
    assert_clean_failure(invoke(runner, "info", tmp_path / "shape.pt"), "layers.0.coef", "shape")


def test_predict_bad_inputs(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    model = samples / "exp_sin.pt"
    wrong = write(tmp_path / "wrong.csv", "a,b\n1,2\n")
    assert_clean_failure(invoke(runner, "predict", model, wrong), "missing x, y", "model inputs: x, y")
    np.save(tmp_path / "three.npy", np.zeros((4, 3)))
    assert_clean_failure(invoke(runner, "predict", model, tmp_path / "three.npy"), "[rows, 2]")
    assert_clean_failure(invoke(runner, "predict", model, write(tmp_path / "a.txt", "1")), "unsupported input format")
    shutil.copyfile(model, tmp_path / "m.pt")
    ok = write(tmp_path / "ok.csv", "x,y\n0.1,0.2\n")
    assert_clean_failure(invoke(runner, "predict", tmp_path / "m.pt", ok, "-o", tmp_path / "m.pt"), "refusing to overwrite")
    assert_clean_failure(invoke(runner, "predict", model, ok, "-o", tmp_path / "no" / "p.csv"), "does not exist")


def test_debug_shows_traceback(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "info", str(tmp_path / "none.pt")])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
