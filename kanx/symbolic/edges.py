"""The per-edge strategy of symbolify: fit every live edge, compose, clean, check.

1. inputs: ``data`` (a ``Dataset``) or the model's stored sample, split into fit / held-out;
2. importance by attribution from the outputs; negligible edges become constants (their mean),
   so dead parts are dropped, never fitted;
3. the live edges' 1-D data go to an engine (builtin batched fit, operon or PySR); per edge the
   Pareto front of (complexity, R²) and the simplest candidate within ``tolerance`` of the best;
   an edge nobody fits above ``r2_threshold`` stays numeric (or a cubic, ``fallback="poly"``);
4. chosen fits are set on the model; optionally its constants are refitted end to end;
5. each output is composed, cleaned (refit, prune, snap, round, simplify) and checked on the
   held-out samples against the network and, when given, the data.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import replace

import sympy
import torch

from kanx.core.lambdify import formula_on_rows, mpmath_function
from kanx.core.numerics import r2, split_rows
from kanx.core.resources import made_on_cpu
from kanx.families.kan.compose import compose_with_hidden, input_symbols
from kanx.families.kan.importance import importance
from kanx.families.kan.network import KAN
from kanx.families.registry import device_of
from kanx.functions.library import custom_function
from kanx.symbolic.cleaning import Cleaner, CleanSettings, round_floats, simplest_form
from kanx.symbolic.engines import Candidate, builtin_candidates
from kanx.symbolic.results import EdgeReport, OutputFidelity, SymbolicResult, fidelity
from kanx.symbolic.retry import collapse_chains, end_to_end, numeric, subnode_formulas, widen
from kanx.symbolic.selection import fit_activations
from kanx.symbolic.settings import SymbolifySettings
from kanx.symbolic.timeout import run_with_timeout

RETRY_SLACK = 1e-4


def resolve_inputs(model: KAN, data, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs ``[N, n_in]`` and optional targets ``[N, n_out]`` for the fits."""
    device = device_of(model)
    if data is not None:
        y = data.y if data.y is not None and data.y.ndim == 2 and data.y.shape[1] == model.n_outputs else None
        return data.x.float().to(device), (y.float().to(device) if y is not None else None)
    if model.sample_inputs.numel():
        return model.sample_inputs.float().to(device), None
    generator = torch.Generator().manual_seed(seed)
    lo = torch.tensor([r[0] for r in model.meta.input_ranges], device="cpu")
    hi = torch.tensor([r[1] for r in model.meta.input_ranges], device="cpu")
    return (lo + (hi - lo) * torch.rand(1000, model.n_inputs, generator=generator, device="cpu")).to(device), None


def fit_and_test_rows(n: int, seed: int, fraction: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows to fit on and rows to report fidelity on; with fewer than 8 rows both are all rows."""
    if n < 8:
        every = torch.randperm(n, generator=torch.Generator().manual_seed(seed), device="cpu")
        return every, every
    return split_rows(n, fraction, seed)


def refit_constants(model: KAN, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
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
    scale = target_scale(y)

    def loss_of() -> torch.Tensor:  # errors divided by the targets' spread before squaring: 1e+20² overflows float32
        return (((model(x) - y) / scale) ** 2).mean(dim=0).sum()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_of()
        if torch.isfinite(loss):
            loss.backward()
        return loss

    with torch.no_grad():
        before = float(loss_of())
    with torch.enable_grad():
        try:
            optimizer.step(closure)
        except (IndexError, RuntimeError):  # torch's strong-Wolfe search fails on a non-finite first step
            pass
    with torch.no_grad():
        after = float(loss_of())
        if not math.isfinite(after) or after > before:
            for p, b in zip(params, backup):
                p.copy_(b)
    for p, flag in frozen.items():
        p.requires_grad_(flag)


def target_scale(y: torch.Tensor) -> torch.Tensor:
    """``[n_out]`` the standard deviation of each target column of ``y [N, n_out]`` (computed in
    float64: targets of 1e+20 have a variance beyond float32), at least 1e-6 of the column's
    largest magnitude (a column of zeros: 1), in ``y``'s dtype."""
    values = y.double()
    spread = values.std(dim=0) if len(values) > 1 else torch.zeros(values.shape[1], dtype=torch.float64, device=y.device)
    size = values.abs().amax(dim=0) if len(values) else torch.ones(values.shape[1], dtype=torch.float64, device=y.device)
    scale = torch.where(spread > 1e-6 * size, spread, 1e-6 * size)
    return torch.where(scale > 0, scale, torch.ones_like(scale)).to(y.dtype)


def evaluate_expression(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor, model: KAN) -> torch.Tensor:
    """``expr`` on inputs ``x`` ``[N, n_in]`` → ``[N]`` (float64, on the CPU, where formulas are
    evaluated). A formula that still holds numeric edges raises ``ValueError``."""
    if expr.atoms(sympy.core.function.AppliedUndef):
        raise ValueError("formula has numeric edges")
    if not expr.free_symbols <= set(symbols):
        raise ValueError("formula is written in hidden nodes")
    x = x.cpu()
    out = formula_on_rows(expr, symbols, [x[:, k].double() for k in range(x.shape[1])], x.shape[0])
    if not bool(torch.isfinite(out).all()):  # huge intermediate constants: arbitrary precision
        slow = mpmath_function(symbols, expr)
        rows = x.double().tolist()
        out = torch.tensor([real_value(slow, row) for row in rows], dtype=torch.float64, device="cpu")
    return out


def real_value(function: Callable, row: list[float]) -> float:
    """``function(*row)`` (an mpmath function) as a float: NaN where the formula has no real value
    there (``sqrt`` or ``log`` of a negative number give mpmath's complex numbers) or none at all,
    ±inf beyond float64."""
    try:
        return float(function(*row))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return math.nan


def symbolify_edges(model: KAN, functions: list, custom: dict[str, str], data: object | None,
                    settings: SymbolifySettings) -> SymbolicResult:
    """The per-edge strategy on ``model`` (modified in place: pass a copy) with ``functions`` and
    ``custom`` from ``build_library``, on the rows ``data`` (or the stored sample); ``settings``
    as in :func:`kanx.symbolic.dispatch` (``compose_limit``: edge expressions a subnode may
    inline before hidden nodes stay named)."""
    s = settings

    timings: dict[str, float] = {}
    start = time.perf_counter()
    model.eval()
    model.custom_functions.update(custom)
    original = copy.deepcopy(model)  # every edge as trained: the oracle of the structure-first view
    x_all, y_data = resolve_inputs(model, data, s.seed)
    fit_rows, test_rows = fit_and_test_rows(x_all.shape[0], s.seed)
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
                if float(score[i, j]) < s.negligible_threshold:
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
        found = fit_activations(torch.stack(live_x), torch.stack(live_y), functions, settings)
        model.custom_functions.update(found.custom)
        for report, front, choice in zip(live, found.fronts, found.choices):
            report.front, report.status, report.chosen = front, choice.status, choice.chosen
            if choice.poly is not None:  # the cubic becomes a custom function of this edge
                name = f"poly_{report.layer}_{report.i}_{report.j}"
                model.custom_functions[name] = custom_function(name, choice.poly).expression or choice.poly
                report.chosen = replace(choice.chosen, name=name)
    timings["fit"] = time.perf_counter() - start
    for report in reports:
        if report.status in ("symbolic", "negligible", "poly"):
            model.set_symbolic(report.layer, report.i, report.j, report.chosen.name, report.chosen.affine)
    target_fit = y_data[fit_rows] if y_data is not None else y_net_fit
    start = time.perf_counter()
    subnodes = {}
    if numeric(reports):
        model = second_chances(model, reports, x_fit, traces, target_fit, functions, custom, s.tolerance, s.r2_threshold)
    if numeric(reports):
        subnodes = subnode_formulas(original, reports, x_fit, functions, s.seed)
    timings["retry"] = time.perf_counter() - start
    start = time.perf_counter()
    if s.finetune_steps > 0:
        refit_constants(model, x_fit, target_fit, s.finetune_steps)
    timings["finetune"] = time.perf_counter() - start
    start = time.perf_counter()
    symbols = input_symbols(model)
    cleaning = CleanSettings(digits=s.digits, tolerance=s.snap_tolerance, timeout=s.simplify_timeout)
    expressions, logs, fidelities = [], [], []
    composed, hidden = compose_with_hidden(model, subnodes, max_terms=s.compose_limit)
    if subnodes:
        mark_subsumed(reports, composed + list(hidden.values()))
    hidden = {name: round_floats(definition, s.digits) for name, definition in hidden.items()}
    x_fit_cpu, x_test_cpu, target_cpu = x_fit.double().cpu(), x_test.cpu(), target_fit.double().cpu()
    for k, raw in enumerate(composed):
        with made_on_cpu():  # formulas are cleaned and evaluated on the CPU, whatever the device
            cleaned, log = Cleaner(symbols, x_fit_cpu, target_cpu[:, k], cleaning).run(raw)
            expr = run_with_timeout(simplest_form, (cleaned,), s.simplify_timeout, cleaned)
            expr = prefer_shorter(expr, cleaned, symbols, x_test_cpu, model)
        expressions.append(expr)
        logs.append(log)
        fidelities.append(output_fidelity(expr, symbols, x_test, model, k, y_net_test[:, k],
                                          y_data[test_rows][:, k] if y_data is not None else None))
    timings["compose"] = time.perf_counter() - start
    flagged = [r for r in reports if r.status in ("numeric", "poly")]
    settings_out = {"engine": s.engine, "library": [f.name for f in functions], "r2_threshold": s.r2_threshold,
                    "tolerance": s.tolerance, "negligible_threshold": s.negligible_threshold, "fallback": s.fallback,
                    "finetune": s.finetune_steps, "digits": s.digits, "seed": s.seed,
                    "fit_rows": int(len(fit_rows)), "held_out_rows": int(len(test_rows))}
    return SymbolicResult(model, expressions, list(model.meta.output_names), reports, fidelities, flagged,
                          settings_out, timings, logs, ["edges"] * len(expressions), hidden=hidden)


def second_chances(model: KAN, reports: list[EdgeReport], x: torch.Tensor, traces: list, y: torch.Tensor,
                   functions: list, custom: dict[str, str], tolerance: float, r2_threshold: float) -> KAN:
    """The chain view, a wider library and end-to-end selection for edges left numeric
    (``kanx.symbolic.retry``); ``traces``: the original network's edge activations on ``x``. A
    stage that lowers the model's output R² on ``y`` by more than ``RETRY_SLACK`` is undone."""
    def fitter(xs: torch.Tensor, ys: torch.Tensor, candidates_of: list) -> list:
        return builtin_candidates(xs, ys, candidates_of).candidates

    targets = [trace.edges for trace in traces]
    stages = (
        lambda m: collapse_chains(m, reports, x, targets, fitter, functions, tolerance, r2_threshold),
        lambda m: widen(m, reports, x, targets, [trace.inputs for trace in traces], fitter, tuple(custom.values()),
                        tolerance, r2_threshold),
        lambda m: end_to_end(m, reports, x, y, refit_constants),
    )
    for stage in stages:
        if not numeric(reports):
            break
        before, saved, kept = output_r2(model, x, y), copy.deepcopy(model), [replace(r) for r in reports]
        model = stage(model)
        if output_r2(model, x, y) < before - RETRY_SLACK:
            model = saved
            for report, old in zip(reports, kept):
                if report.status != old.status:
                    report.note = (old.note or "") + f"[undone, it lowered the output R²: {report.note}] "
                report.status, report.chosen, report.front = old.status, old.chosen, old.front
    return model


def mark_subsumed(reports: list[EdgeReport], composed: list[sympy.Expr]) -> None:
    """Numeric edges that no composed output uses any more (a subnode formula stands for the part
    of the network they fed) get status ``structure``."""
    used = {str(f.func) for expr in composed for f in expr.atoms(sympy.core.function.AppliedUndef)}
    for report in numeric(reports):
        if f"phi_{report.layer}_{report.i}_{report.j}" not in used:
            report.status = "structure"
            report.note = (report.note or "") + "; not in the formula: a subnode formula downstream stands for what it fed"


def output_r2(model: KAN, x: torch.Tensor, y: torch.Tensor) -> float:
    """The worst output's R² of ``model`` on ``x`` against ``y [N, n_out]``."""
    with torch.no_grad():
        return float(r2(model(x).double(), y.double(), dim=0).min())


def prefer_shorter(simplified: sympy.Expr, cleaned: sympy.Expr, symbols, x: torch.Tensor, model: KAN) -> sympy.Expr:
    """Keep sympy's simplification only if it is no longer and numerically the same on the rows
    ``x`` (defined on the same rows: a formula undefined on some rows compares only where it is)."""
    if sympy.count_ops(simplified) > sympy.count_ops(cleaned):
        return cleaned
    try:
        a = evaluate_expression(simplified, symbols, x, model)
        b = evaluate_expression(cleaned, symbols, x, model)
    except Exception:  # noqa: BLE001 - anything unevaluable keeps the cleaned form
        return cleaned
    finite = torch.isfinite(b)
    if not bool(torch.equal(finite, torch.isfinite(a))) or not bool(finite.any()):
        return cleaned  # undefined on other rows, or nowhere comparable
    scale = float(b[finite].abs().max().clamp_min(1))
    close = torch.allclose(a[finite], b[finite], rtol=1e-6, atol=1e-9 * scale)
    return simplified if close else cleaned


def output_fidelity(expr, symbols, x, model, k, y_net, y_data) -> OutputFidelity:
    """Fidelity of output ``k``'s formula on rows ``x`` against the network's ``y_net`` and the
    data's ``y_data`` (``[N]`` each, or ``None``), computed on the CPU."""
    try:
        prediction = evaluate_expression(expr, symbols, x, model)
    except ValueError:  # the formula still holds numeric edges: evaluate the symbolic model
        with torch.no_grad():
            prediction = model(x.to(device_of(model)))[:, k].double().cpu()
    return OutputFidelity(fidelity(prediction, y_net.cpu()), fidelity(prediction, y_data.cpu()) if y_data is not None else None)
