"""Can an equation's rows tell its law from a simpler formula at all?

For each ``--pair ID FORMULA``, draws the rows the runner draws for that equation (same seed, the
training and test rows) and prints how far FORMULA is from the true law on them: the R² of FORMULA against the
true targets, the largest relative difference on any row, and the SRBench judge's verdict. A
formula that matches the true law to about the precision of double floats on every row while the
judge rejects it marks an equation whose law the data cannot identify: no method can recover it
from those rows, and a recovery rate counting it measures the judge, not the method.

    python benchmarks/feynman/lookalikes.py --equations benchmarks/data/srsd_feynman_equations.csv \\
        --pair I.15.10 "x0*x1" --pair III.17.37 "x0"
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import sympy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the runner's own sampling and judge)


def compare(equation: run.Equation, formula: str, seed: int) -> dict:
    """The look-alike ``formula`` against ``equation`` on the runner's rows for ``seed`` (training
    and test rows together)."""
    n_train, n_test = equation.split
    x, y = run.sample(equation, n_train + n_test, run.equation_seed(seed, equation.id))
    names = equation.names[:equation.n_real]
    model = run.parse_formula(formula, names, f"--pair {equation.id}")
    predicted = run.evaluate(model, [sympy.Symbol(n) for n in names], x[:, :equation.n_real])
    model = model.xreplace({sympy.Symbol(n): s for n, s in zip(names, equation.symbols)})
    relative = np.abs(predicted - y) / np.maximum(np.abs(y), np.finfo(np.float64).tiny)
    return {"id": equation.id, "formula": formula, "r2": run.r_squared(predicted, y),
            "max_relative_difference": float(np.max(relative)),
            "judged_solution": run.judge(equation.truth(), model, 60, equation.rounding)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equations", type=Path, default=HERE.parent / "data" / "srsd_feynman_equations.csv")
    parser.add_argument("--pair", nargs=2, action="append", metavar=("ID", "FORMULA"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    equations = {e.id: e for e in run.load_equations(args.equations)}
    for eq_id, formula in args.pair:
        if eq_id not in equations:
            print(f"error: {eq_id} is not in {args.equations}", file=sys.stderr)
            return 2
        result = compare(equations[eq_id], formula, args.seed)
        print(f"{result['id']:10s} {formula:40s} R²={result['r2']:.17g}  max |Δ|/|y|={result['max_relative_difference']:.3g}"
              f"  judged a solution: {result['judged_solution']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
