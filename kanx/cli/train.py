"""``kanx train``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kanx.cli import app
from kanx.cli.common import DEVICE_HELP, MAX_MEMORY_HELP, console, err_console, fmt, handle_errors, parse_int_list, print_json
from kanx.core.choices import ARCHITECTURES, BASES, CLASS_WEIGHTS, DEVICES, OPTIMIZERS, TARGET_TRANSFORMS, TASKS, TRAINABLE
from kanx.core.errors import KanxError
from kanx.io.files import check_output_path

if TYPE_CHECKING:
    from kanx.io.data import Dataset
    from kanx.training.kan import TrainResult, TrainSettings
    from kanx.training.recipe import Recipe


@dataclass
class KarSeinOptions:
    """The --arch karsein options of ``kanx train`` (raw CLI values)."""

    fields: str | None
    dense: str | None
    emb_dim: int
    bit_width: str
    vec_width: str
    pairwise: str
    epochs: int
    batch_size: int


_MULT_ITEM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*(?:x\s*(\d+))?\s*$")


def parse_mult(spec: str | None, widths: list[int]) -> list[list[int]]:
    """Parse ``--mult`` into per-layer multiplication arities.

    Syntax: comma-separated ``LAYER:COUNT[xARITY]`` items. ``1:2`` makes the last 2 nodes of
    node layer 1 multiplication nodes of arity 2; ``1:1x3`` one node of arity 3. Node layer 0
    is the input; the counts are part of ``--width`` (each node still counts once).
    """
    mult: list[list[int]] = [[] for _ in widths]
    if not spec:
        return mult
    for item in spec.split(","):
        match = _MULT_ITEM.match(item)
        if not match:
            raise KanxError(f"--mult {spec!r}: each item is LAYER:COUNT or LAYER:COUNTxARITY, e.g. 1:2 or 1:1x3")
        layer, count, arity = int(match.group(1)), int(match.group(2)), int(match.group(3) or 2)
        if not 1 <= layer < len(widths):
            raise KanxError(f"--mult {spec!r}: layer {layer} is not a node layer after the input (1..{len(widths) - 1})")
        if arity < 2:
            raise KanxError(f"--mult {spec!r}: arity must be at least 2")
        mult[layer].extend([arity] * count)
        if len(mult[layer]) > widths[layer]:
            raise KanxError(f"--mult {spec!r}: layer {layer} has only {widths[layer]} nodes")
    return mult


def load_training_data(
    data: Path | None, target: list[str], inputs: str | None, formula: str | None, var: list[str], samples: int, seed: int,
    task: str = "regression",
) -> Dataset:
    """The dataset from a CSV or a formula (exactly one of them); ``task="classify"``: the
    target column holds class labels."""
    from kanx.io.data import formula_dataset, load_csv, split_names

    if formula and data:
        raise KanxError("give either a DATA csv or --formula, not both")
    if formula and task == "classify":
        raise KanxError("--task classify: needs a DATA csv with a label column, not --formula")
    if formula:
        targets = split_names(",".join(target)) or ["f"]
        return formula_dataset(formula, var, samples, seed, target=targets[0])
    if data is None:
        raise KanxError("give a DATA csv (with --target) or --formula with --var ranges")
    if var:
        raise KanxError("--var is only used with --formula")
    return load_csv(data, split_names(",".join(target)), split_names(inputs) or None, task)


def resolve_widths(width: str | None, dataset: Dataset) -> list[int] | None:
    """The widths ``--width`` gives, checked against the data (``None`` when not given: the recipe's)."""
    n_in = len(dataset.input_names)
    n_out = dataset.classes.logit_count if dataset.classes is not None else len(dataset.target_names)
    if width is None:
        return None
    widths = parse_int_list(width, "--width")
    if len(widths) < 2:
        raise KanxError(f"--width {width!r}: need at least an input and an output layer")
    if widths[0] != n_in:
        raise KanxError(f"--width {width!r}: first layer is {widths[0]} but the data has {n_in} inputs ({', '.join(dataset.input_names)})")
    if widths[-1] != n_out and dataset.classes is not None:
        raise KanxError(f"--width {width!r}: last layer is {widths[-1]} but {len(dataset.classes.names)} classes need {n_out} "
                        "logit(s)")
    if widths[-1] != n_out:
        targets = ", ".join(dataset.target_names)
        raise KanxError(f"--width {width!r}: last layer is {widths[-1]} but the data has {n_out} targets ({targets})")
    if any(w < 1 for w in widths):
        raise KanxError(f"--width {width!r}: layer sizes must be positive")
    return widths


def parse_grids(text: str | None) -> list[int]:
    """``--grid 5`` or ``--grid 3,5,8`` → the grid sizes (default ``[5]``)."""
    if text is None:
        return [5]
    try:
        grids = [int(part) for part in text.split(",")]
    except ValueError:
        raise KanxError(f"--grid {text!r}: use a whole number of grid intervals, or several separated by commas (3,5,8)") from None
    if len(set(grids)) != len(grids):
        raise KanxError(f"--grid {text!r}: a grid size is repeated")
    return grids


def run_with_progress(dataset: Dataset, settings: TrainSettings, quiet: bool, init=None,
                      grids: list[int] | None = None, recipe: Recipe | None = None) -> TrainResult:
    """Train (one network per grid of ``grids`` when several, keeping the best held-out one; then
    ``recipe``'s polish when given) with a progress bar per run."""
    from kanx.training import train
    from kanx.training.kan import train_choosing_grid
    from kanx.training.recipe import polish

    steps = settings.resolved_steps
    columns = [
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("train {task.fields[train]}  test {task.fields[test]}"), TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err_console, disable=quiet, transient=False) as progress:
        def step_callback(description: str):
            task = progress.add_task(description, total=steps, train="-", test="-")

            def on_step(step: int, train_mse: float, test_mse: float) -> None:
                progress.update(task, completed=step, train=f"{train_mse:.3e}", test=f"{test_mse:.3e}")

            return on_step

        if grids is None or init is not None:
            return train(dataset, settings, init=init, on_step=step_callback("training"))
        label = (lambda grid: f"training, grid {grid}") if len(grids) > 1 else (lambda grid: "training")
        first = train_choosing_grid(dataset, settings, grids, lambda grid: step_callback(label(grid)))
        if recipe is None or recipe.polish_steps == 0:
            return first
        steps = recipe.polish_steps
        return polish(dataset, recipe, first, step_callback("polishing (LBFGS)"))


@app.command("train")
@handle_errors
def train_command(
    data: Path = typer.Argument(None, help="CSV with a header row (or use --formula)."),
    target: list[str] = typer.Option([], "--target", "-t", help="Target column(s); repeat or comma-separate."),
    inputs: str = typer.Option(None, "--inputs", help="Input columns a,b,c (default: all non-target columns)."),
    formula: str = typer.Option(None, "--formula", help="Generate data from a formula, e.g. 'exp(sin(pi*x)+y**2)'."),
    var: list[str] = typer.Option([], "--var", help="Variable range for --formula, NAME=LOW:HIGH; repeat per variable."),
    samples: int = typer.Option(1000, "--samples", help="Rows sampled for --formula."),
    width: str = typer.Option(None, "--width", help="Layer widths, e.g. 2,5,1 (default: n, 2n+1, m)."),
    mult: str = typer.Option(None, "--mult", help="Multiplication nodes: LAYER:COUNT[xARITY],... e.g. 1:1 or 1:1x3."),
    grid: str = typer.Option(None, "--grid", help="Grid intervals G (basis size for rbf/chebyshev; default 5); several, "
                             "e.g. 3,5,8, train one network each and keep the best on the held-out rows."),
    k: int = typer.Option(None, "--k", help="B-spline degree (default 3)."),
    basis: Literal[BASES] | None = typer.Option(None, "--basis", help="Edge basis (default bspline)."),
    init: Path = typer.Option(None, "--init", help="Continue training this checkpoint (kanx, compiled by 'kanx compile', or imported: "
                              "pykan, efficient-kan, ...) on DATA; its architecture is kept (--grid refines its splines, --widen "
                              "adds hidden nodes), the data's columns are matched to its inputs by name."),
    trainable: Literal[TRAINABLE] = typer.Option("all", "--trainable", help="With --init: all turns symbolic edges into splines "
                                                 "fitted to their functions so every edge trains; numeric keeps them fixed."),
    widen: int = typer.Option(0, "--widen", help="With --init: add N hidden nodes to every hidden layer, starting near zero, so "
                              "the data can correct the network."),
    steps: int = typer.Option(None, "--steps", help="Optimisation steps (default: adam 1500, lbfgs 100)."),
    optimizer: Literal[OPTIMIZERS] | None = typer.Option(None, "--optimizer", help="Optimiser (default adam; lbfgs after "
                                                         "--init ... --grid refines the splines)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: adam 1e-2, lbfgs 1)."),
    lamb: float = typer.Option(0.0, "--lamb", help="Overall sparsity weight (0 = none)."),
    lamb_l1: float = typer.Option(1.0, "--lamb-l1", help="Weight of the edge L1 term inside the sparsity loss."),
    lamb_entropy: float = typer.Option(2.0, "--lamb-entropy", help="Weight of the node entropy term."),
    update_grid: int = typer.Option(10, "--update-grid", help="Grid refreshes over the first half of training (0 = none)."),
    target_transform: Literal[TARGET_TRANSFORMS] | None = typer.Option(
        None, "--target-transform", help="none: fit y as it is; log: fit log|y| under an exp output layer (targets of one "
        "sign; the checkpoint holds the layer); auto (the default): log for targets of one sign spanning two decades or more."),
    seed: int = typer.Option(0, "--seed", help="Seed for data sampling, split and initialisation."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Held-out fraction for the test metrics."),
    patience: int = typer.Option(None, "--patience", help="Early stopping: end training once the held-out error has not improved "
                                 "for this many steps and keep the best held-out model (default 150 with at least 20 held-out "
                                 "rows; 0 = off)."),
    polish: int = typer.Option(None, "--polish", help="LBFGS steps polishing the network after the first phase, with early "
                               "stopping (default 100 after adam, 0 after lbfgs)."),
    task: Literal[TASKS] = typer.Option("regression", "--task", help="regression: fit numeric targets; classify: the --target "
                                        "column holds class labels (text or integers); the network fits their logits."),
    class_weights: Literal[CLASS_WEIGHTS] = typer.Option("none", "--class-weights", help="classify: balanced weighs every class "
                                                         "alike in the loss (imbalanced data)."),
    output: Path = typer.Option(Path("model.pt"), "--output", "-o", help="Checkpoint to write."),
    arch: Literal[ARCHITECTURES] = typer.Option("kan", "--arch", help="Model family (karsein: a CTR model over categorical --fields)."),
    fields: str = typer.Option(None, "--fields", help="KarSein: categorical field columns a,b,c."),
    dense: str = typer.Option(None, "--dense", help="KarSein: numeric columns fed to the bit-wise branch."),
    emb_dim: int = typer.Option(4, "--emb-dim", help="KarSein: embedding dimension D."),
    bit_width: str = typer.Option("8", "--bit-width", help="KarSein: hidden widths of the bit-wise branch, e.g. 8 or 16,8."),
    vec_width: str = typer.Option("4", "--vec-width", help="KarSein: hidden widths of the vector-wise branch."),
    pairwise: str = typer.Option("0,1", "--pairwise", help="KarSein: vector-wise layers (0-based) with pairwise products."),
    epochs: int = typer.Option(8, "--epochs", help="KarSein: passes over the training rows."),
    batch_size: int = typer.Option(256, "--batch-size", help="KarSein: mini-batch size."),
    device: Literal[DEVICES] = typer.Option("cpu", "--device", help=DEVICE_HELP),
    max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fit a KAN to a CSV or to a formula (or, with --arch karsein, a KarSein CTR model) and write a checkpoint."""
    from kanx.io.checkpoint import save_model
    from kanx.training.kan import TrainSettings

    if init is None and (widen or trainable != "all"):
        raise KanxError("--widen and --trainable apply to a network continued with --init")
    if init is not None:
        architecture = {"--width": width, "--mult": mult, "--k": k, "--basis": basis, "--formula": formula,
                        "--target-transform": target_transform if target_transform not in (None, "none") else None,
                        "--polish": polish}
        given = [option for option, value in architecture.items() if value is not None]
        if given or arch != "kan" or task != "regression":
            dropped = ", ".join(given) or ("--arch karsein" if arch != "kan" else "--task (the checkpoint knows its task)")
            raise KanxError(f"--init keeps the checkpoint's architecture; drop {dropped}")
        refined = parse_grids(grid) if grid is not None else [None]
        if len(refined) > 1:
            raise KanxError(f"--grid {grid}: with --init, give the one grid to refine the splines to")
        continue_command(init, data, target, seed, test_fraction, output, as_json, quiet, class_weights=class_weights,
                         refine_grid=refined[0], trainable=trainable, widen=widen,
                         steps=steps, optimizer=optimizer, lr=lr, lamb=lamb, lamb_l1=lamb_l1, lamb_entropy=lamb_entropy,
                         update_grid=update_grid, device=device, max_memory=max_memory, patience=patience or 0)
        return
    grids, k, basis = parse_grids(grid), k if k is not None else 3, basis or "bspline"
    if arch == "karsein":
        from kanx.cli.train_karsein import karsein_command

        if len(grids) > 1 or patience or task != "regression":
            raise KanxError("--arch karsein: give one --grid size, without --patience or --task (it classifies clicks)")
        options = KarSeinOptions(fields, dense, emb_dim, bit_width, vec_width, pairwise, epochs, batch_size)
        karsein_command(data, target, options, grids[0], k, lr, lamb, lamb_l1, lamb_entropy, seed, test_fraction,
                        output, as_json, quiet or as_json, device=device, max_memory=max_memory)
        return
    if fields or dense:
        raise KanxError("--fields and --dense need --arch karsein")
    # the options that do not depend on the data are checked (by TrainSettings) before it is read
    for size in grids:
        TrainSettings(widths=[1, 1], grid=size, k=k, basis=basis, steps=steps, optimizer=optimizer, lr=lr, lamb=lamb,
                      lamb_l1=lamb_l1, lamb_entropy=lamb_entropy, update_grid=update_grid, seed=seed, test_fraction=test_fraction,
                      patience=patience or 0, device=device, max_memory=max_memory, target_transform=target_transform or "none",
                      class_weights=class_weights)
    if polish is not None and polish < 0:
        raise KanxError(f"--polish {polish}: must be >= 0")
    if samples < 10:
        raise KanxError(f"--samples {samples}: must be at least 10")
    check_output_path(output, "--output", [data] if data else [])
    dataset = load_training_data(data, target, inputs, formula, var, samples, seed, task)
    widths = resolve_widths(width, dataset)
    from kanx.training.recipe import recipe_for
    from kanx.training.targets import log_targets

    recipe = recipe_for(dataset, widths=widths, grid=grids[0], k=k, basis=basis, steps=steps, optimizer=optimizer, lr=lr,
                        lamb=lamb, lamb_l1=lamb_l1, lamb_entropy=lamb_entropy, update_grid=update_grid, seed=seed,
                        test_fraction=test_fraction, patience=patience, device=device, max_memory=max_memory,
                        target_transform=target_transform, polish_steps=polish, class_weights=class_weights)
    settings = recipe.train
    if mult:
        settings = replace(settings, mult=parse_mult(mult, settings.widths))
        recipe = replace(recipe, train=settings)
    if dataset.classes is None:
        log_targets(dataset.y, settings.target_transform)  # a target that has no logarithm is refused before training
    result = run_with_progress(dataset, settings, quiet or as_json, grids=grids, recipe=recipe)
    save_model(result.model, output)
    report(result, output, settings, as_json)


def continue_command(init: Path, data: Path | None, target: list[str], seed: int, test_fraction: float, output: Path,
                     as_json: bool, quiet: bool, **options) -> None:
    """``kanx train DATA --init MODEL``: more training of an existing (or imported) KAN on DATA."""
    from kanx.cli.common import read_data
    from kanx.families.registry import family_of
    from kanx.io.checkpoint import save_model
    from kanx.io.data import Dataset
    from kanx.io.load import load_model
    from kanx.training.kan import check_continuable, continuing_settings

    if data is None:
        raise KanxError("--init: give the DATA csv to continue training on")
    check_output_path(output, "--output", [data, init])
    model = load_model(init)
    check_continuable(model, f"--init {init}")
    settings = continuing_settings(model, seed=seed, test_fraction=test_fraction, **options)
    rows = read_data(model, data, target)
    if rows.y is None:
        raise KanxError(f"{data}: no target column for the model's output(s) {', '.join(model.meta.output_names)}; "
                        "name it with --target")
    dataset = Dataset(rows.x.float(), rows.y.float(), list(model.meta.input_names), family_of(model).target_names(model), str(data),
                      classes=model.classes)
    result = run_with_progress(dataset, settings, quiet or as_json, init=model)
    save_model(result.model, output)
    report(result, output, settings, as_json, source=init)


def report(result: TrainResult, output: Path, settings: TrainSettings, as_json: bool, source: Path | None = None) -> None:
    """The summary table (or JSON) of a training run."""
    widths = list(result.model.widths)
    classes = result.model.classes
    summary = {
        "output": str(output),
        "widths": widths,
        "continued_from": str(source) if source is not None else None,
        **({"task": "classify", "label": result.model.meta.label, "classes": list(classes.names)} if classes is not None else {}),
        "train": asdict(result.train),
        "test": asdict(result.test),
        "steps": settings.resolved_steps,
        "data_fingerprint": result.model.meta.training["data_fingerprint"],
        "grid_selection": result.model.meta.training.get("grid_selection"),
        "early_stopping": result.model.meta.training.get("early_stopping"),
        "recipe": result.model.meta.training.get("recipe"),
        **({"test_before": asdict(result.before), "edits": {key: value for key, value in
            (result.model.meta.training.get("continued_from") or {}).items() if key not in ("provenance", "metrics", "test_before")}}
           if result.before is not None else {}),
    }
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"kanx train{f' --init {source}' if source else ''} → {output}")
    columns = ("split", "rows", "accuracy", "log-loss", "AUC") if classes is not None else ("split", "rows", "RMSE", "R²")
    for column in columns:
        table.add_column(column, justify="right" if column != "split" else "left")
    splits = [("train", result.train), ("test", result.test)]
    if result.before is not None:
        splits.append(("test, before", result.before))
    for split, metrics in splits:
        rows = str(result.model.meta.training["test_rows" if split.startswith("test") else "train_rows"])
        if classes is not None:
            table.add_row(split, rows, fmt(metrics.accuracy, 4), fmt(metrics.log_loss), fmt(metrics.auc, 4))
        else:
            table.add_row(split, rows, fmt(metrics.rmse), fmt(metrics.r2, 6))
    console.print(table)
    if classes is not None:
        console.print(f"classifier of {result.model.meta.label}: classes {', '.join(classes.names)} (outputs "
                      f"{', '.join(result.model.meta.output_names)})", markup=False)
    continued = result.model.meta.training.get("continued_from") or {}
    if continued.get("grid_refinement"):
        refinement = continued["grid_refinement"]
        console.print(f"grid refined {refinement['old_grid']} → {refinement['new_grid']} intervals (largest edge change "
                      f"{fmt(refinement['max_change'], 2)} of its range) before training", markup=False)
    if continued.get("symbolic_edges_made_splines"):
        console.print(f"{continued['symbolic_edges_made_splines']} symbolic edges turned into splines fitted to their functions",
                      markup=False)
    if continued.get("widened_by"):
        console.print(f"every hidden layer widened by {continued['widened_by']} nodes", markup=False)
    if summary["grid_selection"]:
        measure, key = ("log-loss", "held_out_log_loss") if classes is not None else ("R²", "held_out_r2")
        scores = ", ".join(f"{grid}: {fmt(value, 6)}" for grid, value in summary["grid_selection"][key].items())
        console.print(f"grid {summary['grid_selection']['chosen']} chosen by held-out {measure} ({scores})", markup=False)
    if summary["early_stopping"]:
        stop = summary["early_stopping"]
        console.print(f"early stopping: kept step {stop['best_step']} (best held-out error), stopped at step {stop['stopped_at']} "
                      f"of {settings.resolved_steps}", markup=False)
    recipe = summary["recipe"] or {}
    if recipe.get("polish_steps"):
        stop = result.model.meta.training.get("polish_early_stopping") or {}
        ran = f", stopped at step {stop['stopped_at']}" if stop and recipe.get("polished") else ""
        console.print(f"LBFGS polish of up to {recipe['polish_steps']} steps{ran}: "
                      + ("kept" if recipe.get("polished") else "not kept (it raised the held-out error)"), markup=False)
    console.print(f"wrote {output}", markup=False)
