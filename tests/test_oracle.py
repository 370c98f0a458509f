"""Formulas from networks as users train them: pykan-trained checkpoints with pykan's names, the
user's own target column, networks that failed to train (judged, refined, never passed off as the
law), edges left numeric (second chances, reasons) and ``kanx train --init``.

The checkpoints in tests/fixtures/pykan_laws were written by pykan 0.2.8's ``saveckpt``
(``benchmarks/pykan_laws/build.py``): ``hello`` = exp(sin(πx₁)+x₂²) and ``tanh_cubic`` =
tanh(2x₁−x₂)+x₃³ after 100 LBFGS steps, ``hello_untrained`` the same network before any step.
Each ``data.csv`` names the target ``y`` while pykan calls the output ``y_1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy
import torch
from conftest import FIXTURES, assert_clean_failure, invoke

import kanx
from kanx.core.errors import KanxError
from kanx.io.data import read_model_rows
from kanx.symbolic.oracle import OracleQuality
from kanx.symbolic.settings import SymbolifySettings

LAWS = FIXTURES / "pykan_laws"


def law_files(name: str) -> tuple[Path, Path]:
    return LAWS / name / "model", LAWS / name / "data.csv"


def symbols(*names: str) -> list[sympy.Symbol]:
    return [sympy.Symbol(name, real=True) for name in names]


def test_imported_names_and_the_users_target_column(runner) -> None:
    model, data = law_files("hello")
    result = invoke(runner, "symbolify", model, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    assert "took column 'y' as the model's output 'y_1'" in result.stderr
    report = json.loads(result.stdout)
    oracle = report["oracle_quality"]
    assert oracle["verdict"] == "good" and oracle["refine_steps"] == 0 and oracle["r2"][0] > 0.9999 and oracle["is_law"]
    x1, x2 = symbols("x_1", "x_2")
    found = report["outputs"][0]
    assert found["name"] == "y_1" and found["fidelity"]["data"]["r2"] > 0.9999
    assert sympy.srepr(sympy.exp(sympy.sin(sympy.pi * x1) + x2**2)) == found["srepr"]


def test_the_oracle_line_comes_before_the_formula(runner) -> None:
    model, data = law_files("hello")
    lines = invoke(runner, "symbolify", model, "--data", data).stdout.splitlines()
    oracle = next(i for i, line in enumerate(lines) if line.startswith("oracle: the network explains y_1 100.00%"))
    formula = next(i for i, line in enumerate(lines) if line.startswith("y_1 = "))
    assert oracle < formula


def test_a_failed_network_is_not_presented_as_the_law(runner) -> None:
    model, data = law_files("hello_untrained")
    # the edge strategy alone: with --strategy auto the rows' own route may win, and its formula says
    # so instead ("fitted on the rows …", tests/test_sparse.py)
    result = invoke(runner, "symbolify", model, "--data", data, "--refine", "0", "--strategy", "edges")
    assert result.exit_code == 1 and "formula of the failed network, NOT the law: y_1 = " in result.stdout
    assert "the network failed to learn the data" in result.stderr and "--refine N" in result.stderr
    # the verdict comes before extraction, so the edge strategy alone is enough for the JSON
    report = json.loads(invoke(runner, "symbolify", model, "--data", data, "--refine", "0", "--strategy", "edges",
                               "--json").stdout)
    assert report["oracle_quality"]["verdict"] == "failed" and report["oracle_quality"]["is_law"] is False
    assert report["oracle_quality"]["r2"][0] < 0.5


@pytest.mark.slow
def test_auto_refine_repairs_a_failed_network() -> None:
    model = kanx.load_model(law_files("hello_untrained")[0])
    rows = read_model_rows(model, law_files("hello_untrained")[1])
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    result = kanx.symbolify(model, rows)
    oracle = result.oracle_quality
    assert oracle.before[0] < 0.5 and oracle.r2[0] > 0.99 and oracle.verdict == "good" and oracle.refine_steps == 50
    assert result.fidelity[0].data.r2 > 0.99
    assert result.model.provenance["refined"]["steps"] == 50
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())  # the input is untouched


def test_refine_options() -> None:
    model = kanx.load_model(law_files("hello")[0])
    with pytest.raises(KanxError, match="--refine 10: needs data with the model's outputs"):
        kanx.symbolify(model, refine=10)
    with pytest.raises(KanxError, match="--refine -1"):
        kanx.symbolify(model, refine=-1)
    with pytest.raises(KanxError, match="--refine 'lots': must be auto or a number"):
        kanx.symbolify(model, refine="lots")
    assert SymbolifySettings(refine="auto").refine is None  # as on the command line


def test_refine_is_a_cli_option(runner) -> None:
    model, data = law_files("hello")
    assert_clean_failure(invoke(runner, "symbolify", model, "--data", data, "--refine", "lots"), "--refine 'lots'")


def test_oracle_messages() -> None:
    poor = OracleQuality([0.95], 0.999, "poor", before=[0.9], refine_steps=50)
    assert "95.00%" in poor.message(["y"]) and "after 50 refinement steps (before: 90.00%)" in poor.message(["y"])
    assert "may not be the law" in poor.message(["y"]) and poor.is_law
    failed = OracleQuality([0.3], 0.99, "failed")
    assert "NOT the law" in failed.message(["y"]) and not failed.is_law and failed.to_dict()["is_law"] is False


def test_chain_view_recovers_an_edge_the_library_missed() -> None:
    """tanh(2x₁ − x₂) + x₃³: the per-edge fit takes the x₃ edge for a square root and cannot fit
    the edge it feeds; fitted as a function of x₃ through that node, the pair is x₃³."""
    model = kanx.load_model(law_files("tanh_cubic")[0])
    rows = read_model_rows(model, law_files("tanh_cubic")[1])
    result = kanx.symbolify(model, rows)
    x1, x2, x3 = symbols("x_1", "x_2", "x_3")
    assert sympy.simplify(result.expressions[0] - (sympy.tanh(2 * x1 - x2) + x3**3)) == 0
    assert any(edge.note and "chain view" in edge.note for edge in result.edges)
    assert not result.flagged


def test_every_edge_left_numeric_says_why() -> None:
    model = kanx.load_model(law_files("hello_untrained")[0])
    result = kanx.symbolify(model, read_model_rows(model, law_files("hello_untrained")[1]), refine=0, strategy="edges")
    assert result.flagged
    for edge in result.flagged:
        assert edge.note and "wider library: best" in edge.note and "end to end" in edge.note


def test_train_init_continues_an_imported_checkpoint(runner, tmp_path: Path) -> None:
    model, data = law_files("hello_untrained")
    before = model.with_name("model_state").read_bytes()
    out = tmp_path / "continued.pt"
    result = invoke(runner, "train", data, "--init", model, "--target", "y", "--optimizer", "lbfgs", "--steps", "20",
                    "-o", out, "--json", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["continued_from"] == str(model) and summary["test"]["r2"] > 0.99
    continued = kanx.load_model(out)
    assert continued.provenance["imported_from"] == "pykan" and continued.provenance["continued_by"] == "kanx train --init"
    assert continued.meta.training["continued_from"]["provenance"]["imported_from"] == "pykan"
    assert model.with_name("model_state").read_bytes() == before
    assert_clean_failure(invoke(runner, "train", data, "--init", model, "--width", "2,3,1", "-o", out), "--init", "--width")
    assert_clean_failure(invoke(runner, "train", "--init", model, "-o", tmp_path / "x.pt"), "--init", "DATA")
    samples = Path(__file__).resolve().parents[1] / "samples"
    assert_clean_failure(invoke(runner, "train", samples / "karsein_ctr.csv", "--init", samples / "karsein_ctr.pt",
                                "-o", tmp_path / "x.pt"), "--init", "KAN checkpoints, not KarSein")


def test_train_init_on_a_kanx_checkpoint_keeps_improving(runner, tmp_path: Path) -> None:
    samples = Path(__file__).resolve().parents[1] / "samples"
    out = tmp_path / "more.pt"
    result = invoke(runner, "train", samples / "exp_sin.csv", "--init", samples / "exp_sin.pt", "--target", "f",
                    "--optimizer", "lbfgs", "--steps", "5", "-o", out, "--json", "-q")
    assert result.exit_code == 0, result.output
    earlier = kanx.load_model(samples / "exp_sin.pt").meta.training["metrics"]["test"]["r2"]
    assert json.loads(result.stdout)["test"]["r2"] >= earlier - 1e-4


def test_structure_first_view_of_a_subnode_stands_for_unfittable_edges() -> None:
    """With an R² threshold no edge can reach, every live edge stays numeric after the per-edge
    retries; the sum entering the output subnode, searched structure-first on the network, is
    exp(y² + sin(πx)) and stands for the whole network."""
    samples = Path(__file__).resolve().parents[1] / "samples"
    result = kanx.symbolify(kanx.load_model(samples / "exp_sin.pt"), r2_threshold=0.99999999)
    x, y = symbols("x", "y")
    assert sympy.simplify(result.expressions[0] - sympy.exp(y**2 + sympy.sin(sympy.pi * x))) == 0
    live = [edge for edge in result.edges if edge.status not in ("masked", "negligible")]
    assert live and all(edge.status == "structure" for edge in live) and not result.flagged
    assert any("structure-first view" in (edge.note or "") for edge in live)
    assert result.fidelity[0].network.r2 > 0.999


def test_compose_with_a_subnode_formula() -> None:
    from kanx.families.kan.compose import compose, input_symbols

    samples = Path(__file__).resolve().parents[1] / "samples"
    model = kanx.load_model(samples / "xy_sinz.pt")
    x, y, z = input_symbols(model)
    plain = compose(model)[0]
    replaced = compose(model, {(1, 0): x * y})[0]
    assert replaced != plain and replaced.has(x * y)
    scale, bias = float(model.layers[1].sub_scale[0]), float(model.layers[1].sub_bias[0])
    node_scale, node_bias = float(model.layers[1].node_scale[0]), float(model.layers[1].node_bias[0])
    expected = (x * y * scale + bias) * node_scale + node_bias
    assert sympy.simplify(replaced - expected) == 0


@pytest.mark.slow
def test_a_refined_network_gives_the_law_structure_first(runner) -> None:
    """The network pykan never trained: refined on the data (R² from below 0 to ~1), then read
    structure-first, it gives the law itself."""
    model, data = law_files("hello_untrained")
    result = invoke(runner, "symbolify", model, "--data", data, "--strategy", "structure-first", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    oracle = report["oracle_quality"]
    assert oracle["before"][0] < 0 and oracle["r2"][0] > 0.9999 and oracle["refine_steps"] == 50 and oracle["verdict"] == "good"
    x1, x2 = symbols("x_1", "x_2")
    assert report["outputs"][0]["srepr"] == sympy.srepr(sympy.exp(sympy.sin(sympy.pi * x1) + x2**2))
