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
from kanx.core.resources import rows_per_chunk
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


@dataclass
class EdgeMoments:
    """Running sums over samples of one layer's edges ``e`` ``[n_in, n_sub]`` and subnodes ``s``
    ``[n_sub]`` (float64), enough for mean |e|, std(e) and std(s) without keeping the samples."""

    count: int
    abs_sum: torch.Tensor
    edge_sum: torch.Tensor
    edge_square: torch.Tensor
    sub_sum: torch.Tensor
    sub_square: torch.Tensor

    def add(self, edges: torch.Tensor) -> None:
        """Fold in a chunk of edge values ``[N, n_in, n_sub]``."""
        e = edges.double()
        sub = e.sum(dim=1)
        self.count += e.shape[0]
        self.abs_sum += e.abs().sum(dim=0)
        self.edge_sum += e.sum(dim=0)
        self.edge_square += (e * e).sum(dim=0)
        self.sub_sum += sub.sum(dim=0)
        self.sub_square += (sub * sub).sum(dim=0)

    @staticmethod
    def spread(total: torch.Tensor, square: torch.Tensor, count: int) -> torch.Tensor:
        mean = total / count
        return (square / count - mean * mean).clamp_min(0).sqrt()


def edge_moments(model: KAN, x: torch.Tensor) -> list[EdgeMoments]:
    """Per layer, the moments of every edge over the rows of ``x`` ``[N, n_inputs]``, computed in
    chunks of rows that fit the working memory budget (``kanx.core.resources``)."""
    moments = []
    for layer in model.layers:
        shape = layer.mask.shape
        zeros = torch.zeros(shape, dtype=torch.float64, device=x.device)
        sub = torch.zeros(shape[1], dtype=torch.float64, device=x.device)
        moments.append(EdgeMoments(0, zeros.clone(), zeros.clone(), zeros.clone(), sub.clone(), sub.clone()))
    step = rows_per_chunk(model.row_bytes(), max(len(x), 1))
    for start in range(0, len(x), step):
        for moment, trace in zip(moments, model.edge_activations(x[start : start + step])):
            moment.add(trace.edges)
    return moments


@torch.no_grad()
def importance(model: KAN, x: torch.Tensor) -> Importance:
    """Importance of every edge and node of ``model`` on inputs ``x`` ``[N, n_inputs]``
    (float32 results on ``x``'s device; the samples are streamed in chunks)."""
    moments = edge_moments(model, x)
    count = max(len(x), 1)
    magnitude = [(m.abs_sum / count).float() for m in moments]
    entropy = [node_entropy(mag) for mag in magnitude]
    node_scores = [torch.zeros(w, device=x.device) for w in model.widths]
    node_scores[-1] = torch.ones(model.widths[-1], device=x.device)
    attribution: list[torch.Tensor] = [torch.empty(0, device=x.device)] * len(moments)
    for index in range(len(moments) - 1, -1, -1):
        layer, moment = model.layers[index], moments[index]
        sub = subnode_scores(node_scores[index + 1], layer.shape.n_sum, layer.shape.mult_arities)
        edge_spread = EdgeMoments.spread(moment.edge_sum, moment.edge_square, count).float()  # [n_in, n_sub]
        subnode_spread = EdgeMoments.spread(moment.sub_sum, moment.sub_square, count).float()  # [n_sub]
        scores = edge_spread * (sub / (subnode_spread + 1e-8))
        attribution[index] = scores
        node_scores[index] = scores.sum(dim=1)
    return Importance(magnitude, attribution, node_scores, entropy)
