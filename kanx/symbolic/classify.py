"""A classifier's formulas read as a classifier: probabilities, decisions and their agreement.

A KAN classifier's outputs are logits; symbolify fits them as any output. This module says what
the fitted logits mean for the classes: the probability formulas (``σ`` of one logit, or the
softmax of several), how often the formulas decide as the network does, and their accuracy,
log-loss and AUC on labelled rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy
import sympy
import torch
from sympy.core.function import AppliedUndef

from kanx.core.classes import ClassificationMetrics, ClassLabels, classification_metrics, decision_agreement
from kanx.core.lambdify import formula_on_rows
from kanx.families.kan.network import KAN


@dataclass
class ClassifierFidelity:
    """The formulas as a classifier on ``rows`` rows (``source``: which rows): ``agreement``, the
    share of rows where the formulas decide the class the network decides (``None`` when a
    formula still has numeric parts); ``formula`` and ``network``: accuracy, log-loss and AUC on
    the rows' labels (``None`` without labels, or for a formula with numeric parts)."""

    classes: list[str]
    rows: int
    source: str
    agreement: float | None
    formula: ClassificationMetrics | None
    network: ClassificationMetrics | None

    def to_dict(self) -> dict:
        def metrics(m: ClassificationMetrics | None) -> dict | None:
            return None if m is None else {"accuracy": m.accuracy, "log_loss": m.log_loss, "auc": m.auc}

        return {"classes": self.classes, "rows": self.rows, "source": self.source, "decision_agreement": self.agreement,
                "formula": metrics(self.formula), "network": metrics(self.network)}

    def text(self) -> str:
        """One line for a report."""
        if self.agreement is None:
            return f"on {self.rows} rows ({self.source}): the formulas still hold numeric parts; no decisions to compare"
        parts = [f"decides as the network on {self.agreement:.2%} of {self.rows} rows ({self.source})"]
        if self.formula is not None and self.network is not None:
            parts.append(f"accuracy {self.formula.accuracy:.2%} (network {self.network.accuracy:.2%}), "
                         f"AUC {self.formula.auc:.4g} (network {self.network.auc:.4g}), "
                         f"log-loss {self.formula.log_loss:.4g} (network {self.network.log_loss:.4g})")
        return "; ".join(parts)


def probability_formulas(classes: ClassLabels, output_names: list[str]) -> list[tuple[str, sympy.Expr]]:
    """``(P(c), formula)`` for each class, written in the logits (symbols named like the
    outputs, ``logit(c)``): ``1/(1 + exp(−z))`` and its complement for one logit, the softmax
    ``exp(z_c)/Σ exp(z_k)`` for several."""
    logits = [sympy.Symbol(name) for name in output_names]
    names = [f"P({name})" for name in classes.names]
    if len(logits) == 1:
        positive = 1 / (1 + sympy.exp(-logits[0]))
        return [(names[0], 1 - positive), (names[1], positive)]
    total = sympy.Add(*[sympy.exp(z) for z in logits])
    return [(name, sympy.exp(z) / total) for name, z in zip(names, logits)]


def formula_logits(expressions: list[sympy.Expr], model: KAN, x: torch.Tensor) -> torch.Tensor | None:
    """The formulas' logits ``[N, L]`` on inputs ``x [N, n_in]`` (float64, CPU); ``None`` when a
    formula still holds numeric parts or hidden nodes (``expressions`` in the inputs)."""
    names = list(model.meta.input_names)
    if any(expr.atoms(AppliedUndef) or not {s.name for s in expr.free_symbols} <= set(names) for expr in expressions):
        return None
    used = {s.name: s for expr in expressions for s in expr.free_symbols}  # the formulas' own symbols (assumptions and all)
    symbols = [used.get(name, sympy.Symbol(name)) for name in names]
    columns = [x[:, k].double().cpu() for k in range(x.shape[1])]
    with numpy.errstate(all="ignore"):
        return torch.stack([formula_on_rows(expr, symbols, columns, len(x)) for expr in expressions], dim=1)


def classifier_fidelity(network: KAN, expressions: list[sympy.Expr], x: torch.Tensor, labels: torch.Tensor | None,
                        source: str) -> ClassifierFidelity:
    """:class:`ClassifierFidelity` of the formulas ``expressions`` (one per logit, in the inputs)
    of the classifier ``network`` on rows ``x [N, n_in]`` with class indices ``labels [N]`` (or
    ``None``); ``source`` says which rows they are."""
    classes = network.classes
    with torch.no_grad():
        reference = network(x.float()).double().cpu()
    mine = formula_logits(expressions, network, x)
    agreement = decision_agreement(mine, reference) if mine is not None else None
    formula = network_metrics = None
    if labels is not None:
        network_metrics = classification_metrics(reference, labels)
        formula = classification_metrics(mine, labels) if mine is not None else None
    return ClassifierFidelity(list(classes.names), len(x), source, agreement, formula, network_metrics)
