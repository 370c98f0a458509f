"""Judge a results CSV of ``run.py`` again, with the judge of this checkout: SRBench's rule
(``judge.is_symbolic_solution``, as ``run.py`` applies it), and, for the formulas it rejects,
whether they are the law in another parameterisation (``judge.same_expanded_law``).

The rates are SRBench's rule; the second reading only describes the rejected formulas, so a
reader can tell a wrong law from a right one whose constants the rule's rounding could not match.

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
from run import BENCHMARK, BenchmarkError, judge, load_equations, load_trajectories, parse_formula, read_results  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
MAX_FORMULA = 2000  # characters: longer formulas are look-alike expansions, not laws


def equations_for(rows: list[dict], path: Path | None) -> dict:
    """The equations of ``rows`` by id, from ``path`` or the bundled file their ids name."""
    if path is None:
        odebench = any(str(row["id"]).startswith("ode") for row in rows)
        path = DATA / ("odebench_trajectories.json" if odebench else "feynman_equations.csv")
    loaded = load_trajectories(path) if path.suffix == ".json" else load_equations(path)
    return {equation.id: equation for equation in loaded}


def rejudged(rows: list[dict], equations: dict) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The ids SRBench's rule accepts now, and ``(id, true, found)`` of the formulas it rejects
    that are the true law with other constants."""
    solved, other_constants = [], []
    for row in rows:
        text = str(row.get("formula") or "")
        if not text or len(text) > MAX_FORMULA or row["id"] not in equations:
            continue
        equation = equations[row["id"]]
        try:
            model = parse_formula(text, equation.names, row["id"])
        except BenchmarkError:
            continue
        model = model.xreplace(dict(zip([sympy.Symbol(n) for n in equation.names], equation.symbols)))
        if model.atoms(sympy.core.function.AppliedUndef):
            continue
        if judge(equation.truth(), model, float(BENCHMARK["judge_seconds"]), equation.rounding):
            solved.append(row["id"])
        elif same_expanded_law(equation.truth(), model):
            other_constants.append((row["id"], sympy.sstr(equation.expr), text))
    return solved, other_constants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--equations", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = read_results(args.results)
    solved, other_constants = rejudged(rows, equations_for(rows, args.equations))
    was = {row["id"] for row in rows if int(row.get("solved") or 0)}
    for ident in sorted(set(solved) ^ was):
        print(f"{ident}: {'now' if ident in solved else 'no longer'} a symbolic solution")
    for ident, truth, text in other_constants:
        print(f"{ident}: the law with other constants\n    true  {truth}\n    found {text}")
    print(f"{len(was)}/{len(rows)} symbolic as run; {len(solved)}/{len(rows)} by this judge; "
          f"{len(other_constants)} more are the law with other constants")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
