"""Fitting KANs with the KAN paper's sparsity regulariser and grid refresh from data.

Loss = MSE + lamb * sum over layers of
    (lamb_l1 * sum_edges A_ij + lamb_entropy * sum_nodes H_j),
with ``A_ij`` = mean over the batch of |phi_ij(x)| and ``H_j`` the entropy of node ``j``'s
distribution ``p_ij = A_ij / sum_i A_ij`` of incoming-edge magnitudes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from kanx.core.choices import BASES, CLASS_WEIGHTS, OPTIMIZERS, TARGET_TRANSFORMS, TRAINABLE
from kanx.core.classes import ClassificationMetrics, balanced_weights, classification_metrics, cross_entropy
from kanx.core.display import html_table
from kanx.core.errors import KanxError, KanxFailure
from kanx.core.numerics import magnitude_penalty, r2, rmse, split_rows
from kanx.core.resources import check_resources, made_on_cpu, resolve_device
from kanx.families.kan.edit import refine_grid, splines_from_symbolic, widen
from kanx.families.kan.network import KAN, EdgeTrace
from kanx.io.data import Dataset
from kanx.training.targets import core_view, fitted_targets, log_targets, output_logs, transform_record, with_output_edges

StepCallback = Callable[[int, float, float], None]

DEFAULT_STEPS = {"adam": 1500, "lbfgs": 100}
# The range of a data column's largest magnitude that a network can train on. It computes in
# float32 (1e-38..3e+38) and needs about three decades of room on either side: an input's knots,
# their spacings and inverse spacings are numbers of its size and of its inverse (over the grid;
# at 1e+38 the extended knots overflow, at 1e-39 the inverse spacings do), a target's scale and
# its inverse enter every gradient (at 1e-40 the inverse overflows).
MAGNITUDE = (1e-35, 1e35)


def check_training_options(test_fraction: float, lr: float | None, lamb: float, lamb_l1: float, lamb_entropy: float) -> None:
    """The options every family's training shares: a held-out fraction in [0, 1), a positive
    learning rate, non-negative sparsity weights."""
    if not 0 <= test_fraction < 1:
        raise KanxError(f"--test-fraction {test_fraction}: must be in [0, 1) (0: no held-out metrics)")
    if lr is not None and not lr > 0:
        raise KanxError(f"--lr {lr}: must be positive")
    if min(lamb, lamb_l1, lamb_entropy) < 0:
        raise KanxError("--lamb, --lamb-l1 and --lamb-entropy must be >= 0")


@dataclass
class TrainSettings:
    """Hyper-parameters of ``train``. ``mult[l]`` lists multiplication-node arities of node
    layer ``l``; ``update_grid`` = number of grid refreshes spread over the first half of
    training (B-spline bases only); ``steps=None`` takes the optimizer's default. ``patience``
    > 0 stops early: with held-out rows (``test_fraction`` > 0), training ends once their error
    has not improved for that many steps after the last grid refresh, and the model keeps the
    parameters of its best held-out step (0: all steps, the last parameters). ``sample_rows``: the most
    training inputs, and the most held-out rows with their targets, the checkpoint keeps.
    ``class_weights`` (a classifier, whose data hold class labels): ``none``, or ``balanced`` to
    weigh every class alike in the loss (imbalanced data).

    Continuing a network (``init``): ``refine_grid`` puts its B-spline edges on that many
    intervals first (unchanged functions, :func:`kanx.families.kan.edit.refine_grid`);
    ``trainable`` ``all`` turns its symbolic edges into splines fitted to their functions so every
    edge trains, ``numeric`` keeps them fixed and trains the spline edges; ``widen`` adds that
    many hidden nodes per hidden layer, starting near zero. ``optimizer`` ``None``: ``adam``, or
    ``lbfgs`` after a grid refinement."""

    widths: list[int]
    mult: list[list[int]] | None = None
    grid: int = 5
    k: int = 3
    basis: str = "bspline"
    steps: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    lamb: float = 0.0
    lamb_l1: float = 1.0
    lamb_entropy: float = 2.0
    update_grid: int = 10
    grid_eps: float = 0.02
    seed: int = 0
    test_fraction: float = 0.2
    patience: int = 0
    normalize_targets: bool = True
    target_transform: str = "none"
    class_weights: str = "none"
    sample_rows: int = 1000
    device: str = "cpu"
    max_memory: str | int | None = None
    refine_grid: int | None = None
    trainable: str = "all"
    widen: int = 0

    def __post_init__(self) -> None:
        check_resources(self.device, self.max_memory)
        widths = list(self.widths)
        if len(widths) < 2 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise KanxError(f"--width {','.join(map(str, widths))}: need at least an input and an output layer of positive sizes")
        if self.optimizer is None:  # a refined grid starts at the coarse optimum: LBFGS polishes it (pykan's refine, then LBFGS)
            self.optimizer = "lbfgs" if self.refine_grid is not None else "adam"
        if self.optimizer not in OPTIMIZERS:
            raise KanxError(f"--optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.basis not in BASES:
            raise KanxError(f"--basis {self.basis!r}: use bspline, rbf or chebyshev")
        if self.target_transform not in TARGET_TRANSFORMS:
            raise KanxError(f"--target-transform {self.target_transform!r}: use one of {', '.join(TARGET_TRANSFORMS)}")
        if self.trainable not in TRAINABLE:
            raise KanxError(f"--trainable {self.trainable!r}: use one of {', '.join(TRAINABLE)}")
        if self.widen < 0:
            raise KanxError(f"--widen {self.widen}: must be >= 0")
        if self.class_weights not in CLASS_WEIGHTS:
            raise KanxError(f"--class-weights {self.class_weights!r}: use one of {', '.join(CLASS_WEIGHTS)}")
        check_training_options(self.test_fraction, self.lr, self.lamb, self.lamb_l1, self.lamb_entropy)
        for option, value, low in (("--grid", self.grid, 2), ("--k", self.k, 1), ("--steps", self.steps, 1),
                                   ("--update-grid", self.update_grid, 0), ("--patience", self.patience, 0)):
            if value is not None and value < low:
                raise KanxError(f"{option} {value}: must be at least {low}")
        if self.patience and not self.test_fraction > 0:
            raise KanxError(f"--patience {self.patience}: early stopping needs held-out rows (--test-fraction > 0)")

    @property
    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else DEFAULT_STEPS[self.optimizer]

    @property
    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1.0 if self.optimizer == "lbfgs" else 1e-2


@dataclass
class Metrics:
    """Root-mean-square error and coefficient of determination (averaged over outputs)."""

    rmse: float
    r2: float

    @property
    def error(self) -> float:
        """The held-out error that the polish compares: the RMSE."""
        return self.rmse

    @property
    def score(self) -> float:
        """Higher is better (for choosing among networks): the R²."""
        return self.r2


@dataclass
class TrainResult:
    """What :func:`train` gives: the trained ``model``, its metrics on the training and held-out
    rows (:class:`Metrics`, or :class:`kanx.core.classes.ClassificationMetrics` for a classifier),
    and ``history``: ``(step, train loss, held-out loss)`` at each logged step (the loss: the
    mean squared error, or a classifier's log-loss)."""

    model: KAN
    train: Metrics | ClassificationMetrics
    test: Metrics | ClassificationMetrics
    history: list[tuple[int, float, float]] = field(default_factory=list)
    before: Metrics | ClassificationMetrics | None = None

    def to_dict(self) -> dict:
        task = {"task": "classify", "classes": list(self.model.classes.names)} if self.model.classes is not None else {}
        before = {"test_before": asdict(self.before)} if self.before is not None else {}
        return {"widths": list(self.model.widths), **task, "train": asdict(self.train), "test": asdict(self.test),
                **before, "history": [list(entry) for entry in self.history]}

    def __repr__(self) -> str:
        if isinstance(self.test, ClassificationMetrics):
            return (f"TrainResult(widths={self.model.widths}, classes {len(self.model.classes.names)}, held-out accuracy "
                    f"{self.test.accuracy:.4g}, log-loss {self.test.log_loss:.4g}, AUC {self.test.auc:.4g})")
        return (f"TrainResult(widths={self.model.widths}, train R² {self.train.r2:.6g}, "
                f"held-out R² {self.test.r2:.6g}, RMSE {self.test.rmse:.4g})")

    def _repr_html_(self) -> str:
        title = f"kanx train: KAN {self.model.widths}"
        if isinstance(self.test, ClassificationMetrics):
            rows = [(name, f"{m.accuracy:.4g}", f"{m.log_loss:.4g}", f"{m.auc:.4g}")
                    for name, m in (("training", self.train), ("held out", self.test))]
            return html_table(("rows", "accuracy", "log-loss", "AUC"), rows, title)
        rows = [("training", f"{self.train.r2:.6g}", f"{self.train.rmse:.6g}"),
                ("held out", f"{self.test.r2:.6g}", f"{self.test.rmse:.6g}")]
        return html_table(("rows", "R²", "RMSE"), rows, title)


def sparsity_penalty(traces: list[EdgeTrace], lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
    """L1 of each edge's mean |phi| plus each node's entropy of incoming-edge magnitudes."""
    total = traces[0].inputs.new_zeros(())
    for trace in traces:
        total = total + magnitude_penalty(trace.edges.abs().mean(dim=0), lamb_l1, lamb_entropy)
    return total


def regression_metrics(prediction: torch.Tensor, target: torch.Tensor) -> Metrics:
    """RMSE over all entries; R² per output column, averaged. Shapes ``[N, n_out]``."""
    return Metrics(rmse=rmse(prediction, target), r2=float(r2(prediction, target, dim=0).mean()))


def model_metrics(model: KAN, x: torch.Tensor, y: torch.Tensor) -> Metrics | ClassificationMetrics:
    """``model``'s metrics on rows ``x [N, n_in]`` with targets ``y``: regression metrics, or a
    classifier's on class indices ``y [N, 1]`` (``nan`` without rows)."""
    if model.classes is not None:
        with torch.no_grad():
            return classification_metrics(model(x), y[:, 0])
    if not len(x):
        return Metrics(float("nan"), float("nan"))
    with torch.no_grad():
        return regression_metrics(model(x), y)


def data_loss(model: KAN, y: torch.Tensor, class_weights: str) -> tuple[Callable, float]:
    """The loss that fits ``model`` to targets ``y``, ``loss(prediction, target) -> scalar``, and
    the factor that turns it into the reported loss: the mean squared error of targets divided by
    the output scale (times the scale's mean square), or a classifier's cross-entropy on class
    indices (weighted by class with ``class_weights="balanced"``; factor 1)."""
    classes = model.classes
    if classes is not None:
        weights = balanced_weights(y[:, 0], len(classes.names)) if class_weights == "balanced" else None
        return (lambda prediction, target: cross_entropy(prediction, target[:, 0], weights)), 1.0
    scale = model.layers[-1].node_scale.detach().clone()
    return (lambda prediction, target: (((prediction - target) / scale) ** 2).mean()), float((scale.double() ** 2).mean())


def build_model(dataset: Dataset, settings: TrainSettings) -> KAN:
    """A fresh KAN whose first-layer grids span the data and whose output node affine undoes
    target standardisation (so the network itself fits unit-scale targets)."""
    if dataset.ranges is not None:
        lo = torch.tensor([r[0] for r in dataset.ranges])
        hi = torch.tensor([r[1] for r in dataset.ranges])
    else:
        lo, hi = dataset.x.min(dim=0).values, dataset.x.max(dim=0).values
    # a constant column still needs a grid of positive width (and a checkpoint needs low < high)
    constant = ~(hi > lo)
    lo, hi = torch.where(constant, lo - 0.5, lo), torch.where(constant, hi + 0.5, hi)
    basis = {"kind": "bspline", "grid": settings.grid, "k": settings.k}
    if settings.basis == "rbf":
        basis = {"kind": "rbf", "num": settings.grid, "h": 2.0 / (settings.grid - 1), "min": -1.0, "max": 1.0}
    elif settings.basis == "chebyshev":
        basis = {"kind": "chebyshev", "degree": settings.grid}
    model = KAN(
        widths=settings.widths,
        basis=basis,
        mult=settings.mult,
        input_ranges=list(zip(lo.tolist(), hi.tolist())),
        input_names=dataset.input_names,
        output_names=dataset.target_names,
        seed=settings.seed,
    )
    if dataset.classes is not None:
        model.make_classifier(dataset.target_names[0], dataset.classes)
        with torch.no_grad():
            model.layers[-1].node_bias.copy_(prior_logits(dataset.y[:, 0], dataset.classes.logit_count))
    elif settings.normalize_targets:
        last = model.layers[-1]
        mean, std = target_standardisation(dataset.y)
        with torch.no_grad():
            last.node_bias.copy_(mean)
            last.node_scale.copy_(std)
    return model


def prior_logits(labels: torch.Tensor, logits: int) -> torch.Tensor:
    """Logits ``[logits]`` that give every row the classes' frequencies in ``labels [N]`` (the
    log-odds of the second class for one logit, log-frequencies otherwise): the starting output
    bias of a classifier."""
    counts = torch.bincount(labels.long(), minlength=max(logits, 2)).double() + 0.5  # no class at log 0
    log_share = torch.log(counts / counts.sum())
    return (log_share[1:2] - log_share[:1] if logits == 1 else log_share).float()


def target_standardisation(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each target column of ``y [N, n_out]`` (``[n_out]`` each),
    computed in float64 so that targets of order 1e-30 or 1e+30 keep their precision (their
    squares leave float32's range); a constant column gets a scale of its own size (1 for 0)."""
    values = y.double()
    zeros = torch.zeros(values.shape[1], dtype=torch.float64, device=values.device)
    mean, std = values.mean(dim=0), values.std(dim=0) if len(values) > 1 else zeros
    size = values.abs().amax(dim=0) if len(values) else zeros + 1
    std = torch.where(std > 1e-12 * size, std, torch.where(size > 0, size, torch.ones_like(size)))
    return mean.to(y.dtype), std.to(y.dtype)


UNIT_SCALE = (1e-2, 1e2)  # inputs whose magnitude lies outside this keep no silu base branch


def unit_scale_inputs(model: KAN) -> torch.Tensor:
    """``[n_in]`` bool (on the CPU): inputs whose recorded range has a magnitude (max |low|, |high|) within
    ``UNIT_SCALE``. The first layer's base branch ``w_b·silu(x)`` is kept for those only: silu of an
    input measured in units of 1e+9 is 1e+9 times too large and of one in units of 1e-9 is
    linear and invisible, so far from unit scale the knot-adapted spline alone carries each edge
    (the spline is exact under a change of units). Their base weights are 0 in the checkpoint."""
    ranges = torch.tensor(model.meta.input_ranges, dtype=torch.float64, device="cpu")
    size = ranges.abs().amax(dim=1)
    low, high = UNIT_SCALE
    if model.layers[0].base_fn == "zero":
        return torch.ones(len(size), dtype=torch.bool, device="cpu")
    return (size >= low) & (size <= high)


def fit(
    model: KAN,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TrainSettings,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    on_step: StepCallback | None = None,
    stopping: EarlyStopping | None = None,
) -> list[tuple[int, float, float]]:
    """Optimise ``model`` in place on ``x`` ``[N, n_in]``, ``y`` ``[N, n_out]``.

    Returns the history ``(step, train_mse, test_mse)``; ``on_step`` sees the same values.
    ``settings.patience`` with ``x_test``/``y_test`` stops early (``stopping``, when given, is
    the :class:`EarlyStopping` used, to read what happened). A
    model whose outputs are ``exp`` of a fitted ``log|y|`` (``kanx.training.targets``) trains the
    layers below its output layer on ``log|y|`` (and reports those errors).
    """
    logs = output_logs(model)
    if any(logs):
        with core_view(model):
            return fit(model, x, fitted_targets(y, logs), settings, x_test,
                       fitted_targets(y_test, logs) if y_test is not None else None, on_step, stopping)
    steps = settings.resolved_steps
    loss_of, factor = data_loss(model, y, settings.class_weights)
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "lbfgs":
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            params, lr=settings.resolved_lr, history_size=10, max_iter=20,
            line_search_fn="strong_wolfe", tolerance_grad=1e-32, tolerance_change=1e-32,
        )
    else:
        optimizer = torch.optim.Adam(params, lr=settings.resolved_lr)
    refresh_steps = grid_refresh_steps(steps, settings.update_grid) if model.basis["kind"] == "bspline" else set()

    def objective() -> tuple[torch.Tensor, torch.Tensor]:
        if settings.lamb > 0:
            traces = model.edge_activations(x)
            prediction = traces[-1].outputs
            penalty = sparsity_penalty(traces, settings.lamb_l1, settings.lamb_entropy)
        else:
            prediction = model(x)
            penalty = prediction.new_zeros(())
        loss = loss_of(prediction, y)
        return loss + settings.lamb * penalty, loss

    def held_out() -> float:
        with torch.no_grad():
            if model.classes is not None:
                return float(loss_of(model(x_test), y_test))
            return float(((model(x_test).double() - y_test.double()) ** 2).mean())

    for layer in model.layers:  # every full-batch step evaluates the first layer's basis on the same rows
        layer.reuse_basis(True)
    try:
        with frozen_base_rows(model):
            has_test = x_test is not None and y_test is not None and len(x_test) > 0
            return optimise(model, x, settings, objective, optimizer, refresh_steps, held_out if has_test else None,
                            factor, on_step, stopping)
    finally:
        for layer in model.layers:
            layer.reuse_basis(False)


@contextmanager
def frozen_base_rows(model: KAN):
    """While training: the first layer's base weights of inputs far from unit scale
    (:func:`unit_scale_inputs`) are 0 and get no gradient, so no optimizer moves them."""
    weights = model.layers[0].w_base
    off = ~unit_scale_inputs(model).to(weights.device)
    if not bool(off.any()) or not weights.requires_grad:
        yield
        return
    with torch.no_grad():
        weights[off] = 0.0
    handle = weights.register_hook(lambda grad: grad.masked_fill(off[:, None], 0.0))
    try:
        yield
    finally:
        handle.remove()


def optimise(model: KAN, x: torch.Tensor, settings: TrainSettings, objective, optimizer: torch.optim.Optimizer,
             refresh_steps: set[int], held_out: Callable[[], float] | None, factor: float,
             on_step: StepCallback | None, stopping: EarlyStopping | None = None) -> list[tuple[int, float, float]]:
    """The optimisation loop of :func:`fit` (grid refreshes at ``refresh_steps``; early stopping
    with ``settings.patience``, see :class:`EarlyStopping`). ``objective()`` gives the loss to
    minimise and the data loss, which ``factor`` turns into the reported training loss;
    ``held_out()`` the held-out loss (``None``: no held-out rows)."""
    history = []
    if stopping is None and settings.patience and held_out is not None:
        stopping = EarlyStopping(settings.patience)
    if stopping is not None:
        stopping.start(model, max(refresh_steps, default=0))
    for step in range(1, settings.resolved_steps + 1):
        if step in refresh_steps:
            model.refresh_grids(x, grid_eps=settings.grid_eps)
        if settings.optimizer == "lbfgs":
            def closure() -> torch.Tensor:
                optimizer.zero_grad()
                loss, _ = objective()
                loss.backward()
                return loss

            optimizer.step(closure)
            with torch.no_grad():
                _, mse = objective()
        else:
            optimizer.zero_grad()
            loss, mse = objective()
            loss.backward()
            optimizer.step()
        train_mse = float(mse.detach()) * factor  # float64: a scale of 1e+20 squares past float32
        test_mse = held_out() if held_out is not None else float("nan")
        history.append((step, train_mse, test_mse))
        if on_step is not None:
            on_step(step, train_mse, test_mse)
        if stopping is not None and stopping.should_stop(step, test_mse):
            break
    if stopping is not None:
        stopping.restore()
    return history


class EarlyStopping:
    """Keeps a model's parameters at its best held-out error and says when to stop: after
    ``patience`` steps without improvement, counted from the last grid refresh (a refresh moves
    the held-out error, so steps before it are not judged). ``best_step`` and ``stopped_at``
    (the last step run) describe what happened."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.model: KAN | None = None
        self.last_refresh = 0
        self.best_error, self.best_step, self.stopped_at = float("inf"), 0, 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def start(self, model: KAN, last_refresh: int) -> None:
        self.model, self.last_refresh = model, last_refresh

    def should_stop(self, step: int, test_mse: float) -> bool:
        self.stopped_at = step
        if step < self.last_refresh:
            return False
        if test_mse < self.best_error:
            self.best_error, self.best_step = test_mse, step
            self.best_state = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
            return False
        return step - self.best_step >= self.patience

    def restore(self) -> None:
        """Put the best parameters back into the model."""
        if self.best_state is not None and self.model is not None:
            self.model.load_state_dict(self.best_state)

    def to_dict(self) -> dict:
        return {"patience": self.patience, "best_step": self.best_step, "stopped_at": self.stopped_at,
                "best_test_mse": self.best_error}


def grid_refresh_steps(steps: int, count: int) -> set[int]:
    """Steps (1-based) at which grids are refreshed: ``count`` times over the first half."""
    if count <= 0 or steps < 2:
        return set()
    half = max(steps // 2, 1)
    return {1 + (i * half) // count for i in range(count)}


def train_kan(dataset: Dataset, settings: TrainSettings, on_step: StepCallback | None = None, init: KAN | None = None) -> TrainResult:
    """Build a KAN for ``dataset`` (or continue training a copy of ``init``, which is left
    untouched), fit it on ``settings.device`` (the model comes back on the CPU) and record
    provenance (settings, seed, data fingerprint, input ranges, a stored sample of up to
    ``sample_rows`` training inputs, and up to ``sample_rows`` held-out rows with their targets).

    A fresh model fits the targets that ``settings.target_transform`` picks as ``log|y|`` under
    an ``exp`` output layer (``kanx.training.targets``); the metrics are those of ``y``."""
    check_magnitudes(dataset)
    check_task(dataset, settings)
    fresh = init is None and dataset.classes is None
    logs = log_targets(dataset.y, settings.target_transform) if fresh else [False] * dataset.y.shape[1]
    if any(logs):
        return train_through_logs(dataset, settings, logs, on_step)
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    train_idx, test_idx = split_rows(len(dataset.x), settings.test_fraction, settings.seed)
    x_train, y_train = dataset.x[train_idx].to(device), dataset.y[train_idx].to(device)
    x_test, y_test = dataset.x[test_idx].to(device), dataset.y[test_idx].to(device)
    edits: dict = {}
    with made_on_cpu():  # built where its seeded initialisation is defined, then moved
        model = build_model(dataset, settings) if init is None else continued_model(init, dataset)
        if init is not None:
            model, edits = prepared_for_continuing(model, dataset.x[train_idx], settings)
    model = model.to(device)
    before = model_metrics(model.eval(), x_test, y_test) if init is not None and len(x_test) else None
    model.train()
    stopping = EarlyStopping(settings.patience) if settings.patience and len(x_test) else None
    history = fit(model, x_train, y_train, settings, x_test, y_test, on_step, stopping)
    model.eval()
    check_finite_parameters(model, dataset.source)
    train_metrics, test_metrics = model_metrics(model, x_train, y_train), model_metrics(model, x_test, y_test)
    keep = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(settings.seed + 1), device="cpu")
    model = model.cpu()  # a trained model (and so its checkpoint) is device-independent
    model.sample_inputs = x_train[keep[: settings.sample_rows].to(device)].cpu().clone()
    model.held_out_inputs, model.held_out_targets = held_out_sample(x_test, y_test, settings.sample_rows, settings.seed)
    model.meta.training = {
        "settings": {**asdict(settings), "steps": settings.resolved_steps, "lr": settings.resolved_lr},
        "seed": settings.seed,
        "data_source": dataset.source,
        "data_fingerprint": dataset.fingerprint(),
        "rows": len(dataset.x),
        "train_rows": len(x_train),
        "test_rows": len(x_test),
        "metrics": {"train": asdict(train_metrics), "test": asdict(test_metrics)},
    }
    if stopping is not None:
        model.meta.training["early_stopping"] = stopping.to_dict()
    if init is None:
        model.meta.provenance = {"created_by": "kanx train"}
    else:
        earlier = init.meta.training.get("metrics") if isinstance(init.meta.training, dict) else None
        model.meta.training["continued_from"] = {"provenance": dict(init.provenance), "metrics": earlier, **edits,
                                                 "test_before": asdict(before) if before is not None else None}
        if any(output_logs(init)):  # still exp of a fitted log|y|
            model.meta.training["target_transforms"] = transform_record(model, output_logs(init))
        model.meta.provenance = {**init.provenance, "continued_by": "kanx train --init"}
    return TrainResult(model, train_metrics, test_metrics, history, before)


def train_choosing_grid(dataset: Dataset, settings: TrainSettings, grids: list[int],
                        progress: Callable[[int], StepCallback | None] | None = None) -> TrainResult:
    """:func:`train` once per grid size in ``grids`` (same seed, same held-out rows) and keep the
    network with the best held-out R² (averaged over outputs; a classifier's: the least log-loss): the grid chosen by validation, so
    a fine grid that fits noise loses to a coarser one that does not. ``progress(grid)`` gives the
    step callback of each run. The record gains ``grid_selection`` (every grid's held-out R²)."""
    if not grids:
        raise KanxError("--grid: give at least one grid size")
    if len(grids) == 1:
        return train_kan(dataset, replace(settings, grid=grids[0]), progress(grids[0]) if progress else None)
    if not settings.test_fraction > 0:
        raise KanxError(f"--grid {','.join(map(str, grids))}: choosing the grid needs held-out rows (--test-fraction > 0)")
    results = {grid: train_kan(dataset, replace(settings, grid=grid), progress(grid) if progress else None) for grid in grids}
    chosen = max(results, key=lambda grid: (results[grid].test.score, -grid))
    result = results[chosen]
    if result.model.classes is not None:
        held_out = {"held_out_log_loss": {str(g): r.test.log_loss for g, r in results.items()}}
    else:
        held_out = {"held_out_r2": {str(g): r.test.r2 for g, r in results.items()}}
    result.model.meta.training["grid_selection"] = {"chosen": chosen, **held_out}
    return result


def check_task(dataset: Dataset, settings: TrainSettings) -> None:
    """Refuse settings that do not fit the data's task: a log target transform for class labels,
    class weights for numeric targets."""
    if dataset.classes is not None and settings.target_transform == "log":
        raise KanxError("--target-transform log: a classifier fits the logits of its class labels; leave the option out")
    if dataset.classes is None and settings.class_weights != "none":
        raise KanxError(f"--class-weights {settings.class_weights}: weighs the classes of a classifier (--task classify)")


def check_magnitudes(dataset: Dataset) -> None:
    """Refuse an input or target column whose largest magnitude lies outside ``MAGNITUDE`` (a
    column of zeros is fine): a float32 network could not represent what training needs."""
    if not len(dataset.x):
        return
    low, high = MAGNITUDE
    for kind, values, names in (("input", dataset.x, dataset.input_names), ("target", dataset.y, dataset.target_names)):
        for name, size in zip(names, values.double().abs().amax(dim=0).tolist()):
            if size > high or 0 < size < low:
                raise KanxError(f"{dataset.source}: {kind} {name!r} has magnitudes up to {size:.3g}; a network computes in float32 "
                                f"and trains on columns whose largest magnitude is between {low:g} and {high:g}: express it "
                                "in other units")


def check_finite_parameters(model: KAN, source: str) -> None:
    """A trained network whose parameters left float32's range (NaN or infinite) is a failed
    training, not a checkpoint."""
    bad = [name for name, value in model.state_dict().items()
           if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        raise KanxFailure(f"{source}: training diverged: the network's {bad[0]} holds NaN or Inf (try a smaller --lr, or data in "
                          "units closer to 1)")


def held_out_sample(x_test: torch.Tensor, y_test: torch.Tensor, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``rows`` of the held-out rows ``x_test [N, n_in]`` and their targets ``y_test [N, n_out]``, on
    the CPU: kept in the checkpoint so that later analyses (``kanx interactions``) can test the network
    against data it was not fitted to."""
    keep = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed + 2), device="cpu")[:rows]
    return x_test[keep.to(x_test.device)].cpu().clone(), y_test[keep.to(y_test.device)].cpu().clone()


def train_through_logs(dataset: Dataset, settings: TrainSettings, logs: list[bool], on_step: StepCallback | None) -> TrainResult:
    """:func:`train` of a fresh network on ``log|y|`` of the ``logs`` columns, then its ``exp``
    output layer; the metrics and the record describe ``y`` itself."""
    signs = [float(torch.sign(column[0])) for column in dataset.y.T]
    fitted = train_kan(replace(dataset, y=fitted_targets(dataset.y, logs)), replace(settings, target_transform="none"), on_step)
    with made_on_cpu():  # the trained core is on the CPU; so is its output layer
        model = with_output_edges(fitted.model, logs, signs)
    train_idx, test_idx = split_rows(len(dataset.x), settings.test_fraction, settings.seed)
    with torch.no_grad():
        train_metrics = regression_metrics(model(dataset.x[train_idx]), dataset.y[train_idx])
        test_metrics = (regression_metrics(model(dataset.x[test_idx]), dataset.y[test_idx]) if len(test_idx)
                        else Metrics(float("nan"), float("nan")))
    model.held_out_inputs, model.held_out_targets = held_out_sample(dataset.x[test_idx], dataset.y[test_idx],
                                                                    settings.sample_rows, settings.seed)
    record = fitted.model.meta.training
    model.meta.training = {**record, "settings": {**record["settings"], "target_transform": settings.target_transform},
                           "target_transforms": transform_record(model, logs), "data_fingerprint": dataset.fingerprint(),
                           "metrics": {"train": asdict(train_metrics), "test": asdict(test_metrics),
                                       "fitted_log_targets": record["metrics"]}}
    return TrainResult(model, train_metrics, test_metrics, fitted.history)


def continued_model(init: KAN, dataset: Dataset) -> KAN:
    """A trainable copy of ``init`` for ``dataset`` (same inputs and outputs, in order), its
    recorded input ranges widened to the data's."""
    targets = 1 if init.classes is not None else init.n_outputs
    if dataset.x.shape[1] != init.n_inputs or dataset.y.shape[1] != targets:
        raise KanxError(f"--init: the model maps {init.n_inputs} inputs to {init.n_outputs} outputs, the data has "
                        f"{dataset.x.shape[1]} input and {dataset.y.shape[1]} target columns")
    if (dataset.classes is None) != (init.classes is None) or (dataset.classes is not None and dataset.classes != init.classes):
        raise KanxError("--init: the model's classes and the data's differ" if init.classes is not None
                        else "--init: the model is not a classifier; its targets are numbers")
    model = copy.deepcopy(init)
    model.train()
    low, high = dataset.x.min(dim=0).values.tolist(), dataset.x.max(dim=0).values.tolist()
    model.meta.input_ranges = [(min(a, lo), max(b, hi)) for (a, b), lo, hi in zip(model.meta.input_ranges, low, high)]
    return model


def prepared_for_continuing(model: KAN, x: torch.Tensor, settings: TrainSettings) -> tuple[KAN, dict]:
    """``model`` edited as ``settings`` ask before it trains on inputs ``x`` ``[N, n_inputs]``:
    grid refined, symbolic edges made splines (``trainable="all"``) or frozen (``"numeric"``),
    hidden layers widened. Returns the model and a record of the edits."""
    edits: dict = {"trainable": settings.trainable}
    # the fixed exp output layer of a log-target network is not trained: its edges stay as they are
    core = len(model.layers) - 1 if any(output_logs(model)) else len(model.layers)
    if settings.refine_grid is not None:
        refinement = refine_grid(model, settings.refine_grid)
        model, edits["grid_refinement"] = refinement.model, refinement.to_dict()
    symbolic = sum(count["symbolic"] for count in model.edge_counts()[:core])
    if symbolic and settings.trainable == "all":
        model = splines_from_symbolic(model, x, layers=range(core))
        edits["symbolic_edges_made_splines"] = symbolic
    if settings.widen:
        model = widen(model, settings.widen, seed=settings.seed, hidden=range(1, core))
        edits["widened_by"] = settings.widen
    for layer in model.layers[:core]:
        layer.sym_affine.requires_grad_(settings.trainable == "all")
    return model, edits


def check_continuable(model: nn.Module, where: str) -> None:
    """``KanxError`` naming ``where`` unless ``train(..., init=model)`` can continue ``model``'s
    training (a KAN's)."""
    if not isinstance(model, KAN):
        raise KanxError(f"{where}: continuing training is supported for KAN checkpoints, not {type(model).__name__}")


def continuing_settings(model: KAN, **options) -> TrainSettings:
    """Training settings that keep ``model``'s architecture (for ``train(..., init=model)``)."""
    return TrainSettings(widths=list(model.widths), mult=[list(m) for m in model.mult], **options)
