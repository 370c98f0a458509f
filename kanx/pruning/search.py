"""The pruning search, written once for every model family.

A family describes its prunable units (KAN edges, KarSein features) as one flat boolean mask
``[T]`` and its removal candidates as ordered groups of units (a hidden node's outgoing edges, a
field's features, or single units). The search removes as many candidates as the
:class:`FidelityGuard` allows:

1. the longest passing prefix of the ordered candidates, by batched multisection
   (``BATCH`` prefix lengths per evaluation);
2. of the next ``GREEDY_WINDOW`` candidates, those whose single removal passes, tried in order by
   a batched sequential greedy pass (up to ``BATCH`` cumulative removals per evaluation, fewer
   where removals fail; the same result as one by one). The window keeps the search linear in
   the number of units on large models: every evaluation costs a forward pass of the whole
   network, and candidates past the first failures are the more important ones, which seldom
   pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from kanx.core.numerics import r2

BATCH = 16
GREEDY_WINDOW = 512

Outputs = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class FidelityGuard:
    """Accepts candidate masks whose outputs on held-out rows stay close to the original's.

    ``outputs(flat [B, T] bool) → [B, N, O]``: the model's outputs under each mask set;
    ``reference [N, O]``: the original's outputs; a mask set passes when its fidelity (R² against
    the reference, min over outputs; or ``measure(outputs) → [B]``, e.g. a classifier's decision
    agreement) is at least ``min_fidelity`` and ``extra(outputs) → [B] bool`` (a family's further
    test, e.g. on targets or AUC) holds.
    """

    outputs: Outputs
    reference: torch.Tensor
    min_fidelity: float
    extra: Callable[[torch.Tensor], torch.Tensor] | None = None
    measure: Callable[[torch.Tensor], torch.Tensor] | None = None

    def fidelity(self, outputs: torch.Tensor) -> torch.Tensor:
        """``[B, N, O]`` → fidelity to the reference: ``measure``, else R² (min over outputs): ``[B]``."""
        if self.measure is not None:
            return self.measure(outputs)
        return r2(outputs, self.reference, dim=-2).min(dim=-1).values

    def passes(self, flat: torch.Tensor) -> torch.Tensor:
        """Which of ``B`` mask sets ``[B, T]`` keep the guard: ``[B]`` bool."""
        with torch.no_grad():
            outputs = self.outputs(flat)
        ok = self.fidelity(outputs) >= self.min_fidelity
        return ok if self.extra is None else ok & self.extra(outputs)


@dataclass
class Candidates:
    """Ordered removal candidates over ``T`` units: either ``members [G, T]`` bool (groups, which
    may overlap) or, for single units, ``rank [T]`` long (the candidate index of each unit, ``G``
    or more for units that are no candidate)."""

    count: int
    members: torch.Tensor | None = None
    rank: torch.Tensor | None = None

    def removed(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Units removed by taking candidates ``low[b] .. high[b] - 1``: ``[B, T]`` bool."""
        if self.rank is not None:
            return (self.rank[None] >= low[:, None]) & (self.rank[None] < high[:, None])
        index = torch.arange(self.count, device=low.device)
        chosen = (index[None] >= low[:, None]) & (index[None] < high[:, None])  # [B, G]
        return (chosen.float() @ self.members.float()) > 0

    def subset(self, keep: torch.Tensor) -> Candidates:
        """The candidates at positions ``keep`` (increasing), renumbered."""
        if self.rank is not None:
            new = torch.full((self.count + 1,), len(keep), dtype=torch.long, device=keep.device)
            new[keep] = torch.arange(len(keep), device=keep.device)
            return Candidates(len(keep), rank=new[self.rank.clamp(max=self.count)])
        return Candidates(len(keep), members=self.members[keep])


def grouped(members: torch.Tensor, scores: torch.Tensor, current: torch.Tensor) -> Candidates:
    """Groups ``members [G, T]`` restricted to ``current [T]``, the non-empty ones ordered by
    increasing ``scores [G]`` (stable)."""
    members = members & current[None]
    order = torch.argsort(scores, stable=True)
    order = order[members[order].any(dim=1)]
    return Candidates(len(order), members=members[order])


def single_units(scores: torch.Tensor, current: torch.Tensor) -> Candidates:
    """Every unit still in ``current [T]`` as its own candidate, by increasing ``scores [T]`` (stable)."""
    scores = torch.where(current, scores.double(), torch.full_like(scores, float("inf"), dtype=torch.float64))
    order = torch.argsort(scores, stable=True)
    count = int(current.sum())
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    rank[~current] = count + len(order)  # never a candidate
    return Candidates(count, rank=rank)


def without(current: torch.Tensor, candidates: Candidates, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Mask sets ``[B, T]``: ``current [T]`` minus candidates ``low[b] .. high[b] - 1``."""
    return current[None] & ~candidates.removed(low, high)


def longest_prefix(evaluate: Callable[[torch.Tensor], torch.Tensor], n: int, device: torch.device | None = None) -> int:
    """Largest ``k`` such that removing candidates ``0..k-1`` passes (every prefix length checked
    below it passed), by batched multisection: ``BATCH`` prefix lengths per evaluation."""
    lo, hi = 0, n
    while lo < hi:
        ks = torch.unique(torch.linspace(lo + 1, hi, min(BATCH, hi - lo), device=device).round().long())
        ok = evaluate(ks)
        if bool(ok.all()):
            return hi
        first_bad = int(ks[~ok][0])
        good = ks[ok & (ks < first_bad)]
        lo = int(good[-1]) if len(good) else lo
        hi = first_bad - 1
    return lo


def greedy(guard: FidelityGuard, current: torch.Tensor, candidates: Candidates) -> torch.Tensor:
    """Try each candidate in order, keeping its removal when the guard passes; up to ``BATCH``
    cumulative removals are evaluated at a time (the same result as one by one). The batch is the
    length of the last run of passing removals (doubled after a batch that all passed), so a tail
    where most removals fail costs about one mask set per candidate."""
    pos, n, size = 0, candidates.count, BATCH
    while pos < n:
        ends = torch.arange(pos + 1, min(pos + size, n) + 1, device=current.device)
        configs = without(current, candidates, torch.full_like(ends, pos), ends)
        ok = guard.passes(configs)
        fails = (~ok).nonzero().flatten()
        passed = len(ends) if len(fails) == 0 else int(fails[0])
        if passed:
            current = configs[passed - 1]
        pos += passed if len(fails) == 0 else passed + 1
        size = min(BATCH, 2 * size) if len(fails) == 0 else max(1, passed)
    return current


def remove_candidates(guard: FidelityGuard, current: torch.Tensor, candidates: Candidates) -> torch.Tensor:
    """Remove as many of the ordered ``candidates`` (least important first) from ``current [T]``
    as the guard allows: the longest passing prefix, then a greedy pass over the rest whose single
    removal passes. Returns the new ``[T]`` bool mask."""
    n = candidates.count
    if n == 0:
        return current

    def prefix(ks: torch.Tensor) -> torch.Tensor:
        return guard.passes(without(current, candidates, torch.zeros_like(ks), ks))

    k = longest_prefix(prefix, n, current.device)
    if k:
        current = without(current, candidates, torch.zeros(1, dtype=torch.long, device=current.device),
                          torch.tensor([k], device=current.device))[0]
    rest = torch.arange(k + 1, min(n, k + 1 + GREEDY_WINDOW), device=current.device)
    if len(rest) == 0:
        return current
    passing = torch.cat([chunk[guard.passes(without(current, candidates, chunk, chunk + 1))] for chunk in rest.split(BATCH)])
    return greedy(guard, current, candidates.subset(passing))
