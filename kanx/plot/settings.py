"""``PlotSettings``: every option of the plot stage, validated where it is stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kanx.core.choices import NODE_ORDERS
from kanx.core.errors import KanxError
from kanx.core.resources import check_resources


@dataclass(frozen=True)
class PlotSettings:
    """Options of ``kanx.plot_activations`` (CLI flag in brackets).

    ``layer`` [--layer]: only this KAN layer's grid (0-based); ``top`` [--top]: at most this many
    panels per grid, the most important first; ``show_pruned`` [--show-pruned]: pruned edges drawn
    greyed; ``diagram`` adds the network diagram after the grids (KAN; ``kanx plot-activations``
    draws it), ``diagram_only`` [--diagram-only] draws only the diagram; ``title`` prefixes every
    heading; the curves are computed on ``device`` [--device] within ``max_memory`` [--max-memory].
    ``node_order`` [--node-order] places the diagram's hidden nodes: ``auto`` in the order stored
    with the model, else in one that minimises edge crossings; ``crossings`` in a crossing-minimal
    order computed afresh; ``index`` by node index (``kanx.plot.order``).
    """

    layer: int | None = None
    top: int | None = None
    show_pruned: bool = False
    diagram: bool = False
    diagram_only: bool = False
    title: str = ""
    device: str = "cpu"
    max_memory: str | int | None = None
    node_order: str = "auto"

    def __post_init__(self) -> None:
        check_resources(self.device, self.max_memory)
        if self.top is not None and self.top < 1:
            raise KanxError(f"--top {self.top}: must be at least 1")
        if self.layer is not None and self.layer < 0:
            raise KanxError(f"--layer {self.layer}: must be 0 or more")
        if self.node_order not in NODE_ORDERS:
            raise KanxError(f"--node-order {self.node_order}: must be one of {', '.join(NODE_ORDERS)}")

    @property
    def with_diagram(self) -> bool:
        return self.diagram or self.diagram_only

    def to_dict(self) -> dict:
        return asdict(self)
