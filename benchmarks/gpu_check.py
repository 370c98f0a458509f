"""GPU check: the pipeline on ``cuda`` against the same pipeline on the CPU, to float tolerance.

Run by hand where a GPU exists (it says so and exits 0 where none does):

    python benchmarks/gpu_check.py

A KAN is trained on the CPU for ``x1*x2 + sin(x3)`` (x4 unused); then every stage runs on both
devices from that same checkpoint and the results are compared: predictions, edge importance,
pruning (kept edges and fidelity), the symbolic formula and its fidelity, interaction strengths,
the plotted curves, a few training steps, and a KarSein model's predictions, pruning and field
interactions. Every result must come back on the CPU and every checkpoint written from a GPU
run must load on a CPU-only machine (``map_location`` is never needed).
"""

from __future__ import annotations

import sys
import time

import torch

from kanx.families.kan.importance import importance
from kanx.interaction import interactions
from kanx.io.checkpoint import save_model
from kanx.io.ctr import ClickTable, generate_ctr, read_columns, write_ctr_csv
from kanx.io.data import formula_dataset
from kanx.plot.edges import edge_sets
from kanx.prediction import predict
from kanx.pruning import prune
from kanx.symbolic import symbolify
from kanx.training import train
from kanx.training.kan import TrainSettings
from kanx.training.karsein import KarSeinSettings

FORMULA = "x1*x2 + sin(x3)"
RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, passed: bool, detail: str) -> None:
    RESULTS.append((name, passed, detail))
    print(f"{'PASS' if passed else 'FAIL'}  {name:<34} {detail}", flush=True)


def close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> tuple[bool, str]:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    difference = float((a - b).abs().max()) if a.numel() else 0.0
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol)), f"max |Δ| = {difference:.2e}"


def cpu_only(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "cpu"


def kan_checks() -> None:
    data = formula_dataset(FORMULA, ["x1=-1:1", "x2=-1:1", "x3=-1:1", "x4=-1:1"], 1000, seed=0)
    model = train(data, TrainSettings(widths=[4, 4, 1], steps=60, optimizer="lbfgs", seed=0)).model
    x = model.sample_inputs
    check("predict", *close(predict(model, x, "cuda"), predict(model, x, "cpu"), 1e-5, 1e-6))
    gpu_scores = importance(model.cuda(), x.cuda()).attribution
    model.cpu()
    cpu_scores = importance(model, x).attribution
    check("importance (attribution)", *close(torch.cat([s.flatten().cpu() for s in gpu_scores]),
                                             torch.cat([s.flatten() for s in cpu_scores]), 1e-4, 1e-6))
    report_gpu = prune(model, device="cuda")
    pruned_gpu = report_gpu.model
    report_cpu = prune(model, device="cpu")
    check("prune: same edges kept", report_gpu.edges_after == report_cpu.edges_after,
          f"{report_gpu.edges_after} vs {report_cpu.edges_after} edges; fidelity {report_gpu.fidelity:.6f} vs {report_cpu.fidelity:.6f}")
    check("prune: model back on the CPU", all(cpu_only(p) for p in pruned_gpu.parameters()), "")
    save_model(pruned_gpu, "/tmp/kanx_gpu_check.pt")
    reloaded = torch.load("/tmp/kanx_gpu_check.pt", weights_only=True)  # no map_location
    check("checkpoint device-independent", all(cpu_only(t) for t in reloaded["state"].values()), "")
    sym_gpu, sym_cpu = symbolify(model, device="cuda"), symbolify(model, device="cpu")
    r2_gpu, r2_cpu = sym_gpu.fidelity[0].network.r2, sym_cpu.fidelity[0].network.r2
    check("symbolify: same formula", str(sym_gpu.expressions[0]) == str(sym_cpu.expressions[0]),
          f"{sym_gpu.expressions[0]}  |  {sym_cpu.expressions[0]}")
    check("symbolify: fidelity", abs(r2_gpu - r2_cpu) < 1e-4, f"R² {r2_gpu:.6f} vs {r2_cpu:.6f}")
    first = symbolify(model, strategy="structure-first", budget=20, device="cuda").expressions[0]
    again = symbolify(model, strategy="structure-first", budget=20, device="cpu").expressions[0]
    check("structure-first: same formula", str(first) == str(again), f"{first}  |  {again}")
    found_gpu, found_cpu = interactions(model, device="cuda"), interactions(model, device="cpu")
    check("interactions: pairwise strengths", *close(torch.tensor(found_gpu.outputs[0].pairwise),
                                                     torch.tensor(found_cpu.outputs[0].pairwise), 1e-3, 1e-4))
    check("interactions: same groups", [g.variables for g in found_gpu.outputs[0].groups]
          == [g.variables for g in found_cpu.outputs[0].groups], str([g.variables for g in found_gpu.outputs[0].groups]))
    curves_gpu = edge_sets(model, None, False, None, None, "cuda", None)
    curves_cpu = edge_sets(model, None, False, None, None, "cpu", None)
    check("plot curves", *close(torch.cat([s.numeric.flatten() for s in curves_gpu]),
                                torch.cat([s.numeric.flatten() for s in curves_cpu]), 1e-4, 1e-6))
    steps = TrainSettings(widths=[4, 4, 1], steps=5, optimizer="adam", seed=0, update_grid=2)
    short_gpu = train(data, TrainSettings(**{**steps.__dict__, "device": "cuda"}))
    short_cpu = train(data, steps)
    check("train: 5 Adam steps", *close(torch.tensor([h[1] for h in short_gpu.history]),
                                        torch.tensor([h[1] for h in short_cpu.history]), 1e-3, 1e-6))
    check("train: model back on the CPU", all(cpu_only(p) for p in short_gpu.model.parameters()), "")


def karsein_checks() -> None:
    path = "/tmp/kanx_gpu_check_ctr.csv"
    write_ctr_csv(generate_ctr(3000, seed=0), path)
    fields = ["user", "item", "hour", "device", "site", "ad"]
    columns = read_columns(path, fields + ["click"])
    model = train(ClickTable(columns, "click", fields, [], path), KarSeinSettings(epochs=4, seed=0)).model
    x = model.sample_inputs
    check("KarSein predict", *close(predict(model, x, "cuda"), predict(model, x, "cpu"), 1e-5, 1e-6))
    gpu = prune(model, device="cuda")
    cpu = prune(model, device="cpu")
    check("KarSein prune: same features kept", gpu.features_after == cpu.features_after,
          f"{gpu.features_after} vs {cpu.features_after}; fidelity {gpu.fidelity:.6f} vs {cpu.fidelity:.6f}")
    found_gpu, found_cpu = interactions(model, device="cuda"), interactions(model, device="cpu")
    check("KarSein field groups", [g.fields for g in found_gpu.groups] == [g.fields for g in found_cpu.groups],
          str([g.fields for g in found_gpu.groups]))


def main() -> int:
    if not torch.cuda.is_available():
        print(f"no CUDA GPU here (torch {torch.__version__}); nothing to check")
        return 0
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    start = time.perf_counter()
    kan_checks()
    karsein_checks()
    failed = [name for name, passed, _ in RESULTS if not passed]
    print(f"\n{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed in {time.perf_counter() - start:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
