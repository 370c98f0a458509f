"""``kanx demo``: the pipeline on a bundled sample, stage by stage.

Each stage is a function ``(context) -> list of written paths``; later features append stages
to ``STAGES``. ``context`` carries the output folder, the loaded model and the sample data.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from kanx.core.errors import KanxError
from kanx.interaction import interactions
from kanx.interaction.figure import interaction_figure
from kanx.io.checkpoint import save_model
from kanx.io.data import Dataset, load_csv
from kanx.io.files import atomic_write, atomic_write_text, check_output_folder, to_json
from kanx.io.load import load_model
from kanx.plot import PlotSettings, plot_activations
from kanx.pruning import prune
from kanx.summary import describe
from kanx.symbolic import symbolify
from kanx.training.kan import regression_metrics

SAMPLE_NAME = "exp_sin"


@dataclass
class DemoContext:
    out: Path
    model_path: Path
    model: torch.nn.Module
    data: Dataset
    results: dict = field(default_factory=dict)


Stage = Callable[[DemoContext], list[Path]]


def sample_path(filename: str) -> Path:
    """Path of a bundled sample file (``samples/`` in the source tree, ``kanx.samples`` installed)."""
    path = Path(str(resources.files("kanx.samples").joinpath(filename)))
    if not path.exists():
        raise KanxError(f"bundled sample {filename} is missing from the installation")
    return path


def stage_info(ctx: DemoContext) -> list[Path]:
    info_path = ctx.out / "info.json"
    info = describe(ctx.model)
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    with torch.no_grad():
        metrics = regression_metrics(ctx.model(ctx.data.x), ctx.data.y)
    ctx.results["info"] = {"widths": info["widths"], "parameters": info["parameters"], "r2_on_sample": metrics.r2}
    return [info_path]


def stage_plot(ctx: DemoContext) -> list[Path]:
    """Activation grids and network diagram as PNGs (``activations_layer<L>.png``, ``activations_diagram.png``)."""
    figures = plot_activations(ctx.model, settings=PlotSettings(diagram=True, title=SAMPLE_NAME))
    written = figures.save(ctx.out / "activations", "png", 100)
    ctx.results["plot"] = {"files": [path.name for path in written]}
    return written


def stage_prune(ctx: DemoContext) -> list[Path]:
    """Auto-prune (R² >= 0.99 against the original) into ``model.pruned.pt``; later stages then
    work on the pruned model (``ctx.model``/``ctx.model_path`` are replaced)."""
    report = prune(ctx.model, ctx.data)
    pruned = report.model
    path = save_model(pruned, ctx.out / "model.pruned.pt")
    ctx.results["prune"] = {
        "widths": [report.widths_before, report.widths_after],
        "edges": [report.edges_before, report.edges_after],
        "fidelity_r2": report.fidelity,
        "unused_inputs": report.unused_inputs,
    }
    ctx.model, ctx.model_path = pruned, path
    return [path]


def stage_symbolify(ctx: DemoContext) -> list[Path]:
    """The formula by the default strategy (edge fits composed, and the decomposition on the
    sample's targets; the one that fits held-out rows better) written to ``formula.tex``."""
    result = symbolify(ctx.model, data=ctx.data)
    path = ctx.out / "formula.tex"
    atomic_write_text(path, result.to_latex())
    fid = result.fidelity[0]
    ctx.results["symbolify"] = {
        "formula": str(result.expressions[0]),
        "r2_vs_network": fid.network.r2,
        "r2_vs_data": fid.data.r2 if fid.data else None,
        "flagged_edges": len(result.flagged),
    }
    return [path]


def stage_interactions(ctx: DemoContext) -> list[Path]:
    """Interaction report (JSON) and its heatmap/tree figure."""
    report = interactions(ctx.model)
    json_path = atomic_write_text(ctx.out / "interactions.json", to_json(report.to_dict()) + "\n")
    figure_path = ctx.out / "interactions.png"
    figure = interaction_figure(report)
    atomic_write(figure_path, lambda tmp: figure.savefig(tmp, format="png", dpi=110, metadata={"Software": None}))
    output = report.outputs[0]
    ctx.results["interactions"] = {
        "structure": output.tree.describe(),
        "groups": [group.variables for group in output.groups],
        "max_order": output.max_order,
    }
    return [json_path, figure_path]


# Prune first so the plots, the formula and the interaction report describe the pruned network.
STAGES: list[tuple[str, Stage]] = [
    ("info", stage_info),
    ("prune", stage_prune),
    ("plot", stage_plot),
    ("symbolify", stage_symbolify),
    ("interactions", stage_interactions),
]


def prepare(out: Path) -> DemoContext:
    """Create ``out`` and copy the bundled checkpoint and data into it."""
    check_output_folder(out, "--out")
    out.mkdir(exist_ok=True)
    model_path = out / "model.pt"
    shutil.copyfile(sample_path(f"{SAMPLE_NAME}.pt"), model_path)
    data_path = out / "data.csv"
    shutil.copyfile(sample_path(f"{SAMPLE_NAME}.csv"), data_path)
    return DemoContext(out, model_path, load_model(model_path), load_csv(data_path, ["f"]))


def run_demo(out: Path, on_stage: Callable[[str, list[Path]], None] | None = None) -> DemoContext:
    """Run every stage on the bundled exp(sin(pi*x)+y^2) sample, writing into ``out``."""
    ctx = prepare(out)
    if on_stage:
        on_stage("load", [ctx.model_path, ctx.out / "data.csv"])
    for name, stage in STAGES:
        written = stage(ctx)
        if on_stage:
            on_stage(name, written)
    return ctx
