"""Build ``tests/fixtures/noisy/``: a network trained by kanx's training recipe (``kanx.training.recipe``) on noisy
measurements of a torque, τ = F·r·sin θ (2,000 rows, F, r on [1, 5], θ on [0, 5], SRBench
target noise at level 0.01), with the rows it was trained on.

    python benchmarks/feynman/build_noisy_fixture.py [--out tests/fixtures/noisy] [--seed 0]

Writes ``torque_1pct.pt`` (a kanx checkpoint), ``torque_1pct.csv`` (columns F, r, theta, tau;
the noisy targets) and ``torque_1pct.json`` (the law, the level, the seed and the realised noise
share of the targets' variance). Tests read these files and never retrain.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import noisy_targets  # noqa: E402

from kanx.io.checkpoint import save_model  # noqa: E402
from kanx.io.data import Dataset  # noqa: E402
from kanx.training.recipe import recipe_for, train_recipe  # noqa: E402

NAMES = ["F", "r", "theta"]
RANGES = [(1.0, 5.0), (1.0, 5.0), (0.0, 5.0)]
LEVEL = 0.01
ROWS = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "noisy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x = np.column_stack([rng.uniform(low, high, ROWS) for low, high in RANGES])
    law = x[:, 0] * x[:, 1] * np.sin(x[:, 2])
    y = noisy_targets(law, LEVEL, args.seed)
    data = Dataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y[:, None], dtype=torch.float32), NAMES, ["tau"],
                   "torque_1pct.csv", ranges=RANGES)
    model = train_recipe(data, recipe_for(data, seed=args.seed)).model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out / "torque_1pct.pt")
    rows = "\n".join(",".join(f"{v:.9g}" for v in row) for row in np.column_stack([x, y]))
    (args.out / "torque_1pct.csv").write_text(",".join(NAMES + ["tau"]) + "\n" + rows + "\n")
    share = float(np.mean((y - law) ** 2) / np.var(y))
    record = {"law": "F*r*sin(theta)", "level": LEVEL, "rows": ROWS, "seed": args.seed, "noise_share": share,
              "ranges": dict(zip(NAMES, RANGES))}
    (args.out / "torque_1pct.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}: realised noise share {share:.4g} (level {share ** 0.5:.4g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
