"""Planted-interaction benchmark: pairwise AUC and exact interaction sets from trained networks.

Run by hand:  python benchmarks/interactions/run.py [--models tests/fixtures/planted] [--json out.json]

For every function of tests/fixtures/planted/suite.json it loads the network ``<models>/<name>.pt``
(trained by benchmarks/interactions/build.py with ``kanx train`` defaults), runs ``kanx interactions
--json`` on it (default options, the network's stored rows: its held-out rows with their targets, which
test each set, then its training sample) and scores:
- the pairwise AUC: how well the report's pair shares rank the pairs inside a planted set above all
  other pairs; for reference the same AUC of the Hessian strength ``RMS(∂²f/∂xi∂xj · s_i s_j)``, the
  measure kanx used before the mixed differences, measured on the same network and rows in this run;
- exact recovery: the reported interaction sets equal the planted ones (none missing, none extra);
  and, apart, whether they do once the report's possible terms (``unconfirmed_sets``: every subset
  interacts, the own share is measurable but below the floor) are counted as terms;
- what the definition allows (from the formula itself, no network): each planted set's own share
  ``U_S / Var f`` on 20,000 fresh rows. A set whose own share lies below the floor the report's sets
  answer to cannot be reported by any network at that error, so a function is *reachable* only when every
  planted set clears it (with held-out targets the sets answer to the data, and that floor is 0).
- with ``--bound``, what the network allows: whether *any* floor on the own share, one per order and
  chosen knowing the planted sets, would give exactly the planted sets from this network
  (``floor_bound``). When it would not, a set outside every planted one interacts more strongly in
  the network than a planted set of the same order, and no threshold rule can recover the function
  from it.
Prints one row per function and the means, and the wall time of each report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import sympy
import torch

from kanx.core.lambdify import torch_function
from kanx.core.numerics import roc_auc
from kanx.functions.parser import parse_expression
from kanx.interaction.sets import Columns, SwappedValues, subsets, superset_shares
from kanx.io.load import load_model

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "fixtures" / "planted" / "suite.json"


def hessian_strengths(model, x: torch.Tensor) -> np.ndarray:
    """``RMS_rows(∂²f/∂xi∂xj · s_i s_j) / s_f`` ``[n, n]`` of output 0 by autograd (the reference measure)."""
    x = x.detach().clone().requires_grad_(True)
    value = model(x)[:, 0]
    gradient = torch.autograd.grad(value.sum(), x, create_graph=True)[0]
    rows = [torch.autograd.grad(gradient[:, i].sum(), x, retain_graph=True)[0] for i in range(x.shape[1])]
    hessian = torch.stack(rows, dim=1)  # [N, n, n]
    scales = x.detach().std(dim=0)
    strength = (hessian * scales[None, :, None] * scales[None, None, :]).pow(2).mean(dim=0).sqrt()
    return (strength / value.detach().std()).detach().numpy()


def planted_own_shares(function: dict, rows: int = 20000, seed: int = 0) -> list[float]:
    """Own share ``U_S / Var f`` of each planted set of the exact formula on ``rows`` fresh rows drawn
    as the suite's data are (uniform on each input's range)."""
    names = [f"x{i}" for i in range(1, function["inputs"] + 1)]
    symbols = [sympy.Symbol(name) for name in names]
    formula = torch_function(symbols, parse_expression(function["formula"], dict(zip(names, symbols)), function["name"]))
    ranges = function.get("ranges", {})
    generator = torch.Generator().manual_seed(seed)
    low = torch.tensor([ranges.get(name, [-1, 1])[0] for name in names], dtype=torch.float64)
    high = torch.tensor([ranges.get(name, [-1, 1])[1] for name in names], dtype=torch.float64)
    x, partner = (low + (high - low) * torch.rand(rows, len(names), generator=generator, dtype=torch.float64) for _ in range(2))
    values = SwappedValues(lambda batch: formula(*batch.T)[:, None], x, partner, bytes_per_row=8 * len(names))
    variance = values.variance()
    index = {name: i for i, name in enumerate(names)}
    return [float(superset_shares(values, tuple(sorted(index[v] for v in planted)), variance)[0][0])
            for planted in function["sets"]]


def network_shares(model, max_order: int, seed: int = 0) -> dict[Columns, float]:
    """Superset share ``U_S / Var f`` of output 0 for every column set of 2 to ``max_order`` columns,
    on the network's stored rows against those rows in a random order (``2^n``-sized work at most)."""
    x = model.sample_inputs.float()
    partner = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))]
    values = SwappedValues(lambda batch: model(batch)[:, :1], x, partner, bytes_per_row=model.row_bytes())
    n = x.shape[1]
    sets = [c for size in range(2, max_order + 1) for c in itertools.combinations(range(n), size)]
    values.prefetch(s for c in sets for s in subsets(c))
    variance = values.variance()
    return {c: float(superset_shares(values, c, variance)[0][0]) for c in sets}


def floor_bound(shares: dict[Columns, float], planted: list[Columns], n: int) -> tuple[bool, str]:
    """Whether a floor per order, set just below the weakest planted set (or subset of one) of that
    order, grows exactly the planted sets level by level from ``shares`` (every set of 2 to the largest
    order, over ``n`` columns); and if not, the strongest set it lets in against the weakest planted one.

    Such floors are the highest that keep every planted set, so they admit the fewest others: when
    they admit one, every floor does (the answer is known here, so this bounds any threshold rule)."""
    largest = max(len(p) for p in planted)
    passed: set[Columns] = {(i,) for i in range(n)}
    for size in range(2, largest + 1):
        required = {c for p in planted for c in itertools.combinations(sorted(p), size)}
        weakest = min(required, key=lambda c: shares[c])  # the largest planted set has subsets of every size
        floor = shares[weakest]
        level = {c for c in itertools.combinations(range(n), size)
                 if all(s in passed for s in itertools.combinations(c, size - 1)) and shares[c] >= floor}
        extra = level - required
        if extra:
            strongest = max(extra, key=lambda c: shares[c])
            return False, (f"{named(strongest)} {shares[strongest]:.1e} above planted {named(weakest)} "
                           f"{shares[weakest]:.1e}")
        passed |= level
    return True, ""


def named(columns: Columns) -> str:
    return "{" + ",".join(f"x{i + 1}" for i in columns) + "}"


def score(function: dict, models: Path, bound: bool = False) -> dict:
    path = models / f"{function['name']}.pt"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kanx", "interactions", str(path), "--json"], capture_output=True,
                          text=True, check=True)
    seconds = time.perf_counter() - start
    output = json.loads(done.stdout)["outputs"][0]
    planted = {frozenset(s) for s in function["sets"]}
    found = {frozenset(s["variables"]) for s in output["interaction_sets"]}
    doubtful = {frozenset(s["variables"]) for s in output["unconfirmed_sets"]}
    with_doubtful = {s for s in found | doubtful if not any(s < t for t in found | doubtful)}
    n = function["inputs"]
    pairs = list(itertools.combinations(range(n), 2))
    truth = np.array([any({f"x{i + 1}", f"x{j + 1}"} <= s for s in planted) for i, j in pairs])
    shares = np.array(output["pairwise"])
    model = load_model(path)
    hessian = hessian_strengths(model, model.sample_inputs)
    own = planted_own_shares(function)
    floor = output["noise"]["set_floor"]
    bounded = {}
    if bound:
        planted_columns = [tuple(sorted(int(v[1:]) - 1 for v in p)) for p in function["sets"]]
        shares = network_shares(model, max(len(p) for p in planted_columns))
        possible, why = floor_bound(shares, planted_columns, n)
        bounded = {"any_floor": possible, "any_floor_fails_on": why}
    return {**bounded,
        "name": function["name"], "inputs": n, "network_r2": model.meta.training["metrics"]["test"]["r2"],
        "weakest_planted_share": min(own), "reachable": min(own) > floor,
        "auc": roc_auc(np.array([shares[i, j] for i, j in pairs]), truth),
        "hessian_auc": roc_auc(np.array([hessian[i, j] for i, j in pairs]), truth),
        "exact": found == planted, "exact_with_unconfirmed": with_doubtful == planted,
        "missing": sorted(sorted(s) for s in planted - found),
        "extra": sorted(sorted(s) for s in found - planted), "floor": floor,
        "held_out_rows": output["noise"]["held_out_rows"], "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=SUITE, help="suite file (default: the test fixtures' suite.json)")
    parser.add_argument("--models", type=Path, default=SUITE.parent, help="folder of the trained networks")
    parser.add_argument("--json", type=Path, help="also write the rows and means here")
    parser.add_argument("--bound", action="store_true",
                        help="also say whether any per-order floor could give the planted sets from each network")
    args = parser.parse_args()
    functions = json.loads(args.suite.read_text())["functions"]
    rows = []
    print(f"{'function':18s} {'R²':>8s} {'AUC':>6s} {'Hessian':>8s} {'exact':>6s} {'held-out':>8s} {'floor':>8s} "
          f"{'weakest':>8s} {'time':>6s}  missing / extra")
    for function in functions:
        row = score(function, args.models, args.bound)
        rows.append(row)
        print(f"{row['name']:18s} {row['network_r2']:8.5f} {row['auc']:6.3f} {row['hessian_auc']:8.3f} "
              f"{'yes' if row['exact'] else 'no':>6s} {row['held_out_rows']:8d} {row['floor']:8.1e} "
              f"{row['weakest_planted_share']:8.1e} "
              f"{row['seconds']:5.1f}s  {row['missing']} / {row['extra']}")
        if args.bound:
            print(f"{'':18s} any floor: {'yes' if row['any_floor'] else 'no: ' + row['any_floor_fails_on']}")
    means = {"auc": float(np.mean([r["auc"] for r in rows])), "hessian_auc": float(np.mean([r["hessian_auc"] for r in rows])),
             "exact": sum(r["exact"] for r in rows), "functions": len(rows),
             "reachable": sum(r["reachable"] for r in rows),
             "exact_with_unconfirmed": sum(r["exact_with_unconfirmed"] for r in rows),
             "exact_of_reachable": sum(r["exact"] and r["reachable"] for r in rows)}
    if args.bound:
        means["any_floor"] = sum(r["any_floor"] for r in rows)
    print(f"mean pairwise AUC {means['auc']:.3f} (Hessian strength {means['hessian_auc']:.3f}); "
          f"sets exact on {means['exact']} of {means['functions']}; {means['reachable']} reachable (every planted set's "
          f"own share above the sets' floor), exact on {means['exact_of_reachable']} of those; exact on "
          f"{means['exact_with_unconfirmed']} when the possible terms the network cannot confirm count as terms")
    if args.bound:
        print(f"the best floor per order, chosen knowing the planted sets, would give them exactly on "
              f"{means['any_floor']} of {means['functions']} networks")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "means": means}, indent=1) + "\n")


if __name__ == "__main__":
    main()
