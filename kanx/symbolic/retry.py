"""Second chances for edges the library did not fit, before they are left numeric.

The per-edge fit judges each edge alone. An edge can fail that test while a formula exists:

1. **Chain view** (``collapse_chains``): a hidden node with a single live incoming edge carries a
   1-D function of one variable ``u``. When an edge leaving it stays numeric, the incoming edge
   is set to the identity and every edge leaving the node is refitted as a function of ``u``
   itself (``x³`` where the pieces were a square root feeding an unfittable curve). Kept only when
   every edge leaving the node is then symbolic.
2. **A wider library** (``widen``): the full builtin library plus ``WIDER_FUNCTIONS``, fitted on
   the edge's own data.
3. **End to end** (``end_to_end``): each candidate on the edge's Pareto front is set on the
   model, the formula's constants are refitted on the targets, and the simplest candidate whose
   output R² is within ``E2E_SLACK`` of the network-edge model's wins. Only near misses (edge R²
   at least ``E2E_MIN_LOCAL_R2``) are reconsidered.

4. **Structure-first view** (``subnode_formulas``): for an edge still numeric beyond the first
   layer, the sum its subnode computes, as a function of the network's inputs, goes to the
   structure-first search (``kanx.symbolic.structure``) with the original network as the oracle,
   within ``SUBNODE_WORK`` work units in all (``kanx.core.budget``). A formula that reproduces it to ``SUBNODE_R2`` stands
   for that subnode when the output is composed; its edges are reported with status ``structure``.

Every edge that stays numeric gets a ``note`` saying what was tried and how close it came.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from kanx.core.budget import WorkBudget
from kanx.core.numerics import r2
from kanx.core.resources import made_on_cpu, map_rows
from kanx.families.kan.network import KAN
from kanx.families.registry import device_of
from kanx.functions.library import LibraryFunction, build_library
from kanx.symbolic.engines import Candidate
from kanx.symbolic.results import EdgeReport
from kanx.symbolic.selection import choose_fit, pareto

WIDER_FUNCTIONS = ("x**5", "1/x**3", "sinh(x)", "cosh(x)", "asinh(x)", "x*exp(x)", "exp(x**2)", "1/(1 + x**2)", "x/(1 + x**2)")
E2E_CANDIDATES = 6
E2E_MIN_LOCAL_R2 = 0.95  # end to end only reconsiders near misses, never a shape the edge does not have
E2E_SLACK = 1e-4
E2E_STEPS = 20
E2E_MAX_EDGES = 16  # each try refits the whole model: the most important numeric edges only
IDENTITY = Candidate("x", (1.0, 0.0, 1.0, 0.0), 1.0, 1.0)
SUBNODE_R2 = 0.9999
SUBNODE_WORK = 300_000  # work units of structure search for all subnodes of one symbolify call
MAX_SUBNODE_INPUTS = 12  # the search is built for laws of a few variables; wider networks skip this view

Fitter = Callable[[torch.Tensor, torch.Tensor, list[LibraryFunction]], list[list[Candidate]]]


def numeric(reports: list[EdgeReport]) -> list[EdgeReport]:
    return [r for r in reports if r.status == "numeric"]


def best_text(candidate: Candidate | None) -> str:
    return f"{candidate.name} (R² {candidate.r2:.4f})" if candidate is not None else "none"


def collapse_chains(model: KAN, reports: list[EdgeReport], x: torch.Tensor, targets: list[torch.Tensor],
                    fitter: Fitter, functions: list[LibraryFunction], tolerance: float, r2_threshold: float) -> KAN:
    """The chain view (module docstring, 1). ``targets[l]``: the original network's edge values of
    layer ``l`` ``[N, n_in, n_sub]`` on ``x``; ``reports`` and ``model`` are updated in place
    (``model`` is returned)."""
    for layer in range(1, len(model.layers)):
        below, here = model.layers[layer - 1], model.layers[layer]
        if here.layer_norm:
            continue
        for node in range(below.shape.n_sum):
            outgoing = [r for r in reports if r.layer == layer and r.i == node and r.status not in ("masked", "negligible")]
            if not any(r.status == "numeric" for r in outgoing):
                continue
            incoming = [r for r in reports if r.layer == layer - 1 and r.j == node and r.status not in ("masked", "negligible")]
            if len(incoming) != 1 or incoming[0].status == "poly":
                continue
            low = incoming[0]
            previous = model.symbolic_edge(low.layer, low.i, low.j)
            model.set_symbolic(low.layer, low.i, low.j, IDENTITY.name, IDENTITY.affine)
            with torch.no_grad():
                u = model.edge_activations(x)[layer].inputs[:, node]
            found = fitter(u.expand(len(outgoing), -1), torch.stack([targets[layer][:, node, r.j] for r in outgoing]), functions)
            choices = [choose_fit(c, u, targets[layer][:, node, r.j], tolerance, r2_threshold, "numeric")
                       for c, r in zip(found, outgoing)]
            if all(choice.status == "symbolic" for choice in choices):
                origin = f"layer {low.layer} input {low.i}"
                low.status, low.chosen = "symbolic", IDENTITY
                low.note = f"set to the identity: the edges leaving node {node} are fitted as functions of {origin}"
                for report, choice, candidates in zip(outgoing, choices, found):
                    report.status, report.chosen, report.front = "symbolic", choice.chosen, pareto(candidates)
                    report.note = f"fitted as a function of {origin} through node {node} (chain view)"
                    model.set_symbolic(report.layer, report.i, report.j, choice.chosen.name, choice.chosen.affine)
                continue
            if previous is None:
                model.set_numeric(low.layer, low.i, low.j)
            else:
                model.set_symbolic(low.layer, low.i, low.j, *previous)
            for report, choice in zip(outgoing, choices):
                if report.status == "numeric":
                    report.note = (report.note or "") + f"chain view through node {node}: best {best_text(choice.chosen)}; "
    return model


def widen(model: KAN, reports: list[EdgeReport], x: torch.Tensor, targets: list[torch.Tensor], inputs: list[torch.Tensor],
          fitter: Fitter, lib_add: tuple[str, ...], tolerance: float, r2_threshold: float) -> KAN:
    """A wider library for the edges still numeric (module docstring, 2); ``model`` is updated in
    place and returned."""
    remaining = numeric(reports)
    if not remaining:
        return model
    functions, custom = build_library(None, list(lib_add) + list(WIDER_FUNCTIONS))
    model.custom_functions.update(custom)
    xs = torch.stack([inputs[r.layer][:, r.i] for r in remaining])
    ys = torch.stack([targets[r.layer][:, r.i, r.j] for r in remaining])
    for report, candidates, ex, ey in zip(remaining, fitter(xs, ys, functions), xs, ys):
        choice = choose_fit(candidates, ex, ey, tolerance, r2_threshold, "numeric")
        report.front = pareto(report.front + candidates)
        if choice.status == "symbolic":
            report.status, report.chosen = "symbolic", choice.chosen
            report.note = "fitted with the wider library"
            model.set_symbolic(report.layer, report.i, report.j, choice.chosen.name, choice.chosen.affine)
        else:
            report.note = (report.note or "") + f"wider library: best {best_text(choice.chosen)}; "
    return model


def end_to_end(model: KAN, reports: list[EdgeReport], x: torch.Tensor, y: torch.Tensor,
               refit: Callable[[KAN, torch.Tensor, torch.Tensor, int], None]) -> KAN:
    """End-to-end selection for the edges still numeric (module docstring, 3). ``y [N, n_out]``:
    the targets (data, or the network). Returns the model with the accepted choices. At most
    ``E2E_MAX_EDGES`` numeric edges, the most important first, are reconsidered."""
    ranked = sorted(numeric(reports), key=lambda r: -r.importance)
    for report in ranked[E2E_MAX_EDGES:]:
        report.note = (report.note or "") + f"end to end: not tried (only the {E2E_MAX_EDGES} most important numeric edges are)"
    chosen = {id(report) for report in ranked[:E2E_MAX_EDGES]}
    for report in [r for r in numeric(reports) if id(r) in chosen]:  # in layer order, as composed
        with torch.no_grad():
            reference = float(r2(model(x).double(), y.double(), dim=0).min())
        tried = sorted((c for c in report.front if c.r2 >= E2E_MIN_LOCAL_R2), key=lambda c: -c.r2)[:E2E_CANDIDATES]
        best: tuple[float, Candidate, KAN] | None = None
        for candidate in sorted(tried, key=lambda c: (c.complexity, -c.r2)):
            trial = copy.deepcopy(model)
            trial.set_symbolic(report.layer, report.i, report.j, candidate.name, candidate.affine)
            refit(trial, x, y, E2E_STEPS)
            with torch.no_grad():
                score = float(r2(trial(x).double(), y.double(), dim=0).min())
            if best is None or score > best[0]:
                best = (score, candidate, trial)
            if score >= reference - E2E_SLACK:
                report.status, report.chosen = "symbolic", candidate
                report.note = f"chosen end to end: output R² {score:.6f} (numeric edge: {reference:.6f})"
                model = trial
                break
        else:
            closest = f"{best[1].name}, output R² {best[0]:.6f} vs {reference:.6f}" if best else "no candidates"
            report.note = (report.note or "") + f"end to end: best {closest}"
    return model


def subnode_oracle(network: KAN, layer: int, j: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x [N, n_in]`` float64 → the sum entering subnode ``j`` of ``layer`` ``[N]`` (float64)."""

    device = device_of(network)

    def subnode(rows: torch.Tensor) -> torch.Tensor:
        h = rows.to(device).float()
        for below in network.layers[:layer]:
            h = below(h)
        return network.layers[layer].subnode_sums(h)[:, j].double().to(rows.device)

    def oracle(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return map_rows(subnode, x, network.row_bytes())

    return oracle


def subnode_formulas(network: KAN, reports: list[EdgeReport], x: torch.Tensor, functions: list[LibraryFunction],
                     seed: int) -> dict:
    """The structure-first view (module docstring, 4): ``{(layer, j): formula}`` for the subnodes
    fed by edges still numeric. ``network``: the original network (every edge as trained)."""
    from kanx.families.kan.compose import input_symbols
    from kanx.symbolic.structure.search import StructureSettings, search_structure

    if network.n_inputs > MAX_SUBNODE_INPUTS:
        for report in numeric(reports):
            report.note = (report.note or "") + (f"; no structure-first view of the subnode it feeds: the network has "
                                                 f"{network.n_inputs} inputs (the view searches at most {MAX_SUBNODE_INPUTS})")
        return {}
    symbols = input_symbols(network)
    lo, hi = x.double().min(0).values.cpu(), x.double().max(0).values.cpu()
    found: dict = {}
    # a first-layer subnode is a sum of 1-D functions of the inputs: the edge fits already are its view
    subnodes = sorted({(r.layer, r.j) for r in numeric(reports) if r.layer > 0})
    budget = WorkBudget(SUBNODE_WORK)
    for layer, j in subnodes:
        if budget.exhausted():
            break
        settings = StructureSettings(accept_r2=SUBNODE_R2, budget=SUBNODE_WORK)
        with made_on_cpu():  # the search's samples live on the CPU; the oracle runs on the network's device
            solutions = search_structure(subnode_oracle(network, layer, j), symbols, lo, hi, functions, settings, seed,
                                         budget=budget)
        best = max(solutions, key=lambda s: s.node.r2, default=None)
        fed = [r for r in numeric(reports) if (r.layer, r.j) == (layer, j)]
        if best is not None and best.node.r2 >= SUBNODE_R2:
            found[(layer, j)] = best.expr
            for report in fed:
                report.status = "structure"
                report.note = (report.note or "") + (f"subnode {j} of layer {layer} it feeds is {best.expr} "
                                                     f"(structure-first view, R² {best.node.r2:.6f})")
        else:
            reached = f"R² {best.node.r2:.6f}" if best is not None else "nothing"
            for report in fed:
                report.note = (report.note or "") + f"; structure-first view of subnode {j}: {reached}"
    return found
