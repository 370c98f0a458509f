"""Benchmark: the full interaction report (sets + pairs + tree + variance shares) for a [10,10,1]
KAN on 10 inputs and 1,000 samples (the checkpoint's default rows: its 250 held-out rows, which test
the sets against their targets, then 750 of its training sample). Prints the time and the number of
network evaluations.

Run by hand:  python benchmarks/bench_interactions.py [--reference DIR] [--repeat 3]
With ``--reference`` (a checkout of an earlier commit, e.g. ``git worktree add /tmp/ref 4a655d1``) the
same script of that checkout and this one run alternately as separate processes, ``--repeat`` times
each, and the medians of the report times and their ratio are printed.
The network is trained briefly (kanx train API) on a planted function with groups
{x1,x2}, {x3,x4}, {x6}, {x7}, {x8} and unused x5, x9, x10, so the tree has work to do.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from kanx.interaction import interactions
from kanx.io.data import formula_dataset
from kanx.training import train
from kanx.training.kan import TrainSettings

FORMULA = "x1*x2 + x3*x4 + sin(x6) + x7**2 + exp(x8)"


def report_seconds(script: Path, root: Path) -> float:
    """Run ``script`` (a copy of this benchmark) with ``root`` on the import path; its report time in s."""
    done = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(root)})
    found = re.search(r"^report: ([0-9.]+) s", done.stdout, flags=re.M)
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no 'report:' line in its output"])[-1]
        fail(f"{script}: {last}")
    return float(found.group(1))


def fail(message: str) -> None:
    """One error line on stderr and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def compare(reference: Path, repeat: int) -> None:
    """Median report time of ``reference``'s benchmark and of this one, run alternately."""
    here = Path(__file__).resolve()
    theirs = reference / "benchmarks" / here.name
    if not theirs.is_file():
        fail(f"--reference {reference}: no benchmarks/{here.name} there")
    times: dict[str, list[float]] = {"reference": [], "this checkout": []}
    for _ in range(repeat):
        times["reference"].append(report_seconds(theirs, reference))
        times["this checkout"].append(report_seconds(here, here.parents[1]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name}: median {medians[name]:.3f} s of {', '.join(f'{v:.3f}' for v in values)}")
    print(f"ratio this / reference: {medians['this checkout'] / medians['reference']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="checkout of an earlier commit to time against")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side with --reference")
    args = parser.parse_args()
    if args.reference:
        compare(args.reference.resolve(), args.repeat)
        return
    data = formula_dataset(FORMULA, [f"x{i}=-1:1" for i in range(1, 11)], 1250, seed=0)
    start = time.perf_counter()
    result = train(data, TrainSettings(widths=[10, 10, 1], lamb=1e-3, steps=1500, seed=0))
    print(f"trained [10,10,1] on {FORMULA} in {time.perf_counter() - start:.1f} s, test R² {result.test.r2:.4f}")
    model = result.model
    print(f"{len(model.sample_inputs)} training and {len(model.held_out_inputs)} held-out rows stored, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    interactions(model)  # warm-up
    report = interactions(model)  # the default rows: the held-out ones (they test the sets), then the training sample
    output = report.outputs[0]
    print(f"{report.samples} samples, {output.noise.held_out_rows} of them held out with targets")
    print(f"report: {report.seconds:.2f} s, {report.network_evaluations} network evaluations (rows)")
    print(f"tree: {output.tree.describe()}")
    print(f"groups: {[g.variables for g in output.groups]}, unused: {output.unused}, max order {output.max_order}")
    if hasattr(output, "interaction_sets"):
        print(f"interaction sets: {[s.variables for s in output.interaction_sets]}")


if __name__ == "__main__":
    main()
