"""``kanx discover`` / ``kanx.discover``: data → law in one call, and searches bounded by work."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import sympy
import torch
from typer.testing import CliRunner

import kanx
from kanx.cli import app
from kanx.core.budget import WorkBudget
from kanx.functions.library import build_library
from kanx.io.data import Dataset
from kanx.symbolic.structure.search import StructureSettings, search_structure
from kanx.training.recipe import HIDDEN_CAP, MIN_VALIDATION_ROWS, recipe_for, recipe_width

FUNCTIONS, _ = build_library(None, [])


def law_rows(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[rows, 2]`` and ``y = a·b² + 0.5`` (a on [1, 3], b on [0.5, 2])."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(1, 3, rows), rng.uniform(0.5, 2, rows)])
    return x, x[:, 0] * x[:, 1] ** 2 + 0.5


def dataset(rows: int = 500) -> Dataset:
    x, y = law_rows(rows)
    return Dataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y[:, None], dtype=torch.float32), ["a", "b"], ["y"], "test")


def test_recipe_is_chosen_from_the_data():
    data = dataset(500)
    recipe = recipe_for(data, seed=3)
    assert recipe.train.widths == [2, 5, 1] and recipe.train.patience > 0 and recipe.train.target_transform == "auto"
    assert recipe.polish_steps > 0 and recipe.train.seed == 3
    assert recipe_width(9, 2) == [9, HIDDEN_CAP, 2]
    assert recipe_for(data, optimizer="lbfgs").polish_steps == 0  # an LBFGS first phase is not polished again
    assert recipe_for(data, widths=[2, 3, 1], patience=0).train.widths == [2, 3, 1]
    few = Dataset(data.x[:40], data.y[:40], ["a", "b"], ["y"], "few")  # 8 held-out rows: too few to stop on
    assert 40 * 0.2 < MIN_VALIDATION_ROWS and recipe_for(few).train.patience == 0


def test_discover_gives_the_law_its_front_and_a_report_folder(tmp_path):
    result = kanx.discover(dataset(500), steps=300, seed=0, out=tmp_path / "out")
    law = result.laws[0]
    a, b = sympy.symbols("a b", real=True)
    assert sympy.simplify(result.expressions[0] - (a * b**2 + sympy.Rational(1, 2))) == 0, law.law
    assert law.route == "structure-first" and law.versus_data.r2 > 1 - 1e-9 and law.versus_data.rows == result.held_out_rows
    assert result.train_rows + result.held_out_rows == 500 and law.network_r2 > 0.999
    chosen = [c for c in law.front if c.chosen]
    assert len(chosen) == 1 and chosen[0].formula == law.law
    complexities = [c.complexity for c in law.front]
    assert complexities == sorted(complexities)
    errors = [c.held_out.rmse for c in law.front if not c.chosen]
    assert errors == sorted(errors, reverse=True)  # each simpler candidate on the front fits worse
    assert law.interactions == {**law.interactions, "structure": "φ(a) · φ(b)", "max_order": 2}  # a·b² couples a and b
    assert law.work > 0 and not law.cut_by_clock
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"model.pt", "report.json", "formula.tex", "activations_diagram.png", "interactions.png"} <= files
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["laws"][0]["law"] == law.law and report["oracle"]["verdict"] == "good"
    assert "DiscoveryResult(y = " in repr(result) and "<table" in result._repr_html_()
    assert kanx.load_model(tmp_path / "out" / "model.pt").meta.training["recipe"]["polish_steps"] > 0


def test_discover_command_json_and_bad_input(tmp_path):
    x, y = law_rows(300, seed=1)
    path = tmp_path / "d.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,y", comments="")
    runner = CliRunner()
    done = runner.invoke(app, ["discover", str(path), "--target", "y", "--out", str(tmp_path / "o"), "--steps", "200",
                               "--no-interactions", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["laws"][0]["versus_data"]["r2"] > 0.999 and report["laws"][0]["interactions"] is None
    bad = runner.invoke(app, ["discover", str(path), "--target", "nope", "--out", str(tmp_path / "p")])
    assert bad.exit_code == 2 and "no column 'nope'" in bad.output and "Traceback" not in bad.output
    zero = runner.invoke(app, ["discover", str(path), "--target", "y", "--budget", "0"])
    assert zero.exit_code == 2 and "--budget" in zero.output


def busy_oracle(x: torch.Tensor) -> torch.Tensor:
    """A law of three inputs that needs several steps of the search: ``x·y + sin(2z)``."""
    return x[:, 0] * x[:, 1] + torch.sin(2 * x[:, 2])


def search(budget: WorkBudget) -> list[str]:
    symbols = list(sympy.symbols("x y z", real=True))
    lo, hi = torch.tensor([0.5, 0.5, -1.0], dtype=torch.float64), torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    found = search_structure(busy_oracle, symbols, lo, hi, FUNCTIONS, StructureSettings(budget=budget.limit), seed=0, budget=budget)
    return [sympy.srepr(s.expr) for s in found]


def test_a_work_budget_gives_the_same_formulas_on_a_loaded_machine():
    quiet_budget = WorkBudget(120_000)
    quiet = search(quiet_budget)
    assert quiet_budget.exhausted() and not quiet_budget.cut_by_clock  # the work, not the clock, ended the search
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        loaded_budget = WorkBudget(120_000)
        loaded = search(loaded_budget)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert loaded == quiet and loaded_budget.spent == quiet_budget.spent


def test_a_wall_clock_cap_is_reported_when_it_cuts():
    capped = WorkBudget(10**12, seconds=0.0)
    search(capped)
    assert capped.cut_by_clock and capped.to_dict()["cut_by_clock"]
    share = WorkBudget(1000).share(0.25)
    assert share.limit == 250 and share.seconds is None


@pytest.mark.parametrize("value", [0, -5, 1.5, True])
def test_budget_must_be_whole_work_units(value):
    with pytest.raises(kanx.KanxError, match="--budget"):
        kanx.symbolic.SymbolifySettings(budget=value)
