"""The interaction report of a KAN: its data classes (the tree of a law's structure, the additive
groups, the noise floor a set must clear, each output's report, the structural bound) with
``to_dict``, a one-line repr, notebook tables and figures."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field

from kanx.core.display import html_table
from kanx.interaction.sets import InteractionSet
from kanx.interaction.settings import InteractionSettings
from kanx.io.figures import Figures

# Own share of the output variance below which no set is reported (InteractionSettings.threshold=None).
# It guards nearly perfect networks, where 0.3·(1 − R²) is tiny: on the planted suites the largest spurious
# own share on networks of R² ≥ 0.9999 was 2.2e-5, the weakest true term 1.2e-4 (docs/interactions.md).
DEFAULT_THRESHOLD = 3e-5
DEFAULT_PRODUCT_THRESHOLD = InteractionSettings.product_threshold
ERROR_FRACTION = 0.3  # an interaction must carry this much of the variance the network leaves unexplained
ASSUMED_ERROR_SHARE = 1e-3  # the unexplained share assumed when neither targets nor a training record tell it


@dataclass
class TreeNode:
    """A node of the interaction tree: ``kind`` is "sum", "product", "group" (a non-separable
    set of inputs) or "input" (a single input)."""

    kind: str
    variables: list[str]
    children: list[TreeNode] = field(default_factory=list)

    def describe(self) -> str:
        """Compact text such as ``g(x1, x2) + φ(x3)`` or ``φ(x1) · φ(x2)`` (each φ/g a different
        function of its inputs)."""
        if self.kind == "input":
            return f"φ({self.variables[0]})"
        if self.kind == "group":
            return "g(" + ", ".join(self.variables) + ")"
        joiner = " + " if self.kind == "sum" else " · "
        parts = []
        for child in self.children:
            text = child.describe()
            parts.append(f"({text})" if child.kind == "sum" and self.kind == "product" else text)
        return joiner.join(parts)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "variables": self.variables, "children": [c.to_dict() for c in self.children]}


@dataclass
class InteractionGroup:
    """An additive block of inputs (a connected component of the interaction sets): its order
    (number of inputs), the largest own share among its sets (``strength``), its share of output
    variance and the part of that share carried by interactions (beyond its inputs' main effects)."""

    variables: list[str]
    order: int
    strength: float
    variance_share: float
    interaction_share: float
    structure: str


@dataclass
class NoiseFloor:
    """What an interaction must clear. ``floor``: the own share below which the additive structure (tree,
    blocks, formula view) counts no interaction, the largest of the threshold and ``ERROR_FRACTION``
    times ``error_share``, the share of the output variance the network leaves unexplained, measured on
    ``source`` ("held-out rows", "data", "training record", or "unknown": ``error_share`` is then ``None``
    and the floor takes ``ASSUMED_ERROR_SHARE`` for it). ``held_out_rows``: the rows with targets that
    test each interaction set (0: none, and a set must clear ``floor``); with them a set must clear only
    ``set_floor`` (the threshold the user gave, else 0) and the data test."""

    floor: float
    threshold: float
    error_share: float | None
    source: str
    held_out_rows: int = 0
    set_floor: float = 0.0

    @classmethod
    def of(cls, threshold: float, error_share: float | None, source: str, held_out_rows: int = 0,
           given_threshold: float | None = None) -> NoiseFloor:
        """The floor for ``error_share`` (``None``: unknown, ``ASSUMED_ERROR_SHARE`` is taken for it);
        ``held_out_rows`` > 0 lets the data test replace it for the sets."""
        assumed = error_share if error_share is not None else ASSUMED_ERROR_SHARE
        floor = max(threshold, ERROR_FRACTION * assumed)
        set_floor = (given_threshold or 0.0) if held_out_rows else floor
        return cls(floor, threshold, error_share, source, held_out_rows, set_floor)


@dataclass
class OutputReport:
    """Interaction analysis of one output."""

    output: str
    interaction_sets: list[InteractionSet]
    noise: NoiseFloor
    groups: list[InteractionGroup]
    unused: list[str]
    main_effects: dict[str, float]
    pairwise: list[list[float]]
    tree: TreeNode
    max_order: int
    formula: dict | None = None
    notes: list[str] = field(default_factory=list)
    unconfirmed_sets: list[InteractionSet] = field(default_factory=list)


@dataclass
class StructuralBound:
    """What the architecture can express for one output: the largest set of inputs that can
    interact and the polynomial degree bound (None when unbounded, e.g. non-polynomial edges)."""

    output: str
    max_order: int
    reachable: list[str]
    degree_bound: int | None


@dataclass
class InteractionReport:
    inputs: list[str]
    outputs: list[OutputReport]
    structural: list[StructuralBound]
    threshold: float
    samples: int
    network_evaluations: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        laws = "; ".join(f"{r.output} = {r.tree.describe() or '(constant)'}" for r in self.outputs)
        return f"InteractionReport({laws})"

    def figures(self) -> Figures:
        """One figure per output (pair heatmap, interaction sets, tree), named by the output."""
        from kanx.interaction.figure import interaction_figure

        return Figures([r.output for r in self.outputs], [interaction_figure(self, k) for k in range(len(self.outputs))])

    def _repr_html_(self) -> str:
        """Jupyter: per output, its interaction sets, its structure and the table of additive blocks."""
        parts = []
        for result, bound in zip(self.outputs, self.structural):
            sets = [("{" + ", ".join(s.variables) + "}", s.order, f"{100 * s.strength:.3g}% ± {100 * s.error:.2g}%",
                     f"{100 * s.variance_share:.3g}%") for s in result.interaction_sets]
            parts.append(html_table(("inputs", "order", "own share", "interaction variance"), sets,
                                    f"interaction sets of {result.output} (own share > {result.noise.floor:.2g})"))
            if result.unconfirmed_sets:
                doubtful = [("{" + ", ".join(s.variables) + "}", s.order, f"{100 * s.strength:.3g}% ± {100 * s.error:.2g}%",
                             f"{100 * s.variance_share:.3g}%") for s in result.unconfirmed_sets]
                parts.append(html_table(("inputs", "order", "own share", "interaction variance"), doubtful,
                                        "possible terms the network cannot confirm"))
            rows = [(", ".join(g.variables), g.order, g.structure, f"{g.strength:.3g}", f"{100 * g.variance_share:.1f}%",
                     f"{100 * g.interaction_share:.1f}%") for g in result.groups]
            caption = f"{result.output} = {result.tree.describe() or '(constant)'}"
            parts.append(html_table(("inputs", "order", "structure", "top set share", "variance share", "interaction share"),
                                    rows, caption))
            notes = f"max order found {result.max_order} (the architecture allows {bound.max_order})"
            if result.unused:
                notes += f"; unused inputs: {', '.join(result.unused)}"
            parts.append(f"<p>{html.escape(notes)}</p>")
        return "".join(parts)
