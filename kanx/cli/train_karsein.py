"""``kanx train --arch karsein``: option checks, progress bar and summary (logic in kanx.training.karsein)."""

from __future__ import annotations

from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kanx.cli.common import console, err_console, fmt, parse_int_list, print_json
from kanx.core.errors import KanxError
from kanx.io.checkpoint import save_model
from kanx.io.ctr import ClickTable, read_click_table
from kanx.io.data import split_names
from kanx.io.files import check_output_path
from kanx.training import train
from kanx.training.karsein import KarSeinResult, KarSeinSettings


def karsein_settings(options, grid: int, k: int, lr: float | None, lamb: float, lamb_l1: float,
                     lamb_entropy: float, seed: int, test_fraction: float, **resources) -> KarSeinSettings:
    """Settings (validated by ``KarSeinSettings`` itself) from the CLI values (``options``: ``kanx.cli.train.KarSeinOptions``)."""
    bit = parse_int_list(options.bit_width, "--bit-width")
    vec = parse_int_list(options.vec_width, "--vec-width")
    pairs = parse_int_list(options.pairwise, "--pairwise") if options.pairwise.strip() else []
    return KarSeinSettings(
        emb_dim=options.emb_dim, bit_width=tuple(bit), vec_width=tuple(vec), pairwise=tuple(pairs), grid=grid, k=k,
        epochs=options.epochs, batch_size=options.batch_size, lr=lr or 1e-2, lamb=lamb, lamb_l1=lamb_l1,
        lamb_entropy=lamb_entropy, seed=seed, test_fraction=test_fraction, **resources,
    )


def karsein_command(data: Path | None, target: list[str], options, grid: int, k: int, lr: float | None, lamb: float,
                    lamb_l1: float, lamb_entropy: float, seed: int, test_fraction: float, output: Path,
                    as_json: bool, quiet: bool, **resources) -> None:
    """Train a KarSein model on a CSV and write the checkpoint (``resources``: ``device``, ``max_memory``)."""
    if data is None:
        raise KanxError("--arch karsein needs a DATA csv")
    targets = split_names(",".join(target))
    if len(targets) != 1:
        raise KanxError("--target: give exactly one click column for --arch karsein")
    fields, dense = split_names(options.fields), split_names(options.dense)
    if not fields:
        raise KanxError("--fields: list the categorical columns for --arch karsein, e.g. --fields user,item")
    overlap = sorted(set(fields) & set(dense + targets)) or sorted(set(dense) & set(targets))
    if overlap or len(set(fields)) != len(fields) or len(set(dense)) != len(dense):
        raise KanxError(f"--fields/--dense/--target: columns must be distinct ({', '.join(overlap) or 'repeated name'})")
    settings = karsein_settings(options, grid, k, lr, lamb, lamb_l1, lamb_entropy, seed, test_fraction, **resources)
    check_output_path(output, "--output", [data])
    result = run_with_progress(read_click_table(data, targets[0], fields, dense), settings, quiet)
    save_model(result.model, output)
    report(result, output, as_json)


def run_with_progress(table: ClickTable, settings: KarSeinSettings, quiet: bool) -> KarSeinResult:
    columns_spec = [TextColumn("training KarSein"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}  test AUC {task.fields[auc]}"), TimeElapsedColumn()]
    with Progress(*columns_spec, console=err_console, disable=quiet, transient=False) as progress:
        task = progress.add_task("train", total=settings.epochs, loss="-", auc="-")

        def on_step(epoch: int, loss: float, auc: float) -> None:
            progress.update(task, completed=epoch, loss=f"{loss:.4f}", auc=f"{auc:.4f}")

        return train(table, settings, on_step=on_step)


def report(result: KarSeinResult, output: Path, as_json: bool) -> None:
    info = result.model.training_info
    if as_json:
        print_json({"output": str(output), **result.to_dict()})
        return
    table = Table(title=f"kanx train --arch karsein → {output}")
    for column in ("split", "rows", "AUC", "log-loss"):
        table.add_column(column, justify="right" if column != "split" else "left")
    table.add_row("train", str(info["train_rows"]), fmt(result.train.auc, 4), fmt(result.train.log_loss, 4))
    table.add_row("test", str(info["test_rows"]), fmt(result.test.auc, 4), fmt(result.test.log_loss, 4))
    console.print(table)
    console.print(f"wrote {output}", markup=False)
