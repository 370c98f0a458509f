"""Interaction sets of any model from mixed differences of its outputs: which inputs enter a term together.

A function of independent inputs has one functional-ANOVA decomposition ``f = Σ_V f_V(x_V)`` with
variances ``σ²_V``. Its *terms* (the interaction sets) are the maximal sets ``S`` with ``σ²_S > 0``:
``x1·x2·x3 + exp(x3·x5)`` has the terms {x1, x2, x3} and {x3, x5}, which overlap in x3. Nothing here
needs derivatives, so kinks (``|x|``, ``max``) are measured as well as smooth terms.

For rows ``x``, partner rows ``x'`` (an independent draw: the rows in another order) and a column set
``S``, the mixed difference

    Δ_S(x, x') = Σ_{T ⊆ S} (−1)^{|S| − |T|} f(x with the columns in T taken from x')

vanishes for every ``x, x'`` exactly when no term of ``f`` contains all of ``S``; it is the discrete
analogue of ``∂^|S| f / ∂x_S`` over finite steps. ``E[Δ_S²] / 2^|S| = U_S = Σ_{V ⊇ S} σ²_V``, the
superset importance (Liu & Owen 2006). For a term ``S`` (no term above it) ``U_S = σ²_S``: its own
interaction, the part no subset explains. ``U_S`` only shrinks as ``S`` grows, so sets are grown level
by level from the pairs, a set being tested only when all its subsets one smaller passed (the cliques of
the pair graph, then their order-k test).

The same differences test a set against data. ``h_S = Σ_{V ⊇ S} f_V``, every component holding all of
``S``, is ``E_{x'}[(−1)^|S| Δ_S(x, x')]``, and ``‖h_S‖² = U_S``. Removing ``h_S`` from ``f`` changes the
mean squared error on rows with targets ``y`` by ``U_S + 2 E[h_S (y − f)]`` (``held_out_support``): about
``+U_S`` when the data hold the interaction as the network does, about ``−U_S`` when ``h_S`` is the
network's own error (the data have no such component, so removing it helps). On held-out rows this
decides a set without a threshold on its size: a pair is kept when the data support it by ``NOISE_SIGMAS``
standard errors (there are many pairs to test), a larger set, tested only when all its subsets passed, by
``GROWN_SIGMAS``.

Closed indices ``τ_T = Var E[f | x_T] = Var f − E[(f(x) − f(x with all but T from x'))²] / 2`` give a
term's *interaction variance*: ``τ_S − Σ_{i∈S} τ_i``, the variance of every component of two or more
of its inputs (a component inside two overlapping terms counts in both).

Every function evaluation is cached per swapped column set and made in batched chunks that fit the
working-memory budget. Shapes: ``x, partner [N, n]``; the function maps ``[M, n] → [M, m]`` (all outputs
at once); values are float64 ``[N, m]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from kanx.core.resources import rows_per_chunk

Columns = tuple[int, ...]
SETS_PER_ORDER = 1000  # candidate sets tested per order beyond pairs (each costs one evaluation of the rows)
# Work of model evaluation, in rows × the model's working bytes per row (``model.row_bytes()``, which
# tracks a forward pass's time: ~0.1 ms per MB here): the pair stage (singles, pairs, main effects)
# does at most PAIR_WORK (the sample shrinks to fit, not below MIN_SET_ROWS rows), growing sets beyond
# pairs at most SET_WORK over all outputs (candidates per order shrink to fit, not below
# MIN_CANDIDATES). A [10, 21, 1] KAN on 1,000 rows is far inside both.
PAIR_WORK = 2e11
SET_WORK = 2e11
# Re-estimating supports near their bar over more partner draws (``SetSearch.retest``) costs at most RETEST_WORK
# and at most RETEST_FACTOR times the rows the analysis has evaluated so far (on a network's training rows, where
# the test does not hold, dozens of sets sit near their bar).
RETEST_WORK = 2e11
RETEST_FACTOR = 4
MIN_SET_ROWS = 64
MIN_CANDIDATES = 20
NOISE_SIGMAS = 3.0  # a set's own share (and a pair's held-out support) must exceed its standard error this many times
# Held-out support, in standard errors, of a set of 3+ inputs whose every subset one smaller passed: fewer
# candidates, each backed by its subsets (benchmarks/README.md, "Interaction sets", for the measurements).
GROWN_SIGMAS = 1.5
# A set whose support lies within RETEST_BAND standard errors of its bar is estimated again with
# RETEST_DRAWS[0] independent partners per row with a target, each row's h_S averaged over them, and again
# with the next count while it stays in the band (one partner per row leaves much of the error in the draw).
RETEST_DRAWS = (8, 16, 32)
RETEST_BAND = 2.0
UNCONFIRMED_FRACTION = 0.01  # a possible term's own share is at least this fraction of the floor (not rounding)


@dataclass(frozen=True)
class SetEstimate:
    """``share = U_S / Var f`` of the column set ``columns`` for one output, and its Monte Carlo
    standard error ``error`` (same units); with held-out targets, ``support``: how much removing every
    component that holds the set raises the mean squared error on them, in units of ``Var f``, and its
    standard error ``support_error`` (``None`` without targets), over ``draws`` partners per row."""

    columns: Columns
    share: float
    error: float
    support: float | None = None
    support_error: float | None = None
    draws: int = 1


@dataclass
class InteractionSet:
    """Inputs (or KarSein fields) that enter a term together: ``strength`` = its own share of the
    output variance (the part no subset explains, ``U_S / Var f``) with its Monte Carlo standard error
    ``error``; ``variance_share`` = the share of the interaction variance inside the set (every
    component of two or more of its inputs: ``τ_S − Σ τ_i``; overlapping sets both count a shared one);
    ``support`` ± ``support_error``: the rise of the error on held-out rows, as a share of the output
    variance, when the set is removed from the network (``None`` without held-out targets), estimated over
    ``support_draws`` partner draws per row."""

    variables: list[str]
    order: int
    strength: float
    error: float
    variance_share: float
    support: float | None = None
    support_error: float | None = None
    support_draws: int | None = None


class SwappedValues:
    """``f(x with the columns in T taken from partner)`` ``[N, m]`` float64, cached per column set T.

    ``function`` maps rows ``[M, n]`` to outputs ``[M, m]`` and must treat rows independently;
    ``bytes_per_row`` sizes the evaluation chunks. ``rows`` counts the rows evaluated.
    """

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, partner: torch.Tensor,
                 bytes_per_row: float) -> None:
        self.function, self.x, self.partner = function, x, partner
        self.bytes_per_row = bytes_per_row
        self.cache: dict[frozenset[int], torch.Tensor] = {}
        self.rows = 0

    def __call__(self, swapped: Iterable[int]) -> torch.Tensor:
        key = frozenset(swapped)
        if key not in self.cache:
            self.prefetch([key])
        return self.cache[key]

    def prefetch(self, sets: Iterable[Iterable[int]]) -> None:
        """Evaluate every set of ``sets`` not cached yet, many sets per batched pass."""
        missing = list(dict.fromkeys(frozenset(s) for s in sets if frozenset(s) not in self.cache))
        n_rows = len(self.x)
        per_pass = max(1, rows_per_chunk(self.bytes_per_row, n_rows * max(len(missing), 1)) // max(n_rows, 1))
        for start in range(0, len(missing), per_pass):
            batch = missing[start : start + per_pass]
            rows = self.x.repeat(len(batch), 1)
            for index, swapped in enumerate(batch):
                columns = sorted(swapped)
                if columns:
                    rows[index * n_rows : (index + 1) * n_rows, columns] = self.partner[:, columns]
            with torch.no_grad():
                values = self.function(rows).double()
            self.rows += len(rows)
            for index, swapped in enumerate(batch):
                self.cache[swapped] = values[index * n_rows : (index + 1) * n_rows]

    def variance(self) -> torch.Tensor:
        """``Var f`` per output ``[m]`` from the paired rows: ``E[(f(x) − f(x'))²] / 2``."""
        everything = frozenset(range(self.x.shape[1]))
        return 0.5 * (self(()) - self(everything)).pow(2).mean(dim=0)


def affordable_rows(evaluations: int, row_bytes: int) -> int:
    """Rows the pair stage may use when it evaluates them ``evaluations`` times with a model of
    ``row_bytes`` working bytes per row."""
    return max(MIN_SET_ROWS, int(PAIR_WORK // (max(evaluations, 1) * max(row_bytes, 1))))


def candidates_per_order(rows: int, row_bytes: int, max_order: int, outputs: int) -> int:
    """Candidate sets per order beyond pairs that ``SET_WORK`` affords on ``rows`` rows."""
    orders = max(max_order - 2, 1)
    return max(MIN_CANDIDATES, min(SETS_PER_ORDER, int(SET_WORK // (rows * max(row_bytes, 1) * orders * outputs))))


def subsets(columns: Columns) -> list[Columns]:
    """Every subset of ``columns`` (the empty one and ``columns`` itself included), smallest first."""
    return [s for size in range(len(columns) + 1) for s in itertools.combinations(columns, size)]


def mixed_difference(values: SwappedValues, columns: Columns) -> torch.Tensor:
    """``Δ_S(x, x')`` ``[N, m]`` for the column set ``S = columns``."""
    values.prefetch(subsets(columns))
    delta = torch.zeros_like(values(()))
    for subset in subsets(columns):
        delta += (-1) ** (len(columns) - len(subset)) * values(subset)
    return delta


def superset_shares(values: SwappedValues, columns: Columns, variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``U_S / Var f`` per output ``[m]`` and its standard error ``[m]``."""
    return shares_of(mixed_difference(values, columns), len(columns), variance)


def shares_of(delta: torch.Tensor, order: int, variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``U_S / Var f`` ``[m]`` and its standard error ``[m]`` from the mixed differences ``delta [N, m]`` of
    a set of ``order`` columns."""
    squared = delta.pow(2) / 2**order
    scale = variance.clamp_min(1e-300)
    error = squared.std(dim=0) / math.sqrt(max(len(squared) - 1, 1))
    return squared.mean(dim=0) / scale, error / scale


def held_out_support(delta: torch.Tensor, order: int, residual: torch.Tensor,
                     variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How much removing ``h_S`` (every component holding the set ``S`` of ``order`` columns whose mixed
    differences are ``delta``) from the function raises its mean squared error on the rows with targets,
    per output ``[m]`` in units of ``Var f``, and the standard error ``[m]``. ``delta`` is ``[N, m]`` (one
    partner per row) or ``[P, N, m]`` (``P`` independent partners per row); ``residual [N, m]``: target − f
    at the same rows, NaN where a row has no target. The per-row estimate is
    ``mean_p Δ_S² / 2^|S| + 2 (−1)^|S| mean_p Δ_S · residual``: averaging over partners leaves the
    variance the rows themselves carry."""
    draws = delta if delta.dim() == 3 else delta.unsqueeze(0)
    gain = draws.pow(2).mean(dim=0) / 2**order + 2 * (-1) ** order * draws.mean(dim=0) * residual
    known = torch.isfinite(gain)
    count = known.sum(dim=0).clamp_min(2)
    mean = torch.where(known, gain, 0.0).sum(dim=0) / count
    spread = torch.where(known, gain - mean, 0.0).pow(2).sum(dim=0) / (count - 1)
    scale = variance.clamp_min(1e-300)
    return mean / scale, (spread / count).sqrt() / scale


def pair_shares(values: SwappedValues, columns: list[int], variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``U_ij / Var f`` for every pair of ``columns``: ``[m, n, n]`` over all ``n`` columns of the rows
    (symmetric, zero diagonal, zero outside ``columns``), and the standard errors ``[m, n, n]``. Costs
    ``k + k(k − 1)/2`` evaluations of the rows for ``k`` columns (batched)."""
    n = values.x.shape[1]
    pairs = list(itertools.combinations(sorted(columns), 2))
    values.prefetch([()] + [(i,) for i in columns] + pairs)
    m = variance.shape[0]
    share = torch.zeros(m, n, n, dtype=torch.float64, device=variance.device)
    error = torch.zeros_like(share)
    for i, j in pairs:
        value, err = superset_shares(values, (i, j), variance)
        share[:, i, j] = share[:, j, i] = value
        error[:, i, j] = error[:, j, i] = err
    return share, error


def total_shares(values: SwappedValues, n: int, variance: torch.Tensor) -> torch.Tensor:
    """Total-effect share of every column ``[m, n]``: ``E[(f(x) − f(x with i from x'))²] / 2 / Var f``."""
    base = values(())
    columns = [0.5 * (base - values((i,))).pow(2).mean(dim=0) for i in range(n)]
    return torch.stack(columns, dim=1) / variance.clamp_min(1e-300)[:, None]


@dataclass
class SetSearch:
    """Level-wise growth of interaction sets for one output (index ``output``).

    ``floor`` is the share below which an interaction is not reported; a set passes when ``share > floor``
    and ``share > NOISE_SIGMAS · error``, and, given ``residual [N, m]`` (target − f at the rows, NaN
    where unknown: held-out rows), when its held-out support exceeds ``NOISE_SIGMAS`` standard errors
    (pairs) or ``GROWN_SIGMAS`` (larger sets, whose subsets all passed). A support near its bar is
    estimated again (``retest``) over ``retest_draws`` partners per row with a target in turn, drawn with
    ``seed`` from all the rows, while it stays near the bar and the work stays within ``retest_budget``
    (rows × bytes per row) and ``RETEST_FACTOR`` times the rows evaluated so far. At most ``per_order``
    candidate sets are tested per order beyond pairs (each costs one new evaluation of the rows: its
    subsets were tested before it).
    ``estimates`` holds every set tested.
    """

    values: SwappedValues
    output: int
    variance: torch.Tensor
    floor: float
    max_order: int
    per_order: int = SETS_PER_ORDER
    residual: torch.Tensor | None = None
    retest_draws: tuple[int, ...] = RETEST_DRAWS
    retest_budget: float = RETEST_WORK
    seed: int = 0
    estimates: dict[Columns, SetEstimate] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    retested: int = 0
    further_partners: list[SwappedValues] = field(default_factory=list, init=False)
    known: torch.Tensor | None = field(default=None, init=False)
    generator: torch.Generator | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if any(b <= a for a, b in zip((1, *self.retest_draws), self.retest_draws)):
            raise ValueError(f"retest_draws must increase from 2: {self.retest_draws}")
        if self.residual is not None:
            self.known = torch.isfinite(self.residual[:, self.output])
            self.generator = torch.Generator(device="cpu").manual_seed(self.seed)

    def draws_added(self, stage: int) -> int:
        """Partner draws per row that re-estimate ``stage`` adds."""
        return self.retest_draws[stage] - (self.retest_draws[stage - 1] if stage else 1)

    def partners_at(self, stage: int) -> SwappedValues:
        """The evaluations of re-estimate ``stage``, built on first use (in stage order, so the draws are fixed by
        ``seed``): the rows with targets once per draw it adds, ``[draws · K, n]``, each against its own partner
        drawn from all the rows."""
        rows, pool = self.values.x[self.known], self.values.x
        while len(self.further_partners) <= stage:
            added = self.draws_added(len(self.further_partners))
            chosen = torch.randint(len(pool), (added * len(rows),), generator=self.generator, device="cpu").to(pool.device)
            self.further_partners.append(SwappedValues(self.values.function, rows.repeat(added, 1), pool[chosen],
                                                       self.values.bytes_per_row))
        return self.further_partners[stage]

    def rows_evaluated(self) -> int:
        """Rows the re-estimates evaluated."""
        return sum(partners.rows for partners in self.further_partners)

    def measurable(self, estimate: SetEstimate) -> bool:
        """The set's own share is above the floor and its Monte Carlo error."""
        return estimate.share > self.floor and estimate.share > NOISE_SIGMAS * estimate.error

    def passes(self, estimate: SetEstimate) -> bool:
        if not self.measurable(estimate):
            return False
        if estimate.support is None:
            return True
        return estimate.support > self.bar(estimate) * estimate.support_error

    @staticmethod
    def bar(estimate: SetEstimate) -> float:
        """Held-out support, in standard errors, that the set must exceed."""
        return NOISE_SIGMAS if len(estimate.columns) == 2 else GROWN_SIGMAS

    def near_bar(self, estimate: SetEstimate) -> bool:
        """A measurable set whose support is too close to its bar to decide on, and which more partner draws
        could confirm: when the data hold what the network holds the support is the set's own share, and
        the draws left shrink the error at most by the square root of their number (all of it partner
        noise), so a share under the bar even at that error is left as it is."""
        if estimate.support is None or self.known is None or not self.retest_draws or not self.measurable(estimate):
            return False
        bar, error = self.bar(estimate), max(estimate.support_error, 1e-300)
        smallest_error = error * math.sqrt(estimate.draws / self.retest_draws[-1])
        return abs(estimate.support / error - bar) < RETEST_BAND and estimate.share > bar * smallest_error

    def undecided(self, estimate: SetEstimate) -> bool:
        """A set that does not pass but may be a term: without targets, its own share is measurable but
        not above the floor (``UNCONFIRMED_FRACTION`` of it at least, so rounding does not count); with
        held-out targets, it is measurable and the data do not refute it (its support is within one
        standard error of zero)."""
        if self.passes(estimate) or not estimate.share > NOISE_SIGMAS * estimate.error:
            return False
        if estimate.support is None:
            return estimate.share > UNCONFIRMED_FRACTION * self.floor
        return estimate.share > self.floor and estimate.support > -estimate.support_error

    def test(self, candidates: list[Columns]) -> list[Columns]:
        """Estimate ``candidates`` (batched) and return those that pass."""
        self.values.prefetch(s for c in candidates for s in subsets(c))
        first_draws = {}
        for columns in candidates:
            delta = mixed_difference(self.values, columns)
            share, error = shares_of(delta, len(columns), self.variance)
            support = support_error = None
            if self.residual is not None:
                gain, gain_error = held_out_support(delta, len(columns), self.residual, self.variance)
                support, support_error = float(gain[self.output]), float(gain_error[self.output])
            estimate = SetEstimate(columns, float(share[self.output]), float(error[self.output]), support, support_error)
            self.estimates[columns] = estimate
            if self.near_bar(estimate):
                first_draws[columns] = delta[self.known]
        self.retest(first_draws)
        return [columns for columns in candidates if self.passes(self.estimates[columns])]

    def retest(self, first_draws: dict[Columns, torch.Tensor]) -> None:
        """Estimate the held-out support of each set of ``first_draws`` (its mixed differences at the rows
        with targets, ``[K, m]``) again over more partner draws, until it leaves the band around its bar or
        every draw is used; replace its estimate."""
        pending = {columns: first[None] for columns, first in first_draws.items()}  # [draws, K, m] each
        residual = self.residual[self.known] if pending else None
        budget = min(self.retest_budget / max(self.values.bytes_per_row, 1), RETEST_FACTOR * self.values.rows)  # rows
        for stage in range(len(self.retest_draws)):
            if not pending:
                return
            cached = self.further_partners[stage].cache.keys() if stage < len(self.further_partners) else set()
            needed = len({frozenset(s) for c in pending for s in subsets(c)} - cached) * self.draws_added(stage) * len(residual)
            if self.rows_evaluated() + needed > budget:
                self.notes.append(f"{len(pending)} held-out supports near their bar kept at {len(next(iter(pending.values())))} "
                                  "partner draws (the work budget of re-estimates is spent)")
                return
            if stage == 0:
                self.retested += len(pending)
            partners = self.partners_at(stage)
            partners.prefetch(s for c in pending for s in subsets(c))
            for columns in list(pending):
                further = mixed_difference(partners, columns).reshape(-1, *pending[columns].shape[1:])
                deltas = pending[columns] = torch.cat([pending[columns], further])
                gain, gain_error = held_out_support(deltas, len(columns), residual, self.variance)
                estimate = self.estimates[columns] = replace(self.estimates[columns], support=float(gain[self.output]),
                                                             support_error=float(gain_error[self.output]), draws=len(deltas))
                if not self.near_bar(estimate):
                    del pending[columns]

    def grow(self, pairs: list[Columns]) -> list[Columns]:
        """Every set that passes, grown from the passing ``pairs`` up to ``max_order`` inputs."""
        level, significant = sorted(pairs), list(pairs)
        for size in range(3, self.max_order + 1):
            above = set(level)
            members = sorted({c for s in level for c in s})
            candidates = sorted({tuple(sorted(set(a) | {c})) for a in level for c in members if c not in a})
            candidates = [c for c in candidates if all(sub in above for sub in itertools.combinations(c, size - 1))]
            if len(candidates) > self.per_order:
                weakest = {c: min(self.estimates[s].share for s in itertools.combinations(c, size - 1)) for c in candidates}
                self.notes.append(f"order {size}: tested the {self.per_order} of {len(candidates)} candidate sets whose "
                                  "subsets interact most strongly")
                candidates = sorted(sorted(candidates, key=lambda c: (-weakest[c], c))[: self.per_order])
            level = self.test(candidates)
            significant.extend(level)
            if not level:
                break
        return significant


def components(nodes: list[int], linked: np.ndarray) -> list[list[int]]:
    """Connected components of the graph on ``nodes`` with adjacency ``linked`` ``[n, n]`` (bool, over all columns)."""
    remaining, groups = set(nodes), []
    while remaining:
        start = min(remaining)
        stack, group = [start], {start}
        while stack:
            current = stack.pop()
            for other in list(remaining - group):
                if linked[current, other]:
                    group.add(other)
                    stack.append(other)
        remaining -= group
        groups.append(sorted(group))
    return sorted(groups)


def set_components(n: int, sets: Iterable[Iterable[int]], nodes: list[int]) -> list[list[int]]:
    """Connected components over ``nodes`` (of ``n`` columns) when two columns are joined by any set
    of ``sets`` holding both: the additive blocks of overlapping terms."""
    linked = np.zeros((n, n), dtype=bool)
    for members in sets:
        members = list(members)
        linked[np.ix_(members, members)] = True
    return components(nodes, linked)


def maximal_sets(significant: Iterable[Columns]) -> list[Columns]:
    """The sets of ``significant`` not contained in another one: the terms."""
    found = [tuple(sorted(s)) for s in significant]
    return sorted({s for s in found if not any(set(s) < set(t) for t in found)}, key=lambda s: (len(s), s))


def interaction_sets(search: SetSearch, pairs: list[Columns], names: list[str]) -> list[InteractionSet]:
    """The terms ``search`` grows from the passing ``pairs``, strongest first, named by ``names``."""
    terms = maximal_sets(search.grow(pairs))
    if search.retested:
        search.notes.append(f"held-out support of {search.retested} sets within {RETEST_BAND:g} standard errors of "
                            f"their bar estimated again over more partner draws per row (up to {search.retest_draws[-1]})")
    return described(search, terms, names)


def unconfirmed_sets(search: SetSearch, terms: list[InteractionSet], names: list[str]) -> list[InteractionSet]:
    """Sets of three or more inputs that may be one term the network cannot confirm: every subset one
    smaller passed, and the set is ``SetSearch.undecided`` (without targets: its own share is measurably
    above zero but not above the floor; with held-out targets: the data do not refute it, within one
    standard error).

    A weak own interaction of a true term (``1/(1 + x1² + x2² + x3²)`` on [−1, 1] has 2e-4 of its
    variance in the triple) and the network's own error look alike there, so these are listed apart
    from the terms: maximal ones only, outside every reported term."""
    index = {name: i for i, name in enumerate(names)}
    reported = [{index[v] for v in term.variables} for term in terms]
    doubtful = [columns for columns, estimate in search.estimates.items()
                if len(columns) >= 3 and search.undecided(estimate) and not any(set(columns) <= members for members in reported)]
    return described(search, maximal_sets(doubtful), names)


def described(search: SetSearch, sets: list[Columns], names: list[str]) -> list[InteractionSet]:
    """``sets`` (tested by ``search``) with their own shares and interaction variances, strongest first."""
    n = search.values.x.shape[1]
    closed = closed_shares(search.values, n, [t for term in sets for t in [term, *((i,) for i in term)]], search.variance)
    found = []
    for term in sets:
        inside = closed[term] - sum(closed[(i,)] for i in term)  # τ_S − Σ τ_i: every component of 2+ inputs in S
        estimate = search.estimates[term]
        found.append(InteractionSet([names[i] for i in term], len(term), estimate.share, estimate.error,
                                    max(float(inside[search.output]), 0.0), estimate.support, estimate.support_error,
                                    estimate.draws if estimate.support is not None else None))
    return sorted(found, key=lambda s: (-s.strength, s.variables))


def closed_shares(values: SwappedValues, n: int, sets: list[Columns], variance: torch.Tensor) -> dict[Columns, torch.Tensor]:
    """Closed shares ``τ_T / Var f`` ``[m]`` of the column sets ``sets``, where
    ``τ_T = Var E[f | x_T] = Var f − E[(f(x) − f(x with all but T from x'))²] / 2``."""
    everything = frozenset(range(n))
    values.prefetch(everything - set(t) for t in sets)
    base, scale = values(()), variance.clamp_min(1e-300)
    return {t: (variance - 0.5 * (base - values(everything - set(t))).pow(2).mean(dim=0)) / scale for t in sets}
