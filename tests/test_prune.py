"""``kanx prune``: importance-guided pruning, exact shrinking, the fidelity guard, the CLI."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_failure, assert_not_mutated, frozen_state, invoke
from typer.testing import CliRunner

import kanx
from kanx.core.errors import KanxError
from kanx.families.kan.importance import importance
from kanx.families.kan.network import KAN
from kanx.io.checkpoint import save_model
from kanx.io.load import load_model
from kanx.pruning.kan import fold_constant_nodes, kept_nodes, shrink, threshold_masks, with_masks
from kanx.pruning.search import Candidates, greedy, longest_prefix, remove_candidates

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def sample(name: str) -> KAN:
    return load_model(SAMPLES / f"{name}.pt")


@pytest.fixture(scope="module")
def auto_pruned():
    """``kanx.prune(sample(name))`` with default settings, computed once per sample for this module
    (several tests start from the same pruned model). Shared: deepcopy before changing it;
    teardown fails if a test mutated one."""
    cache: dict[str, tuple[KAN, object]] = {}
    frozen: dict[str, dict[str, torch.Tensor]] = {}

    def get(name: str):
        if name not in cache:
            report = kanx.prune(sample(name))
            cache[name] = report.model, report
            frozen[name] = frozen_state(cache[name][0])
        return cache[name]

    yield get
    for name, (pruned, _) in cache.items():
        assert_not_mutated(pruned, frozen[name], f"pruned {name}")




def copy_sample(tmp_path: Path, name: str) -> Path:
    target = tmp_path / f"{name}.pt"
    shutil.copyfile(SAMPLES / f"{name}.pt", target)
    return target


def masked_equals_shrunk(model: KAN, masks: list[torch.Tensor], x: torch.Tensor) -> KAN:
    """Fold + shrink a masked copy and check it computes exactly what the masked network does."""
    work = with_masks(model, masks)
    with torch.no_grad():
        expected = work(x)
    fold_constant_nodes(work, x[:1])
    small = shrink(work, kept_nodes(work))
    with torch.no_grad():
        torch.testing.assert_close(small(x), expected, atol=1e-5, rtol=1e-5)
    return small


def cut_path_model() -> KAN:
    """[2,2,1], linear edges: layer 0's strongest edge feeds h0, layer 1's strongest leaves h1,
    so keeping only each layer's best edge cuts every path to the output."""
    model = KAN([2, 2, 1], base_fn="identity", seed=0)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.zero_()
        model.layers[0].w_base.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
        model.layers[0].mask[1, 0] = 0
        model.layers[1].w_base.copy_(torch.tensor([[1.2], [1.0]]))
    model.sample_inputs = torch.rand(200, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return model


# --------------------------------------------------------------------------- API on bundled samples
def test_exp_sin_prunes_to_one_hidden_node(auto_pruned) -> None:
    pruned, report = auto_pruned("exp_sin")
    assert report.mode == "auto"
    assert pruned.widths == [2, 1, 1] and report.widths_after == [2, 1, 1]
    assert report.edges_before == 15 and report.edges_after == 3
    assert report.fidelity >= 0.99
    assert report.parameters_after < report.parameters_before
    assert report.unused_inputs == [] and not report.nothing_pruned
    assert {(e["source"], e["target"]) for e in report.edges} == {("x", "h1.4"), ("y", "h1.4"), ("h1.4", "f")}
    assert pruned.meta.provenance["pruning"]["mode"] == "auto"
    assert pruned.meta.provenance["created_by"] == "kanx train"


def test_five_inputs_drops_unused_inputs(auto_pruned) -> None:
    model = sample("five_inputs")
    pruned, report = auto_pruned("five_inputs")
    assert report.unused_inputs == ["x4", "x5"]
    assert pruned.widths[0] == 5 and pruned.meta.input_names == model.meta.input_names
    assert not (pruned.layers[0].mask[3:] > 0).any()
    assert pruned.widths[1] < model.widths[1]
    assert report.fidelity >= 0.99
    x = model.sample_inputs
    with torch.no_grad():
        shuffled = x.clone()
        shuffled[:, 3:] = torch.rand(len(x), 2) * 2 - 1  # unused inputs do not matter any more
        torch.testing.assert_close(pruned(shuffled), pruned(x))


def test_samples_with_multiplication_nodes_keep_their_products() -> None:
    for name, edges_after in (("xy_sinz_mult", 9), ("threeway", 6)):
        model = sample(name)
        report = kanx.prune(model)
        pruned = report.model
        assert report.fidelity >= 0.99
        assert pruned.mult == model.mult
        assert report.edges_after == edges_after, name


def test_prune_does_not_touch_the_input_model_and_is_deterministic() -> None:
    model = sample("xy_sinz")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report_a = kanx.prune(model, seed=3)
    a = report_a.model
    report_b = kanx.prune(model, seed=3)
    b = report_b.model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert report_a.to_dict() == report_b.to_dict()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_roundtrip_identical_outputs_and_smaller_file(tmp_path: Path, auto_pruned) -> None:
    for name in ("exp_sin", "five_inputs"):
        source = copy_sample(tmp_path, name)
        model = load_model(source)
        pruned, _ = auto_pruned(name)  # the same bytes as `source`, pruned with default settings
        out = save_model(pruned, tmp_path / f"{name}.pruned.pt")
        loaded = load_model(out)
        x = model.sample_inputs
        with torch.no_grad():
            assert torch.equal(loaded(x), pruned(x))
        assert loaded.widths == pruned.widths
        assert loaded.meta.provenance["pruning"] == pruned.meta.provenance["pruning"]
        assert out.stat().st_size < source.stat().st_size, name


def test_nothing_to_prune_is_reported(auto_pruned) -> None:
    once, _ = auto_pruned("exp_sin")
    report = kanx.prune(once)
    again = report.model
    assert report.nothing_pruned
    assert any("nothing to prune" in note for note in report.notes)
    assert again.widths == once.widths and report.edges_after == report.edges_before == 3


def test_data_targets_enter_the_guard() -> None:
    model = sample("exp_sin")
    data = kanx.io.data.load_csv(SAMPLES / "exp_sin.csv", ["f"])
    report = kanx.prune(model, data)
    pruned = report.model
    assert report.target_r2 is not None and report.target_r2[1] >= 0.99
    assert pruned.widths == [2, 1, 1]


# --------------------------------------------------------------------------- threshold mode
def test_threshold_mode() -> None:
    model = sample("exp_sin")
    report = kanx.prune(model, edge_threshold=0.1)
    pruned = report.model
    assert report.mode == "threshold" and pruned.widths == [2, 1, 1] and report.edges_after == 3
    assert pruned.meta.provenance["pruning"]["edge_threshold"] == 0.1
    pruned = kanx.prune(model, node_threshold=0.5).model
    assert pruned.widths == [2, 1, 1]
    report = kanx.prune(model, edge_threshold=0.0)
    assert report.nothing_pruned


def test_threshold_that_cuts_every_path_is_refused() -> None:
    with pytest.raises(KanxError, match="every path to output 'y_1'"):
        kanx.prune(cut_path_model(), edge_threshold=1.0)


@pytest.mark.parametrize("option", [{"edge_threshold": 1.5}, {"node_threshold": -0.1}, {"min_fidelity": 0.0}, {"finetune_steps": -1}])
def test_bad_options_raise(option: dict) -> None:
    with pytest.raises(KanxError):
        kanx.prune(sample("exp_sin"), **option)


# --------------------------------------------------------------------------- exact folding and shrinking
def test_dead_multiplication_node_is_folded_and_removed() -> None:
    model = sample("threeway")  # hidden node 1 = x1*x2*x3 (subnodes 1, 2, 3)
    x = model.sample_inputs
    masks = [layer.mask.clone() for layer in model.layers]
    masks[0][:, 2] = 0  # one dead factor kills the product
    small = masked_equals_shrunk(model, masks, x)
    assert small.widths == [4, 1, 1] and small.mult == [[], [], []]
    scores = importance(model, x)
    small = masked_equals_shrunk(model, threshold_masks(model, scores, None, 0.7), x)
    assert small.widths == [4, 1, 1]


def test_dead_sum_node_constant_is_folded() -> None:
    model = sample("xy_sinz")
    x = model.sample_inputs
    masks = [layer.mask.clone() for layer in model.layers]
    masks[0][:, 3] = 0  # h1.3 (sin z) becomes a constant; its output edge is folded into the bias
    small = masked_equals_shrunk(model, masks, x)
    assert small.widths == [3, 4, 1]


def test_layer_norm_layers_keep_their_inputs() -> None:
    model = KAN([3, 4, 1], basis={"kind": "rbf", "num": 6, "h": 0.5}, layer_norm=[True, True], seed=1)
    x = torch.rand(100, 3) * 2 - 1
    masks = [layer.mask.clone() for layer in model.layers]
    masks[1][2] = 0  # h1.2 unused, but it still enters layer 1's normalisation
    small = masked_equals_shrunk(model, masks, x)
    assert small.widths == [3, 4, 1]


# --------------------------------------------------------------------------- search
class FakeGuard:
    """Passes when the removed units' total 'cost' stays under a budget and no protected unit is
    removed; masks are flat ``[B, n]`` bool."""

    def __init__(self, cost: torch.Tensor, protected: torch.Tensor, budget: float) -> None:
        self.cost, self.protected, self.budget = cost, protected, budget

    def passes(self, flat: torch.Tensor) -> torch.Tensor:
        removed = ~flat
        return ((removed * self.cost).sum(dim=1) <= self.budget) & ~(removed & self.protected).any(dim=1)


def one_by_one(guard: FakeGuard, rank: torch.Tensor, n: int) -> torch.Tensor:
    state = torch.ones(n, dtype=torch.bool)
    for candidate in range(n):
        trial = state & (rank != candidate)
        if guard.passes(trial[None])[0]:
            state = trial
    return state


def test_batched_greedy_equals_one_by_one_greedy() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 40
    cost = torch.rand(n, generator=generator)
    guard = FakeGuard(cost, torch.rand(n, generator=generator) < 0.3, budget=5.0)
    rank = torch.randperm(n, generator=generator)
    result = greedy(guard, torch.ones(n, dtype=torch.bool), Candidates(n, rank=rank))
    assert torch.equal(result, one_by_one(guard, rank, n))
    assert 0 < int((~result).sum()) < n  # the budget and the protected units both bind


def test_greedy_tail_of_failures_costs_about_one_mask_set_per_candidate() -> None:
    n = 64
    guard = FakeGuard(torch.ones(n), torch.arange(n) >= 4, budget=10.0)  # only the first four may go
    evaluated = []
    passes = guard.passes

    def counting(flat: torch.Tensor) -> torch.Tensor:
        evaluated.append(len(flat))
        return passes(flat)

    guard.passes = counting
    result = greedy(guard, torch.ones(n, dtype=torch.bool), Candidates(n, rank=torch.arange(n)))
    assert result.tolist() == [False] * 4 + [True] * (n - 4)
    assert sum(evaluated) < n + 2 * 16  # a fixed batch of 16 would evaluate about 16 per failure (~1,000)


def test_grouped_candidates_remove_whole_groups() -> None:
    members = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)  # groups may overlap
    guard = FakeGuard(torch.ones(5), torch.tensor([False, False, False, False, True]), budget=10.0)
    result = remove_candidates(guard, torch.ones(5, dtype=torch.bool), Candidates(3, members=members))
    assert result.tolist() == [False, False, False, False, True]  # groups 0 and 1 go; group 2 holds the protected unit


def test_longest_prefix_uses_few_evaluations() -> None:
    calls = []

    def evaluate(ks: torch.Tensor) -> torch.Tensor:
        calls.append(len(ks))
        return ks <= 777

    assert longest_prefix(evaluate, 1000) == 777
    assert len(calls) <= 4 and max(calls) <= 16


# --------------------------------------------------------------------------- fine-tuning
def test_finetune_cannot_revive_masked_edges(auto_pruned) -> None:
    model = sample("xy_sinz")
    plain, _ = auto_pruned("xy_sinz")
    report = kanx.prune(model, finetune_steps=15, lamb=0.01, lr=1e-2)
    tuned = report.model
    assert any("fine-tun" in note for note in report.notes)
    assert (tuned.layers[0].mask == 0).any()
    assert not torch.equal(plain.layers[0].coef, tuned.layers[0].coef)  # the survivors did train
    for a, b in zip(plain.layers, tuned.layers):
        assert torch.equal(a.mask, b.mask)
        dead = b.mask == 0
        assert not b.coef[dead].any() and not b.w_base[dead].any() and not b.w_sp[dead].any()
    with torch.no_grad():
        traces = tuned.edge_activations(model.sample_inputs)
    assert all(not t.edges[:, layer.mask == 0].any() for t, layer in zip(traces, tuned.layers))


# --------------------------------------------------------------------------- CLI
def test_cli_default_output_json_and_info(runner: CliRunner, tmp_path: Path) -> None:
    source = copy_sample(tmp_path, "exp_sin")
    result = invoke(runner, "prune", source, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    out = tmp_path / "exp_sin.pruned.pt"
    assert report["output"] == str(out) and out.exists()
    assert report["widths_after"] == [2, 1, 1] and report["edges_after"] == 3 and report["fidelity"] >= 0.99
    assert report["bytes_after"] < report["bytes_before"]
    info = json.loads(invoke(runner, "info", out, "--json").stdout)
    assert info["widths"] == [2, 1, 1] and info["edges"]["active"] == 3
    assert info["provenance"]["pruning"]["source"] == str(source)


def test_cli_rich_report_with_data_and_unused_inputs(runner: CliRunner, tmp_path: Path) -> None:
    source = copy_sample(tmp_path, "five_inputs")
    out = tmp_path / "small.pt"
    result = invoke(runner, "prune", source, "--data", SAMPLES / "five_inputs.csv", "-o", out, "--all")
    assert result.exit_code == 0, result.output
    assert "unused inputs (no remaining edge): x4, x5" in result.stdout
    assert "R² vs data targets" in result.stdout and "node entropy" in result.stdout
    assert f"wrote {out}" in result.stdout
    assert load_model(out).meta.provenance["pruning"]["data"].endswith("five_inputs.csv")


def test_cli_nothing_to_prune(runner: CliRunner, tmp_path: Path) -> None:
    source = copy_sample(tmp_path, "exp_sin")
    assert invoke(runner, "prune", source, "--json").exit_code == 0
    result = invoke(runner, "prune", tmp_path / "exp_sin.pruned.pt")
    assert result.exit_code == 0, result.output
    assert "nothing to prune" in result.stdout


def test_cli_bad_inputs(runner: CliRunner, tmp_path: Path) -> None:
    source = copy_sample(tmp_path, "exp_sin")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,f\n" + "".join(f"{i},{i},{i}\n" for i in range(20)))
    cut = tmp_path / "cut.pt"
    save_model(cut_path_model(), cut)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_clean_failure(invoke(runner, "prune", tmp_path / "none.pt"), "no such file")
    assert_clean_failure(invoke(runner, "prune", source, "--edge-threshold", "1.5"), "--edge-threshold")
    assert_clean_failure(invoke(runner, "prune", source, "--min-fidelity", "0"), "--min-fidelity")
    assert_clean_failure(invoke(runner, "prune", source, "--data", wrong), "model inputs: x, y", "file columns: a, b, f")
    assert_clean_failure(invoke(runner, "prune", source, "-o", source), "refusing to overwrite")
    assert_clean_failure(invoke(runner, "prune", source, "-o", tmp_path / "no" / "x.pt"), "does not exist")
    assert_clean_failure(invoke(runner, "prune", cut, "--edge-threshold", "1"), "every path to output 'y_1'")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_demo_stage(tmp_path: Path) -> None:
    from kanx.demo import STAGES, prepare, stage_prune

    assert "prune" in [name for name, _ in STAGES]
    ctx = prepare(tmp_path / "demo")
    written = stage_prune(ctx)
    assert written == [tmp_path / "demo" / "model.pruned.pt"] and written[0].exists()
    assert ctx.results["prune"]["widths"] == [[2, 5, 1], [2, 1, 1]]
    assert ctx.model.widths == [2, 1, 1] and ctx.model_path == written[0]


def test_fit_gives_masked_edges_no_gradient(auto_pruned) -> None:
    from kanx.pruning.kan import zero_masked
    from kanx.training.kan import TrainSettings, fit

    pruned = copy.deepcopy(auto_pruned("xy_sinz")[0])  # trained below: a private copy
    zero_masked(pruned)
    x = pruned.sample_inputs[:200]
    with torch.no_grad():
        y = pruned(x) + 0.1 * x[:, :1]
    settings = TrainSettings(widths=pruned.widths, steps=10, lr=1e-2, lamb=0.01, update_grid=2)
    fit(pruned, x, y, settings)  # no re-zeroing afterwards: masked parameters must still be exactly 0
    dead = pruned.layers[0].mask == 0
    assert dead.any() and not pruned.layers[0].coef[dead].any() and not pruned.layers[0].w_base[dead].any()
