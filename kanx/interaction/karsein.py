"""Which FIELDS of a KarSein model interact, and what order its architecture allows.

Numerical analysis on the score ``f = model.logit`` (pre-sigmoid), with each field's embedding
lookup as one input, by the mixed differences of ``kanx.interaction.sets`` (field values swapped
with those of partner rows): each field set ``S`` has a superset importance ``U_S``, the variance of
the score carried by terms involving all of ``S``; ``share(S) = U_S / Var f``. Sets are grown level
by level from the pairs (a set is tested only when all its subsets one smaller passed), and the
interaction sets are the passing sets (size >= 2) not contained in a larger one: the terms, which
may overlap. A set passes when its share exceeds the threshold and three Monte Carlo standard
errors. The groups are the connected components of the sets.

Structural bound: a vector-wise layer in ``pairwise`` multiplies by the original fields, so
with activations of effective polynomial degree ``r_l`` the degree in the embeddings is
``o_0 = 1, o_l = r_l * (o_{l-1} + [layer l multiplies])``; the bit-wise branch has
``o_l = r_l * o_{l-1}``. ``r_l`` is the largest over layer ``l``'s inputs of the lowest
polynomial degree reaching R² >= 0.999 on the activation's observed input range (the silu part
and the spline part, each when its mixing weights are non-zero).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from kanx.core.display import html_table
from kanx.core.numerics import r2
from kanx.families.karsein.features import branch_inputs, default_rows
from kanx.families.karsein.model import KarSein, KarSeinLayer
from kanx.interaction.sets import (
    InteractionSet,
    SetSearch,
    SwappedValues,
    affordable_rows,
    candidates_per_order,
    interaction_sets,
    set_components,
    unconfirmed_sets,
)
from kanx.interaction.settings import InteractionSettings
from kanx.io.figures import Figures

DEFAULT_SHARE_THRESHOLD = 0.05
R2_TARGET = 0.999
MAX_DEGREE = 12


@dataclass
class FieldGroup:
    """A block of fields (a connected component of the interaction sets); ``share`` = the largest
    own share among its sets."""

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
    interaction_sets: list[InteractionSet]
    groups: list[FieldGroup]
    shares: dict[str, float]
    pairwise: list[list[float]]
    structural: list[BranchBound]
    threshold: float
    samples: int
    network_evaluations: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    unconfirmed_sets: list[InteractionSet] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        sets = ", ".join("{" + ", ".join(s.variables) + "}" for s in self.interaction_sets) or "none"
        return f"KarSeinInteractionReport(field interaction sets: {sets})"

    def figures(self) -> Figures:
        """The field figure (pair heatmap and interaction sets), named ``fields``."""
        from kanx.interaction.figure import field_figure

        return Figures(["fields"], [field_figure(self)])

    def _repr_html_(self) -> str:
        """Jupyter: the table of interacting field sets and their shares of the score variance."""
        rows = [(", ".join(s.variables), s.order, f"{100 * s.strength:.2f}%", f"{100 * s.variance_share:.2f}%")
                for s in self.interaction_sets]
        return html_table(("fields", "order", "own share", "interaction variance"), rows, "KarSein field interaction sets")


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
def field_interactions(model: KarSein, x: torch.Tensor | None = None,
                       settings: InteractionSettings | None = None) -> KarSeinInteractionReport:
    """Interaction sets of fields on rows ``x [N, F + n_dense]`` (default: stored sample)."""
    settings = settings if settings is not None else InteractionSettings()
    start = time.perf_counter()
    model.eval()
    generator = torch.Generator().manual_seed(settings.seed)
    if x is None:
        x = default_rows(model, settings.max_samples, settings.seed)
    elif len(x) > settings.max_samples:
        x = x[torch.randperm(len(x), generator=generator, device="cpu")[: settings.max_samples].to(x.device)]
    notes: list[str] = []
    rows = affordable_rows(2 + model.n_fields * (model.n_fields + 1) // 2, model.row_bytes())
    if rows < len(x):
        notes.append(f"mixed differences on {rows} of {len(x)} rows ({model.n_fields} fields)")
        x = x[torch.randperm(len(x), generator=generator, device="cpu")[:rows].to(x.device)]
    partner = x[torch.randperm(len(x), generator=generator, device="cpu").to(x.device)]
    values = SwappedValues(model.logit, x, partner, model.row_bytes())
    variance = values.variance()
    threshold = settings.threshold if settings.threshold is not None else DEFAULT_SHARE_THRESHOLD
    max_order = min(settings.max_order, model.n_fields)
    search = SetSearch(values, 0, variance, threshold, max_order, candidates_per_order(len(x), model.row_bytes(), max_order, 1))
    pairs = search.test(list(itertools.combinations(range(model.n_fields), 2)))
    names = model.fields
    sets = interaction_sets(search, pairs, names)
    index = {name: i for i, name in enumerate(names)}
    members = [[index[v] for v in term.variables] for term in sets]
    blocks = set_components(model.n_fields, members, sorted({i for term in members for i in term}))
    groups = [FieldGroup([names[i] for i in b], len(b), max(t.strength for t, m in zip(sets, members) if set(m) <= set(b)))
              for b in blocks]
    pairwise = np.zeros((model.n_fields, model.n_fields))
    for columns, estimate in search.estimates.items():
        if len(columns) == 2:
            pairwise[columns[0], columns[1]] = pairwise[columns[1], columns[0]] = estimate.share
    return KarSeinInteractionReport(
        fields=list(names), interaction_sets=sets, groups=sorted(groups, key=lambda g: -g.share),
        shares={"+".join(names[i] for i in s): e.share for s, e in search.estimates.items()},
        pairwise=pairwise.tolist(), structural=structural_bound(model, x), threshold=threshold, samples=len(x),
        network_evaluations=values.rows, seconds=time.perf_counter() - start, notes=notes + search.notes,
        unconfirmed_sets=unconfirmed_sets(search, sets, names),
    )
