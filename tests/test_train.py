"""Training: recovery of known functions, sparsity loss, provenance, determinism."""

from __future__ import annotations

import math

import torch

from kanx.families.kan.network import KAN
from kanx.io.data import formula_dataset
from kanx.training import train
from kanx.training.kan import TrainSettings, grid_refresh_steps, regression_metrics, sparsity_penalty


def test_recovers_1d_function() -> None:
    data = formula_dataset("sin(pi*x) + 0.5*x**2", ["x=-1:1"], 400, seed=0)
    result = train(data, TrainSettings(widths=[1, 1], grid=10, steps=400, seed=0))
    assert result.test.r2 > 0.999
    assert result.train.r2 > 0.999


def test_sparsity_penalty_matches_definition() -> None:
    model = KAN([2, 2, 1], seed=0)
    x = torch.rand(64, 2)
    traces = model.edge_activations(x)
    penalty = sparsity_penalty(traces, lamb_l1=1.0, lamb_entropy=2.0)
    expected = 0.0
    for trace in traces:
        magnitude = trace.edges.detach().abs().mean(dim=0)
        expected += float(magnitude.sum())
        for j in range(magnitude.shape[1]):
            p = magnitude[:, j] / magnitude[:, j].sum()
            expected += 2.0 * float(-(p * torch.log(p)).sum())
    assert math.isclose(float(penalty), expected, rel_tol=1e-5)


def test_sparsity_makes_unused_inputs_quiet() -> None:
    data = formula_dataset("sin(pi*a)", ["a=-1:1", "b=-1:1"], 400, seed=1)
    result = train(data, TrainSettings(widths=[2, 1], steps=300, lamb=0.01, seed=0))
    magnitude = result.model.edge_activations(result.model.sample_inputs)[0].edges.detach().abs().mean(dim=0)
    assert float(magnitude[1, 0]) < 0.02 * float(magnitude[0, 0])
    assert result.test.r2 > 0.99


def test_training_is_deterministic_and_records_provenance() -> None:
    data = formula_dataset("x*y", ["x=-1:1", "y=0:2"], 200, seed=3)
    settings = TrainSettings(widths=[2, 3, 1], steps=30, seed=11)
    first, second = train(data, settings), train(data, settings)
    x = torch.rand(20, 2)
    torch.testing.assert_close(first.model(x), second.model(x), atol=0, rtol=0)
    training = first.model.meta.training
    assert training["seed"] == 11
    assert training["data_fingerprint"] == data.fingerprint()
    assert training["settings"]["widths"] == [2, 3, 1]
    assert first.model.meta.input_ranges == [(-1.0, 1.0), (0.0, 2.0)]
    assert first.model.sample_inputs.shape == (160, 2)


def test_the_checkpoint_keeps_held_out_rows_with_their_targets() -> None:
    """The 20% held-out rows (40 of 200), not the training rows, with their targets; capped by sample_rows."""
    data = formula_dataset("x*y + 3", ["x=-1:1", "y=0:2"], 200, seed=3)
    model = train(data, TrainSettings(widths=[2, 3, 1], steps=30, seed=11)).model
    held, targets = model.held_out_inputs, model.held_out_targets
    assert held.shape == (40, 2) and targets.shape == (40, 1)
    torch.testing.assert_close(targets[:, 0], held[:, 0] * held[:, 1] + 3)
    training_rows = {tuple(row) for row in model.sample_inputs.tolist()}
    assert not any(tuple(row) in training_rows for row in held.tolist())
    capped = train(data, TrainSettings(widths=[2, 3, 1], steps=5, seed=11, sample_rows=25)).model
    assert capped.held_out_inputs.shape == (25, 2) and capped.sample_inputs.shape == (25, 2)
    logged = train(data, TrainSettings(widths=[2, 3, 1], steps=5, seed=11, target_transform="log")).model
    assert logged.widths == [2, 3, 1, 1]  # an exp output layer over log y; the kept targets are y itself
    torch.testing.assert_close(logged.held_out_targets[:, 0], logged.held_out_inputs[:, 0] * logged.held_out_inputs[:, 1] + 3)


def test_lbfgs_optimizer_trains() -> None:
    data = formula_dataset("exp(x)", ["x=-1:1"], 200, seed=0)
    result = train(data, TrainSettings(widths=[1, 1], optimizer="lbfgs", steps=10))
    assert result.test.r2 > 0.999


def test_regression_metrics_and_grid_schedule() -> None:
    y = torch.tensor([[1.0], [2.0], [3.0]])
    metrics = regression_metrics(y + 0.1, y)
    assert math.isclose(metrics.rmse, 0.1, rel_tol=1e-6)
    assert math.isclose(metrics.r2, 1 - 0.03 / 2, rel_tol=1e-6)
    assert grid_refresh_steps(100, 5) == {1, 11, 21, 31, 41}
    assert grid_refresh_steps(100, 0) == set()
