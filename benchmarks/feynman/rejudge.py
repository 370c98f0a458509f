"""Read a results CSV of ``run.py`` again: which formulas that SRBench's rule rejects are the law
in another parameterisation (``judge.same_expanded_law``)?

The rates stay SRBench's (``run.py``); this only describes the rejected formulas, so a reader
can tell a wrong law from a right one whose constants the rule's rounding could not match.

    python benchmarks/feynman/rejudge.py RESULTS.csv [--equations FILE]

``--equations`` is the equations file the results came from (default: by the ids, AI Feynman's
CSV, or ODEBench's trajectories for ``ode…`` ids). Formulas are parsed with kanx's safe parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sympy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge import same_expanded_law  # noqa: E402
from run import BenchmarkError, load_equations, load_trajectories, parse_formula, read_results  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
MAX_FORMULA = 2000  # characters: longer formulas are look-alike expansions, not laws


def equations_for(rows: list[dict], path: Path | None) -> dict:
    """The equations of ``rows`` by id, from ``path`` or the bundled file their ids name."""
    if path is None:
        odebench = any(str(row["id"]).startswith("ode") for row in rows)
        path = DATA / ("odebench_trajectories.json" if odebench else "feynman_equations.csv")
    loaded = load_trajectories(path) if path.suffix == ".json" else load_equations(path)
    return {equation.id: equation for equation in loaded}


def rejected_laws(rows: list[dict], equations: dict) -> list[tuple[str, str, str]]:
    """``(id, true, found)`` of the rows judged not symbolic whose formula is the true law with
    other constants."""
    found = []
    for row in rows:
        text = str(row.get("formula") or "")
        if int(row.get("solved") or 0) or not text or len(text) > MAX_FORMULA or row["id"] not in equations:
            continue
        equation = equations[row["id"]]
        try:
            model = parse_formula(text, equation.names, row["id"])
        except BenchmarkError:
            continue
        truth = equation.expr
        if same_expanded_law(truth, model):
            found.append((row["id"], sympy.sstr(truth), text))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--equations", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = read_results(args.results)
    found = rejected_laws(rows, equations_for(rows, args.equations))
    for ident, truth, text in found:
        print(f"{ident}: true {truth}\n    found {text}")
    solved = sum(int(row.get("solved") or 0) for row in rows)
    print(f"{solved}/{len(rows)} symbolic by SRBench's rule; {len(found)} more are the law with other constants")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
