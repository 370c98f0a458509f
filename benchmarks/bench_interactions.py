"""Benchmark: the full interaction report (sets + pairs + tree + variance shares) for a [10,10,1]
KAN on 10 inputs and 1,000 samples. Prints the time and the number of network evaluations.

Run by hand:  python benchmarks/bench_interactions.py
The network is trained briefly (kanx train API) on a planted function with groups
{x1,x2}, {x3,x4}, {x6}, {x7}, {x8} and unused x5, x9, x10, so the tree has work to do.
"""

from __future__ import annotations

import time

import torch

from kanx.interactions import interactions
from kanx.io.data import formula_dataset
from kanx.train.kan import TrainSettings, train

FORMULA = "x1*x2 + x3*x4 + sin(x6) + x7**2 + exp(x8)"


def main() -> None:
    data = formula_dataset(FORMULA, [f"x{i}=-1:1" for i in range(1, 11)], 1250, seed=0)
    start = time.perf_counter()
    result = train(data, TrainSettings(widths=[10, 10, 1], lamb=1e-3, steps=1500, seed=0))
    print(f"trained [10,10,1] on {FORMULA} in {time.perf_counter() - start:.1f} s, test R² {result.test.r2:.4f}")
    x = result.model.sample_inputs
    print(f"{x.shape[0]} samples, torch {torch.__version__}, {torch.get_num_threads()} threads")
    interactions(result.model, x)  # warm-up
    report = interactions(result.model, x)
    output = report.outputs[0]
    print(f"report: {report.seconds:.2f} s, {report.network_evaluations} network evaluations (rows)")
    print(f"tree: {output.tree.describe()}")
    print(f"groups: {[g.variables for g in output.groups]}, unused: {output.unused}, max order {output.max_order}")
    if hasattr(output, "interaction_sets"):
        print(f"interaction sets: {[s.variables for s in output.interaction_sets]}")


if __name__ == "__main__":
    main()
