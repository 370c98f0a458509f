"""Which inputs act together, at what order, and how much of the output each interaction carries.

Numerical analysis of the network itself (no formula needed), from mixed differences of its outputs
(``kanx.interaction.sets``: no derivatives, so kinks such as ``|x|`` and ``max`` are measured too):
- interaction sets, the headline: each set of inputs that enters a term together (sets may overlap),
  with its order, its own share of the output variance (the part no subset explains) and the
  interaction variance inside it. With held-out targets (the rows ``kanx train`` keeps in the checkpoint,
  or ``--data`` with the outputs) a set is reported when the data support it: removing it from the
  network raises the error on those rows, by three standard errors for a pair and 1.5 for a larger set
  whose every subset passed (``kanx.interaction.sets.held_out_support``). Without targets, when
  its own share is above the noise: the threshold, a fraction ``ERROR_FRACTION`` of the variance the
  network itself does not explain (from the training record, else ``ASSUMED_ERROR_SHARE``), and three
  Monte Carlo standard errors;
- pairwise shares ``U_ij / Var f``: the variance of every component holding both inputs;
- additive blocks (the connected components of the sets) and an interaction tree from recursive
  separability tests: inside a block, inputs split into additive groups by the pair shares with the
  other inputs fixed, and a non-additive group is tested for multiplicative separability
  ``f - c = u(x_A) * v(x_B)`` from values only;
- a functional-ANOVA variance decomposition of each block: its share of the output variance, split
  into the main effects of its inputs and the interaction remainder.

Formula analysis (``formula_report``): the additive terms of an expanded expression, each with
its variables, order and variance share on the samples.

Structural bound (``structural_bound``): the largest group of inputs the architecture can make
interact (reachable inputs through nonlinear edges and products) and the polynomial degree
bound from spline degree compounding across layers.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import sympy
import torch
from torch import nn

from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.core.lambdify import numpy_function
from kanx.families.kan.compose import compose_with_hidden
from kanx.families.kan.network import KAN
from kanx.interaction.sets import (
    NOISE_SIGMAS,
    InteractionSet,
    SetSearch,
    SwappedValues,
    affordable_rows,
    candidates_per_order,
    closed_shares,
    components,
    interaction_sets,
    maximal_sets,
    pair_shares,
    set_components,
    total_shares,
    unconfirmed_sets,
)
from kanx.interaction.settings import InteractionSettings
from kanx.io.figures import Figures

# Own share of the output variance below which no set is reported (InteractionSettings.threshold=None).
# It guards nearly perfect networks, where 0.3·(1 − R²) is tiny: on the planted suites the largest spurious
# own share on networks of R² ≥ 0.9999 was 2.2e-5, the weakest true term 1.2e-4 (docs/interactions.md).
DEFAULT_THRESHOLD = 3e-5
DEFAULT_PRODUCT_THRESHOLD = InteractionSettings.product_threshold
ERROR_FRACTION = 0.3  # an interaction must carry this much of the variance the network leaves unexplained
ASSUMED_ERROR_SHARE = 1e-3  # the unexplained share assumed when neither targets nor a training record tell it
MIN_HELD_OUT_ROWS = 50  # fewer rows with targets than this do not test the sets (the floor does)
PRODUCT_TEST_ROWS = 256
LINEAR_FUNCTIONS = {"x", "0"}
POLYNOMIAL_DEGREE = {"0": 0, "x": 1, "x^2": 2, "x^3": 3, "x^4": 4}
# Wide models: pairs are tested among at most MAX_PAIR_INPUTS inputs (those whose total effect
# exceeds their main effect the most), the tree splits groups of at most MAX_TREE_INPUTS inputs, and a
# group's main-effect ANOVA evaluates about ANOVA_ROW_BUDGET rows (Monte Carlo size shrunk to fit,
# not below MIN_MONTE_CARLO).
MAX_PAIR_INPUTS = 64
MAX_TREE_INPUTS = 32
ANOVA_ROW_BUDGET = 64 * 64 * 16
MIN_MONTE_CARLO = 8
FORMULA_TERMS = 1500  # a fully symbolic model's own formula is analysed only up to this size


# --------------------------------------------------------------------------- data classes
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


# --------------------------------------------------------------------------- evaluation
class CountingFunction:
    """Wraps ``model`` output ``k`` as ``f(x [N, n]) -> [N]`` and counts evaluated rows."""

    def __init__(self, model: nn.Module, output: int) -> None:
        self.model = model
        self.output = output
        self.rows = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.model(x)[:, self.output]


def with_reference(x: torch.Tensor, keep: list[int], reference: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` with every column not in ``keep`` replaced by ``reference``."""
    out = reference.expand_as(x).clone()
    out[:, keep] = x[:, keep]
    return out


def bipartitions(variables: list[int], limit: int = 6) -> list[tuple[list[int], list[int]]]:
    """Candidate splits ``A | B`` of ``variables`` for the multiplicative test: all of them up
    to ``limit`` variables, only "one input vs the rest" beyond."""
    first, rest = variables[0], variables[1:]
    if len(variables) > limit:
        return [([v], [w for w in variables if w != v]) for v in variables]
    splits = []
    for mask in range(0, 2 ** len(rest)):
        side_a = [first] + [v for k, v in enumerate(rest) if mask >> k & 1]
        side_b = [v for v in variables if v not in side_a]
        if side_b:
            splits.append((side_a, side_b))
    return splits


def product_residuals(
    f: CountingFunction, rows: torch.Tensor, splits: list[tuple[list[int], list[int]]], generator: torch.Generator
) -> list[float]:
    """For each split ``A | B``: how far ``f - c`` is from ``u(x_A) v(x_B)``, from values only.

    Two sample rows r, r' give four points (A from r or r', B from r or r'); separability means
    ``(f(A,B) - c)(f(A',B') - c) = (f(A,B') - c)(f(A',B) - c)``. ``c`` is fitted by least squares;
    the residual is relative to RMS of the mixed difference ``f(A,B)+f(A',B')-f(A,B')-f(A',B)``
    times the spread of ``f`` (0 = exactly separable; inf = no interaction to explain).
    """
    other = rows[random_rows(len(rows), len(rows), generator, rows.device)]
    batches = []
    for _, side_b in splits:
        for a_rows, b_rows in ((rows, rows), (other, other), (rows, other), (other, rows)):
            mixed = a_rows.clone()
            mixed[:, side_b] = b_rows[:, side_b]
            batches.append(mixed)
    with torch.no_grad():
        values = f(torch.cat(batches)).double().view(len(splits), 4, len(rows))
    residuals = []
    for f1, f2, f3, f4 in values.unbind(0):
        swap_sum, swap_product = f1 + f2 - f3 - f4, f1 * f2 - f3 * f4
        denominator = float((swap_sum**2).sum())
        constant = float((swap_product * swap_sum).sum()) / denominator if denominator > 0 else 0.0
        residual = float((swap_product - constant * swap_sum).pow(2).mean().sqrt())
        # (f1-c)(f2-c) - (f3-c)(f4-c) = swap_product - c*swap_sum; measured against the
        # non-additive part of f times its spread, which does not grow with c.
        scale = float(swap_sum.pow(2).mean().sqrt()) * float(torch.cat([f1, f2]).std())
        residuals.append(residual / scale if scale > 0 else float("inf"))
    return residuals


def reference_row(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A sample row far from the function's median, so no factor vanishes there."""
    return x[int((values - values.median()).abs().argmax())]


# --------------------------------------------------------------------------- the tree
@dataclass
class TreeContext:
    """What the tree search needs: output ``f``, rows ``x`` and partner rows ``partner`` ``[N, n]``,
    and the own share above which a pair interacts (``floor``)."""

    f: CountingFunction
    x: torch.Tensor
    partner: torch.Tensor
    names: list[str]
    floor: float
    product_threshold: float
    generator: torch.Generator
    notes: list[str] = field(default_factory=list)


def random_rows(count: int, take: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``take`` distinct row indices out of ``count`` (fewer if there are fewer), drawn with the
    CPU ``generator`` so the draw is the same on every device: ``[take]`` long on ``device``."""
    return torch.randperm(count, generator=generator, device="cpu")[:take].to(device)


def build_tree(ctx: TreeContext, variables: list[int], reference: torch.Tensor,
               additive: list[list[int]] | None = None) -> TreeNode:
    """Recursive additive / multiplicative splitting of ``variables`` (others fixed at ``reference``).
    ``additive`` gives the additive groups when they are known already (the blocks at the top)."""
    names = [ctx.names[v] for v in variables]
    if len(variables) == 1:
        return TreeNode("input", names)
    if len(variables) > MAX_TREE_INPUTS:
        ctx.notes.append(f"a group of {len(variables)} inputs is not split further (the tree splits groups of at most "
                         f"{MAX_TREE_INPUTS})")
        return TreeNode("group", names)
    rows = with_reference(ctx.x, variables, reference)
    if additive is None:
        values = SwappedValues(lambda r: ctx.f(r)[:, None], rows, with_reference(ctx.partner, variables, reference),
                               ctx.f.model.row_bytes())
        share, error = pair_shares(values, variables, values.variance())
        linked = ((share[0] > ctx.floor) & (share[0] > NOISE_SIGMAS * error[0])).cpu().numpy()
        additive = components(variables, linked)
    if len(additive) > 1:
        return flatten(TreeNode("sum", names, [build_tree(ctx, group, reference) for group in additive]))
    splits = bipartitions(variables)
    subset = rows[random_rows(len(rows), PRODUCT_TEST_ROWS, ctx.generator, rows.device)]
    residuals = product_residuals(ctx.f, subset, splits, ctx.generator)
    best = int(np.argmin(residuals))
    if residuals[best] < ctx.product_threshold:
        with torch.no_grad():
            anchor = reference_row(rows, ctx.f(rows))
        children = [build_tree(ctx, side, anchor) for side in splits[best]]
        return flatten(TreeNode("product", names, children))
    return TreeNode("group", names)


def flatten(node: TreeNode) -> TreeNode:
    """Merge nested nodes of the same kind: (a + (b + c)) → a + b + c."""
    children = []
    for child in node.children:
        children.extend(child.children if child.kind == node.kind else [child])
    children.sort(key=lambda c: c.variables)
    return TreeNode(node.kind, sorted(node.variables), children)


def find_subtree(tree: TreeNode, variables: list[str]) -> TreeNode | None:
    if sorted(tree.variables) == sorted(variables):
        return tree
    for child in tree.children:
        found = find_subtree(child, variables)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- variance shares
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


# --------------------------------------------------------------------------- per output
def error_shares(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> tuple[list[float | None], str]:
    """Per output, the share of the output variance the network leaves unexplained, and where it was
    measured: on targets ``y [N, m]`` for the rows ``x`` ("data"; rows whose targets are NaN are left out),
    else the test R² of the training record ("training record"), else unknown."""
    m = model.n_outputs
    known = torch.isfinite(y).all(dim=1) if y is not None else None
    if known is not None and int(known.sum()) >= 2:
        with torch.no_grad():
            residual = (model(x[known]).double() - y[known].double()).pow(2).mean(dim=0)
        spread = y[known].double().var(dim=0, unbiased=False).clamp_min(1e-300)
        return [float(v) for v in (residual / spread).cpu()], "data"
    training = model.meta.training if isinstance(model, KAN) and isinstance(model.meta.training, dict) else {}
    test = (training.get("metrics") or {}).get("test") if isinstance(training.get("metrics"), dict) else None
    r2 = test.get("r2") if isinstance(test, dict) else None
    if isinstance(r2, (int, float)) and math.isfinite(r2):
        return [max(1.0 - float(r2), 0.0)] * m, "training record"
    return [None] * m, "unknown"


def pair_columns(values: SwappedValues, total: torch.Tensor, variance: torch.Tensor, notes: list[str]) -> list[int]:
    """Inputs whose pairs are tested: all of them, or for wide models the ``MAX_PAIR_INPUTS`` whose
    total effect exceeds their main effect most (over the outputs). ``total [m, n]``."""
    n = total.shape[1]
    if n <= MAX_PAIR_INPUTS:
        return list(range(n))
    closed = closed_shares(values, n, [(i,) for i in range(n)], variance)
    involvement = torch.stack([total[:, i] - closed[(i,)] for i in range(n)], dim=1).amax(dim=0)
    chosen = sorted(int(i) for i in torch.argsort(involvement, descending=True)[:MAX_PAIR_INPUTS])
    notes.append(f"pairs tested among the {MAX_PAIR_INPUTS} of {n} inputs whose total effect exceeds their main effect most")
    return chosen


def analyse_output(model: nn.Module, output: int, values: SwappedValues, variance: torch.Tensor, shares: torch.Tensor,
                   total: torch.Tensor, noise: NoiseFloor, settings: InteractionSettings, generator: torch.Generator,
                   notes: list[str], residual: torch.Tensor | None = None) -> tuple[OutputReport, int]:
    """The report of output ``output`` from the shared swapped evaluations ``values``: ``shares [n, n]``
    its pair shares, ``total [n]`` its inputs' total-effect shares, ``residual [N, m]`` (target − network
    at the rows, NaN where unknown) the held-out test of the sets, if any."""
    x, names, n = values.x, model.meta.input_names, values.x.shape[1]
    f = CountingFunction(model, output)
    per_order = candidates_per_order(len(x), model.row_bytes(), settings.max_order, model.n_outputs)
    search = SetSearch(values, output, variance, noise.set_floor, settings.max_order, per_order, residual,
                       seed=settings.seed)
    pairs = search.test([(i, j) for i in range(n) for j in range(i + 1, n) if shares[i, j] > noise.set_floor])
    sets = interaction_sets(search, pairs, names)
    index = {name: i for i, name in enumerate(names)}
    members = [[index[v] for v in term.variables] for term in sets]
    used = sorted({i for i in range(n) if total[i] > noise.floor} | {i for term in members for i in term})
    blocks = set_components(n, members, used)
    reference = x.median(dim=0).values
    ctx = TreeContext(f, x, values.partner, names, noise.floor, settings.product_threshold, generator, list(notes))
    tree = build_tree(ctx, used, reference, blocks) if used else TreeNode("sum", [])
    with torch.no_grad():
        total_var = max(float(f(x).var(unbiased=False)), 1e-300)
    groups, main_effects = [], {}
    for block in blocks:
        block_variance, mains = group_variances(f, x, block, reference, generator, settings.monte_carlo)
        for i, v in mains.items():
            main_effects[names[i]] = v / total_var
        block_names = [names[i] for i in block]
        subtree = find_subtree(tree, block_names)
        groups.append(InteractionGroup(
            variables=block_names, order=len(block),
            strength=max((t.strength for t in sets if set(t.variables) <= set(block_names)), default=0.0),
            variance_share=block_variance / total_var,
            interaction_share=max(block_variance - sum(mains.values()), 0.0) / total_var if len(block) > 1 else 0.0,
            structure=subtree.describe() if subtree is not None else "g(" + ", ".join(block_names) + ")",
        ))
    report = OutputReport(
        output=model.meta.output_names[output], interaction_sets=sets, noise=noise, groups=groups,
        unused=[names[i] for i in range(n) if i not in used], main_effects=main_effects,
        pairwise=[[float(f"{v:.4g}") for v in row] for row in shares.tolist()], tree=tree,
        max_order=max((t.order for t in sets), default=1 if used else 0), notes=ctx.notes + search.notes,
        unconfirmed_sets=unconfirmed_sets(search, sets, names),
    )
    return report, f.rows + search.rows_evaluated()


# --------------------------------------------------------------------------- formula view
def formula_report(expr: sympy.Expr, names: list[str], x: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Additive terms of ``expr`` (expanded over products and integer powers of sums), each with its
    variables, order and variance share on samples ``x``; the interaction sets (the largest variable
    sets of terms of two or more inputs whose variance share exceeds ``threshold``); and the additive
    groups (connected variable sets)."""
    symbols = [sympy.Symbol(name) for name in names]
    expanded = sympy.expand(expr, power_exp=False, log=False)
    terms = [t for t in sympy.Add.make_args(expanded) if t.free_symbols]
    arrays = x.double().cpu().numpy()

    def evaluate(term: sympy.Expr) -> np.ndarray:
        function = numpy_function(symbols, term)
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(function(*arrays.T), dtype=np.float64), (len(arrays),))

    total = evaluate(expr)
    total_var = max(float(np.var(total)), 1e-300)
    term_sets = [sorted(str(s) for s in t.free_symbols) for t in terms]
    index = {name: i for i, name in enumerate(names)}
    present = sorted({index[v] for vs in term_sets for v in vs})
    groups = []
    for group in set_components(len(names), ([index[v] for v in vs] for vs in term_sets), present):
        group_names = [names[i] for i in group]
        members = [t for t, vs in zip(terms, term_sets) if set(vs) <= set(group_names)]
        share = float(np.var(evaluate(sympy.Add(*members)))) / total_var
        groups.append({"variables": group_names, "order": len(group), "variance_share": share})
    term_shares = [float(np.var(evaluate(t))) / total_var for t in terms]
    sets = maximal_sets(tuple(index[v] for v in vs) for vs, share in zip(term_sets, term_shares)
                        if len(vs) >= 2 and share > threshold)
    return {
        "expression": str(expr),
        "terms": [{"term": str(t), "variables": vs, "order": len(vs), "variance_share": share}
                  for t, vs, share in zip(terms, term_sets, term_shares)],
        "sets": [[names[i] for i in s] for s in sets],
        "groups": groups,
        "max_order": max([len(s) for s in sets] or [1 if present else 0]),
    }


def model_formulas(model: KAN) -> list[sympy.Expr] | None:
    """The composed formulas of a model whose active edges are all symbolic, else None (also when
    the formulas would be too large to expand: more than ``FORMULA_TERMS`` edge expressions)."""
    layers = model.layers
    if not all(bool(((layer.sym_active > 0) | (layer.mask == 0)).all()) for layer in layers):
        return None
    formulas, hidden = compose_with_hidden(model, max_terms=FORMULA_TERMS)
    return None if hidden else formulas


# --------------------------------------------------------------------------- structural bound
def structural_bound(model: KAN) -> list[StructuralBound]:
    """Per output: the largest input set the architecture can make interact, the inputs it
    can reach, and the polynomial degree bound (spline degree compounding; products add)."""
    names = model.meta.input_names
    node_groups: list[list[frozenset[int]]] = [[frozenset([i])] for i in range(model.n_inputs)]
    node_degree: list[float] = [1.0] * model.n_inputs
    for layer in model.layers:
        active = (layer.mask > 0).cpu().numpy()
        symbolic = (layer.sym_active > 0).cpu().numpy()
        sub_groups, sub_degree = [], []
        for j in range(layer.shape.n_sub):
            groups: list[frozenset[int]] = []
            degree = 0.0
            for i in np.nonzero(active[:, j])[0]:
                name = model.symbolic_functions[int(layer.sym_index[i, j])] if symbolic[i, j] else None
                linear = name in LINEAR_FUNCTIONS if name is not None else False
                incoming = node_groups[i] if linear else [frozenset().union(*node_groups[i])] if node_groups[i] else []
                groups.extend(incoming)
                degree = max(degree, node_degree[i] * edge_degree(model, layer, name))
            sub_groups.append(merge_overlapping(groups))
            sub_degree.append(degree)
        node_groups, node_degree = combine_subnodes(layer, sub_groups, sub_degree)
    bounds = []
    for k, output in enumerate(model.meta.output_names):
        groups = node_groups[k]
        reach = sorted(frozenset().union(*groups)) if groups else []
        degree = node_degree[k]
        bounds.append(
            StructuralBound(
                output=output,
                max_order=max((len(g) for g in groups), default=0),
                reachable=[names[i] for i in reach],
                degree_bound=None if not np.isfinite(degree) else int(degree),
            )
        )
    return bounds


def edge_degree(model: KAN, layer, name: str | None) -> float:
    """Polynomial degree an edge applies: spline degree k (or the basis degree) for numeric
    edges, the monomial's degree for polynomial symbolic edges, infinity otherwise."""
    if name is not None:
        return float(POLYNOMIAL_DEGREE.get(name, float("inf")))
    kind = model.basis["kind"]
    if kind == "bspline":
        return float(model.basis["k"])
    if kind == "chebyshev":
        return float("inf")  # polynomial in tanh(x), not in x
    return float("inf")


def merge_overlapping(groups: list[frozenset[int]]) -> list[frozenset[int]]:
    """Union of overlapping sets until all are disjoint."""
    merged: list[frozenset[int]] = []
    for group in groups:
        current = group
        keep = []
        for other in merged:
            if other & current:
                current = current | other
            else:
                keep.append(other)
        merged = keep + [current]
    return sorted(merged, key=lambda g: sorted(g))


def combine_subnodes(layer, sub_groups: list[list[frozenset[int]]], sub_degree: list[float]) -> tuple[list, list]:
    """Sum nodes keep their subnode's groups; a product node merges its factors' inputs."""
    n_sum = layer.shape.n_sum
    groups, degrees = list(sub_groups[:n_sum]), list(sub_degree[:n_sum])
    start = n_sum
    for arity in layer.shape.mult_arities:
        factor_sets = [frozenset().union(*g) for g in sub_groups[start : start + arity] if g]
        groups.append([frozenset().union(*factor_sets)] if factor_sets else [])
        degrees.append(float(sum(sub_degree[start : start + arity])))
        start += arity
    return groups, degrees


# --------------------------------------------------------------------------- entry point
def within_budget(x: torch.Tensor, y: torch.Tensor | None, row_bytes: int, generator: torch.Generator,
                  notes: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows ``x [N, n]`` (and their targets ``y [N, m]``, if any) the pair stage can afford
    (``affordable_rows``): all of them for narrow models, fewer for wide ones (said in ``notes``)."""
    n = x.shape[1]
    tested = min(n, MAX_PAIR_INPUTS)
    evaluations = 2 + n + tested * (tested - 1) // 2 + (n if n > MAX_PAIR_INPUTS else 0)
    rows = affordable_rows(evaluations, row_bytes)
    if rows >= len(x):
        return x, y
    notes.append(f"mixed differences on {rows} of {len(x)} rows ({n} inputs: {evaluations} evaluations of the rows)")
    keep = random_rows(len(x), rows, generator, x.device)
    return x[keep], (y[keep] if y is not None else None)


def stored_rows(model: KAN, limit: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows a model carries, ``x [N, n_inputs]`` and targets ``y [N, n_outputs]``: its held-out rows
    with their targets first, then its sample of training inputs (targets NaN), at most ``limit`` rows in
    all; only the training sample (``y`` None) when it keeps no held-out rows."""
    held = model.held_out_inputs[:limit].float()
    if not len(held):
        return model.sample_inputs, None
    fill = model.sample_inputs[: limit - len(held)].float()
    unknown = torch.full((len(fill), model.n_outputs), float("nan"), device=held.device)
    return torch.cat([held, fill]), torch.cat([model.held_out_targets[:limit].float(), unknown])


def held_out_residual(values: SwappedValues, y: torch.Tensor | None, notes: list[str]) -> tuple[torch.Tensor | None, int]:
    """``y − f`` ``[N, m]`` at the rows of ``values`` (NaN where a row has no target) and the number of rows
    with targets; ``(None, 0)`` when fewer than ``MIN_HELD_OUT_ROWS`` rows have them (said in ``notes``
    when some do)."""
    if y is None:
        return None, 0
    known = int(torch.isfinite(y).all(dim=1).sum())
    if known < MIN_HELD_OUT_ROWS:
        if known:
            notes.append(f"only {known} rows with targets (the held-out test needs {MIN_HELD_OUT_ROWS}): sets answer to "
                         "the noise floor")
        return None, 0
    return y.to(values(()).device).double() - values(()), known


def interactions_of_kan(model: nn.Module, x: torch.Tensor | None = None, settings: InteractionSettings | None = None,
                        formulas: list[sympy.Expr] | None = None, y: torch.Tensor | None = None) -> InteractionReport:
    """Interaction analysis of every output of ``model`` on inputs ``x`` ``[N, n_inputs]`` (default:
    the model's held-out rows with their targets, then its stored training sample: ``stored_rows``).
    ``y [N, n_outputs]``, the targets of those rows (NaN where unknown), measures the network's error and
    tests each interaction set against data (give rows the network was not trained on). ``formulas`` (one
    sympy expression per output, in the input names) adds the formula view; by default a fully symbolic
    model's own formula is used.
    """
    if not isinstance(model, KAN):
        raise KanxError(f"interactions: unsupported model type {type(model).__name__}")
    settings = settings if settings is not None else InteractionSettings()
    start = time.perf_counter()
    stored = x is None
    if stored:
        x, y = stored_rows(model, settings.max_samples)
    if x.shape[0] < 10:
        raise KanxError("interactions: need at least 10 input rows (the model stores none; pass --data)")
    generator = torch.Generator().manual_seed(settings.seed)
    if x.shape[0] > settings.max_samples:
        keep = random_rows(x.shape[0], settings.max_samples, generator, x.device)
        x, y = x[keep], (y[keep] if y is not None else None)
    x = x.float()
    names = model.meta.input_names
    if formulas is None:
        formulas = model_formulas(model)
    model.eval()
    threshold = settings.threshold if settings.threshold is not None else DEFAULT_THRESHOLD
    errors, source = error_shares(model, x, y)
    source = "held-out rows" if stored and source == "data" else source
    notes: list[str] = []
    x, y = within_budget(x, y, model.row_bytes(), generator, notes)
    values = SwappedValues(model, x, x[random_rows(len(x), len(x), generator, x.device)], model.row_bytes())
    variance = values.variance()
    residual, held_out_rows = held_out_residual(values, y, notes)
    n = x.shape[1]
    values.prefetch([(i,) for i in range(n)])
    total = total_shares(values, n, variance)
    shares, _ = pair_shares(values, pair_columns(values, total, variance, notes), variance)
    if source == "unknown":
        notes.append(f"the network's own error is unknown (no targets, no training record): the floor assumes it leaves "
                     f"{ASSUMED_ERROR_SHARE:.1%} of the variance unexplained; give --data with the outputs to measure it")
    outputs, evaluations = [], 0
    for k in range(model.n_outputs):
        noise = NoiseFloor.of(threshold, errors[k], source, held_out_rows, settings.threshold)
        report, rows = analyse_output(model, k, values, variance, shares[k], total[k], noise, settings, generator, notes,
                                      residual)
        if formulas is not None:
            report.formula = formula_report(formulas[k], names, x, noise.floor)
        outputs.append(report)
        evaluations += rows
    return InteractionReport(
        inputs=list(names), outputs=outputs, structural=structural_bound(model), threshold=threshold,
        samples=int(x.shape[0]), network_evaluations=evaluations + values.rows, seconds=time.perf_counter() - start,
    )
