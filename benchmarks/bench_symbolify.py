"""Speed and quality of kanx's edge fits against pykan 0.2.8's ``suggest_symbolic``.

Run by hand (not a test):

    python -m venv --system-site-packages /tmp/bench-venv
    /tmp/bench-venv/bin/pip install pykan==0.2.8 pyyaml tqdm pandas scikit-learn
    /tmp/bench-venv/bin/python benchmarks/bench_symbolify.py [--pykan-edges 4]

A random pykan ``KAN([4, 8, 8, 1])`` is built and its tensors (``act_fun.{l}.grid / coef /
scale_base / scale_sp / mask``, input-major ``[in, out]`` like kanx) are copied onto a kanx KAN,
so both fit the very same edge functions on the same inputs. kanx fits every edge with the
whole library in one batched call; pykan runs ``suggest_symbolic`` on a sample of edges. Without
pykan the pykan row is skipped with a note. Peak memory of the batched fit is measured in
fresh processes for a growing number of edges (it is bounded by the chunking budget).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from kanx.families.kan.network import KAN
from kanx.functions.library import build_library
from kanx.symbolic.engines import builtin_candidates
from kanx.symbolic.selection import select

WIDTHS = [4, 8, 8, 1]


def build_pair(seed: int):
    """A pykan model (or ``None``) and a kanx model with identical weights."""
    try:
        from kan import KAN as PyKAN
    except ImportError:
        PyKAN = None
    kanx_model = KAN(WIDTHS, {"kind": "bspline", "grid": 5, "k": 3}, seed=seed)
    if PyKAN is None:
        return None, kanx_model
    folder = tempfile.mkdtemp(prefix="bench-pykan-")
    pykan_model = PyKAN(width=list(WIDTHS), grid=5, k=3, seed=seed, auto_save=False, ckpt_path=folder)
    with torch.no_grad():
        for index, layer in enumerate(kanx_model.layers):
            source = pykan_model.act_fun[index]
            layer.knots.copy_(source.grid)
            layer.coef.copy_(source.coef)
            layer.w_base.copy_(source.scale_base)
            layer.w_sp.copy_(source.scale_sp)
            layer.mask.copy_(source.mask)
    return pykan_model, kanx_model


def edge_data(model: KAN, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int]]]:
    """Every edge's input and value: ``[E, N]`` each, with its ``(layer, i, j)``."""
    xs, ys, keys = [], [], []
    with torch.no_grad():
        for index, trace in enumerate(model.edge_activations(x)):
            n_in, n_sub = trace.edges.shape[1:]
            for i in range(n_in):
                for j in range(n_sub):
                    xs.append(trace.inputs[:, i])
                    ys.append(trace.edges[:, i, j])
                    keys.append((index, i, j))
    return torch.stack(xs), torch.stack(ys), keys


def peak_memory(edges: int) -> float:
    """Peak RSS (MiB, whole process incl. torch) of a fresh process fitting ``edges`` random
    edges of 1000 samples with the full library."""
    code = (
        "import resource, torch\n"
        "from kanx.symbolic.fit import fit_edges\n"
        "from kanx.functions.library import build_library\n"
        "torch.set_num_threads(1)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"x = torch.rand({edges}, 1000) * 2 - 1\n"
        f"y = torch.sin(3 * x) + 0.1 * torch.randn({edges}, 1000)\n"
        "fit_edges(x, y, build_library()[0])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pykan-edges", type=int, default=4, help="edges timed with pykan (each takes ~20 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory", default="100,400,1600", help="edge counts for the memory check")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pykan_model, kanx_model = build_pair(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.rand(1000, WIDTHS[0], generator=generator) * 2 - 1
    ex, ey, keys = edge_data(kanx_model, x)
    functions, _ = build_library()
    start = time.perf_counter()
    found = builtin_candidates(ex, ey, functions)
    kanx_total = time.perf_counter() - start
    chosen = [select(c, 2e-3) for c in found.candidates]
    kanx_per_edge = kanx_total / len(keys)
    report: dict = {"edges": len(keys), "kanx_seconds_total": kanx_total, "kanx_seconds_per_edge": kanx_per_edge}
    print(f"kanx : {len(keys)} edges × {len(functions)} functions in {kanx_total:.2f} s → {kanx_per_edge * 1e3:.1f} ms/edge")
    if pykan_model is None:
        print("pykan: not installed in this environment — pykan row skipped (see the module docstring)")
    else:
        with torch.no_grad():
            pykan_model(x)
            reference = torch.stack([kanx_model(x)[:, 0], pykan_model(x)[:, 0]])
        print(f"same weights: max |kanx - pykan| output = {float((reference[0] - reference[1]).abs().max()):.2e}")
        sample = torch.randperm(len(keys), generator=generator)[: args.pykan_edges].tolist()
        times, better, better_best = [], 0, 0
        for index in sample:
            layer, i, j = keys[index]
            start = time.perf_counter()
            name, _, r2, _ = pykan_model.suggest_symbolic(layer, i, j, verbose=False)
            times.append(time.perf_counter() - start)
            ours = chosen[index].r2 if chosen[index] else float("-inf")
            best = max((c.r2 for c in found.candidates[index]), default=float("-inf"))
            better += ours >= float(r2) - 1e-6
            better_best += best >= float(r2) - 1e-6
            print(f"  edge {keys[index]}: pykan {name} R² {float(r2):.6f} in {times[-1]:.1f} s | "
                  f"kanx {chosen[index].name if chosen[index] else '-'} R² {ours:.6f} (best candidate {best:.6f})")
        pykan_per_edge = sum(times) / len(times)
        report.update({"pykan_seconds_per_edge": pykan_per_edge, "speedup": pykan_per_edge / kanx_per_edge,
                       "r2_at_least_pykan": better / len(sample), "best_r2_at_least_pykan": better_best / len(sample),
                       "pykan_edges": len(sample)})
        print(f"pykan: {pykan_per_edge:.2f} s/edge → kanx is {pykan_per_edge / kanx_per_edge:.0f}x faster per edge; "
              f"kanx R² >= pykan's on {better}/{len(sample)} sampled edges (chosen: kanx takes the simplest "
              f"function within tolerance), {better_best}/{len(sample)} for kanx's best candidate")
    memory = {}
    for count in [int(c) for c in args.memory.split(",") if c]:
        memory[count] = peak_memory(count)
        print(f"peak RSS fitting {count:5d} edges: {memory[count]:.0f} MiB")
    report["peak_mib_by_edges"] = memory
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
