"""Interaction analysis on networks trained by kanx on planted functions."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest
import sympy
import torch
from typer.testing import CliRunner

from kanx.cli import app
from kanx.families.kan.network import KAN
from kanx.interaction import interactions
from kanx.interaction.bounds import structural_bound
from kanx.interaction.formula import formula_report
from kanx.io.data import formula_dataset
from kanx.io.load import load_model
from kanx.training import train
from kanx.training.kan import TrainSettings


def trained(formula: str, n: int, widths: list[int], lamb: float = 1e-3, steps: int = 1000, seed: int = 0) -> KAN:
    data = formula_dataset(formula, [f"x{i + 1}=-1:1" for i in range(n)], 1000, seed=0)
    result = train(data, TrainSettings(widths=widths, lamb=lamb, steps=steps, seed=seed))
    assert result.test.r2 > 0.999
    return result.model


def group_sets(report_output) -> set[frozenset[str]]:
    return {frozenset(g.variables) for g in report_output.groups}


def formula_groups(formula: dict) -> set[frozenset[str]]:
    return {frozenset(g["variables"]) for g in formula["groups"]}


def non_group_pairs_max(output, names: list[str]) -> float:
    groups = group_sets(output)
    worst = 0.0
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i < j and not any({a, b} <= g for g in groups):
                worst = max(worst, output.pairwise[i][j])
    return worst


@pytest.fixture(scope="module")
def additive_model() -> KAN:
    return trained("x1*x2 + sin(x3) + x4", 4, [4, 4, 1])


def test_pair_plus_singles(additive_model: KAN) -> None:
    formula = sympy.sympify("x1*x2 + sin(x3) + x4")
    report = interactions(additive_model, formulas=[formula])
    output = report.outputs[0]
    assert group_sets(output) == {frozenset({"x1", "x2"}), frozenset({"x3"}), frozenset({"x4"})}
    assert output.max_order == 2
    assert output.unused == []
    assert non_group_pairs_max(output, report.inputs) <= output.noise.floor
    assert output.pairwise[0][1] == pytest.approx(0.155, abs=0.03)  # all of Var(x1 x2) holds both
    shares = {frozenset(g.variables): g for g in output.groups}
    x1x2 = shares[frozenset({"x1", "x2"})]
    # Var(x1 x2) = 1/9, Var(sin x3) ~ 0.2727, Var(x4) = 1/3 on U(-1,1): shares ~ 0.155, 0.380, 0.465
    assert x1x2.variance_share == pytest.approx(0.155, abs=0.04)
    assert x1x2.interaction_share == pytest.approx(x1x2.variance_share, abs=0.03)
    assert formula_groups(output.formula) == group_sets(output)
    assert output.formula["max_order"] == output.max_order


def test_three_way_group_from_bundled_sample(samples: Path) -> None:
    model = load_model(samples / "threeway.pt")
    report = interactions(model, formulas=[sympy.sympify("x1*x2*x3 + x4**2")])
    output = report.outputs[0]
    assert group_sets(output) == {frozenset({"x1", "x2", "x3"}), frozenset({"x4"})}
    three = next(g for g in output.groups if g.order == 3)
    assert three.structure == "φ(x1) · φ(x2) · φ(x3)"
    assert output.max_order == 3
    assert non_group_pairs_max(output, report.inputs) <= output.noise.floor
    assert formula_groups(output.formula) == group_sets(output)


def test_exp_of_sum_is_multiplicatively_separable() -> None:
    model = trained("exp(x1 + x2)", 2, [2, 3, 1])
    report = interactions(model, formulas=[sympy.sympify("exp(x1 + x2)")])
    output = report.outputs[0]
    assert output.tree.kind == "product"
    assert [c.variables for c in output.tree.children] == [["x1"], ["x2"]]
    assert output.tree.describe() == "φ(x1) · φ(x2)"
    assert group_sets(output) == {frozenset({"x1", "x2"})}
    assert formula_groups(output.formula) == group_sets(output)


def test_unused_inputs_and_quiet_pairs() -> None:
    model = trained("x1*x2 + sin(x3)", 5, [5, 4, 1])
    report = interactions(model, formulas=[sympy.sympify("x1*x2 + sin(x3)")])
    output = report.outputs[0]
    assert output.unused == ["x4", "x5"]
    assert group_sets(output) == {frozenset({"x1", "x2"}), frozenset({"x3"})}
    assert non_group_pairs_max(output, report.inputs) <= output.noise.floor
    assert formula_groups(output.formula) == group_sets(output)


def test_formula_report_terms() -> None:
    x = torch.rand(500, 3) * 2 - 1
    report = formula_report(sympy.sympify("x1*(x2 + 1) + sin(x3)"), ["x1", "x2", "x3"], x)
    assert {t["term"] for t in report["terms"]} == {"x1*x2", "x1", "sin(x3)"}
    assert formula_groups(report) == {frozenset({"x1", "x2"}), frozenset({"x3"})}
    assert report["max_order"] == 2


def test_structural_bound_for_products_and_degree() -> None:
    model = KAN([4, 2, 1], mult=[[], [3], []])
    bound = structural_bound(model)[0]
    assert bound.max_order == 4
    assert bound.degree_bound == 27  # three cubic factors (degree 9) times a cubic edge
    sums = KAN([3, 3, 1])
    assert structural_bound(sums)[0].degree_bound == 9
    single = KAN([3, 1])
    assert structural_bound(single)[0].max_order == 1  # one layer: purely additive
    model.layers[0].mask[3, :] = 0
    assert structural_bound(model)[0].reachable == ["x_1", "x_2", "x_3"]


def test_cli_json_and_plot(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    plot = tmp_path / "inter.png"
    result = runner.invoke(app, ["interactions", str(samples / "xy_sinz_mult.pt"), "--json", "--plot", str(plot),
                                 "--formula", "x*y + sin(z)"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    output = report["outputs"][0]
    assert {frozenset(g["variables"]) for g in output["groups"]} == {frozenset({"x", "y"}), frozenset({"z"})}
    assert [s["variables"] for s in output["interaction_sets"]] == [["x", "y"]]
    assert output["noise"]["source"] == "training record" and output["noise"]["floor"] >= output["noise"]["threshold"]
    assert report["network_evaluations"] > 0
    # [3, 2, 1] with one product of two subnodes, each reading x, y and z: order 3; cubic edges: 3·(3+3) = 18
    assert report["structural"] == [{"output": "f", "max_order": 3, "reachable": ["x", "y", "z"], "degree_bound": 18}]
    image = matplotlib.image.imread(plot)
    assert image.shape[0] > 300 and image.shape[1] > 600
    text = runner.invoke(app, ["interactions", str(samples / "xy_sinz_mult.pt")])
    assert text.exit_code == 0 and "interaction sets of f" in text.stdout and "{x, y}" in text.stdout


def test_cli_bad_input(runner: CliRunner, tmp_path: Path, samples: Path) -> None:
    model = str(samples / "exp_sin.pt")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n" + "1,2\n" * 20)
    cases = [
        (["interactions", str(tmp_path / "none.pt")], "no such file"),
        (["interactions", model, "--data", str(bad_csv)], "missing x, y"),
        (["interactions", model, "--formula", "x+q"], "undeclared"),
        (["interactions", model, "--plot", str(tmp_path / "no" / "p.png")], "does not exist"),
        (["interactions", model, "--plot", str(tmp_path / "p.gif")], ".png, .svg or .pdf"),
    ]
    for args, fragment in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
