"""The interaction tree: recursive separability tests on the network's values. Inside a block,
inputs split into additive groups by their pair shares with the other inputs fixed, and a
non-additive group is tested for multiplicative separability ``f - c = u(x_A) * v(x_B)`` from
values only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from kanx.interaction.report import TreeNode
from kanx.interaction.sets import (
    NOISE_SIGMAS,
    SwappedValues,
    components,
    pair_shares,
)

PRODUCT_TEST_ROWS = 256
MAX_TREE_INPUTS = 32


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
