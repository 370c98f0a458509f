"""Devices and bounded memory (``--device``, ``--max-memory``; ``kanx.core.resources``).

The GPU path itself runs in ``benchmarks/gpu_check.py`` where a GPU exists. Here, on the CPU:
- the options are validated with one-line errors (``--device cuda`` without a GPU: exit 2);
- every stage keeps its tensors on the model's device: run with the default device set to
  ``meta``, any tensor a stage makes without naming a device lands on ``meta`` and the first
  operation mixing it with the model's (CPU) tensors fails, exactly as it would on a GPU;
- results computed in small chunks (a tiny ``max_memory``) equal the unchunked ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy
import torch
from typer.testing import CliRunner

from kanx.cli import app
from kanx.core.errors import KanxError
from kanx.core.resources import made_on_cpu, map_rows, memory_budget, parse_memory, resolve_device, rows_per_chunk
from kanx.families.kan.importance import importance
from kanx.families.kan.network import KAN
from kanx.functions.library import build_library
from kanx.interaction import InteractionSettings, interactions
from kanx.io.checkpoint import save_model
from kanx.io.ctr import generate_ctr, write_ctr_csv
from kanx.io.data import Dataset
from kanx.plot import plot_activations
from kanx.plot.edges import MAX_PANELS, edge_sets
from kanx.prediction import predict
from kanx.pruning import prune
from kanx.symbolic import symbolify
from kanx.symbolic.fit import fit_edges
from kanx.training import train
from kanx.training.kan import TrainSettings

NO_GPU = not torch.cuda.is_available()
SMALL = "16MiB"


def product_model(widths: list[int], rows: int = 300, seed: int = 0, steps: int = 30) -> KAN:
    """A briefly trained KAN for ``x1*x2 + sin(x3)`` (other inputs unused), its sample stored."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, widths[0], generator=generator) * 2 - 1
    y = (x[:, 0] * x[:, 1] + torch.sin(x[:, 2]))[:, None]
    names = [f"x{i + 1}" for i in range(widths[0])]
    settings = TrainSettings(widths=widths, steps=steps, optimizer="lbfgs", seed=seed, update_grid=2)
    return train(Dataset(x, y, names, ["y"], "test"), settings).model


@pytest.fixture(scope="module")
def kan_model() -> KAN:
    return product_model([3, 3, 1])


@pytest.fixture(scope="module")
def karsein_model(tmp_path_factory: pytest.TempPathFactory):
    from kanx.io.ctr import ClickTable, read_columns
    from kanx.training.karsein import KarSeinSettings

    path = tmp_path_factory.mktemp("ctr") / "ctr.csv"
    write_ctr_csv(generate_ctr(600, seed=1), path)
    fields = ["user", "item", "hour", "device", "site", "ad"]
    columns = read_columns(path, fields + ["click"])
    return train(ClickTable(columns, "click", fields, [], str(path)), KarSeinSettings(epochs=1, seed=0)).model


# --------------------------------------------------------------------------- options
def test_device_names_resolve_and_absent_cuda_is_a_one_line_error() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(KanxError, match="--device: expected one of cpu, cuda, auto, got 'tpu'"):
        resolve_device("tpu")
    if NO_GPU:
        with pytest.raises(KanxError, match="--device cuda: no CUDA GPU is available here"):
            resolve_device("cuda")
        with pytest.raises(KanxError, match="no CUDA GPU"):
            TrainSettings(widths=[2, 1], device="cuda")


def test_memory_sizes_parse_in_decimal_and_binary_units() -> None:
    assert parse_memory("2GB") == 2 * 10**9
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory("1.5g") == int(1.5 * 2**30)
    assert parse_memory(None) == 2**30
    for bad in ("lots", "-1GB", "1kB"):
        with pytest.raises(KanxError, match="--max-memory"):
            parse_memory(bad)
    with memory_budget(64 * 2**20):
        assert rows_per_chunk(2**20) == 64
        assert rows_per_chunk(2**20, total=10) == 10
        assert rows_per_chunk(2**40) == 1


def test_map_rows_matches_one_pass() -> None:
    x = torch.arange(1000.0).reshape(-1, 2)
    with memory_budget(parse_memory(SMALL)):
        chunked = map_rows(lambda rows: rows.sum(dim=1, keepdim=True) * 2, x, bytes_per_row=2**20)
    assert torch.equal(chunked, x.sum(dim=1, keepdim=True) * 2)


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
@pytest.mark.parametrize("command", ["train", "prune", "symbolify", "interactions", "predict", "plot-activations"])
def test_cli_device_cuda_without_gpu_exits_2(command: str, kan_model: KAN, tmp_path: Path) -> None:
    model = tmp_path / "m.pt"
    save_model(kan_model, model)
    data = tmp_path / "d.csv"
    data.write_text("x1,x2,x3,y\n" + "\n".join(f"{i / 10},{i / 20},{i / 30},{i / 40}" for i in range(12)) + "\n")
    arguments = {"train": [str(data), "--target", "y", "-o", str(tmp_path / "t.pt")], "predict": [str(model), str(data)],
                 "plot-activations": [str(model), "-o", str(tmp_path / "p")]}.get(command, [str(model)])
    result = CliRunner().invoke(app, [command, *arguments, "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "--device cuda: no CUDA GPU is available here" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "t.pt").exists()


def test_cli_rejects_a_malformed_memory_size(kan_model: KAN, tmp_path: Path) -> None:
    model = tmp_path / "m.pt"
    save_model(kan_model, model)
    result = CliRunner().invoke(app, ["prune", str(model), "--max-memory", "a lot"])
    assert result.exit_code == 2
    assert "--max-memory: expected a size such as 512MB or 2GiB, got 'a lot'" in result.output


# --------------------------------------------------------------------------- stages stay on the device
def off_device_audit(run) -> None:
    """Run ``run()`` with tensors made without a device landing on ``meta``: any that meets the
    model's CPU tensors raises, as a CPU-made tensor would against a GPU model."""
    torch.set_default_device("meta")
    try:
        run()
    finally:
        torch.set_default_device(None)


def test_tensors_made_on_cpu_whatever_the_default_device() -> None:
    with made_on_cpu():
        assert torch.zeros(2).device.type == "cpu"
    torch.set_default_device("meta")
    try:
        with made_on_cpu():
            assert torch.zeros(2).device.type == "cpu" and torch.tensor(1.0).device.type == "cpu"
        assert torch.zeros(2).device.type == "meta"
    finally:
        torch.set_default_device(None)


@pytest.mark.parametrize("stage", ["prune", "prune-threshold", "interactions", "symbolify", "structure-first",
                                   "predict", "plot", "train"])
def test_kan_stages_make_no_tensor_off_the_models_device(stage: str, kan_model: KAN) -> None:
    x = kan_model.sample_inputs.clone()
    y = (x[:, 0] * x[:, 1] + torch.sin(x[:, 2]))[:, None]
    runs = {
        "prune": lambda: prune(kan_model),
        "prune-threshold": lambda: prune(kan_model, edge_threshold=0.05),
        "interactions": lambda: interactions(kan_model),
        "symbolify": lambda: symbolify(kan_model),
        "structure-first": lambda: symbolify(kan_model, strategy="structure-first", budget=200_000),
        "predict": lambda: predict(kan_model, x),
        "plot": lambda: edge_sets(kan_model, None, False, None, None, "cpu", None),
        "train": lambda: train(Dataset(x, y, ["x1", "x2", "x3"], ["y"], "t"),
                               TrainSettings(widths=[3, 2, 1], steps=3, update_grid=2)),
    }
    off_device_audit(runs[stage])


@pytest.mark.parametrize("stage", ["prune", "interactions", "symbolify", "predict"])
def test_karsein_stages_make_no_tensor_off_the_models_device(stage: str, karsein_model) -> None:
    x = karsein_model.sample_inputs.clone()
    runs = {
        "prune": lambda: prune(karsein_model),
        "interactions": lambda: interactions(karsein_model),
        "symbolify": lambda: symbolify(karsein_model),
        "predict": lambda: predict(karsein_model, x),
    }
    off_device_audit(runs[stage])


# --------------------------------------------------------------------------- chunking changes nothing
def test_importance_and_predict_in_small_chunks_equal_one_pass() -> None:
    model = KAN([100, 50, 1], seed=1)
    x = torch.rand(600, 100, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert model.row_bytes() * len(x) > parse_memory(SMALL)  # the small budget really splits the rows
    whole = importance(model, x)
    with memory_budget(parse_memory(SMALL)):
        parts = importance(model, x)
    for a, b in zip(whole.attribution + whole.magnitude, parts.attribution + parts.magnitude):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        reference = model(x)
    torch.testing.assert_close(predict(model, x, max_memory=SMALL), reference, rtol=1e-6, atol=1e-7)


def test_edge_fits_in_small_chunks_equal_one_pass() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(300, 200, generator=generator) * 4 - 2
    y = torch.where(torch.arange(300)[:, None] % 2 == 0, torch.sin(1.5 * x + 0.3), x**2 - 0.5 * x)
    functions = build_library("x,x^2,sin,exp,tanh")[0]
    whole = fit_edges(x, y, functions)
    small = fit_edges(x, y, functions, budget=40_000)  # a few dozen edges per chunk
    torch.testing.assert_close(whole.r2, small.r2)
    torch.testing.assert_close(whole.params, small.params)
    best = [whole.names[int(i)] for i in whole.r2.argmax(dim=1)[:4]]
    assert best == ["sin", "x^2", "sin", "x^2"]


def test_interactions_and_prune_in_small_chunks_equal_default() -> None:
    model = product_model([3, 3, 1], seed=3, steps=100)
    default = interactions(model, settings=InteractionSettings(seed=0))
    small = interactions(model, settings=InteractionSettings(seed=0, max_memory=SMALL))
    assert default.outputs[0].pairwise == small.outputs[0].pairwise
    assert [g.variables for g in default.outputs[0].groups] == [["x1", "x2"], ["x3"]]
    assert [g.variables for g in small.outputs[0].groups] == [["x1", "x2"], ["x3"]]
    report_default = prune(model)
    report_small = prune(model, max_memory=SMALL)
    assert report_default.edges_after == report_small.edges_after


# --------------------------------------------------------------------------- large layers
def test_a_layer_wider_than_the_panel_limit_draws_its_top_edges_and_says_so() -> None:
    model = KAN([40, 8, 1], seed=0)  # 320 first-layer edges > MAX_PANELS
    model.sample_inputs = torch.rand(200, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    sets = edge_sets(model, None, False, None, [0], "cpu", None)
    assert len(sets[0]) == MAX_PANELS and sets[0].active_total == 320
    importance_drawn = sets[0].importance
    assert bool((importance_drawn[:-1] >= importance_drawn[1:]).all())  # the most important ones
    (figure,) = plot_activations(model, layer=0)
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    assert f"top {MAX_PANELS} of 320 active edges by importance, {320 - MAX_PANELS} left out" in texts


def test_wide_formulas_keep_hidden_nodes_named_and_still_compute_the_network() -> None:
    from kanx.families.kan.compose import compose, compose_with_hidden
    from kanx.symbolic.export import formula_function

    model = product_model([3, 3, 1], seed=4, steps=100)
    inlined = compose(model)
    assert compose_with_hidden(model, max_terms=100)[1] == {}  # small enough: nothing named
    result = symbolify(model, compose_limit=2)  # 3 inputs x 3 hidden nodes: 9 + 3 > 2 edge expressions
    assert [str(name) for name in result.hidden] == ["h1_1", "h1_2", "h1_3"]
    assert result.expressions[0].free_symbols <= set(result.hidden)
    assert all(d.free_symbols <= {sympy.Symbol(n, real=True) for n in ("x1", "x2", "x3")} for d in result.hidden.values())
    assert result.to_dict()["hidden"][0]["name"] == "h1_1"
    x = model.sample_inputs[:50]
    f = formula_function(result, 0, "torch")  # the hidden nodes are inlined for code and callables
    predicted = f(*[x[:, k].double() for k in range(3)])
    assert result.fidelity[0].network.r2 > 0.99  # the symbolic network (all edges fitted) against the trained one
    torch.testing.assert_close(predicted.float(), result.model(x)[:, 0].detach(), rtol=2e-3, atol=2e-3)
    assert len(inlined) == 1
