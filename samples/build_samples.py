"""Rebuild the bundled sample datasets and checkpoints.

Run from the repository root:  python samples/build_samples.py [NAME ...]
Each dataset is sampled from a known formula (uniform inputs, fixed seed) and written as a
CSV; each checkpoint is trained on that CSV by ``kanx train`` itself. Names select entries
(default: all), e.g. ``python samples/build_samples.py karsein_ctr``.

``karsein_ctr``: a KarSein CTR model trained by ``kanx train --arch karsein`` on 20000 rows of
``kanx.io.ctr.generate_ctr`` (planted groups {user, item} and {hour, device, site});
``karsein_ctr.csv`` holds the first 2000 of those rows.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kanx.io.ctr import CTRData, generate_ctr, write_ctr_csv  # noqa: E402
from kanx.io.data import formula_dataset  # noqa: E402

# name, formula, variable ranges, kanx train options
SAMPLES = [
    ("exp_sin", "exp(sin(pi*x)+y**2)", ["x=-1:1", "y=-1:1"], ["--width", "2,5,1", "--lamb", "0.01"]),
    ("xy_sinz", "x*y+sin(z)", ["x=-1:1", "y=-1:1", "z=-1:1"], ["--width", "3,5,1", "--lamb", "0.001"]),
    # seed 1: with seed 0 the product node settles in a local minimum (test R² 0.81)
    ("xy_sinz_mult", "x*y+sin(z)", ["x=-1:1", "y=-1:1", "z=-1:1"],
     ["--width", "3,2,1", "--mult", "1:1", "--lamb", "0.001", "--seed", "1"]),
    ("threeway", "x1*x2*x3+x4**2", ["x1=-1:1", "x2=-1:1", "x3=-1:1", "x4=-1:1"],
     ["--width", "4,2,1", "--mult", "1:1x3", "--lamb", "0.001"]),
    # x4, x5 are distractors: `kanx prune` should report them unused
    ("five_inputs", "x1*x2+sin(x3)", ["x1=-1:1", "x2=-1:1", "x3=-1:1", "x4=-1:1", "x5=-1:1"],
     ["--width", "5,5,1", "--lamb", "0.001"]),
]
ROWS = 1000
MAX_CHECKPOINT_BYTES = 200_000


def write_csv(path: Path, formula: str, variables: list[str]) -> None:
    data = formula_dataset(formula, variables, ROWS, seed=0, target="f")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(data.input_names + data.target_names)
        for row in zip(data.x.tolist(), data.y.tolist()):
            writer.writerow([f"{v:.9g}" for v in row[0] + row[1]])


KARSEIN_ROWS = 20000
KARSEIN_OPTIONS = ["--arch", "karsein", "--target", "click", "--fields", "user,item,hour,device,site,ad", "--epochs", "8"]


def build_karsein() -> None:
    """Train the ``karsein_ctr`` sample (see the module docstring)."""
    data = generate_ctr(KARSEIN_ROWS, seed=0)
    head = CTRData({f: v[:2000] for f, v in data.ids.items()}, data.clicks[:2000], data.probabilities[:2000])
    write_ctr_csv(head, HERE / "karsein_ctr.csv")
    checkpoint = HERE / "karsein_ctr.pt"
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "ctr.csv"
        write_ctr_csv(data, csv_path)
        command = [sys.executable, "-m", "kanx", "train", str(csv_path), *KARSEIN_OPTIONS, "-o", str(checkpoint), "--quiet"]
        print(" ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
    check_size(checkpoint)


def check_size(checkpoint: Path) -> None:
    size = checkpoint.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise SystemExit(f"{checkpoint} is {size} bytes, over the {MAX_CHECKPOINT_BYTES} byte budget")


def main(names: list[str]) -> None:
    known = [entry[0] for entry in SAMPLES] + ["karsein_ctr"]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown sample {unknown[0]!r} (known: {', '.join(known)})")
    for name, formula, variables, options in SAMPLES:
        if names and name not in names:
            continue
        csv_path = HERE / f"{name}.csv"
        if name == "xy_sinz_mult":
            csv_path = HERE / "xy_sinz.csv"
        else:
            write_csv(csv_path, formula, variables)
        checkpoint = HERE / f"{name}.pt"
        command = [sys.executable, "-m", "kanx", "train", str(csv_path), "--target", "f", *options,
                   "-o", str(checkpoint), "--quiet"]
        print(" ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
        check_size(checkpoint)
    if not names or "karsein_ctr" in names:
        build_karsein()


if __name__ == "__main__":
    main(sys.argv[1:])
