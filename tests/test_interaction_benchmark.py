"""The planted-interaction benchmark's bound: could any per-order floor give the planted sets from a network?"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest
import torch

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "interactions" / "run.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("interactions_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["interactions_run"] = module
    spec.loader.exec_module(module)
    return module


def shares_of(n: int, strong: dict[tuple[int, ...], float], background: float = 1e-7) -> dict[tuple[int, ...], float]:
    """Every set of 2–4 of ``n`` columns at ``background``, the sets in ``strong`` at their value."""
    shares = {c: background for size in (2, 3, 4) for c in itertools.combinations(range(n), size)}
    shares.update(strong)
    return shares


PLANTED = [(0, 1), (1, 2, 3)]
INSIDE = {(0, 1): 0.2, (1, 2): 0.01, (1, 3): 0.01, (2, 3): 0.004, (1, 2, 3): 0.003}


def test_a_network_whose_spurious_sets_stay_below_the_planted_ones_allows_a_floor(run):
    possible, why = run.floor_bound(shares_of(6, {**INSIDE, (0, 4): 1e-3, (0, 1, 2): 2e-3}), PLANTED, 6)
    # (0, 1, 2) is stronger than the planted triple, but (0, 2) stays below every planted pair: never a candidate
    assert possible and why == ""


def test_a_spurious_pair_above_the_weakest_planted_pair_rules_every_floor_out(run):
    possible, why = run.floor_bound(shares_of(6, {**INSIDE, (4, 5): 0.005}), PLANTED, 6)
    assert not possible
    assert why == "{x5,x6} 5.0e-03 above planted {x3,x4} 4.0e-03"


def test_a_spurious_triple_of_planted_pairs_rules_every_floor_out(run):
    # the pairs (0,2) and (0,3) interact as much as the planted ones, so (0,1,2) is a candidate and passes
    strong = {**INSIDE, (0, 2): 0.005, (0, 3): 0.005, (0, 1, 2): 0.004}
    possible, why = run.floor_bound(shares_of(6, strong), [(0, 1), (0, 2), (0, 3), (1, 2, 3)], 6)
    assert not possible and why.startswith("{x1,x2,x3} 4.0e-03 above planted {x2,x3,x4}")


class Product(torch.nn.Module):
    """``x1·x2 + x3`` on three inputs, with the two attributes the bound reads from a network."""

    def __init__(self) -> None:
        super().__init__()
        self.sample_inputs = torch.rand(4000, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def row_bytes(self) -> int:
        return 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] * x[:, 1] + x[:, 2])[:, None]


def test_network_shares_measure_the_superset_shares_of_the_model(run):
    shares = run.network_shares(Product(), 3)
    # Var(x1 x2) = 1/9, Var(x3) = 1/3: the pair holds 1/4 of the variance; nothing else interacts
    assert shares[(0, 1)] == pytest.approx(0.25, rel=0.08)
    assert shares[(0, 2)] < 1e-12 and shares[(1, 2)] < 1e-12 and shares[(0, 1, 2)] < 1e-12
    assert run.floor_bound(shares, [(0, 1)], 3) == (True, "")
