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


NOISE_ROWS = 4000  # the neighbour estimate pairs rows among at most this many (its cost is quadratic)
NOISE_REPLICATE_DOF = 20  # replicate rows with at least this many degrees of freedom give the estimate directly
NOISE_MIN_PAIRS = 10  # fewer near pairs than this: the noise is unknown
NOISE_SPAN = 2.0  # the variogram's slope is read on the pairs up to this multiple of the near pairs' largest distance
NOISE_SMOOTH_SHARE = 0.5  # the misfit may make up at most this share of the near pairs' reading


def noise_share(x: torch.Tensor, residual: torch.Tensor, target: torch.Tensor, seed: int = 0) -> list[float | None]:
    """Estimated share of each target's variance that is noise, ``σ² / Var(y)`` per column, or
    ``None`` where the rows cannot tell the noise from what the fit missed.

    ``x [N, n_in]``: the inputs; ``residual [N, n_out]``: target minus a smooth fit of it (a
    network); ``target [N, n_out]``. Returns ``n_out`` entries, each in [0, 1] or ``None``
    (unknown, also for a non-finite residual or target); 0 for a constant target.

    Rows with identical inputs (replicates, at least ``NOISE_REPLICATE_DOF`` degrees of freedom)
    give σ² directly: the pooled variance of the residuals within each group
    (:func:`replicate_variance`). Otherwise σ² is the nugget of the residuals' variogram
    (:func:`neighbour_variance`): the half squared difference of residuals of nearby rows is σ²
    plus what the fit's smooth error changes between them, and that part vanishes with the
    distance. Where it cannot be shown to be small at the distances the rows offer (sparse rows,
    a steep misfit, too few rows), the noise is unknown. Residuals that vary faster than any two
    rows are apart look like noise to any estimate from residuals alone.
    """
    outputs = residual.shape[1]
    total = target.double().var(dim=0).cpu() if target.shape[0] > 1 else torch.zeros(outputs, dtype=torch.float64)
    variance = replicate_variance(x, residual)
    if variance is None:
        variance = neighbour_variance(x, residual, seed)
    shares: list[float | None] = []
    for v, t in zip(variance.tolist(), total.tolist()):
        shares.append(0.0 if t == 0 else None if not (math.isfinite(t) and math.isfinite(v)) else min(max(v / t, 0.0), 1.0))
    return shares


def replicate_variance(x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor | None:
    """Pooled within-group variance ``[n_out]`` (float64, CPU) of ``residual [N, n_out]`` over the
    groups of rows of ``x [N, n_in]`` with identical inputs, or ``None`` when the groups have
    fewer than ``NOISE_REPLICATE_DOF`` degrees of freedom (``N`` minus the number of groups).
    The fit is the same function of the same inputs within a group, so only the noise differs."""
    inputs, errors = x.detach().double().cpu(), residual.detach().double().cpu()
    _, group, counts = torch.unique(inputs, dim=0, return_inverse=True, return_counts=True)
    dof = inputs.shape[0] - counts.numel()
    if dof < NOISE_REPLICATE_DOF:
        return None
    sums = torch.zeros(counts.numel(), errors.shape[1], dtype=torch.float64).index_add_(0, group, errors)
    means = sums / counts[:, None]
    return ((errors - means[group]) ** 2).sum(dim=0) / dof


def neighbour_variance(x: torch.Tensor, residual: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The noise variance ``[n_out]`` (float64, CPU; NaN where unknown) of ``residual [N, n_out]``
    read from pairs of nearby rows of ``x [N, n_in]``.

    At most ``NOISE_ROWS`` rows (a seeded sample) take part. Each row is paired with its
    ``2·d + 2`` nearest rows in the standardised inputs (``d`` varying inputs; the pairs, taken
    once each, are sorted by distance ``h``), and each pair gives ``D = (r_i − r_j)² / 2``. Its
    expectation is the variogram ``σ² + β·h²`` near ``h = 0``: independent noise differs fully
    between any two rows, while what a smooth fit missed differs by its slope times the distance.
    The near pairs, the ``⌈N/2⌉`` closest, read ``mean D``; ``β`` is the least-squares slope of
    ``D`` on ``h²`` over the pairs up to ``NOISE_SPAN`` times the near pairs' largest distance,
    and the estimate is ``mean D − β·mean h²`` over the near pairs. It is unknown (NaN) with
    fewer than ``NOISE_MIN_PAIRS`` near pairs, or when the misfit's share at the near pairs,
    bounded by the slope plus one standard error (the larger of the slope over the span and over
    the near pairs alone), exceeds ``NOISE_SMOOTH_SHARE`` of ``mean D``: there the rows are too
    far apart for how fast the residual varies. Near pairs at distance 0 (replicates) carry no
    misfit. Nothing changes the noise part of ``D`` but the choice of pairs, which depends on the
    inputs alone.
    """
    unknown = torch.full((residual.shape[1],), float("nan"), dtype=torch.float64)
    n = x.shape[0]
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed), device="cpu")[:NOISE_ROWS]
    inputs, errors = x.detach().double().cpu()[rows], residual.detach().double().cpu()[rows]
    spread = inputs.std(dim=0) if len(rows) > 1 else torch.zeros(inputs.shape[1], dtype=torch.float64)
    varying = spread > 0
    near = (len(rows) + 1) // 2
    if not bool(varying.any()) or near < NOISE_MIN_PAIRS:
        return unknown
    z = (inputs[:, varying] - inputs[:, varying].mean(dim=0)) / spread[varying]
    first, second, distance = neighbour_pairs(z, min(2 * z.shape[1] + 2, len(rows) - 1))
    near = min(near, len(distance))
    if near < NOISE_MIN_PAIRS:
        return unknown
    half_square = 0.5 * (errors[first] - errors[second]) ** 2
    h2 = distance**2
    reading = half_square[:near].mean(dim=0)
    near_h2 = h2[:near].mean()
    if float(near_h2) == 0.0:  # every near pair is a replicate
        return reading
    span = max(int((h2 <= NOISE_SPAN**2 * h2[near - 1]).sum()), near)
    slope, error = variogram_slope(h2[:span], half_square[:span])
    near_slope, near_error = variogram_slope(h2[:near], half_square[:near])
    near_bound = torch.where(torch.isfinite(near_error), near_slope + near_error, torch.full_like(near_slope, float("-inf")))
    bound = torch.maximum(slope + error, near_bound).clamp_min(0.0) * near_h2
    estimate = reading - slope.clamp_min(0.0) * near_h2
    return torch.where(bound <= NOISE_SMOOTH_SHARE * reading, estimate, unknown)


def variogram_slope(h2: torch.Tensor, half_square: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares slope ``[n_out]`` of ``half_square [P, n_out]`` on ``h2 [P]`` and its
    standard error (heteroscedasticity-consistent, pairs taken as independent); a slope of 0
    with an infinite error when the ``h2`` do not spread (all equal to a relative 1e-9)."""
    centred = h2 - h2.mean()
    if float(centred.abs().max()) <= 1e-9 * float(h2.abs().max()):
        zero = torch.zeros(half_square.shape[1], dtype=torch.float64)
        return zero, torch.full_like(zero, float("inf"))
    spread = (centred**2).sum()
    deviation = half_square - half_square.mean(dim=0)
    slope = (centred[:, None] * deviation).sum(dim=0) / spread
    rest = deviation - slope * centred[:, None]
    return slope, ((centred[:, None] ** 2) * rest**2).sum(dim=0).sqrt() / spread


def neighbour_pairs(z: torch.Tensor, k: int, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pairs of rows of ``z [N, d]`` (``d ≥ 1``) in which one is among the other's ``k``
    nearest (Euclidean), each pair once: index tensors ``first [P]``, ``second [P]`` and their
    distances ``[P]``, sorted by distance (ties in row order)."""
    n = z.shape[0]
    neighbours = []
    for start in range(0, n, chunk):
        distances = torch.cdist(z[start:start + chunk], z)
        own = torch.arange(distances.shape[0])
        distances[own, own + start] = float("inf")
        neighbours.append(distances.topk(k, dim=1, largest=False).indices)
    row = torch.arange(n)[:, None].expand(n, k).reshape(-1)
    other = torch.cat(neighbours).reshape(-1)
    key = torch.unique(torch.minimum(row, other) * n + torch.maximum(row, other))
    first, second = key // n, key % n
    distance = (z[first] - z[second]).norm(dim=1)
    order = torch.argsort(distance, stable=True)
    return first[order], second[order], distance[order]


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


def rmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Root mean squared error over all entries."""
    return math.sqrt(float(((prediction.double() - target.double()) ** 2).mean())) if target.numel() else 0.0
