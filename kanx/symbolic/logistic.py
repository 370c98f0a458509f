"""A classifier's logits read from its labelled rows: sparse (multinomial) logistic regression.

The rows' route of a classifier. Class labels fix a law only up to a monotone link: every
increasing function of a logit draws the same boundary. The route therefore fits each logit as a
short sum of library terms under the logistic (softmax) link: for at most ``MAX_INPUTS`` inputs
the sparse-regression library (``kanx.symbolic.sparse.term_library``: monomials, functions of
each input, their products), for more the inputs themselves and the logarithms of the positive
ones. The first class is the reference (its logit is 0; a softmax is unchanged by a common shift),
and every other class's logit holds the same terms. Terms are chosen greedily with a swap pass,
each candidate's constants fitted by Newton's method with a small ridge penalty (labels that a
law separates exactly have no finite maximum-likelihood logit; the penalty keeps its scale
finite without bending its shape). Each size's terms are refitted with a vanishing penalty, kept
when the held-out rows prefer it (the penalty shrinks the coefficients but not the intercepts,
which bends the boundary). Among the sizes, the Bayesian information criterion on the fit rows
chooses (a term must raise the log-likelihood by ``ln N / 2`` per logit); the held-out rows then
measure the chosen law against the formulas read from the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy
import torch

from kanx.symbolic.sparse import MAX_INPUTS, term_library

MAX_LOGIT_TERMS = 6
RIDGE = 1e-3  # per row, on the standardised terms' coefficients (not the intercepts)
FINAL_RIDGE = 1e-7  # the chosen terms' refit: nearly the likelihood's own constants, kept when held-out rows agree
NEWTON_STEPS = 40


@dataclass
class LogisticLaw:
    """Logits ``intercepts[c] + Σ coefficients[c]·terms`` of the classes after the first (whose
    logit is 0), fitted to the labels of ``fit_rows`` rows; the log-loss there
    (``fit_log_loss``), and the log-loss and accuracy on the held-out rows."""

    terms: list[sympy.Expr]
    coefficients: list[list[float]]
    intercepts: list[float]
    fit_log_loss: float
    fit_rows: int
    held_out_log_loss: float
    held_out_accuracy: float

    @property
    def bic(self) -> float:
        """The Bayesian information criterion on the fit rows: ``2·N·log-loss + parameters·ln N``."""
        parameters = len(self.intercepts) * (len(self.terms) + 1)
        return 2 * self.fit_rows * self.fit_log_loss + parameters * math.log(self.fit_rows)

    def formulas(self, logits: int, digits: int = 6) -> list[sympy.Expr]:
        """The logits of a model with ``logits`` outputs: the second class's alone (one output),
        or every class's, the first class's being 0. Constants to ``digits`` significant digits."""
        def number(value: float) -> sympy.Float:
            return sympy.Float(float(f"{value:.{digits}g}"), digits)

        others = [number(b) + sympy.Add(*[number(c) * term for c, term in zip(row, self.terms)])
                  for b, row in zip(self.intercepts, self.coefficients)]
        return others if logits == 1 else [sympy.Integer(0), *others]


def logits_of(columns: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``[B, N, C]`` logits (the first class's 0) of ``columns [B, N, d]`` and ``beta [B, C−1, d]``."""
    others = torch.einsum("bnd,bkd->bnk", columns, beta)
    return torch.cat([torch.zeros_like(others[..., :1]), others], dim=-1)


def newton_logistic(columns: torch.Tensor, labels: torch.Tensor, classes: int, ridge: float) -> torch.Tensor:
    """Ridge-penalised multinomial logistic regression of class indices ``labels [N]`` on
    ``columns [B, N, d]`` (the first column the intercepts' ones, unpenalised), ``B`` problems at
    once: ``β [B, C−1, d]`` (the first class the reference)."""
    batch, rows, width = columns.shape
    others = classes - 1
    onehot = torch.nn.functional.one_hot(labels.long(), classes).to(columns.dtype)[:, 1:]
    beta = columns.new_zeros(batch, others, width)
    penalty = torch.full((width,), ridge, dtype=columns.dtype)
    penalty[0] = 0.0
    eye = torch.diag(penalty.repeat(others)) + 1e-10 * torch.eye(others * width, dtype=columns.dtype)
    for _ in range(NEWTON_STEPS):
        p = torch.softmax(logits_of(columns, beta), dim=-1)[..., 1:]  # [B, N, C−1]
        gradient = torch.einsum("bnd,bnk->bkd", columns, p - onehot) / rows + penalty * beta
        weights = torch.diag_embed(p) - p[..., :, None] * p[..., None, :]  # [B, N, C−1, C−1]
        hessian = torch.einsum("bnd,bnkl,bne->bkdle", columns, weights, columns) / rows
        hessian = hessian.reshape(batch, others * width, others * width) + eye
        step = torch.linalg.solve(hessian, gradient.reshape(batch, -1, 1))[..., 0]
        beta = beta - step.reshape(batch, others, width)
    return beta


def penalised_losses(columns: torch.Tensor, labels: torch.Tensor, beta: torch.Tensor, ridge: float) -> torch.Tensor:
    """The fitted objective of each of ``B`` problems ``[B]``: log-loss plus the ridge term."""
    logs = torch.log_softmax(logits_of(columns, beta), dim=-1)
    loss = -logs.gather(-1, labels.long().expand(len(beta), -1)[..., None])[..., 0].mean(dim=1)
    return loss + 0.5 * ridge * (beta[..., 1:] ** 2).sum(dim=(1, 2))


def with_terms(standard: torch.Tensor, chosen: list[int], extra: torch.Tensor) -> torch.Tensor:
    """``[B, N, 1 + len(chosen) + 1]``: ones, the chosen terms and each candidate ``extra[:, b]``."""
    rows, batch = standard.shape[0], extra.shape[1]
    base = torch.cat([torch.ones(rows, 1, dtype=standard.dtype), standard[:, chosen]], dim=1)
    return torch.cat([base.expand(batch, rows, base.shape[1]), extra.T[:, :, None]], dim=2)


def best_addition(standard: torch.Tensor, labels: torch.Tensor, classes: int, chosen: list[int]) -> tuple[int, float]:
    """The term whose addition to ``chosen`` fits the labels best, and that fit's objective."""
    candidates = [t for t in range(standard.shape[1]) if t not in chosen]
    columns = with_terms(standard, chosen, standard[:, candidates])
    losses = penalised_losses(columns, labels, newton_logistic(columns, labels, classes, RIDGE), RIDGE)
    losses = torch.nan_to_num(losses, nan=math.inf)
    best = int(torch.argmin(losses))
    return candidates[best], float(losses[best])


def swapped(standard: torch.Tensor, labels: torch.Tensor, classes: int, chosen: list[int], loss: float) -> list[int]:
    """``chosen`` after one pass of single swaps (each term replaced by the best other term when
    that lowers the objective)."""
    for position in range(len(chosen)):
        rest = chosen[:position] + chosen[position + 1:]
        term, candidate_loss = best_addition(standard, labels, classes, rest)
        if candidate_loss < loss - 1e-12 and term != chosen[position]:
            chosen = rest[:position] + [term] + rest[position:]
            loss = candidate_loss
    return chosen


def route_terms(x: torch.Tensor, symbols: list[sympy.Symbol]) -> tuple[list[sympy.Expr], torch.Tensor]:
    """The route's candidate terms on rows ``x [N, n]`` (float64): the sparse-regression library
    for at most ``MAX_INPUTS`` inputs, else each input and the logarithm of each positive one."""
    if x.shape[1] <= MAX_INPUTS:
        return term_library(x, symbols)
    formulas, columns = [], []
    for i, symbol in enumerate(symbols):
        formulas.append(symbol)
        columns.append(x[:, i])
        if bool((x[:, i] > 0).all()):
            formulas.append(sympy.log(symbol))
            columns.append(torch.log(x[:, i]))
    return formulas, torch.stack(columns, dim=1)


def logistic_laws(symbols: list[sympy.Symbol], x_fit: torch.Tensor, labels_fit: torch.Tensor, x_test: torch.Tensor,
                  labels_test: torch.Tensor, classes: int = 2) -> list[LogisticLaw]:
    """Logits of 1 to ``MAX_LOGIT_TERMS`` terms for class indices ``labels_fit [N]`` (of
    ``classes`` classes) on rows ``x_fit [N, n]``, each with its log-loss and accuracy on
    ``x_test [M, n]``/``labels_test [M]`` (the best set of each size); empty with too few rows."""
    if len(x_fit) < 10 or not len(x_test):
        return []
    formulas, values = route_terms(torch.cat([x_fit, x_test]).double(), symbols)
    keep = [t for t, formula in enumerate(formulas) if formula != 1]
    formulas, values = [formulas[t] for t in keep], values[:, keep]
    rows = len(x_fit)
    mean, spread = values[:rows].mean(dim=0), values[:rows].std(dim=0)
    varying = (spread > 1e-12 * values[:rows].abs().amax(dim=0).clamp(min=1e-300)) & torch.isfinite(spread)
    varying &= torch.isfinite(values).all(dim=0)
    formulas = [f for f, ok in zip(formulas, varying.tolist()) if ok]
    mean, spread, values = mean[varying], spread[varying], values[:, varying]
    standard = (values - mean) / spread
    fit_labels, test_labels = labels_fit.long().cpu(), labels_test.long().cpu()
    chosen: list[int] = []
    laws = []
    for _ in range(min(MAX_LOGIT_TERMS, len(formulas))):
        term, loss = best_addition(standard[:rows], fit_labels, classes, chosen)
        chosen = swapped(standard[:rows], fit_labels, classes, chosen + [term], loss)
        columns = torch.cat([torch.ones(rows, 1, dtype=standard.dtype), standard[:rows, chosen]], dim=1)[None]
        fits = [law_of(newton_logistic(columns, fit_labels, classes, ridge)[0], chosen, formulas, mean, spread, standard,
                       fit_labels, test_labels) for ridge in (RIDGE, FINAL_RIDGE)]
        laws.append(min(fits, key=lambda law: law.held_out_log_loss if math.isfinite(law.held_out_log_loss) else math.inf))
    return laws


def law_of(beta: torch.Tensor, chosen: list[int], formulas: list[sympy.Expr], mean: torch.Tensor, spread: torch.Tensor,
           standard: torch.Tensor, fit_labels: torch.Tensor, test_labels: torch.Tensor) -> LogisticLaw:
    """The fitted logits ``beta [C−1, d]`` (on the standardised terms ``standard [N+M, T]``, fit
    rows first) in the terms' own units, with the log-loss on the fit rows and the held-out
    log-loss and accuracy."""
    columns = torch.cat([torch.ones(len(standard), 1, dtype=standard.dtype), standard[:, chosen]], dim=1)
    logs = torch.log_softmax(logits_of(columns[None], beta[None])[0], dim=-1)
    labels = torch.cat([fit_labels, test_labels])
    losses = -logs.gather(-1, labels[:, None])[:, 0]
    rows = len(fit_labels)
    coefficients = beta[:, 1:] / spread[chosen]
    intercepts = beta[:, 0] - (beta[:, 1:] * mean[chosen] / spread[chosen]).sum(dim=1)
    accuracy = float((logs[rows:].argmax(dim=-1) == test_labels).double().mean())
    return LogisticLaw([formulas[t] for t in chosen], coefficients.tolist(), intercepts.tolist(), float(losses[:rows].mean()),
                       rows, float(losses[rows:].mean()), accuracy)


def chosen_law(laws: list[LogisticLaw]) -> LogisticLaw | None:
    """The law of least :attr:`LogisticLaw.bic` (``None`` without laws)."""
    finite = [law for law in laws if math.isfinite(law.bic)]
    return min(finite, key=lambda law: law.bic) if finite else None
