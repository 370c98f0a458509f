"""Benchmark: one training step (forward + backward) of a [4,8,8,1] KAN, grid 5, k 3, on 1,000
samples — kanx vs pykan 0.2.8, measured in the same run.

Run by hand:  python benchmarks/bench_train.py [--repeats 30]
pykan is only needed in the benchmark's environment (e.g. a venv with
``--system-site-packages`` plus ``pip install pykan==0.2.8 pyyaml tqdm pandas scikit-learn``);
without it pykan's row is skipped with a note. Target: kanx >= 5x faster per step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from kanx.families.kan.network import KAN
from kanx.training.kan import sparsity_penalty

WIDTHS = [4, 8, 8, 1]
SAMPLES = 1000


def time_steps(step, repeats: int) -> float:
    """Median seconds of ``step()`` over ``repeats`` runs after 3 warm-ups."""
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kanx_step_fn(x: torch.Tensor, y: torch.Tensor, with_penalty: bool):
    model = KAN(WIDTHS, basis={"kind": "bspline", "grid": 5, "k": 3}, seed=0)

    def step() -> None:
        model.zero_grad()
        if with_penalty:
            traces = model.edge_activations(x)
            loss = ((traces[-1].outputs - y) ** 2).mean() + 1e-3 * sparsity_penalty(traces, 1.0, 2.0)
        else:
            loss = ((model(x) - y) ** 2).mean()
        loss.backward()

    return step


def pykan_step_fn(x: torch.Tensor, y: torch.Tensor, with_penalty: bool):
    try:
        from kan import KAN as PyKAN
    except ImportError:
        return None
    workdir = tempfile.mkdtemp(prefix="pykan-bench-")
    cwd = os.getcwd()
    os.chdir(workdir)  # pykan writes ./model checkpoints and history files
    try:
        model = PyKAN(width=list(WIDTHS),  # pykan rewrites the list in place
                       grid=5, k=3, seed=0, auto_save=False)
    finally:
        os.chdir(cwd)

    def step() -> None:
        model.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        if with_penalty:
            loss = loss + 1e-3 * model.get_reg("edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0)
        loss.backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(SAMPLES, WIDTHS[0]) * 2 - 1
    y = torch.sin(x.sum(dim=1, keepdim=True))
    print(f"[4,8,8,1] KAN, grid 5, k 3, {SAMPLES} samples, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for label, with_penalty in (("plain MSE", False), ("MSE + sparsity", True)):
        kanx_time = time_steps(kanx_step_fn(x, y, with_penalty), args.repeats)
        pykan_step = pykan_step_fn(x, y, with_penalty)
        line = f"{label:>15}: kanx {kanx_time * 1e3:8.2f} ms/step"
        if pykan_step is None:
            line += "   pykan: not installed in this environment (row skipped)"
        else:
            pykan_time = time_steps(pykan_step, args.repeats)
            line += f"   pykan {pykan_time * 1e3:8.2f} ms/step   ratio {pykan_time / kanx_time:6.1f}x"
        print(line)


if __name__ == "__main__":
    main()
