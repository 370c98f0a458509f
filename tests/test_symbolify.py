"""kanx symbolify: library fits, composition, exact recovery on the bundled samples, CLI."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path

import pytest
import sympy
import torch
from typer.testing import CliRunner

from kanx.cli import app
from kanx.functions.library import BUILTIN_FUNCTIONS, build_library
from kanx.io.checkpoint import save_model
from kanx.io.load import load_model
from kanx.symbolic import symbolify
from kanx.symbolic.cleaning import nice_candidates
from kanx.symbolic.engines import builtin_candidates
from kanx.symbolic.fit import fit_edges
from kanx.symbolic.refit import Evaluator, parametrise, refit, rowwise_jacobian
from kanx.symbolic.selection import select
from kanx.symbolic.timeout import run_with_timeout

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

# argument ranges where each function is identifiable from its look-alikes
RANGES = {"x": (-1, 1), "x^2": (-1, 1.5), "x^3": (-1, 1), "x^4": (-1, 1), "1/x": (0.5, 3), "1/x^2": (0.5, 3),
          "sqrt": (0.1, 4), "1/sqrt": (0.2, 4), "exp": (-2, 2), "log": (0.1, 4), "sin": (-3, 3), "cos": (-3, 3),
          "tan": (-1.3, 1.3), "tanh": (-3, 3), "arctan": (-6, 6), "arcsin": (-0.99, 0.99),
          "arctanh": (-0.95, 0.95), "abs": (-1, 2), "gaussian": (-2.5, 2.5)}
EQUIVALENT = {"sin": {"sin", "cos"}, "cos": {"sin", "cos"}}


@pytest.fixture(scope="module")
def exp_sin_result():
    return symbolify(load_model(SAMPLES / "exp_sin.pt"))


def symbols(*names: str) -> list[sympy.Symbol]:
    return [sympy.Symbol(n, real=True) for n in names]


def test_exp_sin_recovered_exactly(exp_sin_result) -> None:
    x, y = symbols("x", "y")
    expr = exp_sin_result.expressions[0]
    assert sympy.simplify(expr - sympy.exp(sympy.sin(sympy.pi * x) + y**2)) == 0, expr
    assert exp_sin_result.fidelity[0].network.r2 >= 0.999
    assert not exp_sin_result.flagged


def test_dead_edges_become_constants_not_fits(exp_sin_result) -> None:
    statuses = {(e.layer, e.i, e.j): e.status for e in exp_sin_result.edges}
    live = {key for key, status in statuses.items() if status == "symbolic"}
    assert live == {(0, 0, 4), (0, 1, 4), (1, 4, 0)}
    assert all(statuses[(0, i, j)] == "negligible" for i in range(2) for j in range(4))


@pytest.mark.slow
def test_multiplication_node_model_recovered_exactly() -> None:
    result = symbolify(load_model(SAMPLES / "xy_sinz_mult.pt"))
    x, y, z = symbols("x", "y", "z")
    assert sympy.simplify(result.expressions[0] - (x * y + sympy.sin(z))) == 0, result.expressions[0]
    assert result.fidelity[0].network.r2 >= 0.999


def identification_cases(n: int = 200, samples: int = 400):
    names = list(RANGES)
    xs, ys, truth = [], [], []
    for case in range(n):
        name = names[case % len(names)]
        g = torch.Generator().manual_seed(case)
        lo, hi = RANGES[name]
        u = lo + (hi - lo) * torch.rand(samples, generator=g, dtype=torch.float64)
        r = torch.rand(4, generator=g, dtype=torch.float64)
        sign = torch.where(torch.rand(2, generator=g) < 0.5, -1.0, 1.0).double()
        a, b = sign[0] * (0.5 + 2.5 * r[0]), 2 * r[1] - 1
        c, d = sign[1] * (0.5 + 1.5 * r[2]), 2 * r[3] - 1
        y = c * BUILTIN_FUNCTIONS[name].torch_fn(u) + d
        y = y + 1e-3 * y.std() * torch.randn(samples, generator=g, dtype=torch.float64)
        xs.append((u - b) / a)
        ys.append(y)
        truth.append(name)
    return torch.stack(xs), torch.stack(ys), truth


@pytest.mark.slow
def test_library_functions_are_identified() -> None:
    x, y, truth = identification_cases()
    functions, _ = build_library()
    torch.set_num_threads(1)
    found = builtin_candidates(x, y, functions)
    hits = 0
    for candidates, name in zip(found.candidates, truth):
        chosen = select(candidates, 2e-3)
        hits += chosen is not None and chosen.name in EQUIVALENT.get(name, {name})
    assert hits / len(truth) >= 0.95, hits


def test_scores_never_nan_even_across_domain_edges() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 300).repeat(4, 1)
    y = torch.stack([torch.log(x[0] + 1.5), torch.sqrt(x[1].abs()), torch.randn(300, generator=generator),
                     torch.zeros(300)])
    fits = fit_edges(x, y, build_library()[0])
    assert not torch.isnan(fits.r2).any()
    assert torch.isfinite(fits.params).all()
    assert (fits.r2 <= 1 + 1e-9).all()
    log_index = fits.names.index("log")
    assert fits.r2[0, log_index] > 0.9999  # found a shift that keeps log's argument positive


def test_nice_numbers_and_timeouts() -> None:
    assert nice_candidates(3.1402)[0] == sympy.pi
    assert nice_candidates(0.4999)[0] == sympy.Rational(1, 2)
    assert nice_candidates(2.0004)[0] == 2
    started = time.perf_counter()
    assert run_with_timeout(time.sleep, (30,), 0.5, "fallback") == "fallback"
    assert time.perf_counter() - started < 5


def test_refit_jacobian_matches_forward_mode_and_recovers_the_constants() -> None:
    x = sympy.Symbol("x")
    samples = torch.linspace(-2, 2, 300, dtype=torch.float64)[:, None]
    param = parametrise(sympy.Float(1.3) * sympy.atan(sympy.Float(0.7) * x + sympy.Float(0.2)) ** 2 + sympy.Float(0.5))
    evaluator = Evaluator(param, [x], samples)

    def residual(values: torch.Tensor) -> torch.Tensor:
        return evaluator(values) - samples[:, 0]

    jacobian = rowwise_jacobian(residual, param.values, len(samples))
    assert jacobian.shape == (300, 4)
    assert torch.allclose(jacobian, torch.func.jacfwd(residual)(param.values), rtol=1e-12, atol=1e-12)
    truth = 2.0 * torch.atan(1.5 * samples[:, 0] - 0.4) ** 2 - 1.0
    fitted = evaluator(refit(evaluator, param.values, truth, [0, 1, 2, 3]))
    assert torch.allclose(fitted, truth, atol=1e-8)


@pytest.mark.slow
def test_unfittable_edges_are_flagged_not_replaced() -> None:
    model = load_model(SAMPLES / "exp_sin.pt")
    numeric = symbolify(model, r2_threshold=0.9999999, lib="x")
    assert numeric.flagged and all(e.status == "numeric" for e in numeric.flagged)
    assert numeric.expressions[0].atoms(sympy.core.function.AppliedUndef)
    poly = symbolify(model, r2_threshold=0.9999999, lib="x", fallback="poly")
    assert poly.flagged and all(e.status == "poly" for e in poly.flagged)
    assert any(name.startswith("poly_") for name in poly.model.custom_functions)


def test_finetune_keeps_fidelity_and_checkpoint_round_trips(tmp_path: Path) -> None:
    result = symbolify(load_model(SAMPLES / "exp_sin.pt"), finetune_steps=20, lib_add=["x*exp(-x)"])
    assert result.fidelity[0].network.r2 >= 0.999
    path = save_model(result.model, tmp_path / "sym.pt")
    reloaded = load_model(path)
    assert "x*exp(-x)" in reloaded.custom_functions
    assert sum(c["symbolic"] for c in reloaded.edge_counts()) == 15


def test_operon_engine_candidates_stay_loadable(tmp_path: Path) -> None:
    pytest.importorskip("pyoperon")
    result = symbolify(load_model(SAMPLES / "exp_sin.pt"), engine="operon", seed=1)
    assert result.fidelity[0].network.r2 >= 0.99
    sr = [e for e in result.edges if e.status == "symbolic" and e.chosen.name.startswith("sr_")]
    assert sr
    reloaded = load_model(save_model(result.model, tmp_path / "operon.pt"))
    x = reloaded.sample_inputs[:50]
    with torch.no_grad():
        assert torch.allclose(reloaded(x), result.model(x), atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("pysr") is None or shutil.which("julia") is None,
                    reason="PySR needs the pysr package and a Julia runtime, not available here")
def test_pysr_engine() -> None:
    result = symbolify(load_model(SAMPLES / "exp_sin.pt"), engine="pysr")
    assert result.fidelity[0].network.r2 >= 0.99


# --------------------------------------------------------------------------- CLI
def assert_clean_failure(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]


def test_cli_writes_all_outputs(tmp_path: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "in.pt"
    shutil.copyfile(SAMPLES / "exp_sin.pt", model)
    tex, sym = tmp_path / "formula.tex", tmp_path / "symbolic.pt"
    result = runner.invoke(app, ["symbolify", str(model), "--out", str(tex), "-o", str(sym), "--json",
                                 "--data", str(SAMPLES / "exp_sin.csv")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    output = summary["outputs"][0]
    x, y = symbols("x", "y")
    assert sympy.simplify(sympy.sympify(output["expression"], locals={"x": x, "y": y})
                          - sympy.exp(sympy.sin(sympy.pi * x) + y**2)) == 0
    assert output["fidelity"]["data"]["r2"] >= 0.999
    assert sympy.simplify(sympy.sympify(output["srepr"]) - sympy.exp(sympy.sin(sympy.pi * x) + y**2)) == 0
    chosen = {(e["layer"], e["input"], e["subnode"]): e["chosen"]["function"] for e in summary["edges"] if e["status"] == "symbolic"}
    assert chosen == {(0, 0, 4): "sin", (0, 1, 4): "x^2", (1, 4, 0): "exp"}
    assert all(e["candidates"] for e in summary["edges"] if e["status"] == "symbolic")
    assert r"\begin{equation}" in tex.read_text() and r"\begin{tabular}" in tex.read_text()
    info = runner.invoke(app, ["info", str(sym), "--json"])
    assert info.exit_code == 0
    assert sum(c["symbolic"] for c in load_model(sym).edge_counts()) == 15
    plain = runner.invoke(app, ["symbolify", str(model)])
    assert plain.exit_code == 0 and "exp" in plain.stdout


def test_cli_bad_options_fail_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    model = str(SAMPLES / "exp_sin.pt")
    assert_clean_failure(runner.invoke(app, ["symbolify", model, "--lib", "x,sinx"]), "--lib")
    assert_clean_failure(runner.invoke(app, ["symbolify", model, "--lib-add", "x*("]), "--lib-add")
    assert_clean_failure(runner.invoke(app, ["symbolify", str(tmp_path / "missing.pt")]), "missing.pt")
    assert_clean_failure(runner.invoke(app, ["symbolify", model, "--engine", "magic"]), "--engine")
    assert_clean_failure(runner.invoke(app, ["symbolify", model, "-o", model]), "--output")


def test_a_simplification_is_compared_only_where_the_formulas_are_defined() -> None:
    """A formula undefined on some rows (NaN there) is a numeric fact, not an internal error: the
    same formula keeps its simplification, one defined on other rows does not."""
    from kanx.symbolic.edges import prefer_shorter

    x0 = sympy.Symbol("x0", real=True)
    rows = torch.tensor([[-1.0], [1.0], [4.0]], dtype=torch.float64)
    undefined_below_two = sympy.sqrt(x0 - 2) + 1
    assert prefer_shorter(undefined_below_two, undefined_below_two, [x0], rows, None) == undefined_below_two
    assert prefer_shorter(sympy.sqrt(x0), sympy.sqrt(sympy.Abs(x0)), [x0], rows, None) == sympy.sqrt(sympy.Abs(x0))
    nowhere = sympy.sqrt(x0 - 10)
    assert prefer_shorter(nowhere, nowhere, [x0], rows, None) == nowhere
