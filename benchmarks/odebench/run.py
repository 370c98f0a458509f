"""ODEBench for kanx: laws of dynamics from a few hundred rows along trajectories.

Run by hand (not a test)::

    python benchmarks/odebench/run.py [--jobs N] [--ids ode1.x_0 ...] [--noise 0 0.01] [--out CSV] [--json]

The 105 equations (one per state) of the 57 ODEBench systems in ``benchmarks/data/odebench_trajectories.json``
become problems the way SRBench builds its Strogatz set: 400 rows chosen (seeded) among the points of
the two stored trajectories, the states as inputs, that state's exact right-hand side as the target,
split 75/25. Each problem goes through ``kanx.discover`` with its defaults and is judged with the
SRBench rule (constants to 3 significant digits). The runner is the Feynman runner
(``benchmarks/feynman/run.py``) on this file; every option of that runner applies. Results go to
``benchmarks/odebench/results.csv`` by default, with the per-equation table and the rates printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "feynman"))
import run as feynman  # noqa: E402

TRAJECTORIES = HERE.parent / "data" / "odebench_trajectories.json"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    defaults = [] if "--equations" in argv else ["--equations", str(TRAJECTORIES)]
    defaults += [] if "--out" in argv or "--task" in argv else ["--out", str(HERE / "results.csv")]
    return feynman.main(defaults + argv)


if __name__ == "__main__":
    sys.exit(main())
