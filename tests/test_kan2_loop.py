"""The KAN 2.0 loop: a formula compiled into a KAN, fine-tuned on data (symbolic edges made
splines, hidden layers widened), its grid refined, and the law read back."""

from __future__ import annotations

import copy
import json
import math

import pytest
import sympy
import torch
from conftest import SAMPLES, assert_clean_failure, invoke

import kanx
from kanx.core.errors import KanxError
from kanx.core.lambdify import formula_on_rows
from kanx.families.kan.edit import refine_grid, splines_from_symbolic, widen
from kanx.families.kan.network import KAN
from kanx.io.checkpoint import save_model
from kanx.io.data import load_csv, read_model_rows
from kanx.io.load import load_model
from kanx.symbolic.compile import check_rows, compile_formula

UNIT = {"x": (-1.0, 1.0), "y": (-1.0, 1.0)}
POSITIVE = {"x": (0.5, 2.0), "y": (0.5, 2.0), "z": (-1.0, 1.0)}
FIVE = {f"x{i}": (0.5, 2.0) for i in range(1, 6)}
WIDTHS_OF_FIVE = [5, 5, 4, 1]


@pytest.mark.parametrize("formula, ranges, widths", [
    ("exp(sin(pi*x) + y**2)", UNIT, [2, 1, 1]),
    ("x*y/(x + y)", POSITIVE, [3, 3, 1]),
    ("cosh(x) + sinh(y)", POSITIVE, [3, 4, 1]),
    ("x**y*z", POSITIVE, [3, 2, 1]),
    ("x**5*y + acos(z/2)", POSITIVE, [3, 2, 1]),
    ("exp(-(x**2 + y**2)/2)/sqrt(2*pi)", UNIT, [2, 1, 1]),
    ("x1*x2*x3 + exp(x4*x5) + sin(x1 + x5)/x2 + sqrt(x3**2 + x4**2)", FIVE, WIDTHS_OF_FIVE),
])
def test_a_compiled_formula_evaluates_to_the_formula(formula, ranges, widths):
    result = compile_formula(formula, ranges)
    assert result.model.widths == widths
    assert result.max_relative_error <= 1e-6
    # measured independently here, in the model's own float32 too
    names = list(ranges)
    rows = check_rows(ranges, 2000, seed=7)
    truth = formula_on_rows(result.formula, [sympy.Symbol(n) for n in names], list(rows.T), len(rows))
    with torch.no_grad():
        values = result.model(rows.float())[:, 0].double()
    assert float((values - truth).abs().max() / truth.abs().max()) < 1e-5
    assert result.model.meta.provenance["created_by"] == "kanx compile"
    assert "max relative error" in repr(result) and result.to_dict()["widths"] == widths


def test_a_product_is_a_multiplication_node_and_a_function_of_a_sum_an_edge():
    model = compile_formula("exp(sin(pi*x) + y**2)", UNIT).model
    assert model.mult == [[], [], []]
    assert [model.symbolic_edge(0, i, 0)[0] for i in range(2)] == ["sin", "x^2"]
    assert model.symbolic_edge(1, 0, 0)[0] == "exp"
    assert compile_formula("x*y + sin(z)", POSITIVE).model.mult == [[], [2], []]


@pytest.mark.parametrize("formula, ranges, reason", [
    ("3 + pi", UNIT, "constant"),
    ("log(x)", UNIT, "not finite everywhere on the ranges (at x=-1"),
    ("x**y", {"x": (0.0, 1.0), "y": (1.0, 2.0)}, "base 'x' reaches 0 (not positive)"),
    ("x + w", UNIT, "'w'"),
])
def test_what_cannot_be_laid_out_is_refused_with_the_reason(formula, ranges, reason):
    with pytest.raises(KanxError, match=None) as error:
        compile_formula(formula, ranges)
    assert reason in str(error.value)


def test_spline_edges_approximate_the_formula_and_carry_no_symbolic_edge():
    result = compile_formula("exp(sin(pi*x) + y**2)", UNIT, edges="spline", grid=10)
    assert sum(c["symbolic"] for c in result.model.edge_counts()) == 0
    assert result.max_relative_error < 5e-3


def test_kanx_compile_writes_a_checkpoint_that_loads(tmp_path, runner):
    out = tmp_path / "prior.pt"
    result = invoke(runner, "compile", "exp(sin(pi*x) + y**2)", "--var", "x=-1:1", "--var", "y=-1:1", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["widths"] == [2, 1, 1] and summary["max_relative_error"] <= 1e-6
    model = load_model(out)
    assert isinstance(model, KAN) and model.meta.input_names == ["x", "y"] and model.meta.output_names == ["f"]
    assert_clean_failure(invoke(runner, "compile", "log(x)", "--var", "x=-1:1", "-o", tmp_path / "bad.pt"), "not finite")
    assert_clean_failure(invoke(runner, "compile", "x*y", "--var", "x=-1:1", "-o", tmp_path / "bad.pt"), "'y'")


def test_a_wrong_prior_fine_tuned_on_the_true_law_gives_the_true_law_back(tmp_path, runner):
    prior = tmp_path / "prior.pt"
    tuned = tmp_path / "tuned.pt"
    data = SAMPLES / "exp_sin.csv"  # rows of exp(sin(pi*x) + y**2)
    assert invoke(runner, "compile", "exp(sin(pi*x) + 0.5*y**2)", "--var", "x=-1:1", "--var", "y=-1:1", "-o", prior).exit_code == 0
    result = invoke(runner, "train", data, "--target", "f", "--init", prior, "-o", tuned, "--steps", "300", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["test_before"]["r2"] < 0.9 and summary["test"]["r2"] > 0.999
    assert summary["edits"]["symbolic_edges_made_splines"] == 3
    network = load_model(tuned)
    formulas = kanx.symbolify(network, read_model_rows(network, data))
    x, y = sympy.symbols("x y", real=True)
    found = formulas.in_inputs(formulas.expressions[0])
    rows = check_rows(UNIT, 500, seed=3)
    truth = torch.exp(torch.sin(math.pi * rows[:, 0]) + rows[:, 1] ** 2)
    values = formula_on_rows(found, [x, y], list(rows.T), len(rows))
    assert float((values - truth).abs().max()) < 1e-4, found
    assert found.has(sympy.sin) and found.has(sympy.exp)


def test_numeric_training_keeps_the_symbolic_edges_and_widening_adds_capacity():
    prior = compile_formula("exp(sin(pi*x) + 0.5*y**2)", UNIT).model
    data = load_csv(SAMPLES / "exp_sin.csv", ["f"])
    result = kanx.train(data, init=prior, steps=150, trainable="numeric", widen=2)
    model = result.model
    assert model.widths == [2, 3, 1]
    assert model.symbolic_edge(0, 1, 0)[1] == pytest.approx(prior.symbolic_edge(0, 1, 0)[1])
    assert result.test.r2 > result.before.r2 + 0.1


def test_widening_starts_near_the_original_function():
    model = KAN([3, 4, 3, 1], mult=[[], [2], [], []], seed=1)
    rows = torch.rand(200, 3) * 2 - 1
    wider = widen(model, 2, seed=5)
    assert wider.widths == [3, 6, 5, 1] and wider.mult == model.mult
    with torch.no_grad():
        before, after = model(rows), wider(rows)
    assert float((after - before).abs().max()) < 1e-2 * float(before.abs().max())
    with pytest.raises(KanxError, match="no hidden layer"):
        widen(KAN([2, 1]), 1)


@pytest.mark.parametrize("new_grid", [10, 7])
def test_grid_refinement_leaves_every_edge_as_it_was(new_grid):
    model = load_model(SAMPLES / "exp_sin.pt")
    refined = refine_grid(model, new_grid)
    assert refined.model.basis["grid"] == new_grid and refined.old_grid == model.basis["grid"]
    assert refined.max_change <= 1e-4
    rows = model.sample_inputs
    with torch.no_grad():
        before, after = model(rows), refined.model(rows)
    assert float((after - before).abs().max()) <= 1e-4 * float(before.max() - before.min())
    assert refined.model.layers[0].coef.shape[-1] == new_grid + 3
    with pytest.raises(KanxError, match="already has"):
        refine_grid(model, model.basis["grid"])


def test_kanx_train_init_grid_reports_the_held_out_error_before_and_after(tmp_path, runner):
    out = tmp_path / "fine.pt"
    result = invoke(runner, "train", SAMPLES / "exp_sin.csv", "--target", "f", "--init", SAMPLES / "exp_sin.pt",
                    "--grid", "10", "--steps", "60", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["edits"]["grid_refinement"]["new_grid"] == 10
    assert summary["edits"]["grid_refinement"]["max_change"] <= 1e-4
    assert summary["test"]["rmse"] < summary["test_before"]["rmse"]
    assert load_model(out).basis["grid"] == 10
    assert_clean_failure(invoke(runner, "train", SAMPLES / "exp_sin.csv", "--target", "f", "--widen", "2", "-o", out),
                         "--init")


def test_symbolic_edges_become_splines_fitted_on_the_data():
    prior = compile_formula("exp(sin(pi*x) + y**2)", UNIT, grid=10).model
    rows = check_rows(UNIT, 1000, seed=1).float()
    splines = splines_from_symbolic(prior, rows)
    with torch.no_grad():
        exact, fitted = prior(rows), splines(rows)
    assert float((fitted - exact).abs().max() / exact.abs().max()) < 5e-3
    path_model = copy.deepcopy(splines)
    assert sum(c["symbolic"] for c in path_model.edge_counts()) == 0


def test_a_compiled_checkpoint_round_trips(tmp_path):
    result = compile_formula("x*y + sin(z)", POSITIVE)
    path = tmp_path / "prior.pt"
    save_model(result.model, path)
    loaded = load_model(path)
    rows = check_rows(POSITIVE, 100, seed=2).float()
    with torch.no_grad():
        assert torch.equal(loaded(rows), result.model(rows))
    assert loaded.meta.training["compiled"]["formula"] == "x*y + sin(z)"


BUNDLED = [("exp_sin", "exp_sin"), ("five_inputs", "five_inputs"), ("threeway", "threeway"), ("xy_sinz", "xy_sinz"),
           ("xy_sinz_mult", "xy_sinz")]


@pytest.mark.parametrize("sample, data", BUNDLED)
def test_grid_extension_lowers_the_held_out_error_of_every_bundled_sample(sample, data):
    model = load_model(SAMPLES / f"{sample}.pt")
    dataset = load_csv(SAMPLES / f"{data}.csv", model.meta.output_names)
    result = kanx.train(dataset, init=model, refine_grid=2 * model.basis["grid"], steps=20)
    refinement = result.model.meta.training["continued_from"]["grid_refinement"]
    assert refinement["max_change"] <= 1e-4
    assert result.model.meta.training["settings"]["optimizer"] == "lbfgs"
    assert result.test.rmse < 0.5 * result.before.rmse


@pytest.mark.parametrize("sample, data", BUNDLED)
def test_pruned_bundled_samples_are_drawn_with_the_fewest_crossings(sample, data):
    from itertools import permutations

    from kanx.plot.order import count_crossings, node_order

    model = load_model(SAMPLES / f"{sample}.pt")
    pruned = kanx.prune(model, read_model_rows(model, SAMPLES / f"{data}.csv")).model
    chosen = node_order(pruned, "crossings")
    assert chosen.before == count_crossings(pruned) and chosen.after <= chosen.before
    hidden = pruned.widths[1]
    assert len(pruned.widths) == 3 and hidden <= 7
    best = min(count_crossings(pruned, [list(range(pruned.widths[0])), list(order), [0]]) for order in permutations(range(hidden)))
    assert chosen.after == best


def test_continuing_a_log_target_network_keeps_its_fixed_exp_output_layer():
    from kanx.io.data import Dataset
    from kanx.training.targets import output_logs

    x = torch.rand(400, 2, generator=torch.Generator().manual_seed(0)) * 9 + 1
    data = Dataset(x, (x[:, :1] ** 2 / x[:, 1:]), ["a", "b"], ["f"], "test")
    model = kanx.train(data, widths=[2, 3, 1], steps=50, target_transform="log").model
    continued = kanx.train(data, init=model, widen=1, steps=20).model
    assert continued.widths == [2, 4, 1, 1] and output_logs(continued) == [True]
    assert continued.symbolic_edge(2, 0, 0)[0] == "exp"
