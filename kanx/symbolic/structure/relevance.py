"""Which inputs does the network's output depend on at all?

A dataset often holds columns that do not enter the law. Searching over them costs time and
invites look-alikes that use them, so before the structure search each input's *total effect*
on the output is measured on the data's own rows (the Jansen estimator of the total Sobol
index): with ``B`` the rows in another order and ``A_B^i`` the rows with column ``i`` taken from
``B``,

    S_T,i = mean((f(A) − f(A_B^i))²) / (2 · Var f(A)),

the share of the output's variance that involves input ``i`` in any way (alone or through
interactions). An input whose share is within the network's own error of 0 is dropped: the
search sees it fixed at its median, and the report says which inputs were dropped and their
shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MIN_SHARE = 1e-4  # below this total-effect share an input is never kept for its own sake
NOISE_FACTOR = 10.0  # …and below this many times the network's error share it is noise
MAX_SHARE = 1e-2  # …but an input with a 1% share is kept however poor the network


@dataclass
class Relevance:
    """``shares[i]``: input ``i``'s total-effect share of the output variance; ``kept``: the
    indices of the inputs the search uses; ``threshold``: the share below which an input is
    dropped."""

    shares: list[float]
    kept: list[int]
    threshold: float

    def dropped(self, names: list[str]) -> list[dict]:
        return [{"input": names[i], "total_effect": self.shares[i],
                 "reason": f"total effect {self.shares[i]:.2e} of the output variance < {self.threshold:.2e}"}
                for i in range(len(self.shares)) if i not in self.kept]


def total_effects(oracle, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Jansen total-effect shares ``[n]`` of the oracle (``[N, n]`` → ``[N]``) on rows ``x [N, n]``
    (all zeros when the oracle is constant on them)."""
    n_rows, n = x.shape
    partner = x[torch.randperm(n_rows, generator=generator)]
    swapped = x.unsqueeze(0).repeat(n, 1, 1)  # [n, N, n]
    index = torch.arange(n)
    swapped[index, :, index] = partner.T
    values = oracle(torch.cat([x, swapped.reshape(n * n_rows, n)]))
    base, moved = values[:n_rows], values[n_rows:].reshape(n, n_rows)
    variance = float(base.var())
    if not variance > 0:
        return torch.zeros(n, dtype=torch.float64)
    return ((base[None, :] - moved) ** 2).mean(dim=1).double() / (2 * variance)


def relevant_inputs(oracle, x: torch.Tensor, noise: float, generator: torch.Generator) -> Relevance:
    """The inputs whose total effect on the oracle exceeds ``max(MIN_SHARE, min(NOISE_FACTOR ·
    noise, MAX_SHARE))`` (``noise``: the share of the target's variance the network misses). At
    least one input is kept when the oracle varies at all."""
    shares = total_effects(oracle, x, generator)
    threshold = max(MIN_SHARE, min(NOISE_FACTOR * noise, MAX_SHARE))
    kept = [i for i in range(x.shape[1]) if float(shares[i]) >= threshold]
    if not kept and bool((shares > 0).any()):
        kept = [int(shares.argmax())]
    return Relevance([float(s) for s in shares], kept, threshold)
