"""Shared fixtures: paths to bundled samples and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
FIXTURES = REPO / "tests" / "fixtures"  # third-party checkpoints (copied from the shared fixtures; see README there)

# One intra-op thread: the tests' tensors are small, and on a 2-core machine that is also running
# anything else, torch's OpenMP workers spin-wait for each other and some tests ran 5-30x slower
# (the full suite from ~3 to over 11 minutes). One thread keeps the run time independent of load.
torch.set_num_threads(1)


def rk4_states(rates: Callable[[torch.Tensor], torch.Tensor], starts: list[tuple[float, ...]], steps: int,
               dt: float) -> torch.Tensor:
    """States ``[len(starts)·steps, n]`` along the trajectories of ds/dt = ``rates(s)`` (``[k, n]``
    → ``[k, n]``) from ``starts``, by fixed-step classical RK4 in float64, step by step for all
    starts together: the clustered rows of simulated dynamics."""
    state = torch.tensor(starts, dtype=torch.float64)
    rows = []
    for _ in range(steps):
        rows.append(state)
        k1 = rates(state)
        k2 = rates(state + dt / 2 * k1)
        k3 = rates(state + dt / 2 * k2)
        k4 = rates(state + dt * k3)
        state = state + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return torch.cat(rows)


def invoke(runner: CliRunner, *args: object):
    """Run the kanx CLI with every argument turned into text."""
    from kanx.cli import app

    return runner.invoke(app, [str(a) for a in args])


def assert_clean_failure(result, *fragments: str) -> str:
    """Exit code 2, exactly one line on stderr containing every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def frozen_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of everything a test could change in a shared model: its tensors and stored sample."""
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    sample = getattr(model, "sample_inputs", None)
    if isinstance(sample, torch.Tensor):
        state["<sample_inputs>"] = sample.detach().clone()
    return state


def assert_not_mutated(model: torch.nn.Module, before: dict[str, torch.Tensor], what: str) -> None:
    after = frozen_state(model)
    changed = sorted(k for k in before.keys() | after.keys() if k not in before or k not in after or not torch.equal(before[k], after[k]))
    assert not changed, f"a test mutated the shared {what} ({', '.join(changed)}); deepcopy it first"


@pytest.fixture(scope="session")
def karsein_sample():
    """The bundled KarSein CTR sample, loaded once per session and shared: tests must not change it
    (copy.deepcopy first); teardown fails if one did."""
    path = SAMPLES / "karsein_ctr.pt"
    if not path.is_file():
        pytest.skip(f"bundled sample {path} missing (python samples/build_samples.py karsein_ctr)")
    from kanx.io.load import load_model

    model = load_model(path)
    before = frozen_state(model)
    yield model
    assert_not_mutated(model, before, "KarSein sample")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def samples() -> Path:
    return SAMPLES
