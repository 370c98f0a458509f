"""Composed sums ``f = g(h_1(x_1) + h_2(x_2))``, the structure search's settling rule, the search box,
and ``--strategy auto`` (the default) on pykan-trained checkpoints whose laws only the
decomposition finds.

The checkpoints in tests/fixtures/pykan_laws/{relativistic,radius} were written by pykan 0.2.8's
``saveckpt`` (``benchmarks/pykan_laws/build.py``): relativistic velocity addition
``(x₁+x₂)/(1+x₁x₂)`` on [−0.8, 0.8]² and ``√(x₁²+x₂²+1)`` on [−1, 1]², 100 LBFGS steps each; the
data files name the target ``y`` while pykan calls the output ``y_1``.
"""

from __future__ import annotations

import json
import math

import sympy
import torch
from conftest import FIXTURES, invoke

from kanx.functions.library import build_library
from kanx.symbolic.cleaning import formula_cost, resolve_inverse_pairs
from kanx.symbolic.structure.composed import inner_profiles, neighbour_share, single_index_share
from kanx.symbolic.structure.search import StructureSettings, search_structure
from kanx.symbolic.structure.strategy import decomposed_wins, search_box, sign_resolved

FUNCTIONS, _ = build_library(None, [])
CLEAN = StructureSettings(separability_threshold=1e-6, combination_threshold=1e-6, accept_r2=1 - 1e-6,
                          settle_r2=1 - 1e-8, noise=1e-7)
x, y = sympy.symbols("x y", real=True)


def relativistic(z: torch.Tensor) -> torch.Tensor:
    return (z[:, 0] + z[:, 1]) / (1 + z[:, 0] * z[:, 1])


def square_box(half: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((2,), -half, dtype=torch.float64), torch.full((2,), half, dtype=torch.float64)


def test_profiles_of_relativistic_addition_are_the_inverse_tanh() -> None:
    lo, hi = square_box(0.78)
    profiles = inner_profiles(relativistic, lo, hi, torch.Generator().manual_seed(0))
    assert profiles is not None
    share = single_index_share(relativistic, profiles, lo, hi, 2048, torch.Generator().manual_seed(1))
    assert share < 1e-5
    truth = torch.atanh(profiles.grids) - torch.atanh(profiles.grids[:, :1])
    slopes = (profiles.values * truth).sum(1) / (truth * truth).sum(1)  # each profile = slope · atanh + offset
    residual = profiles.values - slopes[:, None] * truth
    assert float(residual.abs().max()) < 1e-3 * float(profiles.values.abs().max())
    assert math.isclose(float(slopes[0]), float(slopes[1]), rel_tol=1e-3)  # one common unit


def test_a_function_that_is_no_composed_sum_is_told_apart() -> None:
    lo, hi = square_box(1.0)

    def oracle(z: torch.Tensor) -> torch.Tensor:
        return z[:, 0] * z[:, 1] + torch.sin(2 * z[:, 0])

    profiles = inner_profiles(oracle, lo, hi, torch.Generator().manual_seed(0))
    if profiles is not None:
        assert single_index_share(oracle, profiles, lo, hi, 2048, torch.Generator().manual_seed(1)) > 1e-2


def test_neighbour_share_is_zero_for_a_function_of_u_and_large_otherwise() -> None:
    u = torch.rand(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    other = torch.rand(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert neighbour_share(u, torch.sin(3 * u)) < 1e-5
    assert neighbour_share(u, torch.sin(3 * u) + other) > 0.1


def best_formula(oracle, half: float) -> sympy.Expr:
    lo, hi = square_box(half)
    found = search_structure(oracle, [x, y], lo, hi, FUNCTIONS, CLEAN, seed=0)
    best = max(found, key=lambda s: s.node.r2)
    assert best.node.r2 > 1 - 1e-8
    return best


def rounded(expr: sympy.Expr, digits: int = 3) -> sympy.Expr:
    return expr.xreplace({n: sympy.nsimplify(round(float(n), digits)) for n in expr.atoms(sympy.Float)})


def test_search_finds_relativistic_addition_as_a_composed_sum() -> None:
    best = best_formula(relativistic, 0.78)
    assert best.node.kind == "composed-sum"
    law = resolve_inverse_pairs(sympy.simplify(rounded(best.expr)))
    assert sympy.simplify(law - (x + y) / (1 + x * y)) == 0
    assert not law.atoms(sympy.Function)  # the tanh of two inverse tanh terms became the rational law


def test_search_finds_sin_of_a_sum_of_squares_past_its_turning_point() -> None:
    # x² + y² reaches 2.9 > π/2 here, so arcsin(f) is not the sum and only the composed sum applies
    best = best_formula(lambda z: torch.sin(z[:, 0] ** 2 + z[:, 1] ** 2), 1.2)
    assert best.node.kind == "composed-sum"
    assert {type(f) for f in best.expr.atoms(sympy.Function)} == {sympy.sin}  # one sine of the sum (up to its phase)
    found = sympy.lambdify([x, y], best.expr)
    points = torch.rand(200, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2.4 - 1.2
    assert max(abs(found(a, b) - math.sin(a * a + b * b)) for a, b in points.tolist()) < 1e-6


def test_resolve_inverse_pairs_only_rewrites_when_shorter() -> None:
    assert resolve_inverse_pairs(sympy.tanh(sympy.atanh(x) + sympy.atanh(y))) == (x + y) / (x * y + 1)
    kept = sympy.sin(2 * x + 1) * sympy.exp(y)
    assert resolve_inverse_pairs(kept) is kept
    assert formula_cost((x + y) / (x * y + 1)) < formula_cost(sympy.tanh(sympy.atanh(x) + sympy.atanh(y)))


def test_search_box_leaves_out_the_sparse_rim() -> None:
    z = torch.linspace(0, 1, 1001, dtype=torch.float64)[:, None].repeat(1, 2)
    lo, hi = search_box(z)
    assert torch.allclose(lo, torch.full((2,), 0.01, dtype=torch.float64))
    assert torch.allclose(hi, torch.full((2,), 0.99, dtype=torch.float64))


def test_decomposed_formula_wins_by_misfit_then_by_length() -> None:
    short, long = x * y, sympy.cos(x) * sympy.tan(y) + x
    assert decomposed_wins(short, 1.0, long, 0.99999, 0.0, 200)  # fits better
    assert not decomposed_wins(long, 0.99999, short, 1.0, 0.0, 200)
    assert decomposed_wins(short, 0.999990, long, 0.999995, 1e-3, 200)  # equal within the noise: shorter
    assert not decomposed_wins(long, 0.999995, short, 0.999990, 1e-3, 200)


def law_of(runner, name: str) -> tuple[sympy.Expr, dict]:
    folder = FIXTURES / "pykan_laws" / name
    result = invoke(runner, "symbolify", folder / "model", "--data", folder / "data.csv", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    return report["outputs"][0], report


def test_default_strategy_reads_relativistic_addition_from_a_pykan_network(runner) -> None:
    output, report = law_of(runner, "relativistic")
    x1, x2 = sympy.symbols("x_1 x_2", real=True)
    assert report["strategy_used"] == ["structure-first"]
    assert output["srepr"] == sympy.srepr((x1 + x2) / (x1 * x2 + 1))
    assert output["fidelity"]["data"]["r2"] > 1 - 1e-9


def test_default_strategy_reads_the_radius_past_a_product_look_alike(runner) -> None:
    # a product of cosines plus a constant reproduces this network to R² 0.99996; the search goes on
    # past it to f² = x₁² + x₂² + 1, which the data then prefer
    output, report = law_of(runner, "radius")
    x1, x2 = sympy.symbols("x_1 x_2", real=True)
    assert report["strategy_used"] == ["structure-first"]
    assert output["srepr"] == sympy.srepr(sympy.sqrt(x1**2 + x2**2 + 1))


def test_signs_the_rows_settle_are_written_out_and_nothing_more() -> None:
    c, q, r, v = sympy.symbols("c q r v", real=True)
    found = sympy.sqrt(1 / (r**2 * (c - v) ** 2)) * sympy.Abs(c * q)
    rows = torch.rand(200, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rows[:, 0] += 3  # c in [3, 4), v in [0, 1): c − v > 0 on every row
    assert sign_resolved(found, [c, q, r, v], rows) == c * q / (r * (c - v))
    rows[:, 3] += 4  # now v > c on every row
    assert sign_resolved(found, [c, q, r, v], rows) == c * q / (r * (v - c))
    rows[:, 3] = torch.linspace(2, 5, 200, dtype=torch.float64)  # c − v of both signs: |c − v| stays
    assert sign_resolved(found, [c, q, r, v], rows).has(sympy.Abs)
