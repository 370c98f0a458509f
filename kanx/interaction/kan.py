"""Which inputs act together, at what order, and how much of the output each interaction carries.

Numerical analysis of the network itself (no formula needed), from mixed differences of its outputs
(``kanx.interaction.sets``: no derivatives, so kinks such as ``|x|`` and ``max`` are measured too):
- interaction sets, the headline: each set of inputs that enters a term together (sets may overlap),
  with its order, its own share of the output variance (the part no subset explains) and the
  interaction variance inside it. With held-out targets (the rows ``kanx train`` keeps in the checkpoint,
  or ``--data`` with the outputs) a set is reported when the data support it: removing it from the
  network raises the error on those rows, by three standard errors for a pair and 1.5 for a larger set
  whose every subset passed (``kanx.interaction.sets.held_out_support``). Without targets, when
  its own share is above the noise: the threshold, a fraction ``ERROR_FRACTION`` of the variance the
  network itself does not explain (from the training record, else ``ASSUMED_ERROR_SHARE``), and three
  Monte Carlo standard errors;
- pairwise shares ``U_ij / Var f``: the variance of every component holding both inputs;
- additive blocks (the connected components of the sets) and an interaction tree from recursive
  separability tests: inside a block, inputs split into additive groups by the pair shares with the
  other inputs fixed, and a non-additive group is tested for multiplicative separability
  ``f - c = u(x_A) * v(x_B)`` from values only;
- a functional-ANOVA variance decomposition of each block: its share of the output variance, split
  into the main effects of its inputs and the interaction remainder.

The analysis is written here; its pieces live beside it: the report's data classes in
``kanx.interaction.report``, the tree in ``tree``, the ANOVA in ``anova``, the formula view
(``formula_report``: the additive terms of an expanded expression, each with its variables,
order and variance share) in ``formula``, and the structural bound (the largest group of inputs
the architecture can make interact, and the polynomial degree bound) in ``bounds``.
"""

from __future__ import annotations

import math
import time

import sympy
import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.interaction.anova import group_variances
from kanx.interaction.bounds import structural_bound
from kanx.interaction.formula import formula_report, model_formulas
from kanx.interaction.report import (
    ASSUMED_ERROR_SHARE,
    DEFAULT_THRESHOLD,
    InteractionGroup,
    InteractionReport,
    NoiseFloor,
    OutputReport,
    TreeNode,
)
from kanx.interaction.sets import (
    SetSearch,
    SwappedValues,
    affordable_rows,
    candidates_per_order,
    closed_shares,
    interaction_sets,
    pair_shares,
    set_components,
    total_shares,
    unconfirmed_sets,
)
from kanx.interaction.settings import InteractionSettings
from kanx.interaction.tree import CountingFunction, TreeContext, build_tree, find_subtree, random_rows

MIN_HELD_OUT_ROWS = 50  # fewer rows with targets than this do not test the sets (the floor does)
# Wide models: pairs are tested among at most MAX_PAIR_INPUTS inputs (those whose total effect
# exceeds their main effect the most), the tree splits groups of at most MAX_TREE_INPUTS inputs, and a
# group's main-effect ANOVA evaluates about ANOVA_ROW_BUDGET rows (Monte Carlo size shrunk to fit,
# not below MIN_MONTE_CARLO).
MAX_PAIR_INPUTS = 64


def error_shares(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> tuple[list[float | None], str]:
    """Per output, the share of the output variance the network leaves unexplained, and where it was
    measured: on targets ``y [N, m]`` for the rows ``x`` ("data"; rows whose targets are NaN are left out),
    else the test R² of the training record ("training record"), else unknown."""
    m = model.n_outputs
    known = torch.isfinite(y).all(dim=1) if y is not None else None
    if known is not None and int(known.sum()) >= 2:
        with torch.no_grad():
            residual = (model(x[known]).double() - y[known].double()).pow(2).mean(dim=0)
        spread = y[known].double().var(dim=0, unbiased=False).clamp_min(1e-300)
        return [float(v) for v in (residual / spread).cpu()], "data"
    training = model.meta.training if isinstance(model, KAN) and isinstance(model.meta.training, dict) else {}
    test = (training.get("metrics") or {}).get("test") if isinstance(training.get("metrics"), dict) else None
    r2 = test.get("r2") if isinstance(test, dict) else None
    if isinstance(r2, (int, float)) and math.isfinite(r2):
        return [max(1.0 - float(r2), 0.0)] * m, "training record"
    return [None] * m, "unknown"


def pair_columns(values: SwappedValues, total: torch.Tensor, variance: torch.Tensor, notes: list[str]) -> list[int]:
    """Inputs whose pairs are tested: all of them, or for wide models the ``MAX_PAIR_INPUTS`` whose
    total effect exceeds their main effect most (over the outputs). ``total [m, n]``."""
    n = total.shape[1]
    if n <= MAX_PAIR_INPUTS:
        return list(range(n))
    closed = closed_shares(values, n, [(i,) for i in range(n)], variance)
    involvement = torch.stack([total[:, i] - closed[(i,)] for i in range(n)], dim=1).amax(dim=0)
    chosen = sorted(int(i) for i in torch.argsort(involvement, descending=True)[:MAX_PAIR_INPUTS])
    notes.append(f"pairs tested among the {MAX_PAIR_INPUTS} of {n} inputs whose total effect exceeds their main effect most")
    return chosen


def analyse_output(model: nn.Module, output: int, values: SwappedValues, variance: torch.Tensor, shares: torch.Tensor,
                   total: torch.Tensor, noise: NoiseFloor, settings: InteractionSettings, generator: torch.Generator,
                   notes: list[str], residual: torch.Tensor | None = None) -> tuple[OutputReport, int]:
    """The report of output ``output`` from the shared swapped evaluations ``values``: ``shares [n, n]``
    its pair shares, ``total [n]`` its inputs' total-effect shares, ``residual [N, m]`` (target − network
    at the rows, NaN where unknown) the held-out test of the sets, if any."""
    x, names, n = values.x, model.meta.input_names, values.x.shape[1]
    f = CountingFunction(model, output)
    per_order = candidates_per_order(len(x), model.row_bytes(), settings.max_order, model.n_outputs)
    search = SetSearch(values, output, variance, noise.set_floor, settings.max_order, per_order, residual,
                       seed=settings.seed)
    pairs = search.test([(i, j) for i in range(n) for j in range(i + 1, n) if shares[i, j] > noise.set_floor])
    sets = interaction_sets(search, pairs, names)
    index = {name: i for i, name in enumerate(names)}
    members = [[index[v] for v in term.variables] for term in sets]
    used = sorted({i for i in range(n) if total[i] > noise.floor} | {i for term in members for i in term})
    blocks = set_components(n, members, used)
    reference = x.median(dim=0).values
    ctx = TreeContext(f, x, values.partner, names, noise.floor, settings.product_threshold, generator, list(notes))
    tree = build_tree(ctx, used, reference, blocks) if used else TreeNode("sum", [])
    with torch.no_grad():
        total_var = max(float(f(x).var(unbiased=False)), 1e-300)
    groups, main_effects = [], {}
    for block in blocks:
        block_variance, mains = group_variances(f, x, block, reference, generator, settings.monte_carlo)
        for i, v in mains.items():
            main_effects[names[i]] = v / total_var
        block_names = [names[i] for i in block]
        subtree = find_subtree(tree, block_names)
        groups.append(InteractionGroup(
            variables=block_names, order=len(block),
            strength=max((t.strength for t in sets if set(t.variables) <= set(block_names)), default=0.0),
            variance_share=block_variance / total_var,
            interaction_share=max(block_variance - sum(mains.values()), 0.0) / total_var if len(block) > 1 else 0.0,
            structure=subtree.describe() if subtree is not None else "g(" + ", ".join(block_names) + ")",
        ))
    report = OutputReport(
        output=model.meta.output_names[output], interaction_sets=sets, noise=noise, groups=groups,
        unused=[names[i] for i in range(n) if i not in used], main_effects=main_effects,
        pairwise=[[float(f"{v:.4g}") for v in row] for row in shares.tolist()], tree=tree,
        max_order=max((t.order for t in sets), default=1 if used else 0), notes=ctx.notes + search.notes,
        unconfirmed_sets=unconfirmed_sets(search, sets, names),
    )
    return report, f.rows + search.rows_evaluated()


def within_budget(x: torch.Tensor, y: torch.Tensor | None, row_bytes: int, generator: torch.Generator,
                  notes: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows ``x [N, n]`` (and their targets ``y [N, m]``, if any) the pair stage can afford
    (``affordable_rows``): all of them for narrow models, fewer for wide ones (said in ``notes``)."""
    n = x.shape[1]
    tested = min(n, MAX_PAIR_INPUTS)
    evaluations = 2 + n + tested * (tested - 1) // 2 + (n if n > MAX_PAIR_INPUTS else 0)
    rows = affordable_rows(evaluations, row_bytes)
    if rows >= len(x):
        return x, y
    notes.append(f"mixed differences on {rows} of {len(x)} rows ({n} inputs: {evaluations} evaluations of the rows)")
    keep = random_rows(len(x), rows, generator, x.device)
    return x[keep], (y[keep] if y is not None else None)


def stored_rows(model: KAN, limit: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows a model carries, ``x [N, n_inputs]`` and targets ``y [N, n_outputs]``: its held-out rows
    with their targets first, then its sample of training inputs (targets NaN), at most ``limit`` rows in
    all; only the training sample (``y`` None) when it keeps no held-out rows; no targets (``y`` None)
    for a classifier, whose held-out targets are class labels."""
    held = model.held_out_inputs[:limit].float()
    if not len(held):
        return model.sample_inputs, None
    fill = model.sample_inputs[: limit - len(held)].float()
    if model.classes is not None:  # its held-out targets are class labels, not values of the logits
        return torch.cat([held, fill]), None
    unknown = torch.full((len(fill), model.n_outputs), float("nan"), device=held.device)
    return torch.cat([held, fill]), torch.cat([model.held_out_targets[:limit].float(), unknown])


def held_out_residual(values: SwappedValues, y: torch.Tensor | None, notes: list[str]) -> tuple[torch.Tensor | None, int]:
    """``y − f`` ``[N, m]`` at the rows of ``values`` (NaN where a row has no target) and the number of rows
    with targets; ``(None, 0)`` when fewer than ``MIN_HELD_OUT_ROWS`` rows have them (said in ``notes``
    when some do)."""
    if y is None:
        return None, 0
    known = int(torch.isfinite(y).all(dim=1).sum())
    if known < MIN_HELD_OUT_ROWS:
        if known:
            notes.append(f"only {known} rows with targets (the held-out test needs {MIN_HELD_OUT_ROWS}): sets answer to "
                         "the noise floor")
        return None, 0
    return y.to(values(()).device).double() - values(()), known


def interactions_of_kan(model: nn.Module, x: torch.Tensor | None = None, settings: InteractionSettings | None = None,
                        formulas: list[sympy.Expr] | None = None, y: torch.Tensor | None = None) -> InteractionReport:
    """Interaction analysis of every output of ``model`` on inputs ``x`` ``[N, n_inputs]`` (default:
    the model's held-out rows with their targets, then its stored training sample: ``stored_rows``).
    ``y [N, n_outputs]``, the targets of those rows (NaN where unknown), measures the network's error and
    tests each interaction set against data (give rows the network was not trained on). ``formulas`` (one
    sympy expression per output, in the input names) adds the formula view; by default a fully symbolic
    model's own formula is used.
    """
    if not isinstance(model, KAN):
        raise KanxError(f"interactions: unsupported model type {type(model).__name__}")
    settings = settings if settings is not None else InteractionSettings()
    start = time.perf_counter()
    stored = x is None
    if stored:
        x, y = stored_rows(model, settings.max_samples)
    if x.shape[0] < 10:
        raise KanxError("interactions: need at least 10 input rows (the model stores none; pass --data)")
    generator = torch.Generator().manual_seed(settings.seed)
    if x.shape[0] > settings.max_samples:
        keep = random_rows(x.shape[0], settings.max_samples, generator, x.device)
        x, y = x[keep], (y[keep] if y is not None else None)
    x = x.float()
    names = model.meta.input_names
    if formulas is None:
        formulas = model_formulas(model)
    model.eval()
    threshold = settings.threshold if settings.threshold is not None else DEFAULT_THRESHOLD
    errors, source = error_shares(model, x, y)
    source = "held-out rows" if stored and source == "data" else source
    notes: list[str] = []
    x, y = within_budget(x, y, model.row_bytes(), generator, notes)
    values = SwappedValues(model, x, x[random_rows(len(x), len(x), generator, x.device)], model.row_bytes())
    variance = values.variance()
    residual, held_out_rows = held_out_residual(values, y, notes)
    n = x.shape[1]
    values.prefetch([(i,) for i in range(n)])
    total = total_shares(values, n, variance)
    shares, _ = pair_shares(values, pair_columns(values, total, variance, notes), variance)
    if source == "unknown":
        notes.append(f"the network's own error is unknown (no targets, no training record): the floor assumes it leaves "
                     f"{ASSUMED_ERROR_SHARE:.1%} of the variance unexplained; give --data with the outputs to measure it")
    outputs, evaluations = [], 0
    for k in range(model.n_outputs):
        noise = NoiseFloor.of(threshold, errors[k], source, held_out_rows, settings.threshold)
        report, rows = analyse_output(model, k, values, variance, shares[k], total[k], noise, settings, generator, notes,
                                      residual)
        if formulas is not None:
            report.formula = formula_report(formulas[k], names, x, noise.floor)
        outputs.append(report)
        evaluations += rows
    return InteractionReport(
        inputs=list(names), outputs=outputs, structural=structural_bound(model), threshold=threshold,
        samples=int(x.shape[0]), network_evaluations=evaluations + values.rows, seconds=time.perf_counter() - start,
    )
