"""Which inputs act together, at what order, and how much of the output each interaction carries.

Numerical analysis of the network itself (no formula needed):
- pairwise strength ``S_ij = RMS(d2f/dxi dxj * s_i * s_j) / s_f`` over the samples (autograd,
  batched; ``s`` = standard deviations), 0 meaning no interaction;
- an interaction tree from recursive separability tests: inputs split into additive groups
  (connected components of the graph ``S_ij > threshold``), and a non-additive group is tested
  for multiplicative separability ``f - c = u(x_A) * v(x_B)`` via the identity
  ``(f - c) * d2f/dadb = df/da * df/db``, with the constant ``c`` fitted by least squares;
- a functional-ANOVA variance decomposition: each additive group's share of the output
  variance, split into the main effects of its inputs and the interaction remainder.

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
from kanx.core.resources import rows_per_chunk
from kanx.families.kan.compose import compose_with_hidden
from kanx.families.kan.network import KAN
from kanx.interactions.settings import InteractionSettings

DEFAULT_THRESHOLD = InteractionSettings.threshold
DEFAULT_PRODUCT_THRESHOLD = InteractionSettings.product_threshold
PRODUCT_TEST_ROWS = 256
UNUSED_THRESHOLD = 0.01
LINEAR_FUNCTIONS = {"x", "0"}
POLYNOMIAL_DEGREE = {"0": 0, "x": 1, "x^2": 2, "x^3": 3, "x^4": 4}
# Wide models: the n backward passes of the Hessian run on at most this many rows in all (at
# least MIN_HESSIAN_ROWS rows), the tree splits groups of at most MAX_TREE_INPUTS inputs, and a
# group's main-effect ANOVA evaluates about ANOVA_ROW_BUDGET rows (Monte Carlo size shrunk to fit,
# not below MIN_MONTE_CARLO). Models of up to ~100 inputs are unaffected.
HESSIAN_ROW_BUDGET = 100_000
MIN_HESSIAN_ROWS = 64
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
    """An additive group of inputs: its order (number of inputs), the strongest pairwise
    interaction inside it, its share of output variance and the part of that share carried by
    interactions (beyond the main effects of its inputs)."""

    variables: list[str]
    order: int
    strength: float
    variance_share: float
    interaction_share: float
    structure: str


@dataclass
class OutputReport:
    """Interaction analysis of one output."""

    output: str
    groups: list[InteractionGroup]
    unused: list[str]
    main_effects: dict[str, float]
    pairwise: list[list[float]]
    tree: TreeNode
    max_order: int
    formula: dict | None = None
    notes: list[str] = field(default_factory=list)


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

    def _repr_html_(self) -> str:
        """Jupyter: per output, its structure and the table of interaction groups."""
        parts = []
        for result, bound in zip(self.outputs, self.structural):
            rows = [(", ".join(g.variables), g.order, g.structure, f"{g.strength:.3g}", f"{100 * g.variance_share:.1f}%",
                     f"{100 * g.interaction_share:.1f}%") for g in result.groups]
            caption = f"{result.output} = {result.tree.describe() or '(constant)'}"
            parts.append(html_table(("inputs", "order", "structure", "strength", "variance share", "interaction share"), rows, caption))
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


def derivatives(f: CountingFunction, x: torch.Tensor, columns: list[int],
                hessian_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Values ``[N]`` and gradient ``[N, n]`` of ``f`` at rows ``x``, and the mean over rows of
    the squared scaled-free Hessian ``mean_r H_ij(r)^2`` ``[n, n]`` (only rows/columns in
    ``columns`` are computed; others are 0) on the first ``hessian_rows`` rows (all by default).

    Rows are processed in chunks that fit the working memory budget, so the ``[N, n, n]``
    Hessian is never held at once. Returns ``(values, gradient, hessian_square_mean, rows used)``.
    """
    n_rows, n = x.shape
    used_rows = n_rows if hessian_rows is None else min(n_rows, hessian_rows)
    step = rows_per_chunk(4 * n * n + 8 * f.model.row_bytes(), max(n_rows, 1))
    values, gradients = [], []
    square = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for start in range(0, n_rows, step):
        chunk = x[start : start + step].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            value = f(chunk)
            gradient = torch.autograd.grad(value.sum(), chunk, create_graph=True)[0]
            hessian_part = chunk[: max(0, used_rows - start)]
            for i in columns if len(hessian_part) else []:
                if not gradient.requires_grad:
                    break
                row = torch.autograd.grad(gradient[: len(hessian_part), i].sum(), chunk, retain_graph=True,
                                          allow_unused=True)[0]
                if row is not None:
                    square[i] += row[: len(hessian_part)].detach().double().pow(2).sum(dim=0)
        values.append(value.detach())
        gradients.append(gradient.detach())
    return torch.cat(values), torch.cat(gradients), square / max(used_rows, 1), used_rows


def with_reference(x: torch.Tensor, keep: list[int], reference: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` with every column not in ``keep`` replaced by ``reference``."""
    out = reference.expand_as(x).clone()
    out[:, keep] = x[:, keep]
    return out


def components(nodes: list[int], linked: np.ndarray) -> list[list[int]]:
    """Connected components of the graph on ``nodes`` with adjacency ``linked`` (full-size)."""
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


def pair_strengths(hessian_square: torch.Tensor, scales: torch.Tensor, spread: float) -> np.ndarray:
    """``S_ij = RMS(H_ij s_i s_j) / s_f`` from ``hessian_square`` = ``mean_r H_ij(r)^2`` ``[n, n]``:
    ``[n, n]``, zero diagonal. A pair with one row computed (``H_ij`` but not ``H_ji``) takes it."""
    scales = scales.double()
    strength = (hessian_square * scales[:, None] ** 2 * scales[None, :] ** 2).sqrt() / max(spread, 1e-12)
    strength = torch.where((strength > 0) & (strength.T > 0), 0.5 * (strength + strength.T), strength + strength.T)
    strength.fill_diagonal_(0)
    return strength.float().cpu().numpy()


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
    f: CountingFunction
    x: torch.Tensor
    names: list[str]
    scales: torch.Tensor
    threshold: float
    product_threshold: float
    generator: torch.Generator
    notes: list[str] = field(default_factory=list)


def hessian_rows(n_inputs: int) -> int:
    """Rows whose Hessian the pairwise strengths average over: every row of a narrow model, fewer
    for wide ones so the ``n_inputs`` backward passes stay within ``HESSIAN_ROW_BUDGET`` rows."""
    return max(MIN_HESSIAN_ROWS, HESSIAN_ROW_BUDGET // max(n_inputs, 1))


def random_rows(count: int, take: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``take`` distinct row indices out of ``count`` (fewer if there are fewer), drawn with the
    CPU ``generator`` so the draw is the same on every device: ``[take]`` long on ``device``."""
    return torch.randperm(count, generator=generator, device="cpu")[:take].to(device)


def build_tree(ctx: TreeContext, variables: list[int], reference: torch.Tensor) -> TreeNode:
    """Recursive additive / multiplicative splitting of ``variables`` (others fixed at ``reference``)."""
    names = [ctx.names[v] for v in variables]
    if len(variables) == 1:
        return TreeNode("input", names)
    if len(variables) > MAX_TREE_INPUTS:
        ctx.notes.append(f"a group of {len(variables)} inputs is not split further (the tree splits groups of at most "
                         f"{MAX_TREE_INPUTS})")
        return TreeNode("group", names)
    rows = with_reference(ctx.x, variables, reference)
    values, _, hessian_square, _ = derivatives(ctx.f, rows, variables, hessian_rows(len(variables)))
    strength = pair_strengths(hessian_square, ctx.scales, float(values.std(unbiased=False)))
    additive = components(variables, strength > ctx.threshold)
    if len(additive) > 1:
        return flatten(TreeNode("sum", names, [build_tree(ctx, group, reference) for group in additive]))
    splits = bipartitions(variables)
    subset = rows[random_rows(len(rows), PRODUCT_TEST_ROWS, ctx.generator, rows.device)]
    residuals = product_residuals(ctx.f, subset, splits, ctx.generator)
    best = int(np.argmin(residuals))
    if residuals[best] < ctx.product_threshold:
        anchor = reference_row(rows, values)
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


def leaf_structure(tree: TreeNode) -> str:
    return tree.describe()


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
def analyse_output(
    model: nn.Module,
    output: int,
    x: torch.Tensor,
    names: list[str],
    threshold: float,
    product_threshold: float,
    generator: torch.Generator,
    mc: int,
) -> tuple[OutputReport, int]:
    f = CountingFunction(model, output)
    n = x.shape[1]
    scales = x.std(dim=0, unbiased=False).clamp_min(1e-12)
    values, gradient, hessian_square, rows = derivatives(f, x, list(range(n)), hessian_rows(n))
    notes = [] if rows == len(x) else [f"pairwise strengths from the Hessian on {rows} of {len(x)} rows ({n} inputs)"]
    spread = float(values.std(unbiased=False))
    strength = pair_strengths(hessian_square, scales, spread)
    main_strength = (gradient * scales).pow(2).mean(dim=0).sqrt().cpu().numpy() / max(spread, 1e-12)
    used = [i for i in range(n) if main_strength[i] > UNUSED_THRESHOLD or strength[i].max() > threshold]
    unused = [names[i] for i in range(n) if i not in used]
    reference = x.median(dim=0).values
    ctx = TreeContext(f, x, names, scales, threshold, product_threshold, generator, notes)
    if not used:
        tree = TreeNode("sum", [])
        groups_idx: list[list[int]] = []
    else:
        tree = build_tree(ctx, used, reference)
        groups_idx = components(used, strength > threshold)
    total_var = max(float(values.var(unbiased=False)), 1e-300)
    groups, main_effects = [], {}
    for group in groups_idx:
        variance, mains = group_variances(f, x, group, reference, generator, mc)
        for i, v in mains.items():
            main_effects[names[i]] = v / total_var
        group_names = [names[i] for i in group]
        subtree = find_subtree(tree, group_names)
        inner = strength[np.ix_(group, group)]
        groups.append(
            InteractionGroup(
                variables=group_names,
                order=len(group),
                strength=float(inner.max()) if len(group) > 1 else 0.0,
                variance_share=variance / total_var,
                interaction_share=max(variance - sum(mains.values()), 0.0) / total_var if len(group) > 1 else 0.0,
                structure=subtree.describe() if subtree is not None else "g(" + ", ".join(group_names) + ")",
            )
        )
    report = OutputReport(
        output=model.meta.output_names[output] if isinstance(model, KAN) else f"y_{output + 1}",
        groups=groups,
        unused=unused,
        main_effects=main_effects,
        pairwise=strength.round(6).tolist(),
        tree=tree,
        max_order=max((g.order for g in groups), default=0),
        notes=ctx.notes,
    )
    return report, f.rows


# --------------------------------------------------------------------------- formula view
def formula_report(expr: sympy.Expr, names: list[str], x: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Additive terms of ``expr`` (expanded over products and integer powers of sums), grouped
    by connected variable sets, each with its order and variance share on samples ``x``."""
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
    linked = np.zeros((len(names), len(names)), dtype=bool)
    for variables in term_sets:
        for a in variables:
            for b in variables:
                linked[index[a], index[b]] = True
    present = sorted({index[v] for vs in term_sets for v in vs})
    groups = []
    for group in components(present, linked):
        group_names = [names[i] for i in group]
        members = [t for t, vs in zip(terms, term_sets) if set(vs) <= set(group_names)]
        share = float(np.var(evaluate(sympy.Add(*members)))) / total_var
        groups.append({"variables": group_names, "order": len(group), "variance_share": share})
    return {
        "expression": str(expr),
        "terms": [
            {"term": str(t), "variables": vs, "order": len(vs), "variance_share": float(np.var(evaluate(t))) / total_var}
            for t, vs in zip(terms, term_sets)
        ],
        "groups": groups,
        "max_order": max((g["order"] for g in groups if g["variance_share"] > threshold**2), default=0),
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
def interactions_of_kan(
    model: nn.Module,
    x: torch.Tensor | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    product_threshold: float = DEFAULT_PRODUCT_THRESHOLD,
    formulas: list[sympy.Expr] | None = None,
    max_samples: int = 1000,
    monte_carlo: int = 64,
    seed: int = 0,
) -> InteractionReport:
    """Interaction analysis of every output of ``model`` on inputs ``x`` ``[N, n_inputs]``
    (default: the model's stored sample). ``formulas`` (one sympy expression per output, in the
    input names) adds the formula view; by default a fully symbolic model's own formula is used.
    """
    if not isinstance(model, KAN):
        raise KanxError(f"interactions: unsupported model type {type(model).__name__}")
    start = time.perf_counter()
    if x is None:
        x = model.sample_inputs
    if x.shape[0] < 10:
        raise KanxError("interactions: need at least 10 input rows (the model stores none; pass --data)")
    generator = torch.Generator().manual_seed(seed)
    if x.shape[0] > max_samples:
        x = x[random_rows(x.shape[0], max_samples, generator, x.device)]
    x = x.float()
    names = model.meta.input_names
    if formulas is None:
        formulas = model_formulas(model)
    model.eval()
    outputs, evaluations = [], 0
    for k in range(model.n_outputs):
        report, rows = analyse_output(model, k, x, names, threshold, product_threshold, generator, monte_carlo)
        if formulas is not None:
            report.formula = formula_report(formulas[k], names, x, threshold)
        outputs.append(report)
        evaluations += rows
    return InteractionReport(
        inputs=list(names),
        outputs=outputs,
        structural=structural_bound(model),
        threshold=threshold,
        samples=int(x.shape[0]),
        network_evaluations=evaluations,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- figure
def interaction_figure(report: InteractionReport, output: int = 0):
    """A matplotlib figure: the pairwise-strength heatmap and the interaction tree of one output."""
    from matplotlib.figure import Figure

    result = report.outputs[output]
    names = report.inputs
    strength = np.array(result.pairwise)
    n = len(names)
    side = 2.0 + 0.45 * n
    figure = Figure(figsize=(side + 1.2 + 4.5, 0.9 + max(3.5, side)), layout="constrained")
    heat_axes, tree_axes = figure.subplots(1, 2, width_ratios=[side + 1.2, 4.5])
    image = heat_axes.imshow(strength, cmap="viridis", vmin=0, vmax=max(float(strength.max()), report.threshold))
    long_names = max(len(name) for name in names) > 3
    heat_axes.set_xticks(range(n), names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    heat_axes.set_yticks(range(n), names)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                if i != j:
                    colour = "white" if strength[i, j] < 0.6 * strength.max() else "black"
                    heat_axes.text(j, i, f"{strength[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    heat_axes.set_title(f"pairwise interaction strength ({result.output})", fontsize=10)
    figure.colorbar(image, ax=heat_axes, shrink=0.8)
    tree_axes.axis("off")
    lines = tree_lines(result.tree)
    lines += ["", f"max order found: {result.max_order}"]
    bound = report.structural[output]
    lines.append(f"architecture bound: {bound.max_order} inputs" + (f", degree {bound.degree_bound}" if bound.degree_bound else ""))
    if result.unused:
        lines.append("unused: " + ", ".join(result.unused))
    tree_axes.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=9, transform=tree_axes.transAxes)
    tree_axes.set_title("interaction tree", fontsize=10)
    return figure


def tree_lines(node: TreeNode, prefix: str = "") -> list[str]:
    """Indented text rendering of the interaction tree."""
    label = {"sum": "+ (additive)", "product": "× (multiplicative)", "group": "non-separable " + ", ".join(node.variables)}
    lines = [prefix + (node.variables[0] if node.kind == "input" else label[node.kind])]
    for child in node.children:
        lines.extend(tree_lines(child, prefix + "   "))
    return lines
