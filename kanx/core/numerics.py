"""The numerics every stage shares: one R², one seeded row split, one noise estimate, one thread
guard, the sparsity measures of edge magnitudes and the ranking metrics of click models.

Each idea has exactly one definition here, so "R² ≥ 0.99" means the same in prune, plot,
symbolify, train and the benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# Both thresholds are relative to the target's own size (its sum of squares), so data measured
# in units of 1e-30 are judged exactly as data of order 1.
# A target whose spread (sum of squared deviations) is below this fraction counts as constant.
FLAT_SPREAD = 1e-24
# A constant target is reproduced when the summed squared error is below this fraction.
EXACT_RESIDUAL = 1e-12


def r2(prediction: torch.Tensor, target: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Coefficient of determination ``1 - SSE / SST`` along the sample axis ``dim``.

    ``prediction`` and ``target`` broadcast against each other (e.g. ``[B, N, O]`` against
    ``[N, O]`` with ``dim=-2``, or ``[E, F, N]`` against ``[E, 1, N]``); the result drops ``dim``.
    Computed in float64. A constant target (SST below ``FLAT_SPREAD`` times its sum of squares)
    has R² 1 when reproduced (SSE below ``EXACT_RESIDUAL`` times that sum) and -1 otherwise; a
    non-finite prediction gives -inf or NaN. Nothing depends on the target's units.
    """
    if prediction.shape[dim] != target.shape[dim]:
        raise ValueError(f"r2: {prediction.shape[dim]} predicted samples against {target.shape[dim]} targets along dim {dim}")
    prediction, target = prediction.double(), target.double()
    residual = ((prediction - target) ** 2).sum(dim=dim)
    spread = ((target - target.mean(dim=dim, keepdim=True)) ** 2).sum(dim=dim)
    size = (target**2).sum(dim=dim)
    spread, residual, size = torch.broadcast_tensors(spread, residual, size)
    flat = spread <= FLAT_SPREAD * size
    score = 1 - residual / torch.where(flat, torch.ones_like(spread), spread)
    return torch.where(flat, (residual <= EXACT_RESIDUAL * size).double() * 2 - 1, score)


def r2_value(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """:func:`r2` of a prediction against a target series ``[N]`` as a float (a constant
    prediction ``[]`` or ``[1]`` stands for every row; ``-inf`` when it is not finite)."""
    if not bool(torch.isfinite(prediction).all()):
        return float("-inf")
    target = target.reshape(-1)
    prediction = prediction.reshape(-1) if prediction.numel() == target.numel() else prediction.reshape(-1).expand_as(target)
    return float(r2(prediction, target))


def split_rows(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of ``range(n)`` into (kept, held out) CPU index tensors (the same on every device).

    ``round(n * fraction)`` rows are held out, at least one when ``fraction > 0`` and at most
    ``n - 1``, so both parts are non-empty whenever ``n >= 2`` and ``fraction > 0``.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed), device="cpu")
    held = int(round(n * fraction))
    if fraction > 0:
        held = min(max(held, 1), max(n - 1, 0))
    return order[held:], order[:held]


NOISE_ROWS = 4000  # the noise estimate pairs rows among at most this many (its cost is quadratic)


def noise_share(x: torch.Tensor, residual: torch.Tensor, target: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Estimated share of each target's variance that is noise, ``σ² / Var(y)`` per column ``[n_out]``.

    ``x [N, n_in]``: the inputs; ``residual [N, n_out]``: target minus a smooth fit of it (a
    network); ``target [N, n_out]``. Each row is paired with its nearest neighbour in the
    standardised inputs and ``σ² = mean((r_i − r_j)²) / 2``: independent noise differs fully
    between neighbours, while what the fit missed varies smoothly and mostly cancels, so the
    estimate does not count the fit's own error as noise (and, unlike the residual itself, is
    not lowered by a fit that learned part of the noise). At most ``NOISE_ROWS`` rows (a seeded
    sample) take part. Float64; 0 for fewer than 3 rows or a constant target.
    """
    n = x.shape[0]
    if n < 3:
        return torch.zeros(residual.shape[1], dtype=torch.float64)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed), device="cpu")[:NOISE_ROWS].to(x.device)
    inputs, errors = x[rows].double(), residual[rows].double()
    spread = inputs.std(dim=0)
    varying = spread > 0
    z = (inputs[:, varying] - inputs[:, varying].mean(dim=0)) / spread[varying]
    partner = nearest_neighbours(z)
    variance = 0.5 * ((errors - errors[partner]) ** 2).mean(dim=0)
    total = target.double().var(dim=0)
    return torch.where(total > 0, variance / total.clamp_min(1e-300), torch.zeros_like(total)).clamp(0.0, 1.0).cpu()


NOISE_CHI2 = 16.0  # 99.99% point of χ²₁ (15.1), rounded up


def chance_loss(noise: float, rows: int) -> float:
    """The R² a true simplification (a constant fixed at its exact value, a term that is really 0
    dropped) may lose by chance on ``rows`` rows whose targets carry noise ``noise`` (share of
    their variance): refitting one constant fewer raises the residual sum of squares by a
    ``χ²₁·σ²`` variate, allowed up to ``NOISE_CHI2``."""
    return NOISE_CHI2 * noise / max(rows, 1)


def noise_bounded_by_fit(noise: float, r2_score: float, rows: int, parameters: int) -> float:
    """The targets' noise share ``noise`` (an estimate), capped by what a formula with
    ``parameters`` fitted constants leaves of them on ``rows`` rows (R² ``r2_score``): such a
    formula cannot fit noise away beyond ``parameters/rows`` of it, so its residual share
    ``(1 − R²)·rows/(rows − parameters)`` bounds the noise. A neighbour estimate that counts a
    rough network's own error as noise (several 1e-4 on exact data) would otherwise let a clean-up
    give up accuracy that exact data show."""
    if not math.isfinite(r2_score):
        return noise
    return min(noise, max(1.0 - r2_score, 0.0) * rows / max(rows - parameters, 1))


NOISE_SIGMAS = 2.0  # standard errors of the noise share that still count as noise


def misfit_beyond_noise(r2_score: float, noise: float, rows: int) -> float:
    """The part of a formula's misfit ``1 − R²`` on ``rows`` noisy targets that the noise (share
    ``noise`` of their variance) does not explain: the formula's own error. The noise's share on
    those rows, and its estimate, vary by about ``√(2/rows)`` of it; up to ``NOISE_SIGMAS`` of
    that still counts as noise (0 noise: the whole misfit)."""
    explained = noise * (1.0 + NOISE_SIGMAS * math.sqrt(2.0 / max(rows, 1))) if noise > 0 else 0.0
    return max(1.0 - r2_score - explained, 0.0)


def nearest_neighbours(z: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Index ``[N]`` of each row's nearest other row of ``z [N, d]`` (Euclidean); ``d = 0`` pairs
    each row with the next."""
    n = z.shape[0]
    if z.shape[1] == 0:
        return (torch.arange(n, device=z.device) + 1) % n
    partners = []
    for start in range(0, n, chunk):
        distances = torch.cdist(z[start:start + chunk], z)
        own = torch.arange(distances.shape[0], device=z.device)
        distances[own, own + start] = float("inf")
        partners.append(distances.argmin(dim=1))
    return torch.cat(partners)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: for small tensors, waking a thread pool costs
    more than it saves (by a wide margin on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def node_entropy(magnitude: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each node's distribution of incoming-edge magnitudes:
    ``[n_in, n_out]`` → ``[n_out]``."""
    share = magnitude / (magnitude.sum(dim=0, keepdim=True) + 1e-12)
    return -(share * torch.log(share + 1e-12)).sum(dim=0)


def magnitude_penalty(magnitude: torch.Tensor, lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
    """``lamb_l1 * sum(magnitude) + lamb_entropy * sum of node entropies`` for one layer's
    edge magnitudes ``[n_in, n_out]`` (the KAN paper's sparsity regulariser)."""
    return lamb_l1 * magnitude.sum() + lamb_entropy * node_entropy(magnitude).sum()


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties get half credit); ``nan`` when one class is missing."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    _, start, counts = np.unique(scores[order], return_index=True, return_counts=True)
    average = start + (counts + 1) / 2.0  # 1-based average rank of each tie block
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy (probabilities clipped to [1e-7, 1 - 1e-7])."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def rmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Root mean squared error over all entries."""
    return math.sqrt(float(((prediction.double() - target.double()) ** 2).mean())) if target.numel() else 0.0
