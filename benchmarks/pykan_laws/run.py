"""Recover the laws behind pykan-trained checkpoints, as a user would: ``kanx symbolify
<prefix> --data data.csv --json`` with default options, on each folder ``build.py`` wrote.

Run by hand: ``python benchmarks/pykan_laws/run.py [--dir DIR] [--strategy S]``. A law counts as
*exact* when the returned formula, with its constants rounded as SRBench rounds them (|c| < 1e-4
→ 0, others to 3 decimals), simplifies to the true law with nothing left over: no offset and no
scale factor, unlike SRBench's looser rule. Prints a Markdown table; ``--csv`` also writes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import sympy

from kanx.functions.parser import parse_expression

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "feynman"))
from judge import round_constants  # noqa: E402 - the benchmarks share SRBench's rounding rule


def exact(true: sympy.Expr, found: sympy.Expr, seconds: float = 30.0) -> bool:
    """``simplify(true - rounded(found)) == 0`` (numbers compared after SRBench rounding), under a
    time limit (a formula sympy cannot simplify in ``seconds`` is not exact)."""
    rounded = round_constants(found)
    if rounded.free_symbols - true.free_symbols or sympy.count_ops(rounded) > 20 * sympy.count_ops(true) + 20:
        return False

    def expire(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        difference = sympy.simplify(true - rounded)
        return difference == 0 or bool(difference.is_number and abs(float(difference)) < 1e-9)
    except (TimeoutError, RecursionError):
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_one(folder: Path, strategy: str | None) -> dict:
    """symbolify one checkpoint through the CLI and judge the formula."""
    names = next(csv.reader(open(folder / "data.csv")))[:-1]
    law = parse_expression((folder / "law.txt").read_text().strip(), names, "law.txt")
    command = ["kanx", "symbolify", str(folder / "model"), "--data", str(folder / "data.csv"), "--json"]
    command += ["--strategy", strategy] if strategy else []
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    row = {"law": folder.name, "true": str(law), "exit": done.returncode, "seconds": round(seconds, 1)}
    if done.returncode not in (0, 1) or not done.stdout.strip():
        return {**row, "found": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "", "exact": False}
    report = json.loads(done.stdout)
    output = report["outputs"][0]
    found = parse_expression(output["expression"], names, "kanx output") if "phi_" not in output["expression"] else None
    oracle = report.get("oracle_quality") or {}
    return {
        **row,
        "found": output["expression"],
        "exact": bool(found is not None and oracle.get("is_law", True) and exact(law, found)),
        "numeric_edges": len(report.get("flagged", [])),
        "oracle_before": min(oracle["before"]) if oracle.get("before") else min(oracle.get("r2", [float("nan")])),
        "oracle_after": min(oracle.get("r2", [float("nan")])),
        "verdict": oracle.get("verdict", "-"),
        "refine_steps": oracle.get("refine_steps", 0),
        "r2_vs_data": (output["fidelity"].get("data") or {}).get("r2"),
        "strategy": report["strategy_used"][0] if report.get("strategy_used") else "-",
    }


def table(rows: list[dict]) -> str:
    lines = ["| law | true | found | exact | strategy used | oracle R² before → after (refine steps) | verdict | formula R² vs data | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        oracle = f"{r.get('oracle_before', float('nan')):.4f} → {r.get('oracle_after', float('nan')):.4f} ({r.get('refine_steps', 0)})"
        fit = r.get("r2_vs_data")
        exact = "yes" if r["exact"] else "no"
        lines.append(f"| {r['law']} | `{r['true']}` | `{r['found']}` | {exact} | {r.get('strategy', '-')} | {oracle} | "
                     f"{r.get('verdict', '-')} | {'-' if fit is None else f'{fit:.6f}'} | {r['seconds']} |")
    lines.append(f"\nexact: {sum(r['exact'] for r in rows)} of {len(rows)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=HERE / "checkpoints")
    parser.add_argument("--strategy", default=None, help="pass --strategy to symbolify (default: kanx's default)")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for folder in sorted(p for p in args.dir.iterdir() if (p / "law.txt").is_file()):
        rows.append(run_one(folder, args.strategy))
        print(f"{rows[-1]['law']:14s} exact={rows[-1]['exact']!s:5s} {rows[-1]['found']}", file=sys.stderr, flush=True)
    print(table(rows))
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
