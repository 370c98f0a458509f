"""Functional-ANOVA variance decomposition of an additive block: its share of the output variance,
split into the main effects of its inputs and the interaction remainder (Monte Carlo over
reference rows, within a row budget)."""

from __future__ import annotations

import math

import torch

from kanx.interaction.tree import CountingFunction, random_rows, with_reference

ANOVA_ROW_BUDGET = 64 * 64 * 16
MIN_MONTE_CARLO = 8


def group_variances(
    f: CountingFunction, x: torch.Tensor, group: list[int], reference: torch.Tensor, generator: torch.Generator, mc: int
) -> tuple[float, dict[int, float]]:
    """Variance of the group's component ``f(x_G, ref)`` and of each input's main effect
    (first-order functional-ANOVA term, estimated on an ``mc`` × ``mc`` product design)."""
    with torch.no_grad():
        total = float(f(with_reference(x, group, reference)).var(unbiased=False))
        mains: dict[int, float] = {}
        if len(group) == 1:
            return total, {group[0]: total}
        mc = min(mc, max(MIN_MONTE_CARLO, int(math.sqrt(ANOVA_ROW_BUDGET / len(group)))))
        for i in group:
            rows_i = x[random_rows(len(x), mc, generator, x.device)]
            rows_rest = x[random_rows(len(x), mc, generator, x.device)]
            grid = reference.repeat(len(rows_i) * len(rows_rest), 1)
            others = [v for v in group if v != i]
            grid[:, i] = rows_i[:, i].repeat_interleave(len(rows_rest))
            grid[:, others] = rows_rest[:, others].repeat(len(rows_i), 1)
            effect = f(grid).view(len(rows_i), len(rows_rest)).mean(dim=1)
            mains[i] = float(effect.var(unbiased=False))
    return total, mains
