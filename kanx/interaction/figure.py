"""Figures of an interaction report: pair heatmap, UpSet-style interaction sets, interaction tree.

Built on ``matplotlib.figure.Figure`` directly, so the user's matplotlib backend is never touched.
"""

from __future__ import annotations

import numpy as np

from kanx.interaction.karsein import KarSeinInteractionReport
from kanx.interaction.report import InteractionReport, TreeNode
from kanx.interaction.sets import InteractionSet

NODE_LABELS = {"sum": "+", "product": "×"}


def heatmap_axes(axes, names: list[str], shares: np.ndarray, title: str, figure) -> None:
    """Pair shares ``[n, n]`` on a square-root colour scale (weak pairs stay visible)."""
    from matplotlib.colors import PowerNorm

    n = len(names)
    top = max(float(shares.max()), 1e-12)
    image = axes.imshow(shares, cmap="viridis", norm=PowerNorm(0.5, vmin=0, vmax=top))
    long_names = max(len(name) for name in names) > 3
    axes.set_xticks(range(n), names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    axes.set_yticks(range(n), names)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                if i != j and shares[i, j] > 0.01 * top:
                    colour = "white" if shares[i, j] < 0.36 * top else "black"
                    axes.text(j, i, f"{shares[i, j]:.2g}", ha="center", va="center", fontsize=6, color=colour)
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of variance")


def upset_axes(bar_axes, dot_axes, sets: list[InteractionSet], names: list[str]) -> None:
    """UpSet-style view of overlapping sets: one column per set, its own share as a bar above and its
    members as joined dots below (rows: the inputs that belong to some set, in ``names`` order)."""
    if not sets:
        for axes in (bar_axes, dot_axes):
            axes.axis("off")
        bar_axes.text(0.5, 0.5, "no interaction above the noise", ha="center", va="center", transform=bar_axes.transAxes)
        return
    members = [name for name in names if any(name in s.variables for s in sets)]
    row = {name: k for k, name in enumerate(members)}
    columns = range(len(sets))
    bar_axes.bar(columns, [100 * s.strength for s in sets], yerr=[100 * s.error for s in sets], color="#3b6ea5",
                 capsize=2)
    bar_axes.set_yscale("log")
    bar_axes.set_ylabel("own share (%)")
    bar_axes.set_xticks(list(columns), [f"order {s.order}" for s in sets], rotation=45, ha="right", fontsize=7)
    bar_axes.set_title("interaction sets", fontsize=10)
    for k in columns:
        dot_axes.scatter([k] * len(members), range(len(members)), color="#d0d0d0", s=30, zorder=1)
        inside = sorted(row[v] for v in sets[k].variables)
        dot_axes.plot([k, k], [inside[0], inside[-1]], color="black", linewidth=1.5, zorder=2)
        dot_axes.scatter([k] * len(inside), inside, color="black", s=30, zorder=3)
    dot_axes.set_yticks(range(len(members)), members)
    dot_axes.set_ylim(len(members) - 0.5, -0.5)
    dot_axes.set_xlim(-0.5, len(sets) - 0.5)
    dot_axes.set_xticks([])
    for side in ("top", "right", "bottom"):
        dot_axes.spines[side].set_visible(False)


def tree_layout(node: TreeNode, depth: int = 0, leaves: list[int] | None = None) -> list[tuple[TreeNode, float, int, int]]:
    """``(node, x, depth, parent index)`` for every node, leaves at consecutive x, parents centred."""
    leaves = leaves if leaves is not None else [0]
    placed: list[tuple[TreeNode, float, int, int]] = []

    def visit(current: TreeNode, level: int, parent: int) -> float:
        index = len(placed)
        placed.append((current, 0.0, level, parent))
        if current.children:
            xs = [visit(child, level + 1, index) for child in current.children]
            x = float(np.mean(xs))
        else:
            x = float(leaves[0])
            leaves[0] += 1
        placed[index] = (current, x, level, parent)
        return x

    visit(node, depth, -1)
    return placed


def tree_axes(axes, tree: TreeNode, caption: list[str]) -> None:
    """The interaction tree drawn as a tree: sums (+), products (×), non-separable groups g(...), inputs."""
    axes.axis("off")
    axes.set_title("interaction tree", fontsize=10)
    if not tree.variables:
        axes.text(0.5, 0.5, "(constant)", ha="center", va="center", transform=axes.transAxes)
        return
    placed = tree_layout(tree)
    for _, x, depth, parent in placed:
        if parent >= 0:
            axes.plot([placed[parent][1], x], [-placed[parent][2], -depth], color="#888888", linewidth=1, zorder=1)
    for node, x, depth, _ in placed:
        if node.kind == "input":
            label, colour = node.variables[0], "#e8f0fa"
        elif node.kind == "group":
            label, colour = "g(" + ", ".join(node.variables) + ")", "#fde8d8"
        else:
            label, colour = NODE_LABELS[node.kind], "#ffffff"
        axes.text(x, -depth, label, ha="center", va="center", fontsize=8, zorder=2,
                  bbox={"boxstyle": "round,pad=0.3", "facecolor": colour, "edgecolor": "#555555"})
    width = max(x for _, x, _, _ in placed)
    height = max(depth for _, _, depth, _ in placed)
    axes.set_xlim(-0.8, width + 0.8)
    axes.set_ylim(-height - 0.6 - 0.35 * len(caption), 0.6)
    axes.text(0.0, 0.0, "\n".join(caption), va="bottom", ha="left", fontsize=8, transform=axes.transAxes)


def interaction_figure(report: InteractionReport, output: int = 0):
    """A KAN output's figure: pair heatmap, UpSet-style interaction sets and the interaction tree."""
    from matplotlib.figure import Figure

    result = report.outputs[output]
    names = report.inputs
    side = 2.0 + 0.45 * len(names)
    set_width = 2.0 + 0.5 * max(len(result.interaction_sets), 2)
    figure = Figure(figsize=(side + 1.5 + set_width + 5.0, 1.2 + max(4.5, side)), layout="constrained")
    grid = figure.add_gridspec(2, 3, width_ratios=[side + 1.5, set_width, 5.0], height_ratios=[1, 1])
    heatmap_axes(figure.add_subplot(grid[:, 0]), names, np.array(result.pairwise), f"pair interaction shares ({result.output})",
                 figure)
    upset_axes(figure.add_subplot(grid[0, 1]), figure.add_subplot(grid[1, 1]), result.interaction_sets, names)
    bound = report.structural[output]
    caption = [f"max order found: {result.max_order}",
               f"architecture bound: {bound.max_order} inputs" + (f", degree {bound.degree_bound}" if bound.degree_bound else "")]
    if result.unused:
        caption.append("unused: " + ", ".join(result.unused))
    tree_axes(figure.add_subplot(grid[:, 2]), result.tree, caption)
    return figure


def field_figure(report: KarSeinInteractionReport):
    """A KarSein model's figure: field-pair heatmap and UpSet-style field interaction sets."""
    from matplotlib.figure import Figure

    side = 2.0 + 0.45 * len(report.fields)
    set_width = 2.0 + 0.5 * max(len(report.interaction_sets), 2)
    figure = Figure(figsize=(side + 1.5 + set_width, 1.2 + max(4.5, side)), layout="constrained")
    grid = figure.add_gridspec(2, 2, width_ratios=[side + 1.5, set_width])
    heatmap_axes(figure.add_subplot(grid[:, 0]), report.fields, np.array(report.pairwise), "field pair shares of the score",
                 figure)
    upset_axes(figure.add_subplot(grid[0, 1]), figure.add_subplot(grid[1, 1]), report.interaction_sets, report.fields)
    return figure
