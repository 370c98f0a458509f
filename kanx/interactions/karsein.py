"""Which FIELDS of a KarSein model interact, and what order its architecture allows.

Numerical analysis on the score ``f = model.logit`` (pre-sigmoid), with each field's embedding
lookup as one input. For a field set ``S``, rows ``x`` and partner rows ``x'`` (a random
permutation of the same rows), the mixed difference over field-value swaps is

    Delta_S f(x, x') = sum_{T subset S} (-1)^{|S| - |T|} f(x with the fields in T taken from x').

It vanishes for every ``x, x'`` exactly when ``f`` has no term depending jointly on all fields
of ``S``. For independent fields, ``E[Delta_S^2] / 2^|S|`` is the *superset importance*
``U_S = sum_{V ⊇ S} sigma_V^2`` of the functional ANOVA decomposition (Liu & Owen 2006):
the variance carried by terms involving all of ``S``. We report ``share(S) = U_S / Var f``.

``share`` can only shrink when ``S`` grows, so sets are explored level by level, a set being
evaluated only when all its subsets one smaller are above the threshold (exact pruning). The
interaction groups are the above-threshold sets (size >= 2) not contained in a larger one;
each group's order is its size. Evaluations are cached per swapped set ``T``.

Structural bound: a vector-wise layer in ``pairwise`` multiplies by the original fields, so
with activations of effective polynomial degree ``r_l`` the degree in the embeddings is
``o_0 = 1, o_l = r_l * (o_{l-1} + [layer l multiplies])``; the bit-wise branch has
``o_l = r_l * o_{l-1}``. ``r_l`` is the largest over layer ``l``'s inputs of the lowest
polynomial degree reaching R² >= 0.999 on the activation's observed input range (the silu part
and the spline part, each when its mixing weights are non-zero).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from kanx.core.display import html_table
from kanx.core.numerics import r2
from kanx.families.karsein.features import branch_inputs, default_rows
from kanx.families.karsein.model import KarSein, KarSeinLayer

DEFAULT_SHARE_THRESHOLD = 0.05
R2_TARGET = 0.999
MAX_DEGREE = 12
MAX_SETS_PER_LEVEL = 1000  # field sets of one order beyond pairs (a 39-field model has 9,139 triples)


@dataclass
class FieldGroup:
    """Fields that interact jointly; ``share`` = superset importance / score variance."""

    fields: list[str]
    order: int
    share: float


@dataclass
class BranchBound:
    """Per branch: effective degree ``r`` of each layer, the degree bound in the embedding
    coordinates (``None`` when some activation is not polynomial up to ``MAX_DEGREE``) and the
    number of fields that can interact (capped by the number of fields)."""

    branch: str
    layer_degrees: list[int | None]
    multiplying_layers: list[int]
    degree_bound: int | None
    max_field_order: int


@dataclass
class KarSeinInteractionReport:
    fields: list[str]
    groups: list[FieldGroup]
    shares: dict[str, float]
    pairwise: list[list[float]]
    structural: list[BranchBound]
    threshold: float
    samples: int
    network_evaluations: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def _repr_html_(self) -> str:
        """Jupyter: the table of interacting field sets and their share of the score variance."""
        rows = [(", ".join(group.fields), group.order, f"{100 * group.share:.1f}%") for group in self.groups]
        return html_table(("fields", "order", "share"), rows, "KarSein field interactions")


# --------------------------------------------------------------------------- structural bound
def order_bound(layer_degrees: list[int | None], pairwise: list[int]) -> int | None:
    """``o_0 = 1``, ``o_l = r_l * (o_{l-1} + [l-1 in pairwise])`` (0-based layer indices in
    ``pairwise``); ``None`` when a degree is unknown. ``order_bound([3, 3, 3], [0, 1]) == 63``."""
    order = 1
    for index, degree in enumerate(layer_degrees):
        if degree is None:
            return None
        order = degree * (order + (1 if index in pairwise else 0))
    return order


def polynomial_degree(x: np.ndarray, y: np.ndarray, target: float = R2_TARGET, max_degree: int = MAX_DEGREE) -> int | None:
    """Lowest degree whose least-squares polynomial fit of ``y(x)`` reaches R² >= ``target``
    (0 for a constant; ``None`` if none up to ``max_degree``)."""
    spread = float(((y - y.mean()) ** 2).sum())
    if spread <= 1e-12 * max(1.0, float((y**2).sum())):
        return 0
    t = (x - x.mean()) / max(float(x.std()), 1e-12)
    for degree in range(1, max_degree + 1):
        fitted = np.polynomial.polynomial.polyval(t, np.polynomial.polynomial.polyfit(t, y, degree))
        if float(r2(torch.from_numpy(fitted), torch.from_numpy(y))) >= target:
            return degree
    return None


def layer_degree(layer: KarSeinLayer, inputs: torch.Tensor) -> int | None:
    """Largest effective degree over the layer's inputs ``[N, n_in]`` (observed ranges)."""
    lo, hi = inputs.min(dim=0).values, inputs.max(dim=0).values
    grid = lo[None, :] + (hi - lo)[None, :] * torch.linspace(0, 1, 201, device=lo.device)[:, None]  # [201, n_in]
    with torch.no_grad():
        spline, silu = layer.activations(grid).double().cpu().numpy(), torch.nn.functional.silu(grid).double().cpu().numpy()
    uses_base = (layer.w_base.detach().abs() > 0).any(dim=1).cpu().numpy()
    uses_spline = (layer.w_sp.detach().abs() > 0).any(dim=1).cpu().numpy()
    grid = grid.cpu()
    degrees: list[int | None] = []
    for i in range(layer.n_in):
        x = grid[:, i].double().numpy()
        if float(hi[i] - lo[i]) <= 0:
            degrees.append(0)
            continue
        parts = [silu[:, i]] * bool(uses_base[i]) + [spline[:, i]] * bool(uses_spline[i])
        found = [polynomial_degree(x, y) for y in parts]
        degrees.append(None if None in found else max(found, default=0))
    return None if None in degrees else max(degrees, default=0)


def structural_bound(model: KarSein, x: torch.Tensor) -> list[BranchBound]:
    """Degree bounds of both branches, with ``r_l`` estimated on the rows ``x``."""
    bit_in, vec_in = branch_inputs(model, x)
    bounds = []
    for name, layers, inputs, pairwise in (("bit_wise", model.bit_layers, bit_in, []),
                                            ("vector_wise", model.vec_layers, vec_in, model.pairwise)):
        degrees = [layer_degree(layer, z) for layer, z in zip(layers, inputs)]
        degree = order_bound(degrees, list(pairwise))
        fields = model.n_fields if degree is None else min(model.n_fields, degree)
        bounds.append(BranchBound(name, degrees, list(pairwise), degree, fields))
    return bounds


# --------------------------------------------------------------------------- field interactions
class SwapScores:
    """Scores ``f(x with fields T from x')`` ``[N]``, cached per field set ``T``."""

    def __init__(self, model: KarSein, x: torch.Tensor, partner: torch.Tensor) -> None:
        self.model, self.x, self.partner = model, x, partner
        self.cache: dict[frozenset[int], torch.Tensor] = {}

    def __call__(self, swapped: frozenset[int]) -> torch.Tensor:
        if swapped not in self.cache:
            x = self.x.clone()
            columns = sorted(swapped)
            x[:, columns] = self.partner[:, columns]
            with torch.no_grad():
                self.cache[swapped] = self.model.logit(x)[:, 0].double()
        return self.cache[swapped]


def superset_share(scores: SwapScores, fields: tuple[int, ...], variance: float) -> float:
    """``E[Delta_S^2] / 2^|S| / Var f`` for the field set ``S = fields``."""
    delta = torch.zeros_like(scores(frozenset()))
    for size in range(len(fields) + 1):
        for subset in itertools.combinations(fields, size):
            delta = delta + (-1) ** (len(fields) - size) * scores(frozenset(subset))
    return float((delta**2).mean()) / 2 ** len(fields) / max(variance, 1e-300)


def field_interactions(model: KarSein, x: torch.Tensor | None = None, threshold: float = DEFAULT_SHARE_THRESHOLD,
                       max_order: int = 4, max_samples: int = 1000, seed: int = 0) -> KarSeinInteractionReport:
    """Interaction groups of fields on rows ``x [N, F + n_dense]`` (default: stored sample)."""
    start = time.perf_counter()
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    if x is None:
        x = default_rows(model, max_samples, seed)
    elif len(x) > max_samples:
        x = x[torch.randperm(len(x), generator=generator, device="cpu")[:max_samples].to(x.device)]
    partner = x[torch.randperm(len(x), generator=generator, device="cpu").to(x.device)]
    scores = SwapScores(model, x, partner)
    variance = float(scores(frozenset()).var())
    notes: list[str] = []
    shares, significant = explore(scores, model.n_fields, variance, threshold, max_order, notes)
    names = model.fields
    maximal = [s for s in significant if not any(set(s) < set(t) for t in significant)]
    groups = sorted((FieldGroup([names[i] for i in s], len(s), shares[s]) for s in maximal), key=lambda g: -g.share)
    pairwise = np.zeros((model.n_fields, model.n_fields))
    for s, value in shares.items():
        if len(s) == 2:
            pairwise[s[0], s[1]] = pairwise[s[1], s[0]] = value
    return KarSeinInteractionReport(
        fields=list(names), groups=groups, shares={"+".join(names[i] for i in s): v for s, v in shares.items()},
        pairwise=pairwise.tolist(), structural=structural_bound(model, x), threshold=threshold, samples=len(x),
        network_evaluations=len(scores.cache), seconds=time.perf_counter() - start, notes=notes,
    )


def explore(scores: SwapScores, n_fields: int, variance: float, threshold: float, max_order: int,
            notes: list[str] | None = None) -> tuple[dict[tuple[int, ...], float], list[tuple[int, ...]]]:
    """Level-wise search: shares of the evaluated field sets and those above ``threshold``.

    Every pair is tested; a higher level tests at most ``MAX_SETS_PER_LEVEL`` candidate sets (each
    costs up to ``2^size`` network passes): the ones whose weakest sub-set share is largest. What was left out is
    said in ``notes``."""
    shares: dict[tuple[int, ...], float] = {}
    level = [(i,) for i in range(n_fields)]
    above = set(level)
    significant: list[tuple[int, ...]] = []
    for size in range(2, min(max_order, n_fields) + 1):
        candidates = sorted({tuple(sorted(set(a) | set(b))) for a in level for b in level if len(set(a) | set(b)) == size})
        candidates = [c for c in candidates if all(sub in above for sub in itertools.combinations(c, size - 1))]
        if size > 2 and len(candidates) > MAX_SETS_PER_LEVEL:
            weakest = {c: min(shares.get(sub, math.inf) for sub in itertools.combinations(c, size - 1)) for c in candidates}
            kept = sorted(candidates, key=lambda c: (-weakest[c], c))[:MAX_SETS_PER_LEVEL]
            if notes is not None:
                notes.append(f"order {size}: tested the {MAX_SETS_PER_LEVEL} of {len(candidates)} candidate field sets whose "
                             "sub-sets interact most strongly")
            candidates = sorted(kept)
        level = []
        for subset in candidates:
            shares[subset] = superset_share(scores, subset, variance)
            if shares[subset] > threshold:
                level.append(subset)
        above = set(level)
        significant.extend(level)
        if not level:
            break
    return shares, significant
