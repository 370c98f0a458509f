"""``kanx discover``: from a data file to the law, in one call.

1. A network is trained by the recipe (``kanx.training.recipe``), which is chosen from the data.
   Its held-out rows (the recipe's validation split) are kept apart from everything that
   follows except the report.
2. Formulas are extracted on the training rows (``symbolify``, structure-first: the network as an
   oracle of the law's structure, with the edge-by-edge route where that finds nothing accurate,
   and a sparse regression on the rows themselves competing with both on held-out rows).
3. The report: per target, the law and the route that gave it, its fidelity on the held-out rows
   against the data and against the network, the oracle's verdict, the Pareto front of candidate
   formulas (complexity against held-out error, the chosen one marked), and the interaction
   summary. With an output folder, the network, the formulas, the figures and ``report.json`` are
   written there.

Every search counts work, not seconds (``budget``), so the same data, seed and options give the
same law on any machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sympy
import torch

from kanx.core.choices import LOGISTIC_ROUTE, SPARSE_ROUTE
from kanx.core.classes import classification_metrics
from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.core.numerics import split_rows
from kanx.families.kan.compose import input_symbols
from kanx.functions.parser import parse_expression
from kanx.interaction import interactions
from kanx.io.checkpoint import save_model
from kanx.io.data import Dataset
from kanx.io.figures import Figures
from kanx.io.files import atomic_write_text, check_output_folder, to_json
from kanx.symbolic import SymbolifySettings, symbolify
from kanx.symbolic.classify import ClassifierFidelity, classifier_fidelity, formula_logits, probability_formulas
from kanx.symbolic.cleaning import formula_cost
from kanx.symbolic.edges import evaluate_expression
from kanx.symbolic.results import Fidelity, SymbolicResult, fidelity
from kanx.symbolic.settings import DEFAULT_WORK
from kanx.symbolic.structure.strategy import cut_by_clock, work_spent
from kanx.training.kan import StepCallback, TrainResult
from kanx.training.recipe import Recipe, recipe_for, train_recipe

EXTRACTION = {"strategy": "structure-first", "fallback": "poly", "digits": 6}
MIN_FIT_ROWS = 10  # symbolify splits its rows again into fit and held-out parts
MIN_HELD_OUT = 3


@dataclass(frozen=True)
class DiscoverSettings:
    """Options of :func:`discover` (CLI flag in brackets): ``seed`` [--seed] for the split, the
    network and the searches; ``budget`` [--budget] work units of structure search per target
    (``kanx.core.budget``); ``time_limit`` [--time-limit] an optional wall-clock cap in seconds
    per target; ``steps`` [--steps] first-phase training steps (``None``: the recipe's);
    ``digits`` [--digits] significant digits of the printed constants; ``interactions`` whether
    to analyse which inputs interact; ``device`` and ``max_memory`` as for every stage."""

    seed: int = 0
    budget: int = DEFAULT_WORK
    time_limit: float | None = None
    steps: int | None = None
    digits: int = EXTRACTION["digits"]
    interactions: bool = True
    device: str = "cpu"
    max_memory: str | int | None = None

    def symbolify_settings(self, classifier: bool = False) -> SymbolifySettings:
        """The extraction's settings (validated there). A classifier's: the edges read from the
        network against the labelled rows' sparse logistic law (strategy ``auto``), edges that
        nothing fits kept numeric (a cubic of a logit edge is no law)."""
        strategy, fallback = ("auto", "numeric") if classifier else (EXTRACTION["strategy"], EXTRACTION["fallback"])
        return SymbolifySettings(strategy=strategy, fallback=fallback, digits=self.digits, seed=self.seed,
                                 budget=self.budget, time_limit=self.time_limit, device=self.device, max_memory=self.max_memory)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CandidateFormula:
    """One candidate law of a target: its text, complexity (``formula_cost``: nodes weighted by
    kind) and error on the held-out rows; ``chosen`` marks the law the report gives."""

    formula: str
    complexity: int
    held_out: Fidelity
    route: str
    chosen: bool = False

    def to_dict(self) -> dict:
        return {"formula": self.formula, "complexity": self.complexity, "route": self.route, "chosen": self.chosen,
                "held_out": self.held_out.to_dict()}


@dataclass
class TargetLaw:
    """What discover found for one target: the ``law`` (in the inputs), the ``route`` that gave it
    (``kanx.core.choices.ROUTES``: ``structure-first``, ``edges`` or ``sparse-regression``), its
    fidelity on the held-out rows against the data and the network, the network's own held-out
    R², the Pareto ``front`` and the interaction summary (``None`` when not analysed);
    ``cut_by_clock``: the optional wall-clock cap, not the work budget, ended a search (the law
    then depends on the machine); ``work``: the work units the structure search and the refit
    spent."""

    target: str
    law: str
    route: str
    versus_data: Fidelity
    versus_network: Fidelity
    network_r2: float
    front: list[CandidateFormula]
    structure: list[str] = field(default_factory=list)
    interactions: dict | None = None
    cut_by_clock: bool = False
    work: int = 0

    @property
    def exact(self) -> bool:
        """Whether the law has no numeric (unfitted) parts."""
        return math.isfinite(self.versus_data.r2)

    def headline(self) -> str:
        return f"{self.target} = {self.law}"

    def summary_lines(self, held_out_rows: int) -> list[str]:
        """The report's lines on this law (after its :meth:`headline`)."""
        lines = [f"route: {self.route}; held-out rows {held_out_rows}: R² vs data {self.versus_data.r2:.8g}, "
                 f"vs network {self.versus_network.r2:.8g}; network R² {self.network_r2:.6g}"]
        if self.interactions:
            lines.append(f"interactions: {self.target} = {self.interactions['structure']}, max order "
                         f"{self.interactions['max_order']}")
        return lines

    def front_table(self) -> tuple[str, list[str], list[list[str]]]:
        """``(title, headers, rows)`` of the Pareto front (the chosen row marked ``▶``)."""
        rows = [["▶" if c.chosen else "", str(c.complexity), f"{c.held_out.r2:.8g}", f"{c.held_out.rmse:.4g}", c.route,
                 c.formula] for c in self.front]
        return (f"Pareto front of {self.target} (complexity against held-out error)",
                ["", "complexity", "held-out R²", "RMSE", "route", "formula"], rows)

    def to_dict(self) -> dict:
        return {"target": self.target, "law": self.law, "route": self.route, "versus_data": self.versus_data.to_dict(),
                "versus_network": self.versus_network.to_dict(), "network_r2": self.network_r2,
                "front": [c.to_dict() for c in self.front], "structure": self.structure, "interactions": self.interactions,
                "cut_by_clock": self.cut_by_clock, "work": self.work}


@dataclass
class ClassCandidate:
    """One candidate law of a classifier: its logit formulas, complexity (``formula_cost`` of
    them together), log-loss and accuracy on the held-out rows; ``chosen`` marks the report's."""

    logits: list[str]
    complexity: int
    held_out_log_loss: float
    held_out_accuracy: float
    route: str
    chosen: bool = False

    def to_dict(self) -> dict:
        return {"logits": self.logits, "complexity": self.complexity, "held_out_log_loss": self.held_out_log_loss,
                "held_out_accuracy": self.held_out_accuracy, "route": self.route, "chosen": self.chosen}


@dataclass
class ClassifierLaw:
    """What discover found for a label column: the logit formulas (``logits``, one per output, in
    the inputs; the class probabilities follow from them as ``probabilities`` says), the route
    that gave them, the formulas as a classifier on the held-out rows (decision agreement with the
    network, accuracy, log-loss and AUC of both: ``held_out``), the Pareto front (complexity
    against held-out log-loss) and the interaction summary of each logit."""

    target: str
    classes: list[str]
    output_names: list[str]
    logits: list[str]
    probabilities: list[str]
    route: str
    held_out: ClassifierFidelity
    front: list[ClassCandidate]
    interactions: dict | None = None
    cut_by_clock: bool = False  # a classifier's extraction runs no clocked search

    @property
    def law(self) -> str:
        return "; ".join(f"{name} = {logit}" for name, logit in zip(self.output_names, self.logits))

    @property
    def exact(self) -> bool:
        """Whether the logit formulas have no numeric (unfitted) parts."""
        return self.held_out.agreement is not None

    def headline(self) -> str:
        return f"{self.target}: {self.law}"

    def summary_lines(self, held_out_rows: int) -> list[str]:
        lines = [f"route: {self.route}; classes {', '.join(self.classes)}", *self.probabilities,
                 f"held-out rows: {self.held_out.text()}"]
        for name, found in (self.interactions or {}).items():
            lines.append(f"interactions: {name} = {found['structure']}, max order {found['max_order']}")
        return lines

    def front_table(self) -> tuple[str, list[str], list[list[str]]]:
        rows = [["▶" if c.chosen else "", str(c.complexity), f"{c.held_out_log_loss:.4g}", f"{c.held_out_accuracy:.4g}",
                 c.route, "; ".join(c.logits)] for c in self.front]
        return (f"Pareto front of {self.target} (complexity against held-out log-loss)",
                ["", "complexity", "held-out log-loss", "accuracy", "route", "logits"], rows)

    def to_dict(self) -> dict:
        return {"target": self.target, "classes": self.classes, "logits": dict(zip(self.output_names, self.logits)),
                "probabilities": self.probabilities, "route": self.route, "held_out": self.held_out.to_dict(),
                "front": [c.to_dict() for c in self.front], "interactions": self.interactions}


@dataclass
class DiscoveryResult:
    """Outcome of :func:`discover`: per target a :class:`TargetLaw`; the trained network
    (``model``); the extraction's full result (``symbolic``); the oracle's verdict; the rows
    used (``train_rows``, ``held_out_rows``); the files written (``files``); ``seconds``: the wall
    clock each part took (``train``, ``extract``, ``interactions``; reported, never used)."""

    laws: list[TargetLaw | ClassifierLaw]
    model: torch.nn.Module
    symbolic: SymbolicResult
    oracle: dict | None
    settings: DiscoverSettings
    recipe: dict
    train_rows: int
    held_out_rows: int
    files: list[str] = field(default_factory=list)
    interaction_report: object | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def expressions(self) -> list[sympy.Expr]:
        """The laws as sympy expressions (one per target, in the input symbols)."""
        return list(self.symbolic.expressions)

    def to_dict(self) -> dict:
        return {"laws": [law.to_dict() for law in self.laws], "oracle": self.oracle, "settings": self.settings.to_dict(),
                "recipe": self.recipe, "train_rows": self.train_rows, "held_out_rows": self.held_out_rows,
                "files": self.files, "seconds": self.seconds}

    def __repr__(self) -> str:
        laws = "; ".join(f"{law.target} = {law.law}" for law in self.laws)
        return f"DiscoveryResult({laws})"

    def _repr_html_(self) -> str:
        rows = [(law.target, law.law, law.route, " ".join(law.summary_lines(self.held_out_rows)[1:2])) for law in self.laws]
        return html_table(("target", "law", "route", "held out"), rows, "kanx discover")


def discover(data: Dataset, settings: DiscoverSettings | None = None, out: Path | str | None = None,
             on_step: StepCallback | None = None, on_polish_step: StepCallback | None = None,
             **options) -> DiscoveryResult:
    """The law behind ``data`` (a ``kanx.io.data.Dataset``: inputs ``[N, n]``, targets ``[N, m]``, or
    class labels ``[N, 1]`` with ``data.classes``: then the law is a classifier's logits).

    ``settings`` (or its fields as keyword ``options``) as in :class:`DiscoverSettings`. With
    ``out``, a folder (created if missing), the network (``model.pt``), the report
    (``report.json``), the formulas (``formula.tex``) and the figures are written there.
    ``on_step`` / ``on_polish_step``: progress callbacks of the two training phases."""
    settings = settings if settings is not None else DiscoverSettings(**options)
    classifier = data.classes is not None
    extraction = settings.symbolify_settings(classifier)
    out = Path(out) if out is not None else None
    if out is not None:
        check_output_folder(out, "--out")
    recipe = recipe_for(data, seed=settings.seed, steps=settings.steps, device=settings.device,
                        max_memory=settings.max_memory)
    fit_rows, held_rows = split_rows(data.x.shape[0], recipe.train.test_fraction, recipe.train.seed)
    if len(held_rows) < MIN_HELD_OUT or len(fit_rows) < MIN_FIT_ROWS:
        raise KanxError(f"{data.source}: {data.x.shape[0]} rows are too few to train, extract and check a law "
                        f"(at least {MIN_FIT_ROWS + MIN_HELD_OUT} are needed)")
    clock = time.perf_counter()
    trained = train_recipe(data, recipe, on_step, on_polish_step)
    seconds = {"train": time.perf_counter() - clock}
    model = trained.model.eval()
    fit_data = subset(data, fit_rows)
    held = subset(data, held_rows)
    clock = time.perf_counter()
    result = symbolify(model, fit_data, extraction)
    if classifier:
        laws = [classifier_law(result, model, held)]
    else:
        laws = [target_law(result, model, held, k) for k in range(model.n_outputs)]
    seconds["extract"] = time.perf_counter() - clock
    clock = time.perf_counter()
    found = summarise_interactions(model, laws, settings) if settings.interactions else None
    seconds["interactions"] = time.perf_counter() - clock
    report = DiscoveryResult(laws, model, result, result.oracle_quality.to_dict() if result.oracle_quality else None,
                             settings, recipe_record(recipe, trained), len(fit_rows), len(held_rows), interaction_report=found,
                             seconds=seconds)
    if out is not None:
        write_outputs(report, out)
    return report


def subset(data: Dataset, rows: torch.Tensor) -> Dataset:
    """The rows ``rows`` of ``data`` as a dataset of their own."""
    return Dataset(data.x[rows], data.y[rows], list(data.input_names), list(data.target_names), data.source,
                   classes=data.classes)


def classifier_law(result: SymbolicResult, model, held: Dataset) -> ClassifierLaw:
    """A classifier's law, its fidelity as a classifier and its Pareto front on the held-out rows
    ``held`` (labels: class indices ``[N, 1]``)."""
    logits = [result.in_inputs(expr) for expr in result.expressions]
    labels = held.y[:, 0]
    route = result.strategy_used[0] if result.strategy_used else "edges"
    options = [(logits, route, True)]
    symbols = {s.name: s for s in input_symbols(model)}
    log = result.log[0] if result.log else {}
    chosen_texts = [sympy.sstr(e) for e in logits]
    for law in log.get("labelled_rows_laws") or []:
        if law["logits"] == chosen_texts:
            continue
        try:
            options.append(([parse_expression(text, symbols, "sparse-logistic candidate") for text in law["logits"]],
                            LOGISTIC_ROUTE, False))
        except KanxError:
            continue
    front = []
    for expressions, origin, chosen in options:
        values = formula_logits(expressions, model, held.x)
        metrics = classification_metrics(values, labels) if values is not None else None
        front.append(ClassCandidate([sympy.sstr(e) for e in expressions], int(sum(formula_cost(e) for e in expressions)),
                                    metrics.log_loss if metrics else math.inf, metrics.accuracy if metrics else math.nan,
                                    origin, chosen))
    kept = non_dominated(front, lambda c: c.held_out_log_loss)
    probabilities = [f"{name} = {sympy.sstr(expr)}" for name, expr in probability_formulas(model.classes, model.meta.output_names)]
    return ClassifierLaw(model.meta.label, list(model.classes.names), list(model.meta.output_names),
                         chosen_texts, probabilities, route,
                         classifier_fidelity(model, logits, held.x, labels, "the held-out rows"), kept)


def recipe_record(recipe: Recipe, trained: TrainResult) -> dict:
    """The recipe as run: its settings, and the network's train and held-out metrics."""
    return {"settings": trained.model.meta.training.get("settings"), **recipe.to_dict(),
            "polished": trained.model.meta.training.get("recipe", {}).get("polished"),
            "train": asdict(trained.train), "held_out": asdict(trained.test)}


def target_law(result: SymbolicResult, model, held: Dataset, k: int) -> TargetLaw:
    """Target ``k``'s law, fidelity and Pareto front on the held-out rows ``held``."""
    symbols = input_symbols(model)
    with torch.no_grad():
        network = model(held.x.float()).double()[:, k]
    truth = held.y.double()[:, k]
    law = result.in_inputs(result.expressions[k])
    route = result.strategy_used[k] if k < len(result.strategy_used) else "edges"
    front = pareto_front(candidates(result, k, law, route, symbols), symbols, held.x, truth)
    predicted = values_on(law, symbols, held.x)
    versus_network = fidelity(predicted, network) if predicted is not None else unevaluable(len(truth))
    log = result.log[k] if k < len(result.log) and result.log[k] else {}
    return TargetLaw(held.target_names[k], sympy.sstr(law), route, next(c.held_out for c in front if c.chosen), versus_network,
                     fidelity(network, truth).r2, front, list(log.get("structure_text") or []),
                     cut_by_clock=cut_by_clock(log), work=work_spent(log))


def unevaluable(rows: int) -> Fidelity:
    """The fidelity of a formula that does not evaluate (numeric parts left)."""
    return Fidelity(float("-inf"), float("inf"), float("inf"), rows)


def values_on(expr: sympy.Expr, symbols: list[sympy.Symbol], x: torch.Tensor) -> torch.Tensor | None:
    """``expr`` on the rows ``x [N, n]`` → ``[N]`` float64, ``None`` where it does not evaluate."""
    try:
        return evaluate_expression(expr, symbols, x, None)
    except (ValueError, TypeError, ArithmeticError):
        return None


def candidates(result: SymbolicResult, k: int, law: sympy.Expr, route: str,
               symbols: list[sympy.Symbol]) -> list[tuple[sympy.Expr, str, bool]]:
    """Target ``k``'s candidate formulas ``(formula, route, chosen)``: the law, every formula the
    structure search cleaned against the targets, and the sparse regression's law on the rows
    (parsed back with the safe parser)."""
    found = [(law, route, True)]
    names = {str(s): s for s in symbols}
    log = result.log[k] if k < len(result.log) and result.log[k] else {}
    logged = [(item["formula"], "structure-first") for item in log.get("candidates") or []]
    logged += [(log["rows_route"]["formula"], SPARSE_ROUTE)] if log.get("rows_route") else []
    for text, origin in logged:
        try:
            expr = parse_expression(text, names, f"{origin} candidate")
        except KanxError:
            continue
        if all(expr != other for other, _, _ in found):
            found.append((expr, origin, False))
    return found


def pareto_front(options: list[tuple[sympy.Expr, str, bool]], symbols: list[sympy.Symbol], x: torch.Tensor,
                 y: torch.Tensor) -> list[CandidateFormula]:
    """The candidates ``(formula, route, chosen)`` that no other one beats on both complexity and
    held-out RMSE on rows ``x [N, n]`` against ``y [N]``, simplest first. The chosen one is always
    listed (marked), even where another dominates it."""
    scored = []
    for expr, route, chosen in options:
        predicted = values_on(expr, symbols, x)
        held_out = fidelity(predicted, y) if predicted is not None else unevaluable(len(y))
        scored.append(CandidateFormula(sympy.sstr(expr), int(formula_cost(expr)), held_out, route, chosen))
    return non_dominated(scored, lambda c: c.held_out.rmse)


def non_dominated(candidates: list, error) -> list:
    """The ``candidates`` (each with ``complexity`` and ``chosen``) that no simpler one beats on
    ``error(candidate)``, simplest first; the chosen one is kept even where another dominates it."""
    front, best = [], math.inf
    for candidate in sorted(candidates, key=lambda c: (c.complexity, error(c))):
        if error(candidate) < best or candidate.chosen:
            front.append(candidate)
            best = min(best, error(candidate))
    return front


def summarise_interactions(model, laws: list[TargetLaw], settings: DiscoverSettings):
    """Set each law's ``interactions``: the additive blocks of inputs, the interaction tree and
    the largest interaction order of the network, each interaction tested against the held-out
    rows the checkpoint keeps (as ``kanx interactions MODEL`` does: on the training rows the
    support test cannot tell a term from what the network learned of their noise); returns the
    full ``InteractionReport``."""
    report = interactions(model, seed=settings.seed, device=settings.device, max_memory=settings.max_memory)
    found = [{"structure": output.tree.describe(), "max_order": output.max_order,
              "groups": [{"inputs": g.variables, "order": g.order, "variance_share": g.variance_share} for g in output.groups],
              "unused_inputs": list(output.unused)} for output in report.outputs]
    if isinstance(laws[0], ClassifierLaw):  # a classifier's logits make one law
        laws[0].interactions = dict(zip(model.meta.output_names, found))
    else:
        for law, summary in zip(laws, found):
            law.interactions = summary
    return report


def write_outputs(report: DiscoveryResult, out: Path) -> None:
    """The network, the report, the formulas and the figures in the folder ``out``; their names
    go to ``report.files`` (``report.json`` lists itself too)."""
    from kanx.plot import PlotSettings, plot_activations

    out.mkdir(exist_ok=True)
    written = [save_model(report.model, out / "model.pt")]
    written.append(atomic_write_text(out / "formula.tex", report.symbolic.to_latex()))
    written += plot_activations(report.model, settings=PlotSettings(diagram=True)).save(out / "activations", "png", 100)
    if report.interaction_report is not None:
        from kanx.interaction.figure import interaction_figure

        first_output = Figures(["interactions"], [interaction_figure(report.interaction_report)])
        written += first_output.save_each(out / "interactions.png", 110)
    report.files = [path.name for path in written] + ["report.json"]
    atomic_write_text(out / "report.json", to_json(report.to_dict()) + "\n")
