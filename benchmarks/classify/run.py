"""Classifiers on real data that ships with scikit-learn: a KAN's formula against EBM and logistic regression.

For each dataset (breast cancer, wine, iris; all load offline), one seeded split into training and
test rows (75/25, stratified by nothing: ``kanx.core.numerics.split_rows``). kanx runs its public
path on the training rows, as a user's commands would:

    kanx train train.csv --target class --task classify
    kanx prune model.pt --data train.csv
    kanx symbolify pruned.pt --data train.csv

(``kanx train`` holds out its own share of those rows for early stopping). On the test rows the
runner measures the network's accuracy, the formula's accuracy, its operation count (sympy's
``count_ops`` of the logit formulas together) and its decision agreement with its own (pruned)
network; logistic regression (scikit-learn, standardised inputs) and an Explainable Boosting
Machine (interpret; without pairwise terms for more than two classes, which interpret leaves out
of a multiclass explanation) are fitted to the same training rows and measured on the same test
rows.

Run by hand:  python benchmarks/classify/run.py [--datasets iris wine breast_cancer] [--seed 0] [--json]
Needs scikit-learn and interpret (``pip install -e .[bench]``). Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sympy
import torch

import kanx
from kanx.core.classes import classification_metrics, decision_agreement
from kanx.core.numerics import split_rows
from kanx.io.data import load_csv, read_model_rows
from kanx.symbolic.classify import formula_logits
from kanx.training.recipe import recipe_for, train_recipe

DATASETS = ("iris", "wine", "breast_cancer")
TEST_FRACTION = 0.25


def dataset_table(name: str) -> tuple[list[str], np.ndarray, list[str]]:
    """``(input names, inputs [N, n], class names per row)`` of a scikit-learn dataset."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = ["x_" + "".join(c if c.isalnum() else "_" for c in str(feature)).strip("_") for feature in bunch.feature_names]
    labels = [str(bunch.target_names[t]) for t in bunch.target]
    return names, np.asarray(bunch.data, dtype=np.float64), labels


def write_csv(path: Path, names: list[str], x: np.ndarray, labels: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "class"])
        for row, label in zip(x.tolist(), labels):
            writer.writerow([*(repr(v) for v in row), label])
    return path


def operation_count(expressions: list[sympy.Expr]) -> int:
    """Operations of the logit formulas together (sympy's ``count_ops``)."""
    return int(sum(sympy.count_ops(expr) for expr in expressions))


def baselines(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int) -> dict:
    """Test accuracy of logistic regression (standardised inputs) and of an EBM."""
    from interpret.glassbox import ExplainableBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x_train, y_train)
    # more than two classes: interpret leaves pairs out of a multiclass EBM's explanation, and fitting
    # them took over 30 CPU minutes on wine; without them the EBM is the additive glassbox interpret names
    pairs = {} if len(set(y_train.tolist())) == 2 else {"interactions": 0}
    ebm = ExplainableBoostingClassifier(random_state=seed, n_jobs=1, **pairs).fit(x_train, y_train)
    return {"logistic_regression": float((logistic.predict(x_test) == y_test).mean()),
            "ebm": float((ebm.predict(x_test) == y_test).mean())}


def run_dataset(name: str, seed: int, folder: Path) -> dict:
    """Every number of one dataset's row."""
    names, x, labels = dataset_table(name)
    train_rows, test_rows = split_rows(len(x), TEST_FRACTION, seed)
    train_rows, test_rows = train_rows.numpy(), test_rows.numpy()
    train_csv = write_csv(folder / f"{name}_train.csv", names, x[train_rows], [labels[i] for i in train_rows])
    test_csv = write_csv(folder / f"{name}_test.csv", names, x[test_rows], [labels[i] for i in test_rows])
    start = time.perf_counter()
    dataset = load_csv(train_csv, ["class"], task="classify")
    network = train_recipe(dataset, recipe_for(dataset, seed=seed)).model
    rows = read_model_rows(network, train_csv)
    pruned = kanx.prune(network, rows).model
    formulas = kanx.symbolify(pruned, rows)
    seconds = time.perf_counter() - start
    test = read_model_rows(network, test_csv)
    labels_test = test.y[:, 0]
    expressions = [formulas.in_inputs(expr) for expr in formulas.expressions]
    mine = formula_logits(expressions, pruned, test.x)
    with torch.no_grad():
        network_logits, pruned_logits = network(test.x), pruned(test.x)
    row = {
        "dataset": name, "inputs": len(names), "classes": len(network.classes.names), "train_rows": len(train_rows),
        "test_rows": len(test_rows), "seed": seed, "widths": network.widths, "pruned_widths": pruned.widths,
        "network_accuracy": classification_metrics(network_logits, labels_test).accuracy,
        "pruned_accuracy": classification_metrics(pruned_logits, labels_test).accuracy,
        "formula_accuracy": classification_metrics(mine, labels_test).accuracy if mine is not None else None,
        "agreement": decision_agreement(mine, pruned_logits.double()) if mine is not None else None,
        "operations": operation_count(expressions) if mine is not None else None,
        "route": "/".join(formulas.strategy_used), "formulas": [sympy.sstr(expr) for expr in expressions],
        "kanx_seconds": round(seconds, 1),
    }
    print(f"{name}: network {row['network_accuracy']:.3f}, pruned {row['pruned_accuracy']:.3f}, formula "
          f"{row['formula_accuracy']}, agreement {row['agreement']}, {row['operations']} operations "
          f"({row['route']}); {row['kanx_seconds']} s", file=sys.stderr, flush=True)
    encoded = {label: i for i, label in enumerate(network.classes.names)}
    y = np.array([encoded[label] for label in labels])
    start = time.perf_counter()
    compared = baselines(x[train_rows], y[train_rows], x[test_rows], y[test_rows], seed)
    print(f"{name}: logistic regression {compared['logistic_regression']:.3f}, EBM {compared['ebm']:.3f}; "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return row | compared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print every row as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.datasets:
            rows.append(run_dataset(name, args.seed, Path(folder)))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("| dataset | inputs | classes | test rows | KAN | formula | ops | agreement | logistic regression | EBM |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            def cell(value, spec=".3f"):
                return "—" if value is None else format(value, spec)

            print(f"| {r['dataset']} | {r['inputs']} | {r['classes']} | {r['test_rows']} | {r['network_accuracy']:.3f} | "
                  f"{cell(r['formula_accuracy'])} | {cell(r['operations'], 'd')} | {cell(r['agreement'])} | "
                  f"{r['logistic_regression']:.3f} | {r['ebm']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
