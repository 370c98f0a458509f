"""``symbolify(strategy="structure-first")``: decompose with the network as an oracle, then fit.

Per output ``k``:

1. the network's output ``k`` is the oracle on the box between the 1% and 99% quantiles of
   the fit rows (the training domain without its sparse rim: nothing is asked outside it);
2. :func:`kanx.symbolic.structure.search.search_structure` finds power laws, products and sums of
   sub-functions, transformed targets and variable combinations, fitting 1-D pieces with the
   function library;
3. the formula's constants are refitted to the targets (the data when given, else the
   network), pruned and snapped to simple numbers while R² stays within a noise-scaled
   tolerance, and simplified;
4. if the structure search finds nothing that reaches ``StructureSettings.accept_r2`` on the
   network, the edge-by-edge strategy also runs and the better formula on the held-out rows wins;
5. with targets, the rows' own route (:mod:`kanx.symbolic.sparse`: a sparse regression over a
   library of terms, which does not need the network to have learned the law) competes with the
   formula of steps 1-4 on the held-out rows, and replaces it when it fits them better beyond
   their noise, or as well and more simply (:func:`decomposed_wins`).
"""

from __future__ import annotations

import math
import time

import sympy
import torch

from kanx.core.budget import WorkBudget
from kanx.core.choices import SPARSE_ROUTE
from kanx.core.numerics import chance_loss, misfit_beyond_noise, noise_bounded_by_fit, r2_value
from kanx.core.resources import made_on_cpu, map_rows
from kanx.families.kan.compose import input_symbols
from kanx.families.registry import device_of
from kanx.functions.library import LibraryFunction
from kanx.symbolic.canonical import fold_constants, match_physical_constants, positive_forms, shortest_constants
from kanx.symbolic.cleaning import Cleaner, CleanSettings, formula_cost, resolve_inverse_pairs, simplest_form
from kanx.symbolic.edges import evaluate_expression, fit_and_test_rows, output_fidelity, resolve_inputs
from kanx.symbolic.engines import Candidate
from kanx.symbolic.results import SymbolicResult
from kanx.symbolic.selection import select
from kanx.symbolic.sparse import best_sparse_law, sparse_laws
from kanx.symbolic.structure.backfit import backfit
from kanx.symbolic.structure.relevance import relevant_inputs
from kanx.symbolic.structure.search import StructureSettings, fit_power_law, search_structure
from kanx.symbolic.structure.separability import spread_floor
from kanx.symbolic.structure.units import WorkingUnits
from kanx.symbolic.timeout import run_with_timeout

SNAP_NOISE_RATIO = 10.0
DEFAULT_NOISE = 1e-4
PI_WINDOW = 1e-3  # π multiples must match closely: near-integer exponents are not (p/q)·π
SNAP_WINDOW = 0.01  # a structure-first formula's constants are refitted to the targets, so snaps are near misses only


def network_oracle(model, output: int):
    """``x [N, n_in]`` float64 → the network's output ``output`` ``[N]`` float64."""

    device = device_of(model)

    def output_of(rows: torch.Tensor) -> torch.Tensor:
        return model(rows.to(device).float())[:, output].double().to(rows.device)

    def oracle(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return map_rows(output_of, x, model.row_bytes())

    return oracle


def structure_formulas(model, functions: list[LibraryFunction], x_fit: torch.Tensor, target_fit: torch.Tensor,
                       settings: StructureSettings, digits: int, simplify_timeout: float,
                       seed: int, noise: float = DEFAULT_NOISE,
                       data_noise: list[float] | None = None) -> tuple[list[sympy.Expr | None], list[dict]]:
    """One cleaned formula per output (``None`` where the search found nothing) and per output
    a log: the decomposition tree, the search's R² on the network, the inputs dropped as
    irrelevant, the working units and the clean-up log.

    Per output: inputs whose total effect on the network is within its error of 0 are dropped
    (``relevance``); the search and the clean-up run in working units (``units``: powers of ten
    that bring inputs and target to order 1); each top-level candidate (plus a power law fitted
    on the targets themselves) is cleaned against the targets and the simplest one within a
    noise-scaled margin of the best R² wins; it is written back in the data's units, its
    constants folded and matched against physical constants. ``data_noise``: per output, the
    share of the targets' variance that is noise (0 when the targets are the network): the
    clean-up and the choice count only misfit beyond it as the formula's error."""

    symbols = input_symbols(model)
    names = [str(s) for s in symbols]
    formulas, logs = [], []
    for k in range(model.n_outputs):
        start = time.perf_counter()
        target_noise = data_noise[k] if data_noise is not None else 0.0
        units = WorkingUnits.of(x_fit, target_fit[:, k])
        network = network_oracle(model, k)
        relevance = relevant_inputs(network, x_fit.double(), noise, torch.Generator().manual_seed(seed))
        kept = relevance.kept
        z_fit = units.to_working(x_fit.double())
        w_fit = units.target_to_working(target_fit[:, k].double())
        oracle = restricted_oracle(units.oracle(network), kept, z_fit.median(dim=0).values)
        z_kept = z_fit[:, kept]
        used = [symbols[i] for i in kept]
        log: dict = {"strategy": "structure-first", "units": units.to_dict(), "dropped_inputs": relevance.dropped(names),
                     "total_effects": dict(zip(names, relevance.shares))}
        budget = WorkBudget(settings.budget, settings.time_limit)
        found = search_structure(oracle, used, *search_box(z_kept), functions, settings, seed,
                                 floor=spread_floor(z_kept), budget=budget) if kept else []
        direct = fit_power_law(used, z_kept, w_fit) if kept else None
        log["search_seconds"] = time.perf_counter() - start
        log["search_work"] = budget.to_dict() if kept else None
        options: list[tuple[sympy.Expr, object]] = []
        for solution in contenders(found, noise):  # each formula once (alternatives can coincide after polishing)
            if all(solution.expr != expr for expr, _ in options):
                options.append((solution.expr, solution.node))
        options += [(direct, None)] if direct is not None else []
        if not options:
            formulas.append(None)
            logs.append(log | {"structure": None, "search_r2": None})
            continue
        cleaned = [clean_formula(expr, used, z_kept, w_fit, digits, simplify_timeout, target_noise) for expr, _ in options]
        scored = [Candidate(f"c{i}", (1.0, 0.0, 1.0, 0.0), r2, float(formula_cost(expr)))
                  for i, (expr, r2, _) in enumerate(cleaned)]
        chosen = select(scored, tolerance=1e-3, data_noise=fitted_noise(cleaned, target_noise, len(w_fit)), rows=len(w_fit))
        index = int(chosen.name[1:]) if chosen is not None else 0
        expr, r2, clean_log = cleaned[index]
        node = options[index][1]
        refit_budget = WorkBudget(max(int(REFIT_SHARE * settings.budget), 1), settings.time_limit)
        (expr, r2, clean_log), refitted = refitted_on_data((expr, r2, clean_log), used, z_kept, w_fit, functions, settings,
                                                           digits, simplify_timeout, target_noise, refit_budget)
        log["refitted_on_data"] = refitted
        log["refit_work"] = refit_budget.to_dict()
        best_search = max((s.node.r2 for s in found), default=None)
        expr, constants = in_data_units(expr, units, symbols, x_fit, target_fit[:, k], digits, target_noise)
        log |= {"structure": node.to_dict() if node else {"kind": "power-law", "detail": "fitted to the targets"},
                "structure_text": node.describe() if node else ["power-law fitted to the targets: " + str(expr)],
                "search_r2": node.r2 if node else best_search, "target_r2": r2, "cleanup": clean_log,
                "physical_constants": constants,
                "candidates": [{"formula": sympy.sstr(fold_constants(units.restore(e, symbols), digits)), "target_r2": v}
                               for e, v, _ in cleaned]}
        formulas.append(expr)
        logs.append(log)
    return formulas, logs


BUDGETED_PARTS = ("search_work", "refit_work")  # the log entries of an output's work budgets (WorkBudget.to_dict)


def cut_by_clock(log: dict) -> bool:
    """Whether the optional wall-clock cap, not the work budget, ended a search of the output
    whose log is ``log`` (its formula then depends on the machine)."""
    return any((log.get(part) or {}).get("cut_by_clock", False) for part in BUDGETED_PARTS)


def work_spent(log: dict) -> int:
    """The work units the search and the refit of the output whose log is ``log`` spent."""
    return sum((log.get(part) or {}).get("work_spent", 0) for part in BUDGETED_PARTS)


REFIT_SHARE = 0.25  # the refit on the data takes at most this share of the search's work budget (plus one clean-up)
EXACT_MISFIT = 1e-10  # a formula this close to the targets (float32 rounding of them) has nothing to refit


def fitted_noise(cleaned: list[tuple[sympy.Expr, float, dict]], noise: float, rows: int) -> float:
    """The targets' noise share ``noise`` capped by the best-fitting of the ``cleaned`` formulas
    (:func:`kanx.core.numerics.noise_bounded_by_fit`, its floats counted as fitted constants)."""
    finite = [(expr, r2) for expr, r2, _ in cleaned if expr is not None and math.isfinite(r2)]
    if not finite:
        return noise
    expr, r2 = max(finite, key=lambda pair: pair[1])
    return noise_bounded_by_fit(noise, r2, rows, len(expr.atoms(sympy.Float)))


def refitted_on_data(chosen: tuple[sympy.Expr, float, dict], used: list[sympy.Symbol], z: torch.Tensor, w: torch.Tensor,
                     functions: list[LibraryFunction], settings: StructureSettings, digits: int, simplify_timeout: float,
                     noise: float, budget: WorkBudget | None = None) -> tuple[tuple[sympy.Expr, float, dict], list[str]]:
    """``chosen`` (a cleaned formula, its R² on the targets ``w [N]`` at rows ``z [N, k]``, its
    clean-up log) or, when it fits the targets better beyond their noise (or as well and is
    simpler), the same formula with its one-variable pieces refitted to the targets
    (:func:`kanx.symbolic.structure.backfit.backfit`), cleaned; with the names of the variables
    whose piece changed (empty when ``chosen`` stays). A formula within ``EXACT_MISFIT`` of the
    targets is their law to their own precision and stays as it is. The refit tries no new
    piece once ``budget`` is spent (default: ``REFIT_SHARE`` of the search's work budget)."""
    expr, r2, _ = chosen
    if expr is None or expr.atoms(sympy.core.function.AppliedUndef) or not math.isfinite(r2) or 1 - r2 <= EXACT_MISFIT:
        return chosen, []
    budget = budget if budget is not None else WorkBudget(max(int(REFIT_SHARE * settings.budget), 1), settings.time_limit)
    candidate, changed = backfit(expr, used, z, w, functions, settings.tolerance, budget)
    if not changed:
        return chosen, []
    refitted = clean_formula(candidate, used, z, w, digits, simplify_timeout, noise)
    scored = [Candidate("chosen", (1.0, 0.0, 1.0, 0.0), r2, float(formula_cost(expr))),
              Candidate("refitted", (1.0, 0.0, 1.0, 0.0), refitted[1], float(formula_cost(refitted[0])))]
    pick = select(scored, tolerance=1e-3, data_noise=fitted_noise([chosen, refitted], noise, len(w)), rows=len(w))
    return (refitted, changed) if pick is scored[1] else (chosen, [])


HOPELESS_GAP = 0.05  # a candidate this far below the best one's R² on the oracle is not cleaned ...
HOPELESS_NOISE = 10.0  # ... nor this many times the oracle's error share below it, when larger


def contenders(found: list, noise: float = 0.0) -> list:
    """The search's candidates worth cleaning against the targets: all but those whose R² on the
    oracle is more than ``max(HOPELESS_GAP, HOPELESS_NOISE·noise)`` below the best one's, or not
    finite (all of them when none is finite); ``noise``: the oracle's error share. Against an
    accurate oracle the clean-up moves a formula's R² by thousandths, and cleaning a hopeless
    formula costs seconds (a composed sum's alternatives took 40 of the 70 s of a 4-input law);
    against a poor one the targets may rank the formulas quite differently, so the gap widens
    with the oracle's error share."""
    finite = [s.node.r2 for s in found if math.isfinite(s.node.r2)]
    if not finite:
        return found
    floor = max(finite) - max(HOPELESS_GAP, HOPELESS_NOISE * noise)
    return [s for s in found if math.isfinite(s.node.r2) and s.node.r2 >= floor]


def restricted_oracle(oracle, kept: list[int], reference: torch.Tensor):
    """``oracle`` as a function of the ``kept`` inputs only (``[N, len(kept)]`` → ``[N]``), the
    others held at ``reference [n]``."""
    if len(kept) == reference.numel():
        return oracle

    def restricted(z: torch.Tensor) -> torch.Tensor:
        full = reference.to(z.dtype).expand(z.shape[0], -1).clone()
        full[:, kept] = z
        return oracle(full)

    return restricted


def in_data_units(expr: sympy.Expr, units: WorkingUnits, symbols: list[sympy.Symbol], x: torch.Tensor, target: torch.Tensor,
                  digits: int, noise: float = 0.0, fewest_digits: bool = False) -> tuple[sympy.Expr, list[dict]]:
    """A formula found in working units written in the data's units: powers of ten folded into
    its constants (one constant per product; with ``fewest_digits``, whichever exact form takes
    fewest digits: :func:`~kanx.symbolic.canonical.shortest_constants`), radicals and logarithms of inputs that are
    positive on every row merged (``√a·√b`` → ``√(a·b)``) and what the rows' signs settle written
    out (:func:`sign_resolved`), then constants that match a physical constant
    to 4 significant digits replaced by its exact value while R² on ``x``/``target`` stays
    within a noise-scaled margin (``noise``: the targets' noise share). Returns the formula and
    the matches made."""
    positive = {s for i, s in enumerate(symbols) if bool((x[:, i] > 0).all())}
    restored = units.restore(expr, symbols)
    restored = positive_forms(shortest_constants(restored, digits) if fewest_digits else fold_constants(restored, digits), positive)
    restored = sign_resolved(restored, symbols, x)
    reference = held_out_r2(restored, symbols, x, target)
    margin = min(5e-4, SNAP_NOISE_RATIO * misfit_beyond_noise(reference, noise, len(target)) + chance_loss(noise, len(target)) + 1e-12)
    matched, matches = match_physical_constants(restored)
    if matches and held_out_r2(matched, symbols, x, target) >= reference - margin:
        return matched, matches
    return restored, []


SAME_VALUES = 1e-9  # relative difference within which a rewritten formula counts as the same on the rows


def sign_resolved(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor) -> sympy.Expr:
    """``expr`` with what the data's signs settle written out: ``|a|`` → ``a`` (or ``−a``) where ``a``
    has one sign on every row of ``x [N, n_in]``, and radicals of powers denested
    (``√(1/(r²(c − v)²))`` → ``1/(r·(c − v))`` when ``r`` and ``c − v`` are positive on the rows).
    Kept only when the rewritten formula is cheaper (``formula_cost``) and equal to the original
    on every row, so no identity is assumed beyond what the rows show."""
    def values(e: sympy.Expr) -> torch.Tensor | None:
        try:
            out = evaluate_expression(e, symbols, x, None).double()
        except Exception:  # noqa: BLE001 - a part that does not evaluate is left alone
            return None
        return out if bool(torch.isfinite(out).all()) else None

    def one_sign(node: sympy.Abs) -> sympy.Expr:
        inner = values(node.args[0]) if node.args[0].free_symbols else None
        if inner is None or inner.numel() != x.shape[0]:
            return node
        return node.args[0] if bool((inner > 0).all()) else -node.args[0] if bool((inner < 0).all()) else node

    def resolve(e: sympy.Expr) -> sympy.Expr:
        return e.replace(lambda node: isinstance(node, sympy.Abs), one_sign)

    if not expr.has(sympy.Abs, sympy.Pow):
        return expr
    rewritten = resolve(sympy.powdenest(resolve(expr), force=True))
    if rewritten == expr or formula_cost(rewritten) >= formula_cost(expr):
        return expr
    before, after = values(expr), values(rewritten)
    if before is None or after is None:
        return expr
    same = (after - before).abs() <= SAME_VALUES * before.abs().clamp_min(float(before.abs().max()) * 1e-12)
    return rewritten if bool(same.all()) else expr


def clean_formula(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor, target: torch.Tensor, digits: int,
                  simplify_timeout: float, noise: float = 0.0) -> tuple[sympy.Expr, float, dict]:
    """Refit, prune, snap and simplify ``expr`` against ``target [N]`` on ``x [N, n_in]``
    (``noise``: the share of the target's variance that is noise); returns the formula, its R²
    on those rows and the clean-up log."""
    settings = CleanSettings(digits=digits, tolerance=5e-4, noise_ratio=SNAP_NOISE_RATIO, noise_share=noise,
                             timeout=simplify_timeout, expand=False,
                             snap_window=SNAP_WINDOW, pi_window=PI_WINDOW, pi_squared=True,
                             pi_inverse=True)
    cleaned, log = Cleaner(symbols, x.double(), target.double(), settings).run(expr)
    simpler = run_with_timeout(simplest_form, (cleaned,), simplify_timeout, cleaned)
    if sympy.count_ops(simpler) <= sympy.count_ops(cleaned):
        cleaned = simpler
    cleaned = run_with_timeout(resolve_inverse_pairs, (cleaned,), simplify_timeout, cleaned)
    return cleaned, held_out_r2(cleaned, symbols, x, target), log


def held_out_r2(expr: sympy.Expr | None, symbols: list[sympy.Symbol], x: torch.Tensor, target: torch.Tensor) -> float:
    """R² of a formula on ``x [N, n_in]`` against ``target [N]`` (``-inf`` if it does not evaluate)."""

    if expr is None:
        return float("-inf")
    try:
        prediction = evaluate_expression(expr, symbols, x, None)
    except Exception:  # noqa: BLE001 - a formula that does not evaluate loses
        return float("-inf")
    return r2_value(prediction.double(), target.double())


def noise_level(y_net: torch.Tensor, y_data: torch.Tensor | None) -> float:
    """Fraction of the target variance the network misses, ``1 − R²`` (``DEFAULT_NOISE``
    without targets): the floor below which decomposition tests cannot see anything."""
    if y_data is None:
        return DEFAULT_NOISE
    return max(1.0 - r2_value(y_net.double(), y_data.double()), 0.0)


AGREEMENT = 2.0  # 1-D candidates within this many times the network's error share are equal


SETTLE = 4.0  # a formula within this many times the oracle's error share of it ends the search


def structure_settings(noise: float, budget: int, time_limit: float | None = None) -> StructureSettings:
    """Thresholds scaled to the oracle's error share ``noise``: tests ``10·noise``, acceptance
    ``1 − 20·noise``, the search settles at ``1 − SETTLE·noise``, 1-D candidates equal within
    ``AGREEMENT·noise`` (the simpler wins); ``budget`` work units per output, ``time_limit`` an
    optional wall-clock cap in seconds."""
    test = min(max(10 * noise, 1e-7), 1e-2)
    return StructureSettings(separability_threshold=test, combination_threshold=test,
                             accept_r2=1 - min(max(20 * noise, 1e-6), 1e-2), budget=budget, time_limit=time_limit,
                             noise=min(AGREEMENT * noise, 1e-3), settle_r2=1 - min(max(SETTLE * noise, 1e-7), 1e-3))


SEARCH_QUANTILE = 0.01  # the search box spans these quantiles of the fit rows, not their extremes


def search_box(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box the oracle is asked about, ``lo``, ``hi`` ``[k]`` from rows ``z [N, k]``: each input
    between its ``SEARCH_QUANTILE`` and ``1 − SEARCH_QUANTILE`` quantiles. A network is least
    accurate at the edge of its data, where rows are sparse, and errors in that rim of the box
    dominate the separability tests (one trained on uniform rows can be 100 times further off
    the law there than inside)."""
    levels = torch.tensor([SEARCH_QUANTILE, 1 - SEARCH_QUANTILE], dtype=z.dtype)
    bounds = torch.quantile(z, levels, dim=0)
    return bounds[0], bounds[1]


def oracle_error(network_misfit: float, data_noise: list[float] | None) -> float:
    """The error share the oracle tests must tolerate: the network's misfit to the targets
    (``1 − R²``), or the targets' estimated noise share when larger (a network that learned part
    of the noise has a residual below the noise, yet carries that part as its own error)."""
    return max([network_misfit, *(data_noise or [])])


def decomposed_wins(mine: sympy.Expr, mine_r2: float, theirs: sympy.Expr, theirs_r2: float, noise: float, rows: int) -> bool:
    """Whether the decomposed formula ``mine`` beats the edge formula ``theirs`` given their R² on
    the held-out targets (``noise``: the targets' noise share, ``rows`` held-out rows): a smaller
    misfit beyond the noise than the other's by more than chance (``chance_loss``), or one within
    chance of it and a lower :func:`~kanx.symbolic.cleaning.formula_cost`."""
    mine_misfit = misfit_beyond_noise(mine_r2, noise, rows)
    theirs_misfit = misfit_beyond_noise(theirs_r2, noise, rows)
    margin = chance_loss(noise, rows) + 1e-12
    if abs(mine_misfit - theirs_misfit) > margin:
        return mine_misfit < theirs_misfit
    return formula_cost(mine) < formula_cost(theirs)


def law_from_rows(symbols: list[sympy.Symbol], x_fit: torch.Tensor, y_fit: torch.Tensor, x_test: torch.Tensor,
                  y_test: torch.Tensor, digits: int, simplify_timeout: float,
                  noise: float) -> tuple[sympy.Expr, float, dict] | None:
    """The rows' own law for targets ``y_fit [N]`` at inputs ``x_fit [N, n]``
    (:mod:`kanx.symbolic.sparse`, in working units): the sparse regression's choice on the
    held-out rows ``x_test``/``y_test``, cleaned like the structure search's formulas and
    written in the data's units; with its R² on the held-out rows and a log. ``None`` when the
    route stands aside (too many inputs) or finds nothing that evaluates."""
    units = WorkingUnits.of(x_fit, y_fit)
    z_fit, z_test = units.to_working(x_fit.double()), units.to_working(x_test.double())
    w_fit, w_test = units.target_to_working(y_fit.double()), units.target_to_working(y_test.double())
    laws = sparse_laws(symbols, z_fit, w_fit, z_test, w_test, noise)
    best = best_sparse_law(laws, noise, len(w_test))
    if best is None:
        return None
    raw = best.formula
    cleaned = clean_formula(raw, symbols, z_fit, w_fit, digits, simplify_timeout, noise)[0]
    cleaned_r2 = held_out_r2(cleaned, symbols, z_test, w_test)
    expr = cleaned if decomposed_wins(cleaned, cleaned_r2, raw, best.held_out_r2, noise, len(w_test)) else raw
    expr, _ = in_data_units(expr, units, symbols, x_fit, y_fit, digits, noise, fewest_digits=True)
    r2 = held_out_r2(expr, symbols, x_test, y_test)
    return expr, r2, {"formula": sympy.sstr(expr), "held_out_r2": r2, "terms": best.size, "candidates": len(laws)}


def structure_first(model, functions: list[LibraryFunction], data, edges, *, budget: int, digits: int,
                    simplify_timeout: float, seed: int, data_noise: list[float] | None = None, rival: bool = False,
                    time_limit: float | None = None):
    """The structure-first pipeline; ``edges()`` runs the edge strategy (called at most once,
    only when some output needs the fallback). ``data_noise``: per output, the estimated share of
    the targets' variance that is noise (``OracleQuality.noise``; ignored without targets).
    ``rival``: the edge formula competes for every output (``strategy="auto"``), not only where
    the search found nothing accurate, and wins unless the decomposed one fits the held-out
    rows better beyond their noise, or as well and shorter (:func:`decomposed_wins`).
    Returns a ``SymbolicResult``."""

    timings: dict[str, float] = {}
    start = time.perf_counter()
    model = model.eval()
    x_all, y_data = resolve_inputs(model, data, seed)
    fit_rows, test_rows = fit_and_test_rows(x_all.shape[0], seed)
    x_fit, x_test = x_all[fit_rows], x_all[test_rows]
    with torch.no_grad():  # the network runs on its device; the search, its samples and the formulas on the CPU
        y_net_fit, y_net_test = model(x_fit).double().cpu(), model(x_test).double().cpu()
    x_fit, x_test = x_fit.cpu(), x_test.cpu()
    y_data = y_data.cpu() if y_data is not None else None
    target_fit = y_data[fit_rows].double() if y_data is not None else y_net_fit
    target_test = y_data[test_rows].double() if y_data is not None else y_net_test
    data_noise = data_noise if y_data is not None and data_noise is not None else [0.0] * model.n_outputs
    noise = oracle_error(noise_level(y_net_fit, y_data[fit_rows] if y_data is not None else None), data_noise)
    settings = structure_settings(noise, budget, time_limit)
    with made_on_cpu():
        formulas, logs = structure_formulas(model, functions, x_fit, target_fit, settings, digits, simplify_timeout, seed, noise,
                                            data_noise)
    timings["structure"] = time.perf_counter() - start
    symbols = input_symbols(model)
    fallback = None
    used: list[str] = []
    route_r2: list[float | None] = []  # held-out R² of each output's formula so far, where measured
    for k, (expr, log) in enumerate(zip(formulas, logs)):
        log |= {"noise": noise, "data_noise": data_noise[k]}
        # on noisy targets the formula is judged by its misfit beyond the noise
        target_r2 = log.get("target_r2")
        on_targets = 1 - misfit_beyond_noise(target_r2, data_noise[k], len(fit_rows)) if target_r2 is not None else float("-inf")
        if not rival and expr is not None and max(log.get("search_r2") or float("-inf"), on_targets) >= settings.accept_r2:
            used.append("structure-first")
            route_r2.append(None)  # measured only if the rows' route has a rival for it
            continue
        if fallback is None:
            began = time.perf_counter()
            fallback = edges()
            timings["edges"] = time.perf_counter() - began
        with made_on_cpu():
            mine = held_out_r2(expr, symbols, x_test, target_test[:, k])
        their_fidelity = fallback.fidelity[k].data or fallback.fidelity[k].network
        theirs = their_fidelity.r2  # numeric edges are evaluated through the symbolic network
        if rival:
            wins = expr is not None and decomposed_wins(expr, mine, fallback.expressions[k], theirs, data_noise[k], len(test_rows))
        else:
            wins = expr is not None and theirs <= mine
        formulas[k] = expr if wins else fallback.expressions[k]
        used.append("structure-first" if wins else "edges")
        route_r2.append(mine if wins else theirs)
    if y_data is not None:
        began = time.perf_counter()
        with made_on_cpu():
            for k in range(model.n_outputs):
                found = law_from_rows(symbols, x_fit, target_fit[:, k], x_test, target_test[:, k], digits, simplify_timeout,
                                      data_noise[k])
                if found is None:
                    continue
                expr, r2, logs[k]["rows_route"] = found
                current_r2 = route_r2[k] if route_r2[k] is not None else held_out_r2(formulas[k], symbols, x_test,
                                                                                     target_test[:, k])
                if decomposed_wins(expr, r2, formulas[k], current_r2, data_noise[k], len(test_rows)):
                    formulas[k], used[k] = expr, SPARSE_ROUTE
        timings["rows"] = time.perf_counter() - began
    with made_on_cpu():
        fidelities = [output_fidelity(expr, symbols, x_test, model, k, y_net_test[:, k],
                                      y_data[test_rows][:, k] if y_data is not None else None)
                      for k, expr in enumerate(formulas)]
    settings_out = {"strategy": "auto" if rival else "structure-first", "budget": budget, "time_limit": time_limit,
                    "digits": digits, "seed": seed,
                    "separability_threshold": settings.separability_threshold, "accept_r2": settings.accept_r2,
                    "library": [f.name for f in functions], "fit_rows": int(len(fit_rows)), "held_out_rows": int(len(test_rows))}
    reports = fallback.edges if fallback is not None else []
    flagged = fallback.flagged if fallback is not None else []
    result_model = fallback.model if fallback is not None else model
    return SymbolicResult(result_model, formulas, list(model.meta.output_names), reports, fidelities, flagged,
                          settings_out, timings, logs, used, hidden=fallback.hidden if fallback is not None else {})
