"""Structure-first symbolify: separability tests, the univariate solver, the recursive search
(exact oracles, so the expected formulas are known) and the CLI option on a trained KAN."""

from __future__ import annotations

import math

import pytest
import sympy
import torch
from conftest import assert_clean_failure, invoke

from kanx.functions.library import build_library
from kanx.symbolic.structure.scaling import Elasticities, elasticities, prefactor_options, scaling_line
from kanx.symbolic.structure.search import Solution, StructureNode, StructureSettings, search_structure, snap_exponent
from kanx.symbolic.structure.separability import COMBINATIONS, combination_residual, components, pair_shares
from kanx.symbolic.structure.strategy import HOPELESS_GAP, contenders
from kanx.symbolic.structure.univariate import fit_univariate

FUNCTIONS, _ = build_library(None, [])
EXACT = StructureSettings(separability_threshold=1e-7, combination_threshold=1e-7, accept_r2=1 - 1e-8)


def box(*pairs: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    lo = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    hi = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    return lo, hi


def solve(expr_text: str, names: str, ranges: list[tuple[float, float]]) -> sympy.Expr:
    symbols = list(sympy.symbols(names, real=True))
    truth = sympy.sympify(expr_text, locals={str(s): s for s in symbols})
    function = sympy.lambdify(symbols, truth, modules="math")

    def oracle(x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([function(*row) for row in x.tolist()], dtype=torch.float64)

    lo, hi = box(*ranges)
    found = search_structure(oracle, symbols, lo, hi, FUNCTIONS, EXACT, seed=0)
    assert found, f"nothing found for {expr_text}"
    best = max(found, key=lambda s: s.node.r2)
    assert best.node.r2 > 1 - 1e-8
    return truth, best


def assert_same_law(truth: sympy.Expr, found: sympy.Expr) -> None:
    """The same function, constant factor included: the oracles are exact, so the refitted
    constants must reproduce ``truth`` itself (compared numerically, as they are floats)."""
    symbols = sorted(truth.free_symbols, key=str)
    assert sorted(found.free_symbols, key=str) == symbols, found
    grid = torch.rand(200, len(symbols), generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 1.2
    a = sympy.lambdify(symbols, truth, modules="math")
    b = sympy.lambdify(symbols, found, modules="math")
    ratio = torch.tensor([b(*row) / a(*row) for row in grid.tolist()], dtype=torch.float64)
    assert float((ratio - 1).abs().max()) < 1e-6, (found, float(ratio.mean()))


def test_pair_shares_find_sums_products_and_offset_products() -> None:
    generator = torch.Generator().manual_seed(0)
    lo, hi = box((1, 2), (1, 2), (1, 2))
    shares = pair_shares(lambda x: x[:, 0] * x[:, 1] + torch.sin(x[:, 2]), lo, hi, 256, generator)
    assert components(shares.additive, 1e-9) == [[0, 1], [2]]
    assert components(shares.product, 1e-9) == [[0, 1, 2]]
    shares = pair_shares(lambda x: 3 + x[:, 0] * x[:, 1] ** 2 * torch.exp(x[:, 2]), lo, hi, 256, generator)
    assert abs(shares.offset - 3) < 1e-6
    assert components(shares.offset_product, 1e-9) == [[0], [1], [2]]
    assert components(shares.additive, 1e-3) == [[0, 1, 2]]


def test_combination_residual_detects_differences_and_ratios() -> None:
    generator = torch.Generator().manual_seed(0)
    lo, hi = box((1, 5), (1, 5), (1, 5))
    by_name = {c.name: c for c in COMBINATIONS}
    difference = lambda x: torch.cos(x[:, 0] - x[:, 1]) * x[:, 2]  # noqa: E731
    assert combination_residual(difference, lo, hi, 0, 1, by_name["difference"], 256, generator) < 1e-20
    assert combination_residual(difference, lo, hi, 0, 1, by_name["ratio"], 256, generator) > 1e-2
    ratio = lambda x: torch.exp(-x[:, 0] / x[:, 1]) + x[:, 2]  # noqa: E731
    assert combination_residual(ratio, lo, hi, 0, 1, by_name["ratio"], 256, generator) < 1e-20


def test_univariate_uses_transformed_targets_and_power_laws() -> None:
    t = sympy.Symbol("t")
    x = torch.linspace(1, 3, 200, dtype=torch.float64)
    lorentz = fit_univariate(x, 1 / torch.sqrt(1 - x**2 / 16), t, FUNCTIONS)
    assert lorentz.label == "inverse-square:x^2" and lorentz.r2 > 1 - 1e-10
    power = fit_univariate(x, 2.5 * x**-1.5, t, FUNCTIONS)
    assert power.label == "power" and power.r2 > 1 - 1e-10
    assert snap_exponent(-1.497) == sympy.Rational(-3, 2) and snap_exponent(0.71).is_Float


def test_power_law_is_recovered_with_exact_exponents() -> None:
    truth, best = solve("q1*q2/(4*pi*eps*r**2)", "q1 q2 eps r", [(1, 5)] * 4)
    assert best.node.kind == "power-law"
    assert_same_law(truth, best.expr)
    powers = {str(base): exponent for base, exponent in (f.as_base_exp() for f in sympy.Mul.make_args(best.expr))}
    assert powers["r"] == -2 and powers["eps"] == -1


@pytest.mark.slow
def test_product_of_a_sum_and_offset_product() -> None:
    truth, best = solve("q*(Ef + B*v*sin(theta))", "q Ef B v theta", [(1, 5)] * 5)
    assert best.node.kind == "product"
    assert_same_law(truth, best.expr)
    truth, best = solve("beta*(1 + alpha*cos(theta))", "beta alpha theta", [(1, 5)] * 3)
    assert_same_law(truth, best.expr)


@pytest.mark.slow
def test_transformed_target_and_substitution() -> None:
    truth, best = solve("sqrt((x2 - x1)**2 + (y2 - y1)**2)", "x1 x2 y1 y2", [(1, 5)] * 4)
    assert best.node.kind == "transform" and "f^2" in best.node.detail
    assert_same_law(truth, best.expr)
    truth, best = solve("x3*cos(x1 - x2)", "x1 x2 x3", [(1, 5)] * 3)
    kinds = {n.split("(")[0].strip() for n in best.node.describe()}
    assert "substitute" in kinds
    assert_same_law(truth, best.expr)


def test_elasticities_of_a_scaling_law_lie_on_one_line() -> None:
    """``f = h·w / (exp(h·w/(k·T)) − 1)``: direction ±(1, 1, −1, −1), prefactor h·w among the
    options; a function of two independent groups is refused."""
    generator = torch.Generator().manual_seed(0)
    lo, hi = box((1, 5), (1, 5), (1, 5), (1, 5))
    planck = lambda x: x[:, 0] * x[:, 1] / torch.expm1(x[:, 0] * x[:, 1] / (x[:, 2] * x[:, 3]))  # noqa: E731
    line = scaling_line(elasticities(planck, lo, hi, 128, generator))
    assert line is not None and line.line_share > 1 - 1e-9
    assert [p / q for p, q in line.direction] in ([1, 1, -1, -1], [-1, -1, 1, 1])
    assert [(1, 1), (1, 1), (0, 1), (0, 1)] in prefactor_options(line)
    two_groups = lambda x: torch.exp(x[:, 0] / x[:, 1]) + torch.exp(x[:, 2] / x[:, 3])  # noqa: E731
    assert scaling_line(elasticities(two_groups, lo, hi, 128, generator)) is None


def test_elasticity_line_weighs_down_points_where_f_is_small() -> None:
    """``x·y⁴/(y² − z²)²`` spans three decades; an absolute error of 1e-4 (a network's is about
    uniform) scatters the log-derivatives where ``f`` is small. Weighted by ``|f|`` the line
    (direction ±(0, 1, −1)) is found; with equal weights it is not."""
    lo, hi = box((1, 2), (1, 2), (3, 5))

    def resonance(x: torch.Tensor) -> torch.Tensor:
        clean = x[:, 0] * x[:, 1] ** 4 / (x[:, 1] ** 2 - x[:, 2] ** 2) ** 2
        return clean + 1e-4 * torch.sin(10 * x.sum(dim=1))

    rates = elasticities(resonance, lo, hi, 256, torch.Generator().manual_seed(0))
    line = scaling_line(rates)
    assert line is not None and [p / q for p, q in line.direction] in ([0, 1, -1], [0, -1, 1])
    assert scaling_line(Elasticities(rates.rates, torch.ones_like(rates.weights))) is None


def test_scaling_reduction_over_a_variable_that_crosses_zero() -> None:
    """A Gaussian in ``d/σ`` with ``d`` in [−2, 2]: integer exponents on ``d``, prefactor 1/σ."""
    truth, best = solve("exp(-(d/s)**2/2)/s", "s d", [(1, 3), (-2, 2)])
    assert best.node.kind == "scaling" and best.node.detail.startswith("f = s^-1 ")
    assert_same_law(truth, best.expr)


@pytest.mark.slow
def test_scaling_reduction_recovers_laws_of_one_dimensionless_group() -> None:
    truth, best = solve("h*w/(exp(h*w/(k*T)) - 1)", "h w k T", [(1, 5)] * 4)
    assert best.node.kind == "scaling" and best.node.detail.startswith("f = h·w")
    assert_same_law(truth, best.expr)
    truth, best = solve("n0*exp(-m*g*x/(k*T))", "n0 m g x k T", [(1, 5)] * 6)
    assert_same_law(truth, best.expr)
    truth, best = solve("n*m*tanh(m*B/(k*T))", "n m B k T", [(1, 5)] * 5)
    assert_same_law(truth, best.expr)


@pytest.mark.slow
def test_cli_structure_first_recovers_a_power_law(runner, tmp_path) -> None:
    model = tmp_path / "m.pt"
    result = invoke(runner, *["train", "--formula", "x*y**2/z", "--var", "x=1:3", "--var", "y=1:3", "--var", "z=1:3",
                             "--width", "3,5,1", "--seed", "0", "-o", str(model), "--quiet"])
    assert result.exit_code == 0, result.output
    result = invoke(runner, *["symbolify", str(model), "--strategy", "structure-first", "--json"])
    assert result.exit_code == 0, result.output
    import json

    out = json.loads(result.stdout)
    assert out["strategy_used"] == ["structure-first"]
    expr = sympy.sympify(out["outputs"][0]["expression"])
    x, y, z = sympy.symbols("x y z")
    ratio = sympy.simplify(expr / (x * y**2 / z))
    assert ratio.is_number and abs(float(ratio) - 1) < 0.01
    assert out["outputs"][0]["fidelity"]["network"]["r2"] > 0.999


def test_cli_structure_first_rejects_bad_options(runner, tmp_path) -> None:
    model = tmp_path / "m.pt"
    invoke(runner, *["train", "--formula", "x*y", "--var", "x=1:2", "--var", "y=1:2", "--width", "2,2,1", "--steps", "50",
                    "-o", str(model), "--quiet"])
    assert_clean_failure(invoke(runner, *["symbolify", str(model), "--strategy", "magic"]), "--strategy")
    assert_clean_failure(invoke(runner, *["symbolify", str(model), "--strategy", "structure-first", "--budget", "0"]), "--budget")
    assert_clean_failure(invoke(runner, *["symbolify", str(model), "--strategy", "structure-first", "-o", str(tmp_path / "s.pt")]),
                         "--output")


def test_pi_absorbed_by_a_redundant_constant_is_folded_back() -> None:
    """A π snapped in one constant while another absorbed the change is folded back into one
    number (``kanx.symbolic.canonical.fold_constants``); a π inside a function stays."""
    from kanx.symbolic.canonical import fold_constants

    d1, d2, n, x = sympy.symbols("d1 d2 n x")
    assert fold_constants(d1 * d2 / (sympy.Float(0.3183) * sympy.pi * d1 * n + d2), 4) == d1 * d2 / (d1 * n + d2)
    kept = sympy.Float(1.5) * sympy.sin(2 * sympy.pi * x)
    assert fold_constants(kept, 4) == sympy.Rational(3, 2) * sympy.sin(2 * sympy.pi * x)


def test_hopeless_candidates_are_not_cleaned() -> None:
    """Cleaning refits constants against the targets, seconds per formula: candidates more than
    ``HOPELESS_GAP`` (or ten times the oracle's error share) below the best R² on the oracle are
    left out, unless none is finite."""
    x = sympy.Symbol("x")

    def candidate(r2: float) -> Solution:
        return Solution(x * r2 if math.isfinite(r2) else x, StructureNode("power-law", ["x"], "", r2))

    found = [candidate(r2) for r2 in (0.95, 0.999, 0.9, float("-inf"), 0.94)]
    kept = [s.node.r2 for s in contenders(found)]
    assert kept == [0.95, 0.999] and HOPELESS_GAP == 0.05
    assert [s.node.r2 for s in contenders(found, noise=0.01)] == [0.95, 0.999, 0.9, 0.94]  # a poor oracle: 0.1
    unevaluable = [candidate(float("-inf")), candidate(float("nan"))]
    assert contenders(unevaluable) == unevaluable
