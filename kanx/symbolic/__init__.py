"""Symbolic layer: function library, per-edge fits, composition, export.

``symbolify(model)`` is the pipeline behind ``kanx symbolify``:

1. inputs: ``data`` (a ``Dataset``) or the model's stored sample, split into fit / held-out;
2. importance by attribution from the outputs; negligible edges become constants (their mean),
   so dead parts are dropped, never fitted;
3. the live edges' 1-D data go to an engine (builtin batched fit, operon or PySR); per edge the
   Pareto front of (complexity, R²) and the simplest candidate within ``tolerance`` of the best;
   an edge nobody fits above ``r2_threshold`` stays numeric (or a cubic, ``fallback="poly"``);
4. chosen fits are set on a copy of the model; optionally its constants are fine-tuned end to end;
5. each output is composed, cleaned (refit, prune, snap, round, simplify) and checked on the
   held-out samples against the network and, when given, the data.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sympy
import torch

from kanx.errors import KanxError
from kanx.symbolic.engines import ENGINES, Candidate, edge_candidates
from kanx.symbolic.library import build_library, custom_function

if TYPE_CHECKING:  # the model package imports the library, so the pipeline imports it lazily
    from kanx.model.network import KAN

__all__ = ["SymbolicResult", "symbolify"]

FALLBACKS = ("numeric", "poly")
STRATEGIES = ("edges", "structure-first")


@dataclass
class EdgeReport:
    """What happened to one edge ``(layer, i, j)``."""

    layer: int
    i: int
    j: int
    importance: float
    status: str  # "symbolic" | "negligible" | "numeric" | "poly" | "masked"
    chosen: Candidate | None = None
    front: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict:
        def cand(c: Candidate) -> dict:
            return {"function": c.name, "affine": {"a": c.affine[0], "b": c.affine[1], "c": c.affine[2], "d": c.affine[3]},
                    "r2": c.r2, "complexity": c.complexity}

        return {
            "layer": self.layer, "input": self.i, "subnode": self.j, "importance": self.importance,
            "status": self.status, "chosen": cand(self.chosen) if self.chosen else None,
            "candidates": [cand(c) for c in self.front],
        }


@dataclass
class Fidelity:
    """Agreement of a formula with a reference on held-out samples."""

    r2: float
    rmse: float
    max_abs: float

    def to_dict(self) -> dict:
        return {"r2": self.r2, "rmse": self.rmse, "max_abs_error": self.max_abs}


@dataclass
class SymbolicResult:
    """Outcome of :func:`symbolify`.

    ``model``: a copy of the input with the chosen edges symbolic; ``expressions``: one sympy
    expression per output in the input symbols; ``edges``: per-edge reports; ``fidelity``:
    per output ``{"network": Fidelity, "data": Fidelity | None}``; ``flagged``: edges kept
    numeric or polynomial because nothing fitted above the threshold.
    """

    model: KAN
    expressions: list[sympy.Expr]
    output_names: list[str]
    edges: list[EdgeReport]
    fidelity: list[dict]
    flagged: list[EdgeReport]
    settings: dict
    timings: dict
    log: list[dict]
    strategy_used: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "outputs": [
                {
                    "name": name, "expression": sympy.sstr(expr), "srepr": sympy.srepr(expr),
                    "latex": sympy.latex(expr),
                    "fidelity": {k: (v.to_dict() if v else None) for k, v in fid.items()},
                    "cleanup": log,
                }
                for name, expr, fid, log in zip(self.output_names, self.expressions, self.fidelity, self.log)
            ],
            "edges": [e.to_dict() for e in self.edges],
            "flagged": [[e.layer, e.i, e.j] for e in self.flagged],
            "strategy_used": self.strategy_used,
            "settings": self.settings,
            "timings": self.timings,
        }


# --------------------------------------------------------------------------- selection
def pareto(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates not beaten on both complexity and R² (finite R² only), simplest first."""
    valid = sorted((c for c in candidates if math.isfinite(c.r2)), key=lambda c: (c.complexity, -c.r2))
    front: list[Candidate] = []
    for c in valid:
        if not front or c.r2 > front[-1].r2:
            if front and front[-1].complexity == c.complexity:
                front[-1] = c
            else:
                front.append(c)
    return front


NOISE_RATIO = 100.0


def select(candidates: list[Candidate], tolerance: float) -> Candidate | None:
    """The simplest candidate within tolerance of the best; ties on complexity go to the
    higher R². ``None`` when no candidate is finite.

    The tolerance on R² is ``min(tolerance, NOISE_RATIO * (1 - best R²))``: on clean data (a
    near-perfect best fit) a look-alike that is orders of magnitude worse is not "within
    tolerance", while on noisy spline edges the absolute ``tolerance`` applies.
    """
    valid = [c for c in candidates if math.isfinite(c.r2) and c.name != "0"]
    if not valid:
        return None
    best = max(c.r2 for c in valid)
    allowed = min(tolerance, NOISE_RATIO * max(1.0 - best, 0.0) + 1e-12)
    good = [c for c in valid if c.r2 >= best - allowed]
    return min(good, key=lambda c: (c.complexity, -c.r2))


def poly_fallback(x: torch.Tensor, y: torch.Tensor, degree: int = 3, digits: int = 6) -> tuple[str, float]:
    """Least-squares polynomial of ``degree`` in ``x`` for data ``x``, ``y`` ``[N]`` as sympy
    text, and its R²."""
    xd, yd = x.double(), y.double()
    vander = torch.stack([xd**k for k in range(degree + 1)], dim=1)
    coef = torch.linalg.lstsq(vander, yd[:, None]).solution[:, 0]
    fitted = vander @ coef
    r2 = float(1 - ((fitted - yd) ** 2).mean() / yd.var(unbiased=False).clamp_min(1e-300))
    text = " + ".join(f"({float(c):.{digits}g})*x**{k}" for k, c in enumerate(coef))
    return text, r2


# --------------------------------------------------------------------------- pipeline
def resolve_inputs(model: KAN, data, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs ``[N, n_in]`` and optional targets ``[N, n_out]`` for the fits."""
    if data is not None:
        y = data.y if data.y.shape[1] == model.n_outputs else None
        return data.x.float(), (y.float() if y is not None else None)
    if model.sample_inputs.numel():
        return model.sample_inputs.float(), None
    generator = torch.Generator().manual_seed(seed)
    lo = torch.tensor([r[0] for r in model.meta.input_ranges])
    hi = torch.tensor([r[1] for r in model.meta.input_ranges])
    return lo + (hi - lo) * torch.rand(1000, model.n_inputs, generator=generator), None


def split(n: int, seed: int, fraction: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(n * fraction))) if n >= 8 else 0
    if n_test == 0:
        return order, order
    return order[n_test:], order[:n_test]


def finetune(model: KAN, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """Re-optimise the symbolic affines and node/subnode affines of ``model`` end to end on
    ``x`` ``[N, n_in]`` → ``y`` ``[N, n_out]`` (LBFGS; other weights frozen)."""
    params = []
    for layer in model.layers:
        for tensor in (layer.sym_affine, layer.sub_scale, layer.sub_bias, layer.node_scale, layer.node_bias):
            params.append(tensor)
    frozen = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    backup = [p.detach().clone() for p in params]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
    scale = y.var(dim=0).clamp_min(1e-12)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (((model(x) - y) ** 2).mean(dim=0) / scale).sum()
        if torch.isfinite(loss):
            loss.backward()
        return loss

    with torch.no_grad():
        before = float((((model(x) - y) ** 2).mean(dim=0) / scale).sum())
    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        after = float((((model(x) - y) ** 2).mean(dim=0) / scale).sum())
        if not math.isfinite(after) or after > before:
            for p, b in zip(params, backup):
                p.copy_(b)
    for p, flag in frozen.items():
        p.requires_grad_(flag)


def fidelity(prediction: torch.Tensor, target: torch.Tensor) -> Fidelity:
    """R², RMSE and max |error| of ``prediction`` against ``target`` (``[N]``)."""
    p, t = prediction.double(), target.double()
    error = p - t
    if not bool(torch.isfinite(error).all()):
        return Fidelity(float("-inf"), float("inf"), float("inf"))
    r2 = float(1 - (error**2).mean() / t.var(unbiased=False).clamp_min(1e-300))
    return Fidelity(r2, float((error**2).mean().sqrt()), float(error.abs().max()))


def evaluate_expression(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor, model: KAN) -> torch.Tensor:
    """``expr`` on inputs ``x`` ``[N, n_in]`` → ``[N]`` (float64). Formulas that still hold
    numeric edges are evaluated through the symbolic model instead."""
    if expr.atoms(sympy.core.function.AppliedUndef):
        raise ValueError("formula has numeric edges")
    from kanx.symbolic.library import TORCH_NAMESPACE

    function = sympy.lambdify(symbols, expr, modules=[TORCH_NAMESPACE, "math"])
    with torch.no_grad():
        out = function(*[x[:, k].double() for k in range(x.shape[1])])
    if not isinstance(out, torch.Tensor):
        out = torch.full((x.shape[0],), float(out), dtype=torch.float64)
    out = out.expand(x.shape[0]).double()
    if not bool(torch.isfinite(out).all()):  # huge intermediate constants: arbitrary precision
        slow = sympy.lambdify(symbols, expr, modules="mpmath")
        rows = x.double().tolist()
        out = torch.tensor([float(slow(*row)) for row in rows], dtype=torch.float64)
    return out


class _Threads:
    """Run small tensor work on one thread (faster than contended OpenMP pools)."""

    def __enter__(self) -> None:
        self.saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.saved)


def check_fit_options(engine: str, fallback: str, r2_threshold: float, digits: int) -> None:
    """Raise ``KanxError`` naming the first per-edge fitting option out of range."""
    if engine not in ENGINES:
        raise KanxError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    if fallback not in FALLBACKS:
        raise KanxError(f"--fallback {fallback!r}: use numeric or poly")
    if not 0 < r2_threshold <= 1:
        raise KanxError(f"--r2-threshold {r2_threshold}: must be in (0, 1]")
    if not 1 <= digits <= 15:
        raise KanxError(f"--digits {digits}: must be between 1 and 15")


def symbolify(
    model: KAN,
    *,
    engine: str = "builtin",
    lib: str | list[str] | None = None,
    lib_add: list[str] | tuple[str, ...] = (),
    r2_threshold: float = 0.99,
    tolerance: float = 2e-3,
    prune_threshold: float = 1e-2,
    fallback: str = "numeric",
    data=None,
    finetune_steps: int = 0,
    digits: int = 4,
    snap_tolerance: float = 5e-4,
    simplify_timeout: float = 10.0,
    seed: int = 0,
    strategy: str = "edges",
    budget: float = 60.0,
) -> SymbolicResult:
    """Turn ``model`` into one formula per output (the input model is not modified).

    ``data``: a ``kanx.io.data.Dataset`` whose inputs drive the fits (and whose targets, when
    they match the outputs, are what constants are fine-tuned against and checked with).
    ``strategy``: ``"edges"`` fits every edge and composes; ``"structure-first"`` decomposes the
    network's function first (``kanx.symbolic.strategy``), searching for at most ``budget``
    seconds per output, and falls back to ``"edges"`` where that finds no accurate formula.
    """
    if strategy not in STRATEGIES:
        raise KanxError(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if budget <= 0:
        raise KanxError(f"--budget {budget}: must be > 0 seconds")
    check_fit_options(engine, fallback, r2_threshold, digits)
    if finetune_steps < 0:
        raise KanxError(f"--finetune {finetune_steps}: must be >= 0")
    from kanx.model.network import KAN

    if not isinstance(model, KAN):
        raise KanxError("symbolify works on kanx KAN models")
    functions, custom = build_library(lib, list(lib_add))
    with _Threads():
        if strategy == "structure-first":
            from kanx.symbolic.strategy import structure_first

            def edges() -> SymbolicResult:
                return _symbolify(copy.deepcopy(model), engine, functions, custom, r2_threshold, tolerance, prune_threshold,
                                  fallback, data, finetune_steps, digits, snap_tolerance, simplify_timeout, seed)

            return structure_first(model, functions, data, edges, budget=budget, digits=digits,
                                   simplify_timeout=simplify_timeout, seed=seed)
        return _symbolify(
            copy.deepcopy(model), engine, functions, custom, r2_threshold, tolerance, prune_threshold, fallback,
            data, finetune_steps, digits, snap_tolerance, simplify_timeout, seed,
        )


def _symbolify(model, engine, functions, custom, r2_threshold, tolerance, prune_threshold, fallback, data,
               finetune_steps, digits, snap_tolerance, simplify_timeout, seed) -> SymbolicResult:
    from kanx.importance import importance
    from kanx.symbolic.compose import Cleaner, CleanSettings, compose, input_symbols, run_with_timeout, simplify

    timings: dict[str, float] = {}
    start = time.perf_counter()
    model.eval()
    model.custom_functions.update(custom)
    x_all, y_data = resolve_inputs(model, data, seed)
    fit_rows, test_rows = split(x_all.shape[0], seed)
    x_fit, x_test = x_all[fit_rows], x_all[test_rows]
    with torch.no_grad():
        y_net_fit, y_net_test = model(x_fit), model(x_test)
        scores = importance(model, x_fit).attribution
        traces = model.edge_activations(x_fit)
    reports, live, live_x, live_y = [], [], [], []
    for index, (trace, score) in enumerate(zip(traces, scores)):
        layer = model.layers[index]
        for i in range(layer.shape.n_in):
            for j in range(layer.shape.n_sub):
                report = EdgeReport(index, i, j, float(score[i, j]), "masked")
                reports.append(report)
                if float(layer.mask[i, j]) == 0:
                    continue
                if float(score[i, j]) < prune_threshold:
                    report.status = "negligible"
                    mean = float(trace.edges[:, i, j].mean())
                    report.chosen = Candidate("0", (1.0, 0.0, 1.0, mean), 1.0, 0.0)
                    continue
                live.append(report)
                live_x.append(trace.inputs[:, i])
                live_y.append(trace.edges[:, i, j])
    timings["importance"] = time.perf_counter() - start
    start = time.perf_counter()
    if live:
        found = edge_candidates(engine, torch.stack(live_x), torch.stack(live_y), functions, seed)
        model.custom_functions.update(found.custom)
        for report, candidates, ex, ey in zip(live, found.candidates, live_x, live_y):
            report.front = pareto(candidates)
            chosen = select(candidates, tolerance)
            if chosen is not None and chosen.r2 >= r2_threshold:
                report.status, report.chosen = "symbolic", chosen
            elif fallback == "poly":
                text, r2 = poly_fallback(ex, ey)
                name = f"poly_{report.layer}_{report.i}_{report.j}"
                model.custom_functions[name] = custom_function(name, text).expression or text
                report.status, report.chosen = "poly", Candidate(name, (1.0, 0.0, 1.0, 0.0), r2, 4.0)
            else:
                report.status, report.chosen = "numeric", chosen
    timings["fit"] = time.perf_counter() - start
    for report in reports:
        if report.status in ("symbolic", "negligible", "poly"):
            model.set_symbolic(report.layer, report.i, report.j, report.chosen.name, report.chosen.affine)
    start = time.perf_counter()
    target_fit = y_data[fit_rows] if y_data is not None else y_net_fit
    if finetune_steps > 0:
        finetune(model, x_fit, target_fit, finetune_steps)
    timings["finetune"] = time.perf_counter() - start
    start = time.perf_counter()
    symbols = input_symbols(model)
    settings = CleanSettings(digits=digits, tolerance=snap_tolerance, timeout=simplify_timeout)
    expressions, logs, fidelities = [], [], []
    for k, raw in enumerate(compose(model)):
        cleaner = Cleaner(symbols, x_fit.double(), target_fit[:, k].double(), settings)
        cleaned, log = cleaner.run(raw)
        expr = run_with_timeout(simplify, (cleaned,), simplify_timeout, cleaned)
        expr = _prefer_shorter(expr, cleaned, symbols, x_test, model)
        expressions.append(expr)
        logs.append(log)
        fidelities.append(_fidelity(expr, symbols, x_test, model, k, y_net_test[:, k],
                                    y_data[test_rows][:, k] if y_data is not None else None))
    timings["compose"] = time.perf_counter() - start
    flagged = [r for r in reports if r.status in ("numeric", "poly")]
    settings_out = {"engine": engine, "library": [f.name for f in functions], "r2_threshold": r2_threshold,
                    "tolerance": tolerance, "prune_threshold": prune_threshold, "fallback": fallback,
                    "finetune": finetune_steps, "digits": digits, "seed": seed,
                    "fit_rows": int(len(fit_rows)), "held_out_rows": int(len(test_rows))}
    return SymbolicResult(model, expressions, list(model.meta.output_names), reports, fidelities, flagged,
                          settings_out, timings, logs, ["edges"] * len(expressions))


def _prefer_shorter(simplified: sympy.Expr, cleaned: sympy.Expr, symbols, x: torch.Tensor, model: KAN) -> sympy.Expr:
    """Keep sympy's simplification only if it is no longer and numerically the same."""
    if sympy.count_ops(simplified) > sympy.count_ops(cleaned):
        return cleaned
    try:
        a = evaluate_expression(simplified, symbols, x, model)
        b = evaluate_expression(cleaned, symbols, x, model)
    except Exception:  # noqa: BLE001 - anything unevaluable keeps the cleaned form
        return cleaned
    close = torch.allclose(a, b, rtol=1e-6, atol=1e-9 * float(b.abs().max().clamp_min(1)))
    return simplified if close else cleaned


def _fidelity(expr, symbols, x, model, k, y_net, y_data) -> dict:
    try:
        prediction = evaluate_expression(expr, symbols, x, model)
    except ValueError:  # the formula still holds numeric edges: evaluate the symbolic model
        with torch.no_grad():
            prediction = model(x)[:, k].double()
    return {
        "network": fidelity(prediction, y_net),
        "data": fidelity(prediction, y_data) if y_data is not None else None,
    }
