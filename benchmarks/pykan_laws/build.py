"""Train the pykan law set: eight textbook functions, each a pykan ``MultKAN`` saved with
``saveckpt`` beside the user's data file (``data.csv``: pykan's input names ``x_1..x_n`` and the
target in a column called ``y``, not pykan's ``y_1``).

Run by hand (needs the ``pykan`` extra): ``python benchmarks/pykan_laws/build.py [--out DIR]``.
Training is how a pykan user trains: ``KAN(width, grid=5, k=3, seed)``, then
``fit(opt="LBFGS", steps=100, lamb=1e-3)``; nothing is tuned per law. Some networks come out
poor, as they do for users; ``run.py`` reports each network's R² on its data.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Law:
    """One textbook function: its name, the formula (kanx parser syntax, inputs ``x_1..x_n``), a
    torch version for sampling, the input ranges and the pykan width."""

    name: str
    formula: str
    function: Callable[[torch.Tensor], torch.Tensor]
    ranges: tuple[tuple[float, float], ...]
    width: tuple[int, ...]


LAWS = (
    Law("hello", "exp(sin(pi*x_1) + x_2**2)", lambda x: torch.exp(torch.sin(math.pi * x[:, 0]) + x[:, 1] ** 2),
        ((-1, 1), (-1, 1)), (2, 5, 1)),
    Law("product", "x_1*x_2", lambda x: x[:, 0] * x[:, 1], ((-1, 1), (-1, 1)), (2, 5, 1)),
    Law("additive", "x_1**2 + sin(pi*x_2) + exp(x_3)",
        lambda x: x[:, 0] ** 2 + torch.sin(math.pi * x[:, 1]) + torch.exp(x[:, 2]), ((-1, 1),) * 3, (3, 1)),
    Law("relativistic", "(x_1 + x_2)/(1 + x_1*x_2)", lambda x: (x[:, 0] + x[:, 1]) / (1 + x[:, 0] * x[:, 1]),
        ((-0.8, 0.8), (-0.8, 0.8)), (2, 5, 1)),
    Law("gaussian", "exp(-x_1**2/(2*x_2**2))/x_2", lambda x: torch.exp(-x[:, 0] ** 2 / (2 * x[:, 1] ** 2)) / x[:, 1],
        ((-2, 2), (1, 2)), (2, 5, 1)),
    Law("radius", "sqrt(x_1**2 + x_2**2 + 1)", lambda x: torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2 + 1),
        ((-1, 1), (-1, 1)), (2, 5, 1)),
    Law("deep", "exp(sin(x_1**2 + x_2**2) + sin(x_3**2 + x_4**2))",
        lambda x: torch.exp(torch.sin(x[:, 0] ** 2 + x[:, 1] ** 2) + torch.sin(x[:, 2] ** 2 + x[:, 3] ** 2)),
        ((-1, 1),) * 4, (4, 4, 2, 1)),
    Law("tanh_cubic", "tanh(2*x_1 - x_2) + x_3**3", lambda x: torch.tanh(2 * x[:, 0] - x[:, 1]) + x[:, 2] ** 3,
        ((-1, 1),) * 3, (3, 5, 1)),
)


def sample(law: Law, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` uniform inputs on the law's ranges ``[rows, n]`` and its values ``[rows, 1]``."""
    generator = torch.Generator().manual_seed(seed)
    lo = torch.tensor([r[0] for r in law.ranges], dtype=torch.float32)
    hi = torch.tensor([r[1] for r in law.ranges], dtype=torch.float32)
    x = lo + (hi - lo) * torch.rand(rows, len(law.ranges), generator=generator)
    return x, law.function(x)[:, None]


def write_csv(path: Path, x: torch.Tensor, y: torch.Tensor) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"x_{k + 1}" for k in range(x.shape[1])] + ["y"])
        for row, target in zip(x.tolist(), y[:, 0].tolist()):
            writer.writerow([f"{v:.9g}" for v in row] + [f"{target:.9g}"])


def train(law: Law, folder: Path, seed: int, steps: int) -> float:
    """Train and save one law; returns the seconds taken."""
    from kan import KAN

    start = time.perf_counter()
    x, y = sample(law, 1000, seed)
    x_test, y_test = sample(law, 200, seed + 1)
    dataset = {"train_input": x, "train_label": y, "test_input": x_test, "test_label": y_test}
    torch.manual_seed(seed)
    model = KAN(width=list(law.width), grid=5, k=3, seed=seed, auto_save=False, ckpt_path=str(folder / "pykan"))
    model.fit(dataset, opt="LBFGS", steps=steps, lamb=1e-3, log=steps + 1)
    folder.mkdir(parents=True, exist_ok=True)
    model(x)  # the cache pykan saves is the last batch it saw: the user's data
    model.saveckpt(str(folder / "model"))
    write_csv(folder / "data.csv", x, y)
    (folder / "law.txt").write_text(law.formula + "\n")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--only", nargs="*", help="law names to build (default: all)")
    args = parser.parse_args()
    for law in LAWS:
        if args.only and law.name not in args.only:
            continue
        seconds = train(law, args.out / law.name, args.seed, args.steps)
        print(f"{law.name:14s} width {list(law.width)}  trained in {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
