"""The KAN model: bases, layers, node operations, masks, symbolic slots, grid refresh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kanx.families.kan.basis import bspline_basis, chebyshev_basis, rbf_basis, uniform_knots
from kanx.families.kan.network import KAN


def cox_de_boor(x: float, knots: list[float], index: int, degree: int) -> float:
    """Textbook recursive B-spline B_{index,degree}(x), half-open base case."""
    if degree == 0:
        return 1.0 if knots[index] <= x < knots[index + 1] else 0.0
    value = 0.0
    left_den = knots[index + degree] - knots[index]
    if left_den > 0:
        value += (x - knots[index]) / left_den * cox_de_boor(x, knots, index, degree - 1)
    right_den = knots[index + degree + 1] - knots[index + 1]
    if right_den > 0:
        value += (knots[index + degree + 1] - x) / right_den * cox_de_boor(x, knots, index + 1, degree - 1)
    return value


@pytest.mark.parametrize("grid,order", [(5, 3), (7, 2), (3, 1), (10, 3)])
def test_bspline_partition_of_unity_inside_grid(grid: int, order: int) -> None:
    knots = uniform_knots(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 3.0]), grid, order).double()
    x = torch.stack([torch.linspace(-1, 0.999, 257), torch.linspace(0, 2.999, 257)], dim=1).double()
    basis = bspline_basis(x, knots, order)
    assert basis.shape == (257, 2, grid + order)
    torch.testing.assert_close(basis.sum(dim=-1), torch.ones(257, 2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_bspline_matches_independent_cox_de_boor_on_nonuniform_knots() -> None:
    rng = np.random.default_rng(3)
    knots = np.sort(rng.uniform(-2, 2, size=(3, 12)), axis=1)
    x = rng.uniform(-2.5, 2.5, size=(40, 3))
    ours = bspline_basis(torch.tensor(x), torch.tensor(knots), 3).numpy()
    for n in range(40):
        for i in range(3):
            expected = [cox_de_boor(x[n, i], list(knots[i]), m, 3) for m in range(8)]
            np.testing.assert_allclose(ours[n, i], expected, atol=1e-12)


def test_bspline_vanishes_outside_outer_knots() -> None:
    knots = uniform_knots(torch.tensor([-1.0]), torch.tensor([1.0]), 5, 3)
    outside = torch.tensor([[-2.21], [-5.0], [2.2], [9.0]])
    assert bspline_basis(outside, knots, 3).abs().max() == 0


def test_rbf_and_chebyshev_bases() -> None:
    x = torch.linspace(-3, 3, 11)[:, None]
    centers = torch.linspace(-2, 2, 8)[None, :]
    rbf = rbf_basis(x, centers, 4 / 7)
    torch.testing.assert_close(rbf[:, 0, 3], torch.exp(-(((x[:, 0] - centers[0, 3]) / (4 / 7)) ** 2)))
    cheb = chebyshev_basis(x.double(), 4)
    t = torch.tanh(x.double())
    torch.testing.assert_close(cheb[:, 0, 4], torch.cos(4 * torch.arccos(t[:, 0])), atol=1e-12, rtol=0)


def sample_model(seed: int = 0) -> KAN:
    return KAN([3, 4, 2], mult=[[], [2], []], seed=seed)


def test_forward_shapes_and_mult_nodes() -> None:
    model = sample_model()
    x = torch.rand(17, 3) * 2 - 1
    assert model(x).shape == (17, 2)
    traces = model.edge_activations(x)
    assert [t.edges.shape for t in traces] == [(17, 3, 5), (17, 4, 2)]
    layer = model.layers[0]
    sub = traces[0].edges.sum(dim=1)
    expected = torch.cat([sub[:, :3], sub[:, 3:4] * sub[:, 4:5]], dim=1)
    torch.testing.assert_close(traces[0].outputs, expected)
    assert layer.shape.n_sub == 5


def test_fast_forward_equals_sum_of_edges_with_symbolic_edges() -> None:
    model = sample_model(seed=2)
    model.set_symbolic(0, 1, 2, "sin", (2.0, 0.5, 1.5, -0.25))
    model.set_symbolic(1, 3, 0, "x^2", (1.0, 0.0, 0.7, 0.1))
    x = torch.rand(64, 3) * 2 - 1
    traces = model.edge_activations(x)
    torch.testing.assert_close(model(x), traces[-1].outputs, atol=1e-6, rtol=1e-6)
    inputs = traces[0].inputs[:, 1]
    torch.testing.assert_close(traces[0].edges[:, 1, 2], 1.5 * torch.sin(2.0 * inputs + 0.5) - 0.25)


def test_mask_silences_edge_and_input() -> None:
    model = KAN([2, 3, 1], seed=1)
    model.layers[0].mask[1, :] = 0
    x = torch.rand(32, 2) * 2 - 1
    traces = model.edge_activations(x)
    assert traces[0].edges[:, 1, :].abs().max() == 0
    shifted = x.clone()
    shifted[:, 1] = torch.rand(32) * 2 - 1
    torch.testing.assert_close(model(x), model(shifted))


def test_node_affine_and_subnode_affine() -> None:
    model = KAN([2, 2, 1], seed=4)
    x = torch.rand(8, 2)
    before = model(x)
    last = model.layers[-1]
    with torch.no_grad():
        last.node_scale.fill_(3.0)
        last.node_bias.fill_(-1.0)
    torch.testing.assert_close(model(x), 3.0 * before - 1.0)


def test_grid_refresh_keeps_function_on_data() -> None:
    torch.manual_seed(0)
    model = KAN([2, 3, 1], seed=5)
    x = torch.rand(500, 2) * 1.6 - 0.8
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_(0, 0.5)
        before = model(x)
        model.refresh_grids(x, grid_eps=1.0)
        after = model(x)
    error = ((after - before) ** 2).mean() / before.var()
    assert float(error) < 1e-3
    knots = model.layers[0].knots
    assert float(knots[0, 3]) == pytest.approx(float(x[:, 0].min()) - 0.01 * float(x[:, 0].max() - x[:, 0].min()), abs=1e-5)


def test_first_layer_basis_is_computed_once_per_input_and_grid() -> None:
    """Full-batch training asks for the same first-layer basis at every step: while reuse is on
    (training turns it on), it is kept while the input and the knots are unchanged (the same
    values as a fresh evaluation), recomputed when either changes, never kept for inputs that
    carry gradients or without gradients, and let go when reuse is turned off."""

    torch.manual_seed(0)
    model = KAN([2, 3, 1], basis={"kind": "bspline", "grid": 5, "k": 3})
    layer = model.layers[0]
    x = torch.rand(64, 2) * 2 - 1
    assert layer.bspline_values(x) is not layer.bspline_values(x)  # off unless asked for
    layer.reuse_basis(True)

    def fresh(z: torch.Tensor) -> torch.Tensor:
        return bspline_basis(z, layer.knots, 3)

    first = layer.bspline_values(x)
    assert layer.bspline_values(x) is first and torch.equal(first, fresh(x))
    assert layer.bspline_values(x.clone()) is not first  # another tensor, even with equal values
    x.mul_(0.5)  # changed in place
    assert torch.allclose(layer.bspline_values(x), fresh(x)) and not torch.allclose(first, fresh(x))
    kept = layer.bspline_values(x)
    model.refresh_grids(x, grid_eps=1.0)
    assert layer.bspline_values(x) is not kept and torch.allclose(layer.bspline_values(x), fresh(x))
    with torch.no_grad():
        assert layer.bspline_values(x) is not layer.bspline_values(x)
    tracked = x.clone().requires_grad_()
    assert layer.bspline_values(tracked) is not layer.bspline_values(tracked)
    kept = layer.bspline_values(x)
    layer.reuse_basis(False)
    assert layer.bspline_values(x) is not kept and layer.bspline_values(x) is not layer.bspline_values(x)


def test_invalid_architecture_is_rejected() -> None:
    with pytest.raises(ValueError, match="arity"):
        KAN([2, 2, 1], mult=[[], [1], []])
    with pytest.raises(ValueError, match="input layer"):
        KAN([2, 2, 1], mult=[[2], [], []])
    with pytest.raises(ValueError, match="basis kind"):
        KAN([2, 1], basis={"kind": "wavelet"})
