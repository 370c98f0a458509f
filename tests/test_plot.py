"""``kanx plot-activations`` and the ``kanx.plot`` API: panels, overlays, files, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from kanx.cli import app
from kanx.families.kan.importance import importance
from kanx.families.kan.network import KAN
from kanx.io.checkpoint import save_model
from kanx.io.load import load_model
from kanx.plot import plot_activations, plot_network


def panel_gids(fig, prefix: str = "panel-") -> list[str]:
    """gids of the panel titles (or symbolic overlays) drawn in a figure."""
    return [t.get_gid() for ax in fig.axes for t in ax.texts if (t.get_gid() or "").startswith(prefix)]


def sample(samples: Path, name: str = "exp_sin") -> KAN:
    return load_model(samples / f"{name}.pt")


def check_image(path: Path, min_side: int = 200) -> None:
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side, image.shape
    assert image[..., :3].std() > 0.05  # not blank


# ----------------------------------------------------------------- API
def test_one_panel_per_active_edge(samples: Path) -> None:
    model = sample(samples, "xy_sinz_mult")
    model.layers[0].mask[2, 1] = 0  # prune one edge
    figures = plot_activations(model)
    assert len(figures) == len(model.layers)
    for fig, counts in zip(figures, model.edge_counts()):
        assert len(panel_gids(fig)) == counts["active"]
    assert "panel-0-2-1" not in panel_gids(figures[0])
    greyed = plot_activations(model, layer=0, show_pruned=True)
    assert len(greyed) == 1 and "panel-0-2-1" in panel_gids(greyed[0])
    assert len(panel_gids(greyed[0])) == model.layers[0].mask.numel()


def test_top_keeps_the_most_important(samples: Path) -> None:
    model = sample(samples, "xy_sinz")
    figures = plot_activations(model, top=3)
    scores = importance(model, model.sample_inputs).attribution
    for index, fig in enumerate(figures):
        ranked = sorted(((float(s), i, j) for (i, j), s in np.ndenumerate(scores[index].numpy())), reverse=True)
        assert panel_gids(fig) == [f"panel-{index}-{i}-{j}" for _, i, j in ranked[:3]]  # most important first
    # xy_sinz: the strongest layer-0 edges are x and z feeding their nodes
    assert set(panel_gids(figures[0])[:2]) == {"panel-0-2-3", "panel-0-0-0"}


def test_overlays_exactly_on_symbolic_edges(samples: Path) -> None:
    model = sample(samples)
    assert all(panel_gids(f, "symbolic-") == [] for f in plot_activations(model))
    model.set_symbolic(0, 0, 4, "sin", (-3.1, 0.0, -0.176, -0.169))
    model.set_symbolic(1, 4, 0, "exp", (4.0, -1.6, 14.66, -1.9))
    figures = plot_activations(model)
    assert panel_gids(figures[0], "symbolic-") == ["symbolic-0-0-4"]
    assert panel_gids(figures[1], "symbolic-") == ["symbolic-1-4-0"]
    overlay = next(t for t in figures[0].axes[0].texts if t.get_gid() == "symbolic-0-0-4")
    assert "sin" in overlay.get_text() and "R²=0.99" in overlay.get_text()


def test_diagram_marks_multiplication_nodes(samples: Path) -> None:
    (fig,) = plot_network(sample(samples, "threeway"), top=2)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"x1", "x2", "x3", "x4", "f"} <= set(texts)
    markers = [c for c in fig.axes[0].collections if type(c).__name__ == "PathCollection"]
    # widths [4, 2, 1], hidden node 1 a product: 4 input dots; 1 sum dot, a circle and a × on it; 1 output dot
    assert [len(c.get_offsets()) for c in markers] == [4, 1, 1, 1, 1]
    circles = [c for c in markers if c.get_facecolor().tolist() == [[1.0, 1.0, 1.0, 1.0]]]
    assert len(circles) == 1 and circles[0].get_offsets().tolist() == markers[3].get_offsets().tolist()


def test_many_edges_use_the_compact_grid(tmp_path: Path) -> None:
    model = KAN([11, 10, 1], seed=0)  # 110 edges in layer 0: compact panels, no tick labels
    model.sample_inputs = torch.rand(300, 11) * 2 - 1
    figures = plot_activations(model, layer=0)
    assert len(panel_gids(figures[0])) == 110
    assert len(figures[0].axes[0].texts) == 110 + 2  # titles + heading + legend
    written = plot_activations(model, diagram=True).save(tmp_path / "big")
    assert [p.name for p in written] == ["big_layer0.png", "big_layer1.png", "big_diagram.png"]
    check_image(written[0], 1000)


def test_layer_norm_model_without_stored_sample() -> None:
    model = KAN([2, 3, 1], layer_norm=[True, False], seed=1)  # no sample: falls back to the input ranges
    figures = plot_activations(model)
    assert [len(panel_gids(f)) for f in figures] == [6, 3]


def test_demo_stage_writes_pngs(tmp_path: Path) -> None:
    from kanx.demo import prepare, stage_plot

    ctx = prepare(tmp_path / "demo")
    written = stage_plot(ctx)
    assert [p.name for p in written] == ["activations_layer0.png", "activations_layer1.png", "activations_diagram.png"]
    assert ctx.results["plot"]["files"] == [p.name for p in written]
    check_image(written[-1])


def test_output_bytes_are_deterministic(tmp_path: Path, samples: Path) -> None:
    model = sample(samples)
    digests = []
    for run in range(2):
        diagram = plot_network(model)
        paths = diagram.save(tmp_path / f"run{run}", "svg") + diagram.save(tmp_path / f"run{run}", "png")
        paths += plot_activations(model, layer=1, diagram=True).save(tmp_path / f"run{run}", "pdf")
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
    assert digests[0] == digests[1]


# ----------------------------------------------------------------- CLI
def test_cli_writes_pngs(runner, samples: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["plot-activations", str(samples / "threeway.pt")])
    assert result.exit_code == 0, result.output
    names = ["threeway_activations_layer0.png", "threeway_activations_layer1.png", "threeway_activations_diagram.png"]
    for name in names:
        assert f"wrote {name}" in result.output
        check_image(tmp_path / name)


def test_cli_layer_top_svg_and_pdf(runner, samples: Path, tmp_path: Path) -> None:
    model = sample(samples, "xy_sinz")
    model.set_symbolic(0, 2, 3, "sin", (3.0, 0.0, 0.5, 0.0))
    path = tmp_path / "sym.pt"
    save_model(model, path)
    out = tmp_path / "plots"
    result = runner.invoke(app, ["plot-activations", str(path), "-o", str(out), "--layer", "0", "--top", "4", "--format", "svg"])
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "plots_layer0.svg").read_text()
    assert svg.count('id="panel-0-') == 4 and 'id="symbolic-0-2-3"' in svg
    assert (tmp_path / "plots_diagram.svg").exists() and not (tmp_path / "plots_layer1.svg").exists()
    result = runner.invoke(app, ["plot-activations", str(path), "-o", str(tmp_path / "all.pdf")])
    assert result.exit_code == 0, result.output
    pdf = (tmp_path / "all.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") == 3  # 2 layers + diagram
    result = runner.invoke(app, ["plot-activations", str(path), "-o", str(tmp_path / "d"), "--diagram-only", "--dpi", "60"])
    assert result.exit_code == 0 and sorted(p.name for p in tmp_path.glob("d_*")) == ["d_diagram.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.pt"], "missing.pt: no such file"),
        (["{model}", "--layer", "2"], "--layer 2"),
        (["{model}", "--format", "gif"], "'gif' is not one of 'png', 'svg', 'pdf'"),
        (["{model}", "-o", "nowhere/plots"], "does not exist"),
        (["{model}", "--top", "0"], "--top 0"),
        (["{model}", "-o", "x.png", "--format", "pdf"], "does not match --format pdf"),
    ],
)
def test_cli_bad_input_exits_2(runner, samples: Path, tmp_path: Path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["plot-activations", *[a.format(model=samples / "exp_sin.pt") for a in args]]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert list(tmp_path.iterdir()) == []
