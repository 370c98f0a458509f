"""Train the planted-interaction suite's networks with ``kanx train`` defaults.

Run by hand:  python benchmarks/interactions/build.py [--jobs 2] [--out tests/fixtures/planted]

Each function of ``tests/fixtures/planted/suite.json`` becomes one checkpoint, ``<name>.pt``, trained by
``kanx train --formula F --var ... --samples 2000 --seed 0`` (every other option at its default:
widths [n, 2n+1, 1], adam, 1,500 steps, grid 5, no sparsity penalty). The checkpoints are the test fixtures of
``tests/test_interaction_sets.py``; rebuilding them changes the networks, so rerun
``benchmarks/interactions/run.py`` after.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "fixtures" / "planted" / "suite.json"
SAMPLES = 2000


def train_command(function: dict, output: Path, seed: int = 0, samples: int = SAMPLES,
                  extra: list[str] | None = None) -> list[str]:
    """The ``kanx train`` command line of one suite function (``extra``: further options, none by default)."""
    ranges = function.get("ranges", {})
    command = [sys.executable, "-m", "kanx", "train", "--formula", function["formula"], "--quiet",
               "--samples", str(samples), "--seed", str(seed),
               "--output", str(output)]
    for index in range(1, function["inputs"] + 1):
        low, high = ranges.get(f"x{index}", [-1, 1])
        command += ["--var", f"x{index}={low}:{high}"]
    return command + list(extra or [])


def build(function: dict, folder: Path, seed: int = 0, samples: int = SAMPLES, extra: list[str] | None = None) -> str:
    output = folder / f"{function['name']}.pt"
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # parallel jobs, one core each
    done = subprocess.run(train_command(function, output, seed, samples, extra), capture_output=True, text=True, check=False,
                          env=one_thread)
    if done.returncode != 0:
        return f"{function['name']}: failed: {done.stderr.strip()}"
    return f"{function['name']}: {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else 'written'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=SUITE, help="suite file (default: the test fixtures' suite.json)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=SUITE.parent)
    parser.add_argument("--only", nargs="*", help="names of the functions to build (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="data and network seed (0 = the test fixtures)")
    parser.add_argument("--samples", type=int, default=SAMPLES,
                        help=f"rows sampled per function (default {SAMPLES} = the test fixtures)")
    parser.add_argument("--train-options", default="",
                        help="further kanx train options, e.g. '--optimizer lbfgs --steps 200' (default: none)")
    args = parser.parse_args()
    extra = shlex.split(args.train_options)
    functions = [f for f in json.loads(args.suite.read_text())["functions"] if not args.only or f["name"] in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda f: build(f, args.out, args.seed, args.samples, extra), functions):
            print(line, flush=True)


if __name__ == "__main__":
    main()
