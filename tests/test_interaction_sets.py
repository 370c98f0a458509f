"""Interaction sets: overlapping terms of every order, from exact functions and from trained networks.

The planted suite (tests/fixtures/planted/suite.json) holds twelve functions of 8-12 inputs with
overlapping terms of orders 2-5, kinks (|x|, max), weak interactions beside strong main effects and
unused inputs; its networks were trained by ``kanx train`` with default options
(benchmarks/interactions/build.py).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import sympy
import torch
from typer.testing import CliRunner

from kanx.cli import app
from kanx.core.errors import KanxError
from kanx.core.lambdify import numpy_function
from kanx.core.numerics import roc_auc
from kanx.core.stage import Rows
from kanx.functions.parser import parse_expression
from kanx.interaction import InteractionSettings, interactions
from kanx.interaction.formula import formula_report
from kanx.interaction.karsein import field_interactions
from kanx.interaction.report import DEFAULT_THRESHOLD, NoiseFloor
from kanx.interaction.sets import (
    RETEST_DRAWS,
    SetEstimate,
    SetSearch,
    SwappedValues,
    held_out_support,
    interaction_sets,
    maximal_sets,
    mixed_difference,
    pair_shares,
    superset_shares,
    unconfirmed_sets,
)
from kanx.io.ctr import ClickTable
from kanx.io.data import formula_dataset
from kanx.io.load import load_model
from kanx.training import train
from kanx.training.karsein import KarSeinSettings

PLANTED = Path(__file__).parent / "fixtures" / "planted"
SUITE = json.loads((PLANTED / "suite.json").read_text())["functions"]


def exact_values(formula: str, n: int, ranges: dict, rows: int = 2000, seed: int = 0) -> SwappedValues:
    """Swapped evaluations of the exact function (float64) on uniform rows of its box."""
    names = [f"x{i}" for i in range(1, n + 1)]
    function = numpy_function([sympy.Symbol(v) for v in names], parse_expression(formula, names, "test"))
    generator = np.random.default_rng(seed)
    low = np.array([ranges.get(v, [-1, 1])[0] for v in names])
    high = np.array([ranges.get(v, [-1, 1])[1] for v in names])
    x = torch.tensor(low + (high - low) * generator.random((rows, n)))

    def evaluate(r: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.broadcast_to(function(*r.numpy().T), (len(r),)).copy())[:, None]

    return SwappedValues(evaluate, x, x[torch.randperm(rows, generator=torch.Generator().manual_seed(seed))], 64)


def exact_sets(function: dict, floor: float = 1e-6) -> set[frozenset[str]]:
    values = exact_values(function["formula"], function["inputs"], function.get("ranges", {}))
    search = SetSearch(values, 0, values.variance(), floor, 5)
    n = function["inputs"]
    terms = maximal_sets(search.grow(search.test(list(itertools.combinations(range(n), 2)))))
    return {frozenset(f"x{i + 1}" for i in term) for term in terms}


def planted(function: dict) -> set[frozenset[str]]:
    return {frozenset(s) for s in function["sets"]}


@pytest.mark.parametrize("function", SUITE, ids=[f["name"] for f in SUITE])
def test_exact_functions_give_exactly_their_terms(function: dict) -> None:
    """On the functions themselves the mixed differences of absent sets are 0 up to rounding."""
    assert exact_sets(function) == planted(function)


def test_superset_share_of_a_product_and_of_a_sum() -> None:
    values = exact_values("x1*x2 + x3", 3, {}, rows=20000)
    variance = values.variance()
    share, error = superset_shares(values, (0, 1), variance)
    # Var(x1 x2) = 1/9 and Var(x3) = 1/3 on U(-1, 1): the pair holds a quarter of the variance
    assert float(share[0]) == pytest.approx(0.25, abs=4 * float(error[0]) + 0.01)
    assert float(superset_shares(values, (0, 2), variance)[0][0]) < 1e-20
    shares, _ = pair_shares(values, [0, 1, 2], variance)
    assert shares.shape == (1, 3, 3) and float(shares[0, 1, 0]) == float(shares[0, 0, 1])


def test_a_clique_of_pairs_is_not_a_higher_order_term() -> None:
    """(x1 + x2)(x3 + x4): four pairs forming a 4-cycle, no triple, where blocks would give one group."""
    values = exact_values("(x1 + x2)*(x3 + x4)", 4, {})
    search = SetSearch(values, 0, values.variance(), 1e-6, 4)
    terms = maximal_sets(search.grow(search.test(list(itertools.combinations(range(4), 2)))))
    assert terms == [(0, 2), (0, 3), (1, 2), (1, 3)]
    assert search.estimates[(0, 1)].share < 1e-20 and search.estimates[(2, 3)].share < 1e-20
    assert float(superset_shares(values, (0, 1, 2, 3), values.variance())[0][0]) < 1e-20


def test_a_weak_triple_below_the_floor_is_listed_as_unconfirmed() -> None:
    """Three pairs plus a weak triple: with the floor above the triple's own share (about 2.8e-4),
    the pairs are the terms and {x1, x2, x3} is a possible term; without the triple it is not listed."""
    names = ["x1", "x2", "x3"]
    found = {}
    for label, formula in (("weak triple", "x1*x2 + x2*x3 + x1*x3 + 0.05*x1*x2*x3"), ("pairs only", "x1*x2 + x2*x3 + x1*x3")):
        values = exact_values(formula, 3, {}, rows=20000)
        search = SetSearch(values, 0, values.variance(), 2e-3, 3)
        terms = interaction_sets(search, search.test(list(itertools.combinations(range(3), 2))), names)
        found[label] = ({tuple(t.variables) for t in terms}, unconfirmed_sets(search, terms, names))
    pairs = {("x1", "x2"), ("x1", "x3"), ("x2", "x3")}
    terms, doubtful = found["weak triple"]
    assert terms == pairs
    assert [s.variables for s in doubtful] == [names]
    assert doubtful[0].strength == pytest.approx(0.05**2 / 27 / (3 / 9 + 0.05**2 / 27), rel=0.15)
    terms, doubtful = found["pairs only"]
    assert terms == pairs and doubtful == []


def stand_in_search(network: str, truth: str, n: int, floor: float, held_out: bool) -> tuple[SetSearch, list]:
    """A search on the exact function ``network`` (a stand-in for a trained network that holds an error term),
    tested, when ``held_out``, against noisy targets of ``truth`` on the same rows."""
    values = exact_values(network, n, {}, rows=4000)
    names = [f"x{i}" for i in range(1, n + 1)]
    function = numpy_function([sympy.Symbol(v) for v in names], parse_expression(truth, names, "test"))
    noise = 0.05 * torch.randn(len(values.x), 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.as_tensor(np.broadcast_to(function(*values.x.numpy().T), (len(values.x),)).copy())[:, None] + noise
    search = SetSearch(values, 0, values.variance(), floor, 4, residual=(y - values(())) if held_out else None)
    terms = maximal_sets(search.grow(search.test(list(itertools.combinations(range(n), 2)))))
    return search, terms


def test_held_out_targets_reject_the_network_s_own_error_where_no_floor_can() -> None:
    """The stand-in network holds ``0.2·sin(2x1)·x8``, which the data lack, beside a weak true pair
    ``0.1·x6·x7``: the error pair carries ~5% of the variance, the true one ~0.7%, so every floor that keeps
    the weak pair keeps the error. Removing the error term lowers the held-out error by its share
    (support ≈ −share); removing a true term raises it by its share."""
    truth = "x1*x2 + x3*x4*x5 + 0.1*x6*x7"
    network = truth + " + 0.2*sin(2*x1)*x8"
    _, terms = stand_in_search(network, truth, 8, 1e-3, held_out=False)
    assert terms == [(0, 1), (0, 7), (5, 6), (2, 3, 4)]
    search, terms = stand_in_search(network, truth, 8, 0.0, held_out=True)
    assert terms == [(0, 1), (5, 6), (2, 3, 4)]
    error, weak, strong = search.estimates[(0, 7)], search.estimates[(5, 6)], search.estimates[(0, 1)]
    assert error.share > 5 * weak.share
    assert error.support == pytest.approx(-error.share, abs=4 * error.support_error)
    assert weak.support == pytest.approx(weak.share, abs=4 * weak.support_error) and weak.support > 3 * weak.support_error
    assert strong.support == pytest.approx(strong.share, rel=0.1)
    # the estimate itself: rows without a target (NaN) are left out, the others give the same number
    residual = search.residual.clone()
    residual[::2] = float("nan")
    half, half_error = held_out_support(mixed_difference(search.values, (0, 7)), 2, residual, search.variance)
    assert float(half[0]) == pytest.approx(error.support, abs=4 * float(half_error[0]))


def test_pairs_that_close_a_triangle_are_not_a_triple_the_network_adds() -> None:
    """x1x2 + x2x3 + x1x3: all three pairs interact, the triple does not. A network holding a small own
    triple ``0.05·x1x2x3`` (a grown candidate: kept only if its held-out support is positive) loses it."""
    truth = "x1*x2 + x2*x3 + x1*x3 + sin(2*x4)"
    network = truth + " + 0.05*x1*x2*x3"
    assert stand_in_search(network, truth, 4, 1e-4, held_out=False)[1] == [(0, 1, 2)]
    search, terms = stand_in_search(network, truth, 4, 0.0, held_out=True)
    assert terms == [(0, 1), (0, 2), (1, 2)]
    assert search.estimates[(0, 1, 2)].support < 0


def test_support_over_several_partner_draws() -> None:
    """``held_out_support`` of ``[P, N, m]`` mixed differences averages each row's ``Δ`` over its partners:
    one draw gives what the ``[N, m]`` form gives, two give the per-row estimate written out."""
    generator = torch.Generator().manual_seed(3)
    delta = torch.randn(2, 50, 1, generator=generator, dtype=torch.float64)
    residual = torch.randn(50, 1, generator=generator, dtype=torch.float64)
    variance = torch.tensor([2.0], dtype=torch.float64)
    one = held_out_support(delta[0], 3, residual, variance)
    assert torch.equal(held_out_support(delta[:1], 3, residual, variance)[0], one[0])
    per_row = (delta[0] ** 2 + delta[1] ** 2) / 2 / 8 - 2 * (delta[0] + delta[1]) / 2 * residual
    support, error = held_out_support(delta, 3, residual, variance)
    assert float(support[0]) == pytest.approx(float(per_row.mean()) / 2)
    assert float(error[0]) == pytest.approx(float(per_row.std()) / math.sqrt(50) / 2)


def test_a_support_near_its_bar_is_estimated_again_over_more_partners() -> None:
    """A weak true pair ``0.05·x3·x4`` beside ``x1·x2 + sin(2x5)``, noisy targets on 1,000 rows: with one
    partner per row its support sits under the bar of 3 standard errors; estimated again over eight draws
    (more while it stays within two standard errors of the bar), the error falls by about a third and the
    pair passes, with the same estimate within the errors. Rows without a target take no part."""
    values = exact_values("x1*x2 + 0.05*x3*x4 + sin(2*x5)", 5, {}, rows=1000)
    noise = 0.1 * torch.randn(len(values.x), 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pairs = list(itertools.combinations(range(5), 2))
    searches = {}
    for draws in ((), RETEST_DRAWS):
        search = SetSearch(values, 0, values.variance(), 0.0, 3, residual=noise, retest_draws=draws)
        searches[draws] = (search, search.test(pairs))
    (single, single_passed), (retested, retested_passed) = searches[()], searches[RETEST_DRAWS]
    assert single.retested == 0 and (2, 3) not in single_passed
    assert 1 <= retested.retested <= 3 and retested_passed == [(0, 1), (2, 3)]
    one, eight = single.estimates[(2, 3)], retested.estimates[(2, 3)]
    assert one.draws == 1 and eight.draws in RETEST_DRAWS
    assert eight.share == one.share and eight.support_error < 0.75 * one.support_error
    assert eight.support == pytest.approx(one.support, abs=2 * one.support_error)
    assert retested.estimates[(0, 1)].support == single.estimates[(0, 1)].support  # far above its bar: one draw decides
    # a support 2.5 errors up, bar 3: re-estimated when the share could clear the bar at the smallest error
    # more draws give (1e-7 · √(1/32) · 3 = 5.3e-8), not when even that is out of reach
    assert retested.near_bar(SetEstimate((0, 1), 1e-6, 1e-8, 2.5e-7, 1e-7))
    assert not retested.near_bar(SetEstimate((0, 1), 4e-8, 1e-9, 2.5e-7, 1e-7))
    assert not retested.near_bar(SetEstimate((0, 1), 1e-6, 1e-8, 5.5e-7, 1e-7))  # 5.5 errors: decided
    budget = SetSearch(values, 0, values.variance(), 0.0, 3, residual=noise, retest_budget=1.0)
    budget.test(pairs)
    assert budget.estimates[(2, 3)] == one and "work budget" in budget.notes[0]
    half = noise.clone()
    half[::2] = float("nan")
    partial = SetSearch(values, 0, values.variance(), 0.0, 3, residual=half)
    assert [partial.partners_at(stage).x.shape for stage in range(len(RETEST_DRAWS))] == [
        (added * 500, 5) for added in np.diff([1, *RETEST_DRAWS])]


@pytest.mark.parametrize("function", SUITE, ids=[f["name"] for f in SUITE])
def test_trained_networks_give_exactly_the_planted_sets(function: dict) -> None:
    model = load_model(PLANTED / f"{function['name']}.pt")
    report = interactions(model)
    output = report.outputs[0]
    assert {frozenset(s.variables) for s in output.interaction_sets} == planted(function)
    assert output.max_order == max(len(s) for s in function["sets"])
    used = {v for s in function["sets"] for v in s}
    assert not used & set(output.unused)
    assert output.noise.held_out_rows == 400  # the checkpoint's held-out rows test every set
    for term in output.interaction_sets:
        assert term.strength > output.noise.set_floor and term.strength > 3 * term.error
        assert term.support > (3 if term.order == 2 else 0) * term.support_error
        assert term.order == len(term.variables)
    # the blocks are the connected components of the sets
    assert all(any(set(s.variables) <= set(g.variables) for g in output.groups) for s in output.interaction_sets)


def test_pairwise_auc_on_the_trained_suite() -> None:
    """True pairs (inside a planted set) rank above every other pair."""
    scores = []
    for function in SUITE:
        output = interactions(load_model(PLANTED / f"{function['name']}.pt")).outputs[0]
        n = function["inputs"]
        pairs = list(itertools.combinations(range(n), 2))
        truth = [any({f"x{i + 1}", f"x{j + 1}"} <= s for s in planted(function)) for i, j in pairs]
        scores.append(roc_auc(np.array([output.pairwise[i][j] for i, j in pairs]), np.array(truth)))
    assert np.mean(scores) >= 0.98 and min(scores) >= 0.95


def test_variance_shares_of_overlapping_sets() -> None:
    """x1 x2 + x2 x3 on U(-1, 1): each pair carries 1/2 of the variance, and the shares are its own."""
    data = formula_dataset("x1*x2 + x2*x3", ["x1=-1:1", "x2=-1:1", "x3=-1:1"], 2000, seed=0)
    from kanx.training.kan import TrainSettings

    model = train(data, TrainSettings(widths=[3, 7, 1], seed=0)).model
    output = interactions(model, data).outputs[0]
    assert output.noise.source == "data"
    assert {frozenset(s.variables) for s in output.interaction_sets} == {frozenset({"x1", "x2"}), frozenset({"x2", "x3"})}
    for term in output.interaction_sets:
        assert term.strength == pytest.approx(0.5, abs=0.05)
        assert term.variance_share == pytest.approx(0.5, abs=0.05)
    assert [g.variables for g in output.groups] == [["x1", "x2", "x3"]]


def test_noise_floor_from_the_data_and_when_unknown() -> None:
    model = load_model(PLANTED / "chain.pt")
    x = model.sample_inputs
    names = model.meta.input_names
    function = numpy_function([sympy.Symbol(v) for v in names], parse_expression(SUITE[6]["formula"], names, "test"))
    y = torch.tensor(function(*x.double().numpy().T), dtype=torch.float32)[:, None]
    assert SUITE[6]["name"] == "chain"
    clean = interactions(model, Rows(x, y)).outputs[0]
    assert clean.noise.source == "data" and clean.noise.error_share < 1e-3
    noisy = interactions(model, Rows(x, y + 0.5 * y.std() * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))))
    noisy = noisy.outputs[0]
    # the targets now hold 20% of their variance as noise the network cannot explain: the floor rises
    assert noisy.noise.error_share == pytest.approx(0.2, abs=0.05)
    assert noisy.noise.floor == pytest.approx(0.3 * noisy.noise.error_share, rel=1e-6)
    # each pair of the chain carries ~14% of the variance, well above the raised floor (~6%)
    assert {frozenset(s.variables) for s in noisy.interaction_sets} == planted(SUITE[6])
    assert max(max(row) for row in noisy.pairwise) < 0.25
    stored = interactions(model).outputs[0]  # the checkpoint's 400 held-out rows test the sets, no size floor
    assert stored.noise.source == "held-out rows" and stored.noise.held_out_rows == 400 and stored.noise.set_floor == 0
    assert stored.noise.error_share == pytest.approx(1 - model.meta.training["metrics"]["test"]["r2"], rel=1e-3)
    model.meta.training = {}
    model.held_out_inputs, model.held_out_targets = torch.empty(0, 8), torch.empty(0, 1)
    unknown = interactions(model)
    assert unknown.outputs[0].noise.source == "unknown" and unknown.outputs[0].noise.floor == 3e-4
    assert any("unknown" in note for note in unknown.outputs[0].notes)
    with pytest.raises(KanxError, match="targets must be"):
        interactions(model, Rows(x, y[:5]))


def test_the_default_floor_keeps_a_weak_four_way_term_of_a_near_perfect_network() -> None:
    """``exp((x1+x2+x3)/2)·x4``: its pure 4-way part holds 1.2e-4 of the variance. The default threshold
    reports it on a network leaving 1e-5 unexplained; the former default 3e-4 split it into triples.
    Without any measure of the network's error the floor assumes 0.1% unexplained."""
    values = exact_values("exp(0.5*(x1 + x2 + x3))*x4 + sin(3*x5) + x6*x7", 7, {}, rows=4000)

    def terms(floor: float) -> list[tuple[int, ...]]:
        search = SetSearch(values, 0, values.variance(), floor, 5)
        return maximal_sets(search.grow(search.test(list(itertools.combinations(range(7), 2)))))

    known = NoiseFloor.of(DEFAULT_THRESHOLD, 1e-5, "data")
    assert known.floor == DEFAULT_THRESHOLD == 3e-5
    assert terms(known.floor) == [(5, 6), (0, 1, 2, 3)]
    assert terms(3e-4) == [(5, 6), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    assert NoiseFloor.of(DEFAULT_THRESHOLD, 1e-2, "training record").floor == pytest.approx(3e-3)
    assert NoiseFloor.of(DEFAULT_THRESHOLD, None, "unknown").floor == pytest.approx(3e-4)


def test_formula_report_lists_the_terms_sets() -> None:
    x = torch.rand(2000, 5) * 2 - 1
    names = ["x1", "x2", "x3", "x4", "x5"]
    report = formula_report(parse_expression("(x1 + x2)*(x3 + x4) + sin(x5)", names, "test"), names, x)
    assert report["sets"] == [["x1", "x3"], ["x1", "x4"], ["x2", "x3"], ["x2", "x4"]]
    assert report["max_order"] == 2


def overlapping_ctr(rows: int, seed: int) -> tuple[dict[str, list[str]], tuple[tuple[str, ...], ...]]:
    """Clicks whose logit has overlapping field terms {a, b} and {b, c} (plus main effects of a..d)."""
    generator = np.random.default_rng(seed)
    sizes = {"a": 5, "b": 5, "c": 5, "d": 4}
    scores = {f: generator.standard_normal(v) for f, v in sizes.items()}
    ids = {f: generator.integers(0, v, rows) for f, v in sizes.items()}
    u = {f: (scores[f] - scores[f].mean())[ids[f]] / scores[f].std() for f in sizes}
    logit = 0.3 * sum(u.values()) + 1.5 * u["a"] * u["b"] + 1.5 * u["b"] * u["c"]
    clicks = generator.random(rows) < 1 / (1 + np.exp(-logit))
    columns = {f: [f"{f}{i}" for i in ids[f]] for f in sizes}
    columns["click"] = [str(int(c)) for c in clicks]
    return columns, (("a", "b"), ("b", "c"))


@pytest.mark.slow
def test_karsein_field_sets_overlap() -> None:
    columns, terms = overlapping_ctr(20000, seed=3)
    model = train(ClickTable(columns, "click", ["a", "b", "c", "d"], []), KarSeinSettings(epochs=8, seed=0)).model
    report = field_interactions(model)
    assert {frozenset(s.variables) for s in report.interaction_sets} == {frozenset(t) for t in terms}
    assert [g.fields for g in report.groups] == [["a", "b", "c"]]
    assert all(s.strength > report.threshold for s in report.interaction_sets)


def test_cli_sets_table_json_options_and_plots(tmp_path: Path) -> None:
    runner = CliRunner()
    model = str(PLANTED / "overlapping_terms.pt")
    text = runner.invoke(app, ["interactions", model])
    assert text.exit_code == 0, text.output
    assert "interaction sets of f" in text.stdout and "{x1, x2, x3}" in text.stdout and "{x7, x8, x9}" in text.stdout
    capped = runner.invoke(app, ["interactions", model, "--json", "--max-order", "2"])
    sets = [s["variables"] for s in json.loads(capped.stdout)["outputs"][0]["interaction_sets"]]
    assert ["x3", "x5"] in sets and ["x2", "x7"] in sets and all(len(s) == 2 for s in sets)
    assert json.loads(capped.stdout)["outputs"][0]["unconfirmed_sets"] == []  # no triple was tested
    for args, fragment in ((["--threshold", "0"], "--threshold"), (["--threshold", "1.5"], "--threshold"),
                           (["--max-order", "1"], "--max-order"), (["--max-order", "9"], "--max-order")):
        result = runner.invoke(app, ["interactions", model, *args])
        assert result.exit_code == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(KanxError, match="--max-order"):
        InteractionSettings(max_order=1)
    kan_plot, karsein_plot = tmp_path / "kan.png", tmp_path / "karsein.png"
    samples = Path(__file__).resolve().parents[1] / "samples"
    for source, plot in ((model, kan_plot), (str(samples / "karsein_ctr.pt"), karsein_plot)):
        result = runner.invoke(app, ["interactions", source, "--plot", str(plot), "--samples", "300"])
        assert result.exit_code == 0, result.output
        assert matplotlib.image.imread(plot).shape[1] > 600
