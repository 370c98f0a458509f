"""Benchmark: drawing every activation of a [4,8,8,1] KAN (104 edges, grid 5, k 3, 1,000
samples) — ``kanx`` (activation grids + diagram, written as PNGs) vs pykan 0.2.8 ``plot()``
(one PNG per edge, then the diagram, saved as a PNG) on the same weights, measured in the same run.

Run by hand:  python benchmarks/bench_plot.py [--repeats 3]
pykan is only needed in the benchmark's environment, e.g.
``python -m venv --system-site-packages /tmp/bench-venv && /tmp/bench-venv/bin/pip install
pykan==0.2.8 pyyaml tqdm pandas scikit-learn`` then ``/tmp/bench-venv/bin/python benchmarks/bench_plot.py``;
without it pykan's row is skipped with a note and kanx draws a model of its own with the same shape.
The weights go pykan → kanx through ``kanx.io.importers`` (a pykan ``saveckpt``) when that works,
else by mapping ``act_fun.{l}.grid/coef/scale_base/scale_sp/mask`` onto ``knots/coef/w_base/w_sp/mask``.
Target: kanx >= 5x faster.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot (pykan does)

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from kanx.families.kan.network import KAN  # noqa: E402
from kanx.plot import plot_activations, plot_network  # noqa: E402

WIDTHS = [4, 8, 8, 1]
SAMPLES = 1000


def median_seconds(action: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``action()`` over ``repeats`` runs after one warm-up."""
    action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_pykan(x: torch.Tensor):
    """A pykan model with a forward pass done (``plot`` needs the cached activations), or None."""
    try:
        from kan import KAN as PyKAN
    except ImportError:
        return None
    workdir = tempfile.mkdtemp(prefix="pykan-bench-")
    cwd = os.getcwd()
    os.chdir(workdir)  # pykan writes ./model checkpoints and history files
    try:
        model = PyKAN(width=list(WIDTHS), grid=5, k=3, seed=0, auto_save=False)  # pykan rewrites the list
    finally:
        os.chdir(cwd)
    model(x)
    return model


def kanx_from_pykan(pykan_model, x: torch.Tensor, workdir: Path) -> tuple[KAN, str]:
    """The same weights as a kanx model: through the importer when it works, else mapped here."""
    try:
        from kanx.io.importers import import_checkpoint

        prefix = workdir / "pykan_model"
        pykan_model.saveckpt(str(prefix))
        model = import_checkpoint(prefix, source="pykan")
        model.sample_inputs = x.clone()
        return model, "kanx.io.importers"
    except Exception as exc:  # noqa: BLE001 - the importer is optional here
        print(f"note: importer unavailable ({type(exc).__name__}: {exc}); mapping tensors directly")
    return map_weights(pykan_model, x), "direct tensor mapping"


@torch.no_grad()
def map_weights(pykan_model, x: torch.Tensor) -> KAN:
    """Copy pykan ``act_fun.{l}`` tensors (``[in, out]``, like kanx) and node affines onto a kanx KAN."""
    model = KAN(WIDTHS, basis={"kind": "bspline", "grid": 5, "k": 3}, seed=0)
    for index, (source, target) in enumerate(zip(pykan_model.act_fun, model.layers)):
        target.knots.copy_(source.grid)
        target.coef.copy_(source.coef)
        target.w_base.copy_(source.scale_base)
        target.w_sp.copy_(source.scale_sp)
        target.mask.copy_(source.mask)
        target.sub_scale.copy_(pykan_model.subnode_scale[index])
        target.sub_bias.copy_(pykan_model.subnode_bias[index])
        target.node_scale.copy_(pykan_model.node_scale[index])
        target.node_bias.copy_(pykan_model.node_bias[index])
    model.sample_inputs = x.clone()
    return model


def check_same(pykan_model, model: KAN, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((pykan_model(x) - model(x)).abs().max())


def pykan_plot(pykan_model, workdir: Path) -> Callable[[], None]:
    import matplotlib.pyplot as plt

    def action() -> None:
        pykan_model.plot(folder=str(workdir / "pykan_figures"))
        plt.savefig(workdir / "pykan_diagram.png", dpi=100)
        plt.close("all")

    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(SAMPLES, WIDTHS[0]) * 2 - 1
    workdir = Path(tempfile.mkdtemp(prefix="kanx-bench-plot-"))
    pykan_model = make_pykan(x)
    if pykan_model is None:
        model, origin = KAN(WIDTHS, seed=0), "kanx initialisation (pykan not installed)"
        model.sample_inputs = x
    else:
        model, origin = kanx_from_pykan(pykan_model, x, workdir)
    edges = sum(layer.mask.numel() for layer in model.layers)
    print(f"[4,8,8,1] KAN ({edges} edges), grid 5, k 3, {SAMPLES} samples, weights via {origin}, "
          f"torch {torch.__version__}, matplotlib {matplotlib.__version__}")
    if pykan_model is not None:
        print(f"max |pykan(x) - kanx(x)| = {check_same(pykan_model, model, x):.2e}")
    kanx_all = median_seconds(lambda: plot_activations(model, diagram=True).save(workdir / "kanx"), args.repeats)
    kanx_diagram = median_seconds(lambda: plot_network(model).save(workdir / "kanx"), args.repeats)
    print(f"kanx  grids + diagram (4 PNGs): {kanx_all:7.2f} s")
    print(f"kanx  diagram only    (1 PNG) : {kanx_diagram:7.2f} s")
    if pykan_model is None:
        print("pykan: not installed in this environment (row skipped)")
        return
    pykan_time = median_seconds(pykan_plot(pykan_model, workdir), args.repeats)
    print(f"pykan plot() + savefig        : {pykan_time:7.2f} s")
    print(f"ratio (pykan / kanx grids + diagram): {pykan_time / kanx_all:5.1f}x   "
          f"(pykan / kanx diagram only): {pykan_time / kanx_diagram:5.1f}x   target >= 5x")


if __name__ == "__main__":
    main()
