"""A two-class classifier's logit read from its labelled rows: sparse logistic regression.

The rows' route of a classifier. Class labels fix a law only up to a monotone link: every
increasing function of a logit draws the same boundary. The route therefore fits the logit as a
short sum of the sparse-regression library's terms (``kanx.symbolic.sparse.term_library``:
monomials, functions of each input, their products) under the logistic link, by greedy
selection with a swap pass, each candidate's constants fitted by Newton's method with a small
ridge penalty (labels that a law separates exactly have no finite maximum-likelihood logit; the
penalty keeps its scale finite without bending its shape). Each size's terms are refitted with a
vanishing penalty, kept when the held-out rows prefer it (the penalty shrinks the coefficients
but not the intercept, which bends the boundary). Among the sizes, the Bayesian information
criterion on the fit rows chooses (a term must lower the log-likelihood by ``ln N / 2``); the
held-out rows then measure the chosen law against the formula read from the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy
import torch

from kanx.symbolic.sparse import MAX_INPUTS, term_library

MAX_LOGIT_TERMS = 6
RIDGE = 1e-3  # per row, on the standardised terms' coefficients (not the intercept)
FINAL_RIDGE = 1e-7  # the chosen terms' refit: nearly the likelihood's own constants, kept when held-out rows agree
NEWTON_STEPS = 40


@dataclass
class LogisticLaw:
    """A logit ``intercept + Σ coefficients·terms`` fitted to the labels of ``fit_rows`` rows, its
    log-loss there (``fit_log_loss``), and its log-loss and accuracy on the held-out rows."""

    terms: list[sympy.Expr]
    coefficients: list[float]
    intercept: float
    fit_log_loss: float
    fit_rows: int
    held_out_log_loss: float
    held_out_accuracy: float

    @property
    def bic(self) -> float:
        """The Bayesian information criterion on the fit rows: ``2·N·log-loss + (terms + 1)·ln N``."""
        return 2 * self.fit_rows * self.fit_log_loss + (len(self.terms) + 1) * math.log(self.fit_rows)

    def formula(self, digits: int = 6) -> sympy.Expr:
        """The logit as a sympy expression, constants to ``digits`` significant digits."""
        def number(value: float) -> sympy.Float:
            return sympy.Float(float(f"{value:.{digits}g}"), digits)

        return number(self.intercept) + sympy.Add(*[number(c) * term for c, term in zip(self.coefficients, self.terms)])


def newton_logistic(columns: torch.Tensor, labels: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ridge-penalised logistic regression of 0/1 ``labels [N]`` on ``columns [B, N, d]`` (the
    first column the intercept's ones, unpenalised), ``B`` problems at once: ``β [B, d]``."""
    batch, rows, width = columns.shape
    beta = columns.new_zeros(batch, width)
    penalty = torch.full((width,), ridge, dtype=columns.dtype, device=columns.device)
    penalty[0] = 0.0
    eye = torch.diag(penalty)
    for _ in range(NEWTON_STEPS):
        p = torch.sigmoid(torch.einsum("bnd,bd->bn", columns, beta))
        gradient = torch.einsum("bnd,bn->bd", columns, p - labels) / rows + penalty * beta
        weights = (p * (1 - p)).clamp(min=1e-12)
        hessian = torch.einsum("bnd,bn,bne->bde", columns, weights, columns) / rows + eye
        hessian = hessian + 1e-10 * torch.eye(width, dtype=columns.dtype, device=columns.device)
        step = torch.linalg.solve(hessian, gradient[..., None])[..., 0]
        beta = beta - step
    return beta


def penalised_losses(columns: torch.Tensor, labels: torch.Tensor, beta: torch.Tensor, ridge: float) -> torch.Tensor:
    """The fitted objective of each of ``B`` problems ``[B]``: log-loss plus the ridge term."""
    logits = torch.einsum("bnd,bd->bn", columns, beta)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.expand_as(logits), reduction="none").mean(dim=1)
    return loss + 0.5 * ridge * (beta[:, 1:] ** 2).sum(dim=1)


def with_terms(standard: torch.Tensor, chosen: list[int], extra: torch.Tensor) -> torch.Tensor:
    """``[B, N, 1 + len(chosen) + 1]``: ones, the chosen terms and each candidate ``extra[:, b]``."""
    rows, batch = standard.shape[0], extra.shape[1]
    base = torch.cat([torch.ones(rows, 1, dtype=standard.dtype), standard[:, chosen]], dim=1)
    return torch.cat([base.expand(batch, rows, base.shape[1]), extra.T[:, :, None]], dim=2)


def best_addition(standard: torch.Tensor, labels: torch.Tensor, chosen: list[int]) -> tuple[int, float]:
    """The term whose addition to ``chosen`` fits the labels best, and that fit's objective."""
    candidates = [t for t in range(standard.shape[1]) if t not in chosen]
    columns = with_terms(standard, chosen, standard[:, candidates])
    losses = penalised_losses(columns, labels, newton_logistic(columns, labels, RIDGE), RIDGE)
    best = int(torch.argmin(losses))
    return candidates[best], float(losses[best])


def swapped(standard: torch.Tensor, labels: torch.Tensor, chosen: list[int], loss: float) -> tuple[list[int], float]:
    """``chosen`` after one pass of single swaps (each term replaced by the best other term when
    that lowers the objective)."""
    for position in range(len(chosen)):
        rest = chosen[:position] + chosen[position + 1:]
        term, candidate_loss = best_addition(standard, labels, rest)
        if candidate_loss < loss - 1e-12 and term != chosen[position]:
            chosen = rest[:position] + [term] + rest[position:]
            loss = candidate_loss
    return chosen, loss


def logistic_laws(symbols: list[sympy.Symbol], x_fit: torch.Tensor, labels_fit: torch.Tensor, x_test: torch.Tensor,
                  labels_test: torch.Tensor) -> list[LogisticLaw]:
    """Logits of 1 to ``MAX_LOGIT_TERMS`` library terms for 0/1 labels ``labels_fit [N]`` on rows
    ``x_fit [N, n]``, each with its log-loss and accuracy on ``x_test [M, n]``/``labels_test [M]``
    (the best set of each size); empty with more than ``MAX_INPUTS`` inputs or too few rows."""
    if x_fit.shape[1] > MAX_INPUTS or len(x_fit) < 10 or not len(x_test):
        return []
    formulas, values = term_library(torch.cat([x_fit, x_test]).double(), symbols)
    keep = [t for t, formula in enumerate(formulas) if formula != 1]
    formulas, values = [formulas[t] for t in keep], values[:, keep]
    rows = len(x_fit)
    mean, spread = values[:rows].mean(dim=0), values[:rows].std(dim=0)
    varying = (spread > 1e-12 * values[:rows].abs().amax(dim=0).clamp(min=1e-300)) & torch.isfinite(spread)
    formulas = [f for f, ok in zip(formulas, varying.tolist()) if ok]
    mean, spread, values = mean[varying], spread[varying], values[:, varying]
    standard = (values - mean) / spread
    fit_labels, test_labels = labels_fit.double().cpu(), labels_test.long().cpu()
    chosen: list[int] = []
    laws = []
    for _ in range(min(MAX_LOGIT_TERMS, len(formulas))):
        term, loss = best_addition(standard[:rows], fit_labels, chosen)
        chosen, loss = swapped(standard[:rows], fit_labels, chosen + [term], loss)
        columns = torch.cat([torch.ones(rows, 1, dtype=standard.dtype), standard[:rows, chosen]], dim=1)
        shrunk = law_of(newton_logistic(columns[None], fit_labels, RIDGE)[0], chosen, formulas, mean, spread,
                        standard, fit_labels, test_labels)
        refitted = law_of(newton_logistic(columns[None], fit_labels, FINAL_RIDGE)[0], chosen, formulas, mean, spread,
                          standard, fit_labels, test_labels)
        laws.append(refitted if refitted.held_out_log_loss <= shrunk.held_out_log_loss else shrunk)
    return laws


def law_of(beta: torch.Tensor, chosen: list[int], formulas: list[sympy.Expr], mean: torch.Tensor, spread: torch.Tensor,
           standard: torch.Tensor, fit_labels: torch.Tensor, test_labels: torch.Tensor) -> LogisticLaw:
    """The fitted logit ``beta`` (on the standardised terms ``standard [N+M, T]``, fit rows first)
    in the terms' own units, with its log-loss on the fit rows and held-out log-loss and accuracy."""
    logits = beta[0] + standard[:, chosen] @ beta[1:]
    rows = len(fit_labels)
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.cat([fit_labels, test_labels.double()]),
                                                                  reduction="none")
    coefficients = (beta[1:] / spread[chosen]).tolist()
    intercept = float(beta[0] - (beta[1:] * mean[chosen] / spread[chosen]).sum())
    accuracy = float(((logits[rows:] > 0).long() == test_labels).double().mean())
    return LogisticLaw([formulas[t] for t in chosen], coefficients, intercept, float(losses[:rows].mean()), rows,
                       float(losses[rows:].mean()), accuracy)


def chosen_law(laws: list[LogisticLaw]) -> LogisticLaw | None:
    """The law of least :attr:`LogisticLaw.bic` (``None`` without laws)."""
    return min(laws, key=lambda law: law.bic) if laws else None
