"""Formulas from a KarSein model (``kanx symbolify`` on a KarSein checkpoint).

1. Rows: ``x`` or the stored sample (else drawn ids), split into fit / held-out rows.
2. Every active feature (``kanx.families.karsein.features``) whose attribution is below ``negligible_threshold``
   becomes a constant (its mean SiLU and spline values); the spline ``s_i`` of every other feature
   is fitted with the candidate engine (builtin: the batched library fit of
   ``kanx.symbolic.fit``) on its observed inputs — one fit per feature, since one activation
   serves all outputs (and, in the vector-wise branch, all ``D`` coordinates). The SiLU path is
   symbolic already: ``w_base·silu(x)``. A feature nobody fits above ``r2_threshold`` stays
   numeric (an undefined function ``s_vec0_3``) or becomes a cubic (``fallback="poly"``).
3. Composition, layer by layer, with sympy: output ``j`` of a layer is
   ``sum_i w_base[i, j]·silu(A_i) + w_sp[i, j]·ŝ_i(A_i)`` with ``A_i`` the feature's input.
   Hidden outputs are symbols (``v1_3``, ``b1_4``) with their own definitions; when the whole
   branch stays small (``compose_limit`` operations) they are substituted, the result expanded and
   cleaned (constants refitted, weak terms dropped, numbers snapped: ``kanx.symbolic.cleaning``).
4. Vector-wise branch: all ``D`` coordinates use the same scalar functions, so
   ``vec_logit = sum_d h_d · g(e_{user,d}, e_{item,d}, …) + b`` with ``g`` ONE scalar function of
   one symbol per field (``e_user``…). Each additive term ``c·T`` of ``g`` contributes
   ``⟨c·h, T(e_user, e_item, …)⟩`` (``T`` acting coordinate-wise, e.g. ``e_user ⊙ e_item``); the
   terms are reported with their weight vectors ``c·h`` and their share of the branch's variance.
   Bit-wise branch: symbols ``e_user_0 … e_user_{D-1}`` and the dense names.
5. Fidelity on the held-out rows: each branch's formula against the network's branch, the total
   logit, and (with labels) the AUC of formula and network.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy
import torch
from torch import nn

from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.core.lambdify import formula_on_rows
from kanx.core.numerics import roc_auc, single_thread
from kanx.families.kan.basis import bspline_basis, knot_spans
from kanx.families.karsein.features import FeatureLayer, default_rows, feature_importance, feature_layers, layer_inputs
from kanx.families.karsein.model import KarSein, KarSeinLayer, pairwise_inputs
from kanx.functions.library import LibraryFunction, build_library, resolve
from kanx.functions.parser import parse_expression
from kanx.symbolic.cleaning import Cleaner, CleanSettings, normalise, round_floats
from kanx.symbolic.edges import fit_and_test_rows
from kanx.symbolic.engines import Candidate
from kanx.symbolic.results import Fidelity, OutputFidelity, fidelity
from kanx.symbolic.selection import fit_activations
from kanx.symbolic.settings import SymbolifySettings
from kanx.symbolic.timeout import run_with_timeout

MAX_POINTS = 2000


class silu(sympy.Function):  # noqa: N801 - printed name of the function
    """SiLU ``x·σ(x) = x / (1 + exp(-x))``; numbers evaluate, symbols stay ``silu(x)``."""

    @classmethod
    def eval(cls, arg: sympy.Expr) -> sympy.Expr | None:
        if arg.is_Number:
            return arg / (1 + sympy.exp(-arg))
        return None

    def _eval_rewrite_as_exp(self, arg: sympy.Expr, **kwargs) -> sympy.Expr:
        return arg / (1 + sympy.exp(-arg))


def _torch_silu(value: torch.Tensor | float) -> torch.Tensor:
    return nn.functional.silu(value if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=torch.float64))


# --------------------------------------------------------------------------- results
@dataclass
class FeatureFit:
    """What happened to one feature. ``status``: ``symbolic`` | ``numeric`` | ``poly`` |
    ``negligible`` (a constant) | ``silu`` (its spline is unused) | ``masked`` (pruned)."""

    layer: str
    branch: str
    index: int
    feature: int
    label: str
    importance: float
    status: str
    chosen: Candidate | None = None
    front: list[Candidate] = field(default_factory=list)
    means: tuple[float, float] = (0.0, 0.0)
    poly: str | None = None

    @property
    def tag(self) -> str:
        """Name of the numeric stand-in function, e.g. ``s_vec0_3``."""
        return f"s_{self.branch}{self.index}_{self.feature}"

    def to_dict(self) -> dict:
        def cand(c: Candidate) -> dict:
            return {"function": c.name, "affine": dict(zip("abcd", c.affine)), "r2": c.r2, "complexity": c.complexity}

        return {"layer": self.layer, "feature": self.label, "index": self.feature, "importance": self.importance,
                "status": self.status, "chosen": cand(self.chosen) if self.chosen else None,
                "candidates": [cand(c) for c in self.front], "polynomial": self.poly}


@dataclass
class Term:
    """One additive term ``coefficient·T`` of a branch formula: ``weights`` = ``coefficient·h``
    (vector-wise) and ``share`` = variance of its contribution / variance of the network's branch."""

    term: str
    expr: sympy.Expr
    coefficient: float
    weights: list[float] | None
    share: float

    def to_dict(self) -> dict:
        return {"term": self.term, "expression": sympy.sstr(self.expr), "coefficient": self.coefficient,
                "weights": self.weights, "share": self.share}


@dataclass
class BranchFormula:
    """One branch. ``expression``: ``g`` per coordinate (vector-wise) or the bit-wise logit, in the
    input symbols and, unless ``composed``, the hidden symbols defined in ``hidden`` (in order);
    ``symbols``: symbol name → what it stands for; ``head``/``bias``: the vector-wise head."""

    branch: str
    expression: sympy.Expr
    hidden: list[tuple[sympy.Symbol, sympy.Expr]]
    symbols: dict[str, str]
    composed: bool
    terms: list[Term]
    fidelity: Fidelity
    head: list[float] | None = None
    bias: float | None = None
    cleanup: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"branch": self.branch, "expression": sympy.sstr(self.expression), "latex": sympy.latex(self.expression),
                "hidden": {str(s): sympy.sstr(e) for s, e in self.hidden}, "symbols": self.symbols,
                "composed": self.composed, "head": self.head, "bias": self.bias,
                "terms": [t.to_dict() for t in self.terms], "fidelity": self.fidelity.to_dict(), "cleanup": self.cleanup}


@dataclass
class KarSeinSymbolicResult:
    """Outcome of :func:`symbolify_karsein`: per-feature fits, both branch formulas, the total
    logit's fidelity against the network (held-out rows; one ``OutputFidelity``, the click logit
    being the one output) and, with labels, AUC of formula and network."""

    features: list[FeatureFit]
    vec: BranchFormula
    bit: BranchFormula
    fidelity: list[OutputFidelity]
    auc: dict | None
    combine: str
    settings: dict
    timings: dict
    model: KarSein | None = None  # the model the formulas describe (set by ``kanx.symbolify``)
    oracle_quality: None = None  # a KarSein network is not judged against its labels as an oracle

    @property
    def logit_fidelity(self) -> Fidelity:
        """The total logit's formula against the network's logit (held-out rows)."""
        return self.fidelity[0].network

    @property
    def flagged(self) -> list[FeatureFit]:
        return [f for f in self.features if f.status in ("numeric", "poly")]

    def to_dict(self) -> dict:
        return {"family": "karsein", "combine": self.combine, "features": [f.to_dict() for f in self.features],
                "vector_wise": self.vec.to_dict(), "bit_wise": self.bit.to_dict(), "fidelity": self.logit_fidelity.to_dict(),
                "auc": self.auc, "flagged": [f.label for f in self.flagged], "settings": self.settings,
                "timings": self.timings}

    def to_latex(self) -> str:
        """A LaTeX fragment: both branch formulas, the strongest terms and the per-feature fits
        (``symbolify --out``)."""
        return karsein_latex(self)

    def __repr__(self) -> str:
        auc = f", AUC {self.auc['formula']:.4f}" if self.auc and "formula" in self.auc else ""
        return (f"KarSeinSymbolicResult(logit R² {self.logit_fidelity.r2:.6g}{auc}, "
                f"{len(self.features) - len(self.flagged)} of {len(self.features)} features symbolic)")

    def _repr_html_(self) -> str:
        rows = [(branch.branch, sympy.sstr(branch.expression) if branch.composed else "(layered; see .hidden)",
                 f"{branch.fidelity.r2:.6g}") for branch in (self.vec, self.bit)]
        rows.append(("total logit", "", f"{self.logit_fidelity.r2:.6g}"))
        return html_table(("branch", "formula", "R² against the network"), rows, "kanx symbolify (KarSein)")


# --------------------------------------------------------------------------- fits
def fit_layer(feature: FeatureLayer, z: torch.Tensor, scores: torch.Tensor, functions: list[LibraryFunction], settings: SymbolifySettings,
              generator: torch.Generator) -> tuple[list[FeatureFit], dict[str, str]]:
    """Fits of one layer's features on its inputs ``z [M, n_in]``; returns the fits and the custom
    functions the engine introduced."""
    layer = feature.layer
    with torch.no_grad():
        active = layer.mask > 0
        uses_spline = (layer.w_sp != 0).any(dim=1) & active
        negligible = active & (scores < settings.negligible_threshold)
        means = torch.stack([nn.functional.silu(z).mean(0), layer.activations(z).mean(0)], dim=1).tolist()
    fits = []
    for i, label in enumerate(feature.labels):
        status = "masked" if not active[i] else "negligible" if negligible[i] else "symbolic" if uses_spline[i] else "silu"
        fits.append(FeatureFit(feature.name, feature.branch, feature.index, i, label, float(scores[i]), status,
                               means=tuple(means[i])))
    live = [f for f in fits if f.status == "symbolic"]
    if not live:
        return fits, {}
    rows = torch.randperm(z.shape[0], generator=generator)[:MAX_POINTS]
    index = torch.tensor([f.feature for f in live])
    xs = z[rows][:, index]
    with torch.no_grad():
        ys = layer.activations(z[rows])[:, index]
    found = fit_activations(xs.T.contiguous(), ys.T.contiguous(), functions, settings)
    for fit, front, choice in zip(live, found.fronts, found.choices):
        fit.front, fit.chosen, fit.poly = front, choice.chosen, choice.poly
        if choice.status != "symbolic":
            fit.status = choice.status
    return fits, found.custom


# --------------------------------------------------------------------------- composition
def spline_expression(fit: FeatureFit, arg: sympy.Expr, custom: dict[str, str]) -> sympy.Expr:
    """``ŝ_i(arg)``: the chosen fit, the cubic fallback, or an undefined numeric function."""
    if fit.status == "poly":
        x = sympy.Symbol("x")
        return parse_expression(fit.poly, {"x": x}, f"{fit.tag}: polynomial fallback").xreplace({x: arg})
    if fit.status != "symbolic":
        return sympy.Function(fit.tag)(arg)
    a, b, c, d = (sympy.Float(v) for v in fit.chosen.affine)
    function = resolve(fit.chosen.name, custom)
    if function.name == "0":
        return d
    x = sympy.Symbol("x")
    expr = c * function.sympy_fn(a * x + b) + d
    return (sympy.expand(expr) if function.sympy_fn(x).is_polynomial(x) else expr).xreplace({x: arg})


def layer_outputs(feature: FeatureLayer, fits: list[FeatureFit], args: list[sympy.Expr], custom: dict[str, str]) -> list[sympy.Expr]:
    """Every output ``sum_i w_base[i, j]·silu(A_i) + w_sp[i, j]·ŝ_i(A_i)`` of one layer."""
    w_base, w_sp = feature.layer.w_base.detach().double().tolist(), feature.layer.w_sp.detach().double().tolist()
    pieces = []
    for fit, arg in zip(fits, args):
        if fit.status == "masked":
            pieces.append(None)
        elif fit.status == "negligible":
            pieces.append((sympy.Float(fit.means[0]), sympy.Float(fit.means[1])))
        else:
            spline = spline_expression(fit, arg, custom) if fit.status != "silu" else sympy.Integer(0)
            pieces.append((silu(arg), spline))
    outputs = []
    for j in range(feature.layer.n_out):
        terms = [w_base[i][j] * p[0] + w_sp[i][j] * p[1] for i, p in enumerate(pieces) if p is not None]
        outputs.append(sympy.Add(*[t for t in terms if t != 0]))
    return outputs


def symbol_names(names: list[str], prefix: str, taken: set[str]) -> list[str]:
    """Identifier-safe, unique symbol names ``prefix + name``."""
    out = []
    for name in names:
        base = prefix + re.sub(r"\W", "_", name)
        if not base.isidentifier():
            base = "x_" + base
        while base in taken:
            base += "_"
        taken.add(base)
        out.append(base)
    return out


def compose_branch(model: KarSein, layers: list[FeatureLayer], fits: list[list[FeatureFit]], inputs: list[sympy.Symbol],
                   custom: dict[str, str], digits: int) -> tuple[sympy.Expr, list[tuple[sympy.Symbol, sympy.Expr]]]:
    """Layered composition of one branch: the last output in the input and hidden symbols, and the
    hidden definitions (rounded to ``digits``)."""
    branch = layers[0].branch
    previous: list[sympy.Expr] = list(inputs)
    hidden: list[tuple[sympy.Symbol, sympy.Expr]] = []
    for position, (feature, layer_fits) in enumerate(zip(layers, fits)):
        if branch == "vec" and feature.index in model.pairwise:
            args = list(inputs) + [a * c for a in inputs for c in previous]
        else:
            args = previous
        outputs = [round_floats(e, digits) for e in layer_outputs(feature, layer_fits, args, custom)]
        if position == len(layers) - 1:
            return outputs[0], hidden
        letter = "v" if branch == "vec" else "b"
        previous = [sympy.Symbol(f"{letter}{feature.index + 1}_{j}", real=True) for j in range(len(outputs))]
        hidden.extend(zip(previous, outputs))
    raise KanxError("a KarSein branch needs at least one layer")


def expandable(expr: sympy.Expr, hidden: list[tuple[sympy.Symbol, sympy.Expr]]) -> bool:
    """True when hidden symbols enter ``expr`` and the definitions only polynomially (never inside a
    function such as ``silu``): substituting them then gives sums of simple terms, not nested ones."""
    names = {s for s, _ in hidden}
    return all(not (f.free_symbols & names) for e in [expr, *(d for _, d in hidden)] for f in e.atoms(sympy.Function))


def substitute(expr: sympy.Expr, hidden: list[tuple[sympy.Symbol, sympy.Expr]]) -> sympy.Expr:
    for symbol, definition in reversed(hidden):
        expr = expr.xreplace({symbol: definition})
    return expr


# --------------------------------------------------------------------------- evaluation
def numeric_namespace(model: KarSein, fits: list[FeatureFit]) -> dict:
    """lambdify namespace: ``silu`` and the numeric stand-ins ``s_vec0_3`` (their splines)."""
    layers = dict(model.all_layers())
    namespace: dict = {"silu": _torch_silu}
    for fit in fits:
        if fit.status == "numeric":
            namespace[fit.tag] = _spline_function(layers[fit.layer], fit.feature)
    return namespace


def _spline_function(layer: KarSeinLayer, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
    knots, coef, k = layer.knots[i : i + 1].double().cpu(), layer.coef[i : i + 1].detach().double().cpu(), layer.k
    spans = knot_spans(knots, k)

    def spline(value: torch.Tensor) -> torch.Tensor:
        tensor = torch.as_tensor(value, dtype=torch.float64, device="cpu")
        flat = tensor.reshape(-1, 1)
        return torch.einsum("nik,ik->n", bspline_basis(flat, knots, k, spans), coef).reshape(tensor.shape)

    return spline


def evaluate(exprs: list[sympy.Expr], hidden: list[tuple[sympy.Symbol, sympy.Expr]], symbols: list[sympy.Symbol],
             values: torch.Tensor, namespace: dict) -> list[torch.Tensor]:
    """``exprs`` on inputs ``values [M, n_symbols]`` (float64), the hidden symbols evaluated from
    their definitions first: one ``[M]`` tensor per expression, on the CPU (where formulas run)."""
    values = values.cpu()
    env = {s: values[:, k].double() for k, s in enumerate(symbols)}
    for symbol, definition in hidden:
        env[symbol] = _call(definition, env, namespace, values.shape[0])
    return [_call(expr, env, namespace, values.shape[0]) for expr in exprs]


def _call(expr: sympy.Expr, env: dict, namespace: dict, rows: int) -> torch.Tensor:
    used = sorted(expr.free_symbols, key=lambda s: s.name)
    return formula_on_rows(expr, used, [env[s] for s in used], rows, namespace)


# --------------------------------------------------------------------------- terms
def render_term(expr: sympy.Expr) -> str:
    """``e_user*e_item**2`` → ``e_user ⊙ e_item^2`` (coordinate-wise products and powers)."""
    parts = []
    for factor in sympy.Mul.make_args(expr):
        base, power = factor.as_base_exp()
        if base.is_Symbol and power.is_Integer:
            parts.append(base.name if power == 1 else f"{base.name}^{power}")
        else:
            parts.append(sympy.sstr(factor))
    return " ⊙ ".join(parts)


def split_terms(expr: sympy.Expr) -> tuple[float, list[tuple[float, sympy.Expr]]]:
    """Constant and ``(coefficient, T)`` pairs of the additive terms of ``expr`` (like ``T`` merged)."""
    constant, terms = 0.0, {}
    for arg in sympy.Add.make_args(expr):
        coefficient, rest = arg.as_coeff_Mul()
        if rest == 1:
            constant += float(coefficient)
        else:
            terms[rest] = terms.get(rest, 0.0) + float(coefficient)
    return constant, [(c, t) for t, c in terms.items() if c != 0]


def branch_terms(expr: sympy.Expr, hidden: list[tuple[sympy.Symbol, sympy.Expr]], symbols: list[sympy.Symbol], values: torch.Tensor,
                 namespace: dict, reference: torch.Tensor,
                 head: torch.Tensor | None, digits: int) -> list[Term]:
    """The additive terms of ``expr`` with their share of the variance of ``reference [N]``; in the
    vector-wise branch ``values`` holds ``N*D`` coordinate rows and each term is projected by ``head [D]``
    (coefficients and weights rounded to ``digits`` significant digits)."""
    _, pairs = split_terms(expr)
    pairs = [(float(f"{c:.{digits}g}"), t) for c, t in pairs]
    if not pairs:
        return []
    columns = evaluate([t for _, t in pairs], hidden, symbols, values, namespace)
    variance = float(reference.double().var(unbiased=False).clamp_min(1e-300))
    terms = []
    for (coefficient, t), column in zip(pairs, columns):
        contribution = coefficient * column
        if head is not None:
            contribution = contribution.reshape(-1, head.numel()) @ head.double()
        weights = [float(f"{w:.{digits}g}") for w in (coefficient * head.double()).tolist()] if head is not None else None
        share = float(contribution.var(unbiased=False)) / variance
        terms.append(Term(render_term(t), t, coefficient, weights, share if math.isfinite(share) else float("nan")))
    return sorted(terms, key=lambda t: -(t.share if math.isfinite(t.share) else -1.0))


# --------------------------------------------------------------------------- pipeline
def symbolify_karsein(model: KarSein, data: object | None, settings: SymbolifySettings) -> KarSeinSymbolicResult:
    """Formulas of a KarSein model (``kanx.symbolify``'s part for this family) on rows ``data.x
    [N, F + n_dense]`` (default: the stored sample) with optional 0/1 labels ``data.y [N]`` (see
    the module docstring); the model is not modified."""
    if settings.strategy == "structure-first":
        raise KanxError(f"--strategy {settings.strategy}: KarSein formulas are fitted per feature; use --strategy edges or auto")
    x, y = (None, None) if data is None else (data.x, data.y)
    if settings.finetune_steps:
        raise KanxError(f"--finetune {settings.finetune_steps}: not supported for KarSein models (the formula keeps the network's weights)")
    functions, custom = build_library(settings.lib, list(settings.lib_add))
    rows = default_rows(model, 1000, settings.seed) if x is None else x.float()
    if rows.ndim != 2 or rows.shape[1] != model.n_inputs or rows.shape[0] < 10:
        raise KanxError(f"need at least 10 rows of {model.n_inputs} columns ({', '.join(model.input_names)}) to symbolify")
    with single_thread():
        return fit_and_compose(model.eval(), rows, y, functions, custom, settings)


def reported_settings(settings: SymbolifySettings) -> dict:
    """The settings a KarSein result reports (its JSON ``settings``)."""
    return {"r2_threshold": settings.r2_threshold, "tolerance": settings.tolerance,
            "negligible_threshold": settings.negligible_threshold, "fallback": settings.fallback, "seed": settings.seed,
            "digits": settings.digits, "compose_limit": settings.compose_limit, "timeout": settings.simplify_timeout}


def fit_and_compose(model: KarSein, rows: torch.Tensor, y: torch.Tensor | None, functions: list[LibraryFunction], custom: dict,
                    settings: SymbolifySettings) -> KarSeinSymbolicResult:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    fit_rows, test_rows = fit_and_test_rows(rows.shape[0], settings.seed)
    x_fit, x_test = rows[fit_rows], rows[test_rows]
    layers = feature_layers(model)
    inputs = layer_inputs(model, x_fit)
    scores = feature_importance(model, x_fit).attribution
    timings["importance"] = time.perf_counter() - start
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(settings.seed)
    fits: list[list[FeatureFit]] = []
    for feature, z, score in zip(layers, inputs, scores):
        layer_fits, found = fit_layer(feature, z, score, functions, settings, generator)
        custom.update(found)
        fits.append(layer_fits)
    timings["fit"] = time.perf_counter() - start
    start = time.perf_counter()
    flat = [f for layer_fits in fits for f in layer_fits]
    namespace = numeric_namespace(model, flat)
    branches = {}
    for branch in ("vec", "bit"):
        chosen = [k for k, f in enumerate(layers) if f.branch == branch]
        branches[branch] = branch_formula(model, branch, [layers[k] for k in chosen], [fits[k] for k in chosen],
                                          x_fit, x_test, custom, namespace, settings)
    timings["compose"] = time.perf_counter() - start
    total, auc = total_fidelity(model, branches, x_test, None if y is None else y[test_rows], namespace)
    reported = {"engine": settings.engine, "library": [f.name for f in functions], **reported_settings(settings),
                "fit_rows": int(len(fit_rows)), "held_out_rows": int(len(test_rows)), "custom_functions": dict(custom)}
    return KarSeinSymbolicResult(flat, branches["vec"], branches["bit"], [OutputFidelity(total)], auc, model.combine, reported, timings)


# --------------------------------------------------------------------------- per branch
def branch_symbols(model: KarSein, branch: str) -> tuple[list[sympy.Symbol], dict[str, str]]:
    """Input symbols of a branch and what each stands for."""
    taken: set[str] = set()
    if branch == "vec":
        names = symbol_names(model.fields, "e_", taken)
        meaning = {n: f"coordinate d of the embedding of field {f}" for n, f in zip(names, model.fields)}
    else:
        coords = [f"{f}_{d}" for f in model.fields for d in range(model.emb_dim)]
        names = symbol_names(coords, "e_", taken) + symbol_names(model.dense, "", taken)
        sources = [f"{f}[{d}]" for f in model.fields for d in range(model.emb_dim)] + [f"dense feature {n}" for n in model.dense]
        meaning = dict(zip(names, sources))
    return [sympy.Symbol(n, real=True) for n in names], meaning


def branch_data(model: KarSein, branch: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symbol values ``[M, n_symbols]``, the network's formula target ``[M]`` (``g`` per coordinate,
    or the bit-wise logit) and the branch's logit ``[N]`` on rows ``x``."""
    with torch.no_grad():
        emb = model.field_embeddings(x)
        if branch == "bit":
            values = torch.cat([emb.reshape(len(x), -1), x[:, model.n_fields :]], dim=1)
            logit = model.bit_logit(emb, x[:, model.n_fields :])[:, 0]
            return values.double(), logit.double(), logit.double()
        values = emb.transpose(1, 2).reshape(-1, model.n_fields)
        m = emb
        for v, layer in enumerate(model.vec_layers):
            if v in model.pairwise:
                m = pairwise_inputs(emb, m)
            m = layer.forward_rows(m)
        return values.double(), m[:, 0, :].reshape(-1).double(), model.vec_logit(emb)[:, 0].double()


def branch_formula(model: KarSein, branch: str, layers: list[FeatureLayer], fits: list[list[FeatureFit]], x_fit: torch.Tensor,
                   x_test: torch.Tensor, custom: dict, namespace: dict, settings: SymbolifySettings) -> BranchFormula:
    """Compose, clean when small, score and split one branch into terms."""
    symbols, meaning = branch_symbols(model, branch)
    expr, hidden = compose_branch(model, layers, fits, symbols, custom, settings.digits)
    composed, log = not hidden, {}
    full = substitute(expr, hidden)
    if expandable(expr, hidden) and sympy.count_ops(full) <= settings.compose_limit:
        expr, hidden, composed = full, [], True
        expr = run_with_timeout(normalise, (expr,), settings.simplify_timeout, expr)
        if not expr.atoms(sympy.core.function.AppliedUndef) and not expr.has(silu):
            values, target, _ = branch_data(model, branch, x_fit)
            cleaning = CleanSettings(digits=settings.digits, timeout=settings.simplify_timeout)
            expr, log = Cleaner(symbols, values, target, cleaning).run(expr)
    head = model.head.weight[0].detach().double() if branch == "vec" else None
    values, _, logit = branch_data(model, branch, x_test)
    (formula,) = evaluate([expr], hidden, symbols, values, namespace)
    if head is not None:
        formula = formula.reshape(-1, model.emb_dim) @ head + float(model.head.bias.detach()[0])
    terms = branch_terms(expr, hidden, symbols, values, namespace, logit, head, settings.digits)
    meaning.update({str(s): "hidden output (definition below)" for s, _ in hidden})
    return BranchFormula(branch, expr, hidden, meaning, composed, terms, fidelity(formula, logit),
                         head=None if head is None else head.tolist(),
                         bias=float(model.head.bias.detach()[0]) if branch == "vec" else None, cleanup=log)


def branch_values(model: KarSein, formula: BranchFormula, x: torch.Tensor, namespace: dict) -> torch.Tensor:
    """The branch formula's logit on rows ``x``: ``[N]`` float64."""
    symbols = [sympy.Symbol(n, real=True) for n, what in formula.symbols.items() if not what.startswith("hidden")]
    values, _, _ = branch_data(model, formula.branch, x)
    (out,) = evaluate([formula.expression], formula.hidden, symbols, values, namespace)
    if formula.branch == "vec":
        out = out.reshape(-1, model.emb_dim) @ torch.tensor(formula.head, dtype=torch.float64, device="cpu") + formula.bias
    return out


def total_fidelity(model: KarSein, branches: dict[str, BranchFormula], x_test: torch.Tensor, y_test: torch.Tensor | None,
                   namespace: dict) -> tuple[Fidelity, dict | None]:
    """Fidelity of the whole logit and, with labels, AUC of the formula and of the network."""
    bit = branch_values(model, branches["bit"], x_test, namespace)
    vec = branch_values(model, branches["vec"], x_test, namespace)
    formula = vec + (torch.sigmoid(bit) if model.combine == "double_sigmoid" else bit)
    with torch.no_grad():
        network = model.logit(x_test)[:, 0].double().cpu()
    auc = None
    if y_test is not None:
        labels = y_test.cpu().numpy()
        auc = {"formula": roc_auc(formula.numpy(), labels), "network": roc_auc(network.numpy(), labels), "rows": len(labels)}
    return fidelity(formula, network), auc


# --------------------------------------------------------------------------- LaTeX
def _latex_term(expr: sympy.Expr, names: dict) -> str:
    return r" \odot ".join(sympy.latex(f, symbol_names=names) for f in sympy.Mul.make_args(expr))


def _latex_label(label: str) -> str:
    from kanx.symbolic.export import escape_latex

    return escape_latex(label).replace("⊙", r"$\odot$")


def _branch_latex(formula: BranchFormula, lhs: str, limit: int) -> list[str]:
    names = {s: re.sub(r"^([vb])(\d+)_(\d+)$", r"\1_{\2,\3}", s.name) for s, _ in formula.hidden}
    rows = [f"  {names[s]} &= {sympy.latex(e, symbol_names=names)}" for s, e in formula.hidden]
    rows.append(f"  {lhs} &= {sympy.latex(formula.expression, symbol_names=names)}")
    lines = [r"\begin{align}", " \\\\\n".join(rows), r"\end{align}"]
    fid = formula.fidelity
    lines.append(f"% fidelity vs network (held out): R^2 = {fid.r2:.6f}, RMSE = {fid.rmse:.4g}, max |err| = {fid.max_abs:.4g}")
    if formula.terms:
        lines += [r"\begin{tabular}{llr}", r"\hline", ("term & weights $w = c h$" if formula.head else "term & coefficient")
                  + r" & variance share \\", r"\hline"]
        for term in formula.terms[:limit]:
            shown = _latex_term(term.expr, names)
            if term.weights:
                cell = rf"$\langle w, {shown} \rangle$ & $[{', '.join(f'{w:.4g}' for w in term.weights)}]$"
            else:
                cell = f"${shown}$ & ${term.coefficient:.4g}$"
            lines.append(f"{cell} & {100 * term.share:.2f}\\% \\\\")
        lines += [r"\hline", r"\end{tabular}"]
    return lines + [""]


def karsein_latex(result: KarSeinSymbolicResult, limit: int = 40) -> str:
    """A LaTeX fragment: both branch formulas (with hidden definitions), the strongest terms and
    the per-feature fits."""
    from kanx.symbolic.export import edge_formula_latex

    digits = int(result.settings.get("digits", 4))
    vec, combine = result.vec, "+" if result.combine == "sum" else r"+ \sigma\left(\cdot\right)"
    lines = ["% generated by kanx symbolify (KarSein)",
             f"% logit = vec {combine} bit; vec = sum_d h_d g(e_d) + b, g acting coordinate-wise on the field embeddings",
             f"% h = [{', '.join(f'{w:.4g}' for w in vec.head or [])}], b = {vec.bias:.4g}", ""]
    lines += _branch_latex(vec, "g", limit) + _branch_latex(result.bit, r"\mathrm{bit}", limit)
    fid = result.logit_fidelity
    lines += [f"% total logit vs network (held out): R^2 = {fid.r2:.6f}, RMSE = {fid.rmse:.4g}", "",
              r"\begin{tabular}{llllrr}", r"\hline",
              r"layer & feature & status & fit $c\,f(a x + b) + d$ & $R^2$ & importance \\", r"\hline"]
    custom = result.settings.get("custom_functions", {})
    for fit in result.features:
        if fit.status in ("masked", "negligible"):
            continue
        formula = "--"
        if fit.status == "symbolic":
            formula = "$" + edge_formula_latex(fit.chosen.name, fit.chosen.affine, custom, digits) + "$"
        elif fit.status == "poly":
            poly = parse_expression(fit.poly, ("x",), f"{fit.tag}: polynomial fallback")
            formula = "$" + sympy.latex(round_floats(poly, digits)) + "$"
        r2 = f"{fit.chosen.r2:.5f}" if fit.chosen else "--"
        lines.append(f"{_latex_label(fit.layer)} & {_latex_label(fit.label)} & {fit.status} & {formula} & {r2} & {fit.importance:.3g} \\\\")
    return "\n".join(lines + [r"\hline", r"\end{tabular}", ""])
