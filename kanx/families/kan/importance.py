"""Edge and node importance of a KAN on a set of inputs.

Two views, as in the KAN papers:
- magnitude: each edge's mean |phi| over the samples (the quantity the L1 term penalises);
- attribution: scores propagated back from the outputs, so an edge matters only if it feeds
  nodes that matter. Output nodes score 1; a subnode inherits its node's score (each factor
  of a multiplication node inherits the whole score); an edge scores
  ``subnode_score * std(phi_ij) / std(subnode_j)``; a node's score is the sum of its
  outgoing edges' scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kanx.core.numerics import node_entropy
from kanx.families.kan.network import KAN


@dataclass
class Importance:
    """Per layer ``l``: ``magnitude[l]``/``attribution[l]`` ``[n_in, n_sub]``; per node layer:
    ``node_scores[l]`` ``[widths[l]]`` (index 0 = inputs); ``entropy[l]`` ``[n_sub]`` — the
    entropy (nats) of each subnode's distribution of incoming-edge magnitudes."""

    magnitude: list[torch.Tensor]
    attribution: list[torch.Tensor]
    node_scores: list[torch.Tensor]
    entropy: list[torch.Tensor]


def subnode_scores(layer_node_scores: torch.Tensor, n_sum: int, arities: tuple[int, ...]) -> torch.Tensor:
    """Spread node scores ``[n_out]`` onto subnodes ``[n_sub]``."""
    parts = [layer_node_scores[:n_sum]]
    for index, arity in enumerate(arities):
        parts.append(layer_node_scores[n_sum + index].repeat(arity))
    return torch.cat(parts)


@torch.no_grad()
def importance(model: KAN, x: torch.Tensor) -> Importance:
    """Importance of every edge and node of ``model`` on inputs ``x`` ``[N, n_inputs]``."""
    traces = model.edge_activations(x)
    magnitude = [trace.edges.abs().mean(dim=0) for trace in traces]
    entropy = [node_entropy(mag) for mag in magnitude]
    node_scores = [torch.zeros(w) for w in model.widths]
    node_scores[-1] = torch.ones(model.widths[-1])
    attribution: list[torch.Tensor] = [torch.empty(0)] * len(traces)
    for index in range(len(traces) - 1, -1, -1):
        layer, trace = model.layers[index], traces[index]
        sub = subnode_scores(node_scores[index + 1], layer.shape.n_sum, layer.shape.mult_arities)
        edge_spread = trace.edges.std(dim=0, unbiased=False)  # [n_in, n_sub]
        subnode_spread = trace.edges.sum(dim=1).std(dim=0, unbiased=False)  # [n_sub]
        scores = edge_spread * (sub / (subnode_spread + 1e-8))
        attribution[index] = scores
        node_scores[index] = scores.sum(dim=1)
    return Importance(magnitude, attribution, node_scores, entropy)
