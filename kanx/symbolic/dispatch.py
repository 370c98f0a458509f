"""``symbolify``: the entry point behind ``kanx symbolify`` for KAN models (strategy dispatch)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace

import sympy
import torch
from torch import nn

from kanx.core.choices import LOGISTIC_ROUTE
from kanx.core.classes import cross_entropy, decision_agreement
from kanx.core.errors import KanxError
from kanx.core.numerics import single_thread, split_rows
from kanx.core.resources import memory_budget, parse_memory, resolve_device
from kanx.core.stage import Rows, rows_on, settings_of
from kanx.families.kan.network import KAN
from kanx.families.registry import device_of, family_of, placed
from kanx.functions.library import build_library
from kanx.symbolic.classify import ClassifierFidelity, classifier_fidelity, formula_logits
from kanx.symbolic.edges import symbolify_edges
from kanx.symbolic.karsein import KarSeinSymbolicResult, symbolify_karsein
from kanx.symbolic.logistic import chosen_law, logistic_laws
from kanx.symbolic.oracle import judge_and_refine
from kanx.symbolic.results import OutputFidelity, SymbolicResult, fidelity, with_noise_floors
from kanx.symbolic.settings import SymbolifySettings
from kanx.symbolic.structure import structure_first

CLASSIFIER_THRESHOLDS = (0.9, 0.8)  # edge R² thresholds a classifier's formula may step down through
DECISION_AGREEMENT = 0.99  # the share of the network's decisions a classifier's formula must make (prune's guard)


def symbolify(model: nn.Module, data: object | None = None, settings: SymbolifySettings | None = None,
              **options) -> SymbolicResult | KarSeinSymbolicResult:
    """Formulas for ``model`` (left untouched), whatever its family.

    ``data``: rows with ``.x`` (model inputs ``[N, n_in]``) and ``.y`` (targets, or ``None``), e.g. a
    ``kanx.Rows`` or ``kanx.io.data.Dataset``, or a tensor of inputs; default: the model's stored sample. ``settings`` (or its
    fields as keyword ``options``) as in :class:`SymbolifySettings`.
    """
    settings = settings_of(SymbolifySettings, settings, options, "symbolify")
    home = device_of(model)
    with memory_budget(parse_memory(settings.max_memory)):
        device = resolve_device(settings.device)
        result = IMPLEMENTATIONS[family_of(model).name](placed(model, device), rows_on(data, device, "symbolify"), settings)
    result.model = placed(result.model if result.model is not None else model, home)
    return result


def symbolify_kan(model: KAN, data: object | None, settings: SymbolifySettings) -> SymbolicResult:
    """A KAN's formulas. ``data``: a ``Dataset`` whose inputs drive the fits (and whose targets,
    when they match the outputs, are what constants are refitted against and checked with).
    ``strategy="edges"`` fits every edge and composes; ``"structure-first"`` decomposes the
    network's function first (``kanx.symbolic.structure``), searching for at most ``budget``
    work units per output, and falls back to ``"edges"`` where that finds no accurate formula;
    ``"auto"`` (the default) fits every edge and, when the data hold the targets, decomposes too:
    per output, the formula with the smaller misfit beyond the noise on the held-out rows wins
    (the shorter one on a tie). An edge formula at the noise floor can still be a look-alike
    (a known noise estimate may still hold part of the network's error, up to the share
    :func:`kanx.core.numerics.neighbour_variance` tolerates); an unknown one counts as 0."""
    s = settings
    functions, custom = build_library(s.lib, list(s.lib_add))
    labelled = None
    if model.classes is not None:  # the rows' targets are class labels, not values of the outputs (logits)
        labelled = data
        data = Rows(data.x) if data is not None else None
    oracle = None
    if has_targets(model, data):
        model, oracle = judge_and_refine(model, data.x.float(), data.y.float(), s.strategy, s.refine, s.seed)
    elif s.refine:
        raise KanxError(f"--refine {s.refine}: needs data with the model's outputs (--data with the target column)")

    def edges() -> SymbolicResult:
        return symbolify_edges(copy.deepcopy(model), functions, custom, data, s)

    def decomposed(edge_strategy: Callable[[], SymbolicResult], rival: bool) -> SymbolicResult:
        return structure_first(model, functions, data, edge_strategy, budget=s.budget, time_limit=s.time_limit,
                               digits=s.digits, simplify_timeout=s.simplify_timeout, seed=s.seed,
                               data_noise=oracle.threshold_noise if oracle is not None else None, rival=rival)

    with single_thread():
        if s.strategy == "structure-first":
            result = decomposed(edges, rival=False)
        else:
            result = edges()
            if model.classes is not None and getattr(labelled, "y", None) is None:  # no labelled rows' route beside it
                result = decisive_edges(model, result, labelled, lambda threshold: symbolify_edges(
                    copy.deepcopy(model), functions, custom, data, replace(s, r2_threshold=threshold)))
            if oracle is not None and oracle.noise is not None:
                with_noise_floors(result.fidelity, oracle.noise)
            if s.strategy == "auto" and oracle is not None:
                edge_result = result
                result = decomposed(lambda: edge_result, rival=True)
    result.oracle_quality = oracle
    if oracle is not None and oracle.noise is not None:
        with_noise_floors(result.fidelity, oracle.noise)
    if model.classes is not None:
        if s.strategy == "auto":
            with single_thread():
                logit_from_labels(model, result, labelled, s)
        result.classification = classifier_report(model, result, labelled)
    return result


def decision_rows(model: KAN, data: object | None) -> torch.Tensor:
    """The inputs ``[N, n_in]`` a classifier's formula is held to: the data's, else the held-out
    rows the checkpoint keeps, else its stored sample."""
    if data is not None:
        return data.x
    return model.held_out_inputs if len(model.held_out_inputs) else model.sample_inputs


def decisive_edges(model: KAN, result: SymbolicResult, data: object | None,
                   edges_at: Callable[[float], SymbolicResult]) -> SymbolicResult:
    """A classifier's edge formula when edges stayed numeric (no library function reached the
    edge R² threshold) and no labelled rows give a law of their own: for a classifier what has to
    hold is its decisions, so the edges are
    fitted again at the lower thresholds of ``CLASSIFIER_THRESHOLDS`` in turn, and the first
    formula without numeric parts that makes the network's decisions on at least
    ``DECISION_AGREEMENT`` of the rows (:func:`decision_rows`) replaces ``result``."""
    x = decision_rows(model, data)
    expressions = [result.in_inputs(expr) for expr in result.expressions]
    if not len(x) or formula_logits(expressions, model, x[:1]) is not None:
        return result
    with torch.no_grad():
        network = model(x.float()).double().cpu()
    for threshold in CLASSIFIER_THRESHOLDS:
        candidate = edges_at(threshold)
        logits = formula_logits([candidate.in_inputs(expr) for expr in candidate.expressions], model, x)
        if logits is not None and decision_agreement(logits, network) >= DECISION_AGREEMENT:
            candidate.settings["classifier_r2_threshold"] = threshold  # why its edges are looser than r2_threshold asks
            return candidate
    return result


def logit_from_labels(model: KAN, result: SymbolicResult, data: object | None, settings: SymbolifySettings) -> None:
    """A classifier's rows' route: with labelled rows, the sparse logistic law of the labels
    (:mod:`kanx.symbolic.logistic`) replaces the logit formulas read from the network when it has
    no greater log-loss on held-out rows (formulas with numeric parts have none)."""
    labels = getattr(data, "y", None) if data is not None else None
    if labels is None:
        return
    x, labels = data.x.double().cpu(), labels[:, 0].cpu()
    fit, test = split_rows(len(x), 0.25, settings.seed)
    symbols = [sympy.Symbol(name) for name in model.meta.input_names]
    laws = logistic_laws(symbols, x[fit], labels[fit], x[test], labels[test], len(model.classes.names))
    law = chosen_law(laws)
    if law is None:
        return
    digits = max(settings.digits, 6)
    if result.log:  # every size's law, for a report's front (the logits are joint, so the first output's log holds them)
        result.log[0]["labelled_rows_laws"] = [
            {"logits": [sympy.sstr(f) for f in candidate.formulas(model.n_outputs, digits)], "terms": len(candidate.terms),
             "held_out_log_loss": candidate.held_out_log_loss, "held_out_accuracy": candidate.held_out_accuracy,
             "bic": candidate.bic, "chosen": candidate is law} for candidate in laws]
    read = formula_logits([result.in_inputs(expr) for expr in result.expressions], model, x[test])
    read_loss = float(cross_entropy(read, labels[test])) if read is not None and bool(torch.isfinite(read).all()) else math.inf
    if not law.held_out_log_loss <= read_loss:
        return
    formulas = law.formulas(model.n_outputs, digits)
    values = formula_logits(formulas, model, x[test])
    with torch.no_grad():
        network = model(x[test].float()).double()
    result.expressions = formulas
    result.hidden = {}
    result.fidelity = [OutputFidelity(fidelity(values[:, k], network[:, k])) for k in range(model.n_outputs)]
    result.strategy_used = [LOGISTIC_ROUTE] * model.n_outputs


def classifier_report(model: KAN, result: SymbolicResult, data: object | None) -> ClassifierFidelity:
    """The classifier ``model``'s formulas (``result``) as a classifier: on ``data``'s rows (with
    their labels when they have them), else on the held-out rows the checkpoint keeps, else on
    its stored sample of inputs (decisions only)."""
    expressions = [result.in_inputs(expr) for expr in result.expressions]
    labels = getattr(data, "y", None) if data is not None else None
    if data is not None:
        return classifier_fidelity(model, expressions, data.x, labels[:, 0] if labels is not None else None, "the data given")
    if len(model.held_out_inputs):
        return classifier_fidelity(model, expressions, model.held_out_inputs, model.held_out_targets[:, 0],
                                   "the checkpoint's held-out rows")
    return classifier_fidelity(model, expressions, model.sample_inputs, None, "the checkpoint's sample of inputs")


def has_targets(model: KAN, data: object | None) -> bool:
    """Whether ``data`` holds a target column for each of the model's outputs."""
    y = getattr(data, "y", None) if data is not None else None
    return y is not None and y.ndim == 2 and y.shape[1] == model.n_outputs and y.shape[0] > 0


IMPLEMENTATIONS: dict[str, Callable] = {"kan": symbolify_kan, "karsein": symbolify_karsein}
