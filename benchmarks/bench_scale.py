"""Benchmark: how time and peak memory grow with the size of the model, per command.

Run by hand (results go into benchmarks/README.md with the command and the commit):

    python benchmarks/bench_scale.py --out /tmp/scale.json            # CPU
    python benchmarks/bench_scale.py --device cuda --out /tmp/gpu.json  # where a GPU exists

Models (built here, seeded, each with a stored sample of 1,000 rows):
  KAN [10, 10, 1], [100, 50, 1], [784, 64, 10] (random initialisation: every edge is live, the
  worst case for every stage), and a KarSein model over 39 categorical fields (Criteo's count)
  with 16 tokens each.

Each command runs as its own process (``kanx info|prune|plot-activations|symbolify|interactions``
with their defaults; symbolify uses the edges strategy), timed by wall clock, its peak resident
memory read from ``wait4``. The table prints time and peak RSS per (model, command), the growth
exponent α of time ∝ edges^α over the KAN sizes (least squares on log-log), and symbolify's time
per edge against pykan's ``suggest_symbolic`` per edge, measured in the same run on the sizes
pykan handles (a few edges each: it takes seconds per edge).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from kanx.families.kan.network import KAN
from kanx.families.karsein.model import KarSein
from kanx.io.checkpoint import save_model

KAN_SIZES = {"kan-10": [10, 10, 1], "kan-100": [100, 50, 1], "kan-784": [784, 64, 10]}
COMMANDS = ("info", "prune", "plot-activations", "symbolify", "interactions")
SAMPLE_ROWS = 1000
KARSEIN_FIELDS = 39
KARSEIN_TOKENS = 16
PYKAN_EDGES = 3  # edges timed per model with pykan's suggest_symbolic


def kan_model(widths: list[int], seed: int = 0) -> KAN:
    model = KAN(widths, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    model.sample_inputs = torch.rand(SAMPLE_ROWS, widths[0], generator=generator) * 2 - 1
    return model


def karsein_model(seed: int = 0) -> KarSein:
    fields = [f"c{i + 1}" for i in range(KARSEIN_FIELDS)]
    vocabularies = {f: [f"t{k}" for k in range(KARSEIN_TOKENS)] for f in fields}
    model = KarSein(fields, vocabularies, emb_dim=4, bit_width=[8], vec_width=[4], pairwise=[0, 1], seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    model.sample_inputs = torch.randint(0, KARSEIN_TOKENS, (SAMPLE_ROWS, KARSEIN_FIELDS), generator=generator).float()
    return model


def edge_count(model: torch.nn.Module) -> int:
    """KAN: edges; KarSein: its per-feature activations times their outgoing mixing weights."""
    if isinstance(model, KAN):
        return sum(layer.mask.numel() for layer in model.layers)
    return sum(layer.w_base.numel() for layer in [*model.bit_layers, *model.vec_layers])


# Linux keeps a process's peak RSS across exec, and a child started from this (torch-sized)
# process would report this process's size as its own peak. So each command is started by a
# small launcher interpreter, whose children start small: it runs the command and reports.
LAUNCHER = """
import json, os, subprocess, sys, threading, time
output, log, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
start = time.perf_counter()
with open(log, "ab") as errors, open(output, "wb") as sink:
    process = subprocess.Popen(sys.argv[4:], stdout=sink, stderr=errors)
    timer = threading.Timer(limit, process.kill) if limit > 0 else None
    if timer is not None:
        timer.start()
    _, status, usage = os.wait4(process.pid, 0)
    if timer is not None:
        timer.cancel()
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024,
                  "exit": os.waitstatus_to_exitcode(status), "timed_out": limit > 0 and seconds >= limit}))
"""


def run_command(arguments: list[str], log: Path, limit: float = 0.0) -> dict:
    """Run ``kanx ARGUMENTS`` as a child process: wall seconds, peak RSS (MiB), exit code, and
    for symbolify its own stage timings and edge counts (from its JSON report)."""
    output = log.with_name("last_output.json")
    launched = subprocess.run([sys.executable, "-c", LAUNCHER, str(output), str(log), str(limit), sys.executable, "-m",
                               "kanx", *arguments], capture_output=True, text=True, check=True)
    measured = json.loads(launched.stdout)
    if arguments[0] == "symbolify" and measured["exit"] == 0:
        report = json.loads(output.read_text())
        edges = report.get("edges", [])
        measured["timings"] = report.get("timings")
        measured["fitted_edges"] = sum(1 for e in edges if e.get("status") not in ("negligible", "masked"))
    return measured


def command_arguments(command: str, model: Path, work: Path, device: str, max_memory: str | None) -> list[str]:
    resources = [] if command == "info" else ["--device", device] + (["--max-memory", max_memory] if max_memory else [])
    extra = {"prune": ["-o", str(work / f"{model.stem}.pruned.pt")],
             "plot-activations": ["-o", str(work / f"{model.stem}_plot")],
             "symbolify": ["--json"], "interactions": ["--json"], "info": ["--json"]}[command]
    return [command, str(model), *extra, *resources]


def pykan_seconds_per_edge(widths: list[int]) -> float | None:
    """pykan's ``suggest_symbolic`` on ``PYKAN_EDGES`` first-layer edges of a fresh pykan KAN of
    the same widths and sample size: seconds per edge (None when pykan is not installed)."""
    try:
        from kan import KAN as PyKAN
    except ImportError:
        return None
    torch.manual_seed(0)
    model = PyKAN(width=list(widths), grid=5, k=3, seed=0, auto_save=False, device="cpu")
    model(torch.rand(SAMPLE_ROWS, widths[0]) * 2 - 1)  # caches the activations suggest_symbolic fits
    start = time.perf_counter()
    for j in range(PYKAN_EDGES):
        model.suggest_symbolic(0, 0, j % widths[1], verbose=False)
    return (time.perf_counter() - start) / PYKAN_EDGES


def growth_exponent(edges: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) against log(edges)."""
    points = [(math.log(e), math.log(s)) for e, s in zip(edges, seconds) if s > 0]
    if len(points) < 2:
        return None
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--max-memory", default=None, help="passed to every command (default: kanx's 1 GiB)")
    parser.add_argument("--models", nargs="*", default=[*KAN_SIZES, "karsein-39"])
    parser.add_argument("--commands", nargs="*", default=list(COMMANDS))
    parser.add_argument("--skip-pykan", action="store_true")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds per command before it is stopped (0: none)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kanx_scale_"))
    log = work / "commands.log"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {options.device}; work dir {work}")
    results: dict = {"device": options.device, "max_memory": options.max_memory, "models": {}}
    for name in options.models:
        model = karsein_model() if name == "karsein-39" else kan_model(KAN_SIZES[name])
        path = work / f"{name}.pt"
        save_model(model, path)
        entry = {"edges": edge_count(model), "parameters": sum(p.numel() for p in model.parameters()), "commands": {}}
        for command in options.commands:
            measured = run_command(command_arguments(command, path, work, options.device, options.max_memory), log,
                                   options.timeout)
            entry["commands"][command] = measured
            print(f"{name:>10} {entry['edges']:>7} edges  {command:<17} {measured['seconds']:9.2f} s "
                  f"{measured['peak_rss_mib']:8.0f} MiB  exit {measured['exit']}"
                  + ("  (stopped at --timeout)" if measured["timed_out"] else ""), flush=True)
        if name in KAN_SIZES and not options.skip_pykan and KAN_SIZES[name][0] <= 100:
            entry["pykan_suggest_symbolic_s_per_edge"] = pykan_seconds_per_edge(KAN_SIZES[name])
        results["models"][name] = entry
    report(results)
    if options.out is not None:
        options.out.write_text(json.dumps(results, indent=2))


def report(results: dict) -> None:
    kan = {name: entry for name, entry in results["models"].items() if name in KAN_SIZES}
    print("\ngrowth exponent α (time ∝ edges^α) over the KAN sizes; 'beyond start-up' subtracts the time of")
    print("`info` on the same model (interpreter, torch import, checkpoint load):")
    for command in COMMANDS:
        rows = [(e["edges"], e["commands"][command]["seconds"], e["commands"].get("info", {}).get("seconds", 0.0))
                for e in kan.values() if command in e["commands"]]
        alpha = growth_exponent([r[0] for r in rows], [r[1] for r in rows])
        work = growth_exponent([r[0] for r in rows], [r[1] - r[2] for r in rows]) if command != "info" else None
        if alpha is not None:
            print(f"  {command:<17} α = {alpha:.2f}" + (f"   beyond start-up α = {work:.2f}" if work is not None else ""))
    print("\nsymbolify per edge against pykan's suggest_symbolic per edge:")
    for name, entry in kan.items():
        mine = entry["commands"].get("symbolify")
        theirs = entry.get("pykan_suggest_symbolic_s_per_edge")
        if mine is None:
            continue
        per_edge = mine["seconds"] / entry["edges"]  # the whole command: fits, retries, composing, cleaning
        fit = (mine.get("timings") or {}).get("fit")
        fit_per_edge = fit / mine["fitted_edges"] if fit and mine.get("fitted_edges") else None
        line = f"  {name:>10}: whole command {1000 * per_edge:.1f} ms/edge"
        if theirs:
            line += f" ({theirs / per_edge:.0f}× faster than pykan's {theirs:.2f} s/edge)"
        if fit_per_edge:
            line += f"; edge fits alone {1000 * fit_per_edge:.1f} ms/fitted edge"
            line += f" ({theirs / fit_per_edge:.0f}×)" if theirs else ""
        print(line)


if __name__ == "__main__":
    main()
