"""The rows' own route (``kanx.symbolic.sparse``): a sparse regression over a library of terms,
on rows along trajectories, where a network learns least."""

from __future__ import annotations

import pytest
import sympy
import torch
from conftest import rk4_states

from kanx.core.choices import SPARSE_ROUTE
from kanx.core.numerics import split_rows
from kanx.io.data import Dataset
from kanx.symbolic.canonical import constant_digits, shortest_constants
from kanx.symbolic.sparse import Logistic, Saturating, basin_starts, best_sparse_law, nonlinear_library, sparse_laws, term_library
from kanx.symbolic.structure.strategy import law_from_rows

X0, X1 = sympy.symbols("x_0 x_1", real=True)


def van_der_pol(states: torch.Tensor, damping: float = 0.43) -> torch.Tensor:
    """The van der Pol field ``[N, 2]`` at ``states [N, 2]``: ``(x₁, −x₀ − μ·x₁·(x₀² − 1))``."""
    x, v = states[:, 0], states[:, 1]
    return torch.stack([v, -x - damping * v * (x**2 - 1)], dim=1)


def trajectories(starts: list[tuple[float, float]], steps: int = 150, dt: float = 0.05) -> torch.Tensor:
    """States ``[len(starts)·steps, 2]`` along van der Pol trajectories (classical RK4, float64):
    clustered rows, dense near the limit cycle and sparse in the transients."""
    return rk4_states(van_der_pol, starts, steps, dt)


def trajectory_rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit and held-out rows of the velocity's rate along two trajectories."""
    x = trajectories([(0.1, 0.0), (3.0, -2.0)])
    y = van_der_pol(x)[:, 1]
    fit, held = split_rows(len(x), 0.25, 0)
    return x[fit], y[fit], x[held], y[held]


def same_terms(found: sympy.Expr, truth: sympy.Expr, rel: float) -> bool:
    """Whether the expanded formulas have the same terms with constants within ``rel``."""
    found_terms, true_terms = sympy.expand(found).as_coefficients_dict(), sympy.expand(truth).as_coefficients_dict()
    return set(found_terms) == set(true_terms) and all(
        float(found_terms[t]) == pytest.approx(float(true_terms[t]), rel=rel) for t in true_terms)


def test_library_keeps_defined_distinct_terms() -> None:
    """``log`` and ``sqrt`` only of positive inputs, ``1/x`` only of one-signed ones, and a term
    equal to an earlier one on every row (``|x|`` of a positive input) left out."""
    x = torch.tensor([[1.0, -2.0], [2.0, 0.5], [3.0, 1.5], [4.0, -1.0]], dtype=torch.float64)
    formulas, values = term_library(x, [X0, X1])
    assert values.shape == (4, len(formulas)) and bool(torch.isfinite(values).all())
    assert sympy.log(X0) in formulas and sympy.sqrt(X0) in formulas and 1 / X0 in formulas
    assert sympy.log(X1) not in formulas and 1 / X1 not in formulas and sympy.Abs(X0) not in formulas
    assert sympy.Abs(X1) in formulas and X1 * sympy.Abs(X1) in formulas and sympy.sin(X0) * sympy.cos(X1) in formulas


def test_sparse_regression_recovers_a_law_on_trajectories() -> None:
    """``−x₀ − 0.43·x₁·(x₀² − 1)`` from 225 rows along two trajectories: three terms with their
    exact constants, on the held-out rows to float64 rounding."""
    x_fit, y_fit, x_test, y_test = trajectory_rows()
    laws = sparse_laws([X0, X1], x_fit, y_fit, x_test, y_test)
    best = best_sparse_law(laws, noise=0.0, rows=len(y_test))
    assert best is not None and set(best.terms) == {X0, X1, X0**2 * X1}
    coefficients = dict(zip(best.terms, best.coefficients))
    assert coefficients[X0] == pytest.approx(-1, abs=1e-9) and coefficients[X1] == pytest.approx(0.43, abs=1e-9)
    assert coefficients[X0**2 * X1] == pytest.approx(-0.43, abs=1e-9)
    assert best.held_out_r2 > 1 - 1e-12


def test_law_from_rows_is_cleaned_and_in_the_data_units() -> None:
    """The same law with the target in units of 1e+20 and the inputs in units of 1e-6: the
    constants snap back to ``0.43`` and ``1`` and the law is written in the data's units."""
    x_fit, y_fit, x_test, y_test = trajectory_rows()
    scale_x, scale_y = 1e-6, 1e20
    found = law_from_rows([X0, X1], x_fit * scale_x, y_fit * scale_y, x_test * scale_x, y_test * scale_y, 6, 10.0, 0.0)
    assert found is not None
    expr, r2, log = found
    truth = scale_y * (-(X0 / scale_x) - 0.43 * (X1 / scale_x) * ((X0 / scale_x) ** 2 - 1))
    assert r2 > 1 - 1e-10 and log["terms"] == 3
    assert same_terms(expr, truth, rel=1e-5)


def test_saturating_term_is_found_with_its_half_saturation_point() -> None:
    """A logistic growth with a Michaelis–Menten loss, ``0.4·x·(1 − x/100) − 0.24·x/(x + 50)``, on
    120 rows over [21, 97]: three terms, the saturating one at ``K = 50`` to 1e-4 (the library's
    point searched beside the monomials and refined beside the law's other terms), and the law
    written as a ratio with that pole)."""
    x = torch.linspace(21, 97, 120, dtype=torch.float64).unsqueeze(1)
    y = 0.4 * x[:, 0] * (1 - 0.01 * x[:, 0]) - 0.24 * x[:, 0] / (x[:, 0] + 50)
    fit, held = split_rows(len(x), 0.25, 0)
    library = [term for term in nonlinear_library(x[fit], y[fit]) if isinstance(term, Saturating)]
    assert {(term.power, term.factor) for term in library} == {(m, None) for m in range(1, 6)}
    assert next(term for term in library if term.power == 1).half == pytest.approx(50, rel=1e-8)
    best = best_sparse_law(sparse_laws([X0], x[fit], y[fit], x[held], y[held]), noise=0.0, rows=len(held))
    assert best is not None and best.size == 3 and best.held_out_r2 > 1 - 1e-10
    found = law_from_rows([X0], x[fit], y[fit], x[held], y[held], 6, 10.0, 0.0)
    assert found is not None and found[1] > 1 - 1e-10
    poles = [sympy.Poly(term.base, X0).all_roots() for term in found[0].atoms(sympy.Pow) if term.exp == -1]
    assert len(poles) == 1 and len(poles[0]) == 1 and float(poles[0][0]) == pytest.approx(-50, rel=1e-4)


def test_saturating_term_values_match_its_formula() -> None:
    """``x₀·x₁²/(x₁² + h²)``: the values at one point and at a batch of points equal the formula's."""
    term = Saturating(1, 2, 0.7, factor=0)
    x = torch.tensor([[2.0, 0.5], [-1.0, 3.0]], dtype=torch.float64)
    expected = torch.tensor([2.0 * 0.25 / (0.25 + 0.49), -9.0 / (9.0 + 0.49)], dtype=torch.float64)
    assert torch.allclose(term.values(x), expected)
    halves = torch.tensor([[0.7], [0.7]], dtype=torch.float64).log()
    assert torch.allclose(term.batch_values(x, halves), expected.expand(2, -1))
    formula = term.formula([X0, X1])
    assert formula.free_symbols == {X0, X1}
    assert float(formula.subs({X0: 2.0, X1: 0.5})) == pytest.approx(float(expected[0]), rel=1e-12)


def test_a_product_of_two_inputs_and_a_cosine_is_in_the_library() -> None:
    """``−x₀·x₁·cos x₂`` from 300 random rows of three inputs: one term of the library."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(300, 3, generator=generator, dtype=torch.float64) * 4 - 2
    y = -x[:, 0] * x[:, 1] * torch.cos(x[:, 2])
    symbols = list(sympy.symbols("x_0 x_1 x_2", real=True))
    best = best_sparse_law(sparse_laws(symbols, x[:225], y[:225], x[225:], y[225:]), noise=0.0, rows=75)
    assert best is not None and best.terms == [symbols[0] * symbols[1] * sympy.cos(symbols[2])]
    assert best.coefficients[0] == pytest.approx(-1, abs=1e-9)


def test_constants_are_written_in_the_form_with_fewest_digits() -> None:
    """A sum of fitted terms keeps its fitted coefficients (``1.84·x₀ − 1.45·x₀x₁``, not
    ``1.84·x₀·(1 − 0.788044·x₁)``), an offset goes into a logarithm where that is shorter, a
    saturating denominator keeps its half-saturation constant, and a product whose constant
    would repeat stays factored."""
    folded = 1.84 * X0 * (1 - sympy.Float(0.788043478) * X1)
    spread = shortest_constants(folded, 6)
    assert isinstance(spread, sympy.Add) and same_terms(spread, 1.84 * X0 - 1.45 * X0 * X1, rel=1e-5)
    assert constant_digits(spread, 5) == 6
    logarithm = shortest_constants(0.032 * X0 * sympy.log(X0) + 0.0265137 * X0, 6)
    assert sorted(float(c) for c in logarithm.atoms(sympy.Float)) == pytest.approx([0.032, 2.29], rel=1e-5)
    assert logarithm.atoms(sympy.log) and not isinstance(logarithm, sympy.Add)
    saturating = shortest_constants(-0.00200249 * X0**2 / (0.00222499 * X0**2 + 1), 6)
    (denominator,) = saturating.atoms(sympy.Add)
    assert denominator.coeff(X0, 2) == 1 and float(denominator.subs(X0, 0)) == pytest.approx(449.44, rel=1e-5)
    assert float(saturating.subs(X0, 10)) == pytest.approx(-90 / 549.44, rel=1e-5)
    factored = 3.2 * X0 * (X0 + X1)
    assert shortest_constants(factored, 6).atoms(sympy.Add) == {X0 + X1}


def test_no_rows_route_beyond_its_inputs() -> None:
    """Six inputs: the library would grow past its size, so the route stands aside."""
    x = torch.rand(50, 6, dtype=torch.float64)
    assert sparse_laws(list(sympy.symbols("a:f")), x[:40], x[:40, 0], x[40:], x[40:, 0]) == []


@pytest.mark.slow
def test_symbolify_takes_the_rows_law_where_the_network_is_poor(capsys) -> None:
    """A network trained for a few steps on the trajectory rows is a poor oracle; symbolify still
    gives the law, from the sparse regression, and says which route gave it."""
    from kanx.cli.symbolify import render_formulas
    from kanx.symbolic import symbolify
    from kanx.training import TrainSettings, train

    x = trajectories([(0.1, 0.0), (3.0, -2.0)])
    data = Dataset(x.float(), van_der_pol(x)[:, 1:].float(), ["x_0", "x_1"], ["dv"], "test")
    model = train(data, TrainSettings(widths=[2, 3, 1], steps=15, seed=0, test_fraction=0.0)).model
    result = symbolify(model, data=data, strategy="structure-first", budget=50_000, seed=0)
    assert result.strategy_used == [SPARSE_ROUTE]
    expanded = sympy.expand(result.in_inputs(result.expressions[0]))
    assert expanded.free_symbols == {X0, X1}
    assert same_terms(expanded, -X0 - 0.43 * X1 * (X0**2 - 1), rel=1e-5)
    assert result.log[0]["rows_route"]["terms"] == 3
    render_formulas(result)
    printed = " ".join(capsys.readouterr().out.split())
    assert "fitted on the rows (sparse regression), not read from the network: dv =" in printed


def test_logistic_step_values_match_its_formula_and_its_mirror() -> None:
    """A step of two inputs: its values equal its formula's, and its mirror is one minus it."""
    x = torch.tensor([[0.3, -1.0, 2.0], [1.5, 0.5, -0.7], [-2.0, 0.1, 0.4]], dtype=torch.float64)
    step = Logistic.of((0, 2), x).with_parameters(torch.tensor([0.8, 0.4, 0.3], dtype=torch.float64))
    formula = step.formula([X0, X1, sympy.Symbol("x_2", real=True)])
    for row, value in zip(x.tolist(), step.values(x).tolist()):
        assert float(formula.subs({X0: row[0], sympy.Symbol("x_2", real=True): row[2]})) == pytest.approx(value, rel=1e-12)
    assert torch.allclose(step.mirrored().values(x), 1 - step.values(x))


def test_a_logistic_step_of_two_inputs_is_found_with_exact_constants() -> None:
    """``−x₀ + 1/(1 + 0.25·exp(0.4·x₁ + 0.89·x₂))`` (binocular rivalry with adaptation) on 200
    random rows: two terms, the step's constants to 1e-6 (a grid finds the basin, a
    Levenberg–Marquardt polish the bottom)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(200, 3, generator=generator, dtype=torch.float64) * 3 - 0.5
    y = -x[:, 0] + 1 / (1 + 0.25 * torch.exp(0.4 * x[:, 1] + 0.89 * x[:, 2]))
    symbols = list(sympy.symbols("x_0 x_1 x_2", real=True))
    best = best_sparse_law(sparse_laws(symbols, x[:150], y[:150], x[150:], y[150:]), noise=0.0, rows=50)
    assert best is not None and best.size == 2 and best.held_out_r2 > 1 - 1e-12
    (step,) = [term for term in best.terms if term.has(sympy.exp)]
    argument = next(iter(step.atoms(sympy.exp))).args[0]
    assert float(argument.coeff(symbols[1])) == pytest.approx(0.4, rel=1e-6)
    assert float(argument.coeff(symbols[2])) == pytest.approx(0.89, rel=1e-6)
    assert float(step.subs({symbols[1]: 0, symbols[2]: 0})) == pytest.approx(1 / 1.25, rel=1e-6)


def test_a_ratio_without_a_constant_below_and_a_root_are_found_when_nothing_else_fits() -> None:
    """Resistors in parallel ``x₀x₁/(x₀ + x₁)`` (a denominator without a constant) and a
    hypotenuse ``√(x₀² + 3·x₁²)`` (the library fits its square), each on 120 random rows of two
    inputs: the exact law, which no law of the plain library reaches."""
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(120, 2, generator=generator, dtype=torch.float64) * 2 + 0.5
    y_parallel = x[:, 0] * x[:, 1] / (x[:, 0] + x[:, 1])
    y_root = torch.sqrt(x[:, 0] ** 2 + 3 * x[:, 1] ** 2)
    for y, truth in [(y_parallel, X0 * X1 / (X0 + X1)), (y_root, sympy.sqrt(X0**2 + 3 * X1**2))]:
        laws = sparse_laws([X0, X1], x[:90], y[:90], x[90:], y[90:])
        best = best_sparse_law(laws, noise=0.0, rows=30)
        assert best is not None and best.held_out_r2 > 1 - 1e-12 and (best.pivot != 1 or best.outer)
        assert max(law.held_out_r2 for law in laws if law.pivot == 1 and not law.outer) < 1 - 1e-12
        rows = torch.rand(20, 2, generator=generator, dtype=torch.float64) * 2 + 0.5
        found = sympy.lambdify([X0, X1], best.formula)(*rows.T.numpy())
        expected = sympy.lambdify([X0, X1], truth)(*rows.T.numpy())
        assert found == pytest.approx(expected, rel=1e-9)


def test_a_search_starts_from_distinct_basins_of_its_grid() -> None:
    """The starts of a step's polish: by residual, skipping points within one spacing of a better
    start (its own basin), up to the count asked."""
    grid = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [0.0, 0.5], [9.0, 0.0]], dtype=torch.float64)
    errors = torch.tensor([1.0, 2.0, 3.0, 0.5, float("inf")], dtype=torch.float64)
    spacing = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert basin_starts(grid, errors, spacing, 3) == [3, 2]
    assert basin_starts(grid, errors, spacing, 1) == [3]
    assert basin_starts(grid, errors, torch.tensor([0.1, 0.1], dtype=torch.float64), 3) == [3, 0, 1]
