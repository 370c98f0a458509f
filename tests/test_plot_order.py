"""The diagram's node order (``kanx.plot.order``): crossing counts, the search, the stored order
in checkpoints and through pruning, and ``plot-activations --node-order / --save-order``."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest
import torch
from conftest import SAMPLES, assert_clean_failure, invoke
from matplotlib.collections import PathCollection

from kanx.core.errors import KanxError
from kanx.families.kan.codec import kan_config, kan_state
from kanx.families.kan.network import KAN, kept_node_order
from kanx.io.checkpoint import model_from_payload, save_model
from kanx.io.load import load_model
from kanx.plot import plot_activations, plot_network
from kanx.plot.order import (
    count_crossings,
    identity_order,
    layer_crossings,
    minimal_crossing_order,
    node_order,
    subnode_factor,
    subnode_owner,
)
from kanx.pruning.kan import shrink


def masked(widths: list[int], edges: list[list[tuple[int, int]]], mult: list[list[int]] | None = None) -> KAN:
    """A KAN whose only unmasked edges are ``edges[l]`` (``(input, subnode)`` pairs of layer ``l``)."""
    model = KAN(widths, mult=mult)
    with torch.no_grad():
        for layer, pairs in zip(model.layers, edges):
            layer.mask.zero_()
            for i, j in pairs:
                layer.mask[i, j] = 1.0
    return model


def crossed() -> KAN:
    """[3, 3, 3] with edges 0→2, 1→1, 2→0 in both layers: 3 + 3 crossings in index order, none
    with the hidden row reversed."""
    reverse = [(0, 2), (1, 1), (2, 0)]
    return masked([3, 3, 3], [reverse, reverse])


def with_multiplication() -> KAN:
    """[3, 3, 1], hidden node 2 multiplies two factors fed by input 0, inputs 1 and 2 feed the
    sum nodes 1 and 0; every hidden node feeds the output."""
    return masked([3, 3, 1], [[(0, 2), (0, 3), (1, 1), (2, 0)], [(0, 0), (1, 0), (2, 0)]], [[], [2], []])


def random_model(widths: list[int], mult: list[list[int]], seed: int, density: float = 0.5) -> KAN:
    model = KAN(widths, mult=mult)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            layer.mask.copy_((torch.rand(layer.mask.shape, generator=generator) < density).float())
    return model


def brute_crossings(model: KAN, order: list[list[int]]) -> int:
    """Edge pairs in opposite order on the two rows, one pair at a time (the reference)."""
    total = 0
    for index, layer in enumerate(model.layers):
        src = {node: place for place, node in enumerate(order[index])}
        dst = {node: place for place, node in enumerate(order[index + 1])}
        owner, factor = subnode_owner(layer.shape).tolist(), subnode_factor(layer.shape).tolist()
        ends = [(src[i], (dst[owner[j]], factor[j])) for i, j in (layer.mask > 0).nonzero().tolist()]
        total += sum((a < b and c > d) or (a > b and c < d) for (a, c), (b, d) in itertools.combinations(ends, 2))
    return total


# ----------------------------------------------------------------- counting and search
def test_reversed_edges_cross_six_times_and_the_order_removes_them() -> None:
    model = crossed()
    index = identity_order(model.widths)
    assert [layer_crossings(model, layer, index) for layer in range(2)] == [3, 3]
    assert count_crossings(model) == 6
    order = minimal_crossing_order(model)
    assert order == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]  # inputs and outputs keep index order
    assert count_crossings(model, order) == 0
    chosen = node_order(model)
    assert (chosen.source, chosen.before, chosen.after) == ("crossings", 6, 0)


def test_multiplication_factors_are_edge_ends_and_the_node_moves_whole() -> None:
    model = with_multiplication()
    assert count_crossings(model) == 5
    order = minimal_crossing_order(model)
    assert order[1] == [2, 1, 0] and count_crossings(model, order) == 0
    crossed_factors = masked([3, 3, 1], [[(2, 2), (0, 3)], [(2, 0)]], [[], [2], []])  # factor 0 from the right input
    assert count_crossings(crossed_factors) == 1 == count_crossings(crossed_factors, minimal_crossing_order(crossed_factors))


def test_an_order_that_is_not_beaten_stays_the_index_order() -> None:
    straight = [(0, 0), (1, 1), (2, 2)]
    model = masked([3, 3, 3], [straight, straight])
    assert minimal_crossing_order(model) == identity_order(model.widths)
    assert node_order(model).caption == "hidden nodes ordered to minimise edge crossings: 0 → 0"


@pytest.mark.parametrize("seed", range(6))
def test_counts_match_a_pair_by_pair_count_and_never_get_worse(seed: int) -> None:
    model = random_model([4, 5, 4, 3], [[], [2], [], []], seed)
    shuffled = [torch.randperm(w, generator=torch.Generator().manual_seed(seed)).tolist() for w in model.widths]
    for order in (identity_order(model.widths), shuffled, minimal_crossing_order(model)):
        assert count_crossings(model, order) == brute_crossings(model, order)
    assert count_crossings(model, minimal_crossing_order(model)) <= count_crossings(model)


@pytest.mark.parametrize("seed", range(4))
def test_one_small_hidden_row_gets_the_fewest_crossings_of_every_permutation(seed: int) -> None:
    model = random_model([5, 6, 4], [[], [2], []], seed)
    best = min(count_crossings(model, [list(range(5)), list(p), list(range(4))]) for p in itertools.permutations(range(6)))
    assert count_crossings(model, minimal_crossing_order(model)) == best


def test_the_order_is_deterministic() -> None:
    model = random_model([6, 12, 10, 3], [[], [], [2, 3], []], seed=7, density=0.3)  # rows above EXACT_NODES: barycentres
    first = minimal_crossing_order(model)
    assert first == minimal_crossing_order(model) == minimal_crossing_order(random_model([6, 12, 10, 3], [[], [], [2, 3], []], 7, 0.3))
    assert count_crossings(model, first) < count_crossings(model)


# ----------------------------------------------------------------- the figure
def caption(figures) -> str:
    texts = [t.get_text() for fig in figures for ax in fig.axes for t in ax.texts if t.get_gid() == "node-order"]
    assert len(texts) == 1, texts
    return texts[0]


def test_the_diagram_states_its_order_and_places_nodes_by_it() -> None:
    model = with_multiplication()
    figures = plot_activations(model, diagram=True)
    assert figures.names == ["layer0", "layer1", "diagram"]
    assert caption(figures) == "hidden nodes ordered to minimise edge crossings: 5 → 0"
    collections = [c for c in figures[-1].axes[0].collections if isinstance(c, PathCollection)]  # the scatters
    circled = [c.get_offsets()[0] for c in collections if list(c.get_sizes()) == [190.0]]
    assert len(circled) == 1
    x_mult, y_hidden = (float(v) for v in circled[0])
    dots = [float(x) for c in collections if list(c.get_sizes()) == [36.0] for x, y in c.get_offsets() if y == y_hidden]
    assert len(dots) == 2 and x_mult < min(dots)  # the × node (index 2) is drawn leftmost, the sum nodes right of it
    assert caption(plot_network(model, node_order="index")) == "hidden nodes in index order: 5 edge crossings"
    with pytest.raises(KanxError, match="--node-order sideways"):
        plot_network(model, node_order="sideways")


# ----------------------------------------------------------------- the stored order
def test_a_stored_order_round_trips_and_later_plots_use_it(tmp_path: Path) -> None:
    model = crossed()
    model.set_node_order([[0, 1, 2], [1, 2, 0], [0, 1, 2]])  # not the best: plots must still use it
    save_model(model, tmp_path / "ordered.pt")
    loaded = load_model(tmp_path / "ordered.pt")
    assert loaded.stored_node_order() == [[0, 1, 2], [1, 2, 0], [0, 1, 2]]
    chosen = node_order(loaded)
    assert (chosen.source, chosen.after) == ("stored", count_crossings(loaded, [[0, 1, 2], [1, 2, 0], [0, 1, 2]]))
    assert caption(plot_network(loaded)).startswith("hidden nodes in the order stored with the model: edge crossings 6 → ")
    assert node_order(loaded, "crossings").order == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]  # recomputed
    assert node_order(loaded, "index").order == identity_order(loaded.widths)
    with pytest.raises(ValueError, match="permutation"):
        loaded.set_node_order([[0, 1, 2], [1, 1, 0], [0, 1, 2]])


def test_an_order_that_no_longer_fits_is_not_written() -> None:
    model = crossed()
    model.meta.node_order = [[0, 1, 2], [1, 0], [0, 1, 2]]  # e.g. left behind by a change of widths
    assert model.stored_node_order() is None and "node_order" not in kan_config(model)


def test_pruning_renumbers_the_stored_order() -> None:
    assert kept_node_order([[0, 1], [3, 0, 2, 1], [0]], [[True, True], [True, False, True, True], [True]]) == [[0, 1], [2, 0, 1], [0]]
    assert kept_node_order([], [[True]]) == []
    model = crossed()
    model.set_node_order([[0, 1, 2], [2, 1, 0], [0, 1, 2]])
    keep = [torch.ones(3, dtype=torch.bool), torch.tensor([True, False, True]), torch.ones(3, dtype=torch.bool)]
    small = shrink(model, keep)
    assert small.widths == [3, 2, 3] and small.stored_node_order() == [[0, 1, 2], [1, 0], [0, 1, 2]]
    payload = {"format": "kanx", "version": 1, "config": kan_config(small), "state": kan_state(small)}
    assert model_from_payload(payload, "small.pt").stored_node_order() == [[0, 1, 2], [1, 0], [0, 1, 2]]


BAD_ORDERS = {
    "repeated node": [[0, 1, 2], [1, 1, 0], [0, 1, 2]],
    "too few nodes": [[0, 1, 2], [1, 0], [0, 1, 2]],
    "node out of range": [[0, 1, 2], [3, 1, 0], [0, 1, 2]],
    "too few layers": [[0, 1, 2], [2, 1, 0]],
    "bool entries": [[0, 1, 2], [True, False, 2], [0, 1, 2]],
    "text": "2,1,0",
}


@pytest.mark.parametrize("case", sorted(BAD_ORDERS))
def test_an_invalid_stored_order_is_refused(runner, tmp_path: Path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    save_model(crossed(), tmp_path / "good.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    payload["config"]["node_order"] = BAD_ORDERS[case]
    torch.save(payload, tmp_path / "bad.pt")
    line = assert_clean_failure(invoke(runner, "plot-activations", "bad.pt"), "bad.pt", "'node_order'")
    assert line.startswith("error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "good.pt"]


# ----------------------------------------------------------------- the CLI
def test_cli_save_order_writes_a_copy_that_later_plots_follow(runner, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    save_model(crossed(), tmp_path / "net.pt")
    before = hashlib.sha256((tmp_path / "net.pt").read_bytes()).hexdigest()
    result = invoke(runner, "plot-activations", "net.pt", "--diagram-only", "--format", "svg", "--save-order", "ordered.pt")
    assert result.exit_code == 0, result.output
    assert "wrote net_activations_diagram.svg" in result.output and "wrote ordered.pt" in result.output
    assert 'id="node-order"' in (tmp_path / "net_activations_diagram.svg").read_text()
    assert hashlib.sha256((tmp_path / "net.pt").read_bytes()).hexdigest() == before  # the input is untouched
    assert load_model(tmp_path / "ordered.pt").stored_node_order() == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]
    result = invoke(runner, "plot-activations", "ordered.pt", "--diagram-only", "--node-order", "index",
                    "--save-order", "plain.pt", "--json")
    assert result.exit_code == 0, result.output
    assert '"checkpoint": "plain.pt"' in result.stdout
    assert load_model(tmp_path / "plain.pt").stored_node_order() == identity_order([3, 3, 3])


@pytest.mark.parametrize(("args", "message"), [
    (["--save-order", "net.pt"], "refusing to overwrite the input file"),
    (["--save-order", "nowhere/x.pt"], "does not exist"),
    (["--save-order", "net_activations_diagram.png", "--diagram-only"], "is also a figure file"),
    (["--node-order", "sideways"], "'sideways' is not one of"),
    (["--save-order", "ctr.pt", "{karsein}"], "stores the node order of a KAN diagram"),
])
def test_cli_save_order_never_overwrites_the_input(runner, tmp_path: Path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    save_model(crossed(), tmp_path / "net.pt")
    model = [str(SAMPLES / "karsein_ctr.pt")] if "{karsein}" in args else ["net.pt"]
    assert_clean_failure(invoke(runner, "plot-activations", *model, *[a for a in args if a != "{karsein}"]), message)
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]


def test_between_orders_that_cross_as_often_the_large_edges_are_kept_apart() -> None:
    model = KAN([2, 2, 1], seed=0)  # fully connected: both hidden orders cross once
    with torch.no_grad():
        first = model.layers[0]
        first.w_base.fill_(0.01)
        first.w_sp.fill_(0.01)
        first.w_base[0, 1] = first.w_base[1, 0] = 5.0  # the large edges cross in index order
    chosen = node_order(model, "crossings")
    assert chosen.order[1] == [1, 0] and chosen.before == chosen.after == 1
