"""Datasets for training and evaluation: CSV files, formulas, arrays.

All loaders return float32 tensors ``x`` ``[N, n_inputs]`` and ``y`` ``[N, n_targets]`` with
column names, and raise ``KanxError`` (one line naming the file/option) on bad input.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy
import torch
from torch import nn

from kanx.core.classes import ClassLabels
from kanx.core.errors import KanxError
from kanx.core.lambdify import numpy_function
from kanx.core.stage import Rows
from kanx.families.checks import float32_columns, number_columns
from kanx.families.registry import family_of
from kanx.functions.parser import parse_expression, parse_number

MIN_ROWS = 10


@dataclass
class Dataset:
    """Inputs ``x`` ``[N, n_in]``, targets ``y`` ``[N, n_out]`` (may have 0 columns), names; for
    classification, ``classes`` and ``y`` the class indices ``[N, 1]`` of the label column."""

    x: torch.Tensor
    y: torch.Tensor
    input_names: list[str]
    target_names: list[str]
    source: str
    ranges: list[tuple[float, float]] | None = None
    classes: ClassLabels | None = None

    def fingerprint(self) -> str:
        """SHA-256 of the names and the float64 values, to identify the training data."""
        digest = hashlib.sha256()
        digest.update(("|".join(self.input_names) + "->" + "|".join(self.target_names)).encode())
        if self.classes is not None:
            digest.update(("classes:" + "|".join(self.classes.names)).encode())
        digest.update(self.x.double().numpy().tobytes())
        digest.update(self.y.double().numpy().tobytes())
        return "sha256:" + digest.hexdigest()


def split_names(text: str | None) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``."""
    if not text:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def read_csv_columns(path: str | Path) -> tuple[list[str], dict[str, list[str]]]:
    """The one CSV reader: a header row naming every column once, then rows of the same length.
    Returns ``(header, name → stripped cell texts)``; blank lines are skipped. Every problem is a
    one-line ``KanxError`` naming the file (and the line)."""
    source = Path(path)
    if not source.exists():
        raise KanxError(f"{source}: no such file")
    if source.is_dir():
        raise KanxError(f"{source}: is a folder, expected a CSV file")
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise KanxError(f"{source}: cannot read as a text CSV ({_first_line(exc)})") from None
    numbered = [(line, row) for line, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise KanxError(f"{source}: the file is empty")
    header = [name.strip() for name in numbered[0][1]]
    if len(set(header)) != len(header) or any(not name for name in header):
        raise KanxError(f"{source}: the header row must name every column once")
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise KanxError(f"{source}: line {line} has {len(row)} cells, the header has {len(header)}")
    body = [row for _, row in numbered[1:]]
    return header, {name: [row[k].strip() for row in body] for k, name in enumerate(header)}


def load_csv(path: str | Path, targets: list[str], inputs: list[str] | None = None, task: str = "regression") -> Dataset:
    """A training set from a CSV: ``targets`` columns are outputs, ``inputs`` (default: all
    other columns) are inputs. ``task="classify"``: the one target column holds class labels
    (text or numbers); ``y`` holds their class indices ``[N, 1]`` and ``classes`` the classes."""
    header, columns = read_csv_columns(path)
    if not targets:
        raise KanxError("--target: name at least one target column")
    missing = [name for name in targets + list(inputs or []) if name not in header]
    if missing:
        raise KanxError(f"{path}: no column {missing[0]!r} (columns: {', '.join(header)})")
    input_names = list(inputs) if inputs else [name for name in header if name not in targets]
    overlap = set(input_names) & set(targets)
    if overlap:
        raise KanxError(f"--inputs: column {sorted(overlap)[0]!r} is also a target")
    if not input_names:
        raise KanxError(f"{path}: no input columns left besides the targets")
    rows = len(columns[header[0]])
    if rows < MIN_ROWS:
        raise KanxError(f"{path}: only {rows} data rows; need at least {MIN_ROWS}")
    x = float32_columns(number_columns(columns, input_names, str(path)), input_names, str(path))
    if task == "classify":
        if len(targets) != 1:
            raise KanxError(f"--target {','.join(targets)}: a classifier has one label column")
        where = f"{path}: column {targets[0]}"
        classes = ClassLabels.from_cells(columns[targets[0]], where)
        y = classes.indices(columns[targets[0]], where).float()[:, None]
        return Dataset(x, y, input_names, list(targets), str(path), classes=classes)
    try:
        numbers = number_columns(columns, list(targets), str(path))
    except KanxError as exc:
        raise KanxError(f"{exc} (class labels need a classifier: kanx train --task classify)") from None
    y = float32_columns(numbers, list(targets), str(path))
    return Dataset(x, y, input_names, list(targets), str(path))


_VAR_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^:]+):([^:]+)\s*$")


def parse_var_spec(spec: str) -> tuple[str, float, float]:
    """``"x=-1:1"`` → ``("x", -1.0, 1.0)``."""
    match = _VAR_SPEC.match(spec)
    if not match:
        raise KanxError(f"--var {spec!r}: expected NAME=LOW:HIGH, e.g. x=-1:1")
    name, low, high = match.group(1), match.group(2), match.group(3)
    lo = parse_number(low.strip(), f"--var {spec!r}: LOW")
    hi = parse_number(high.strip(), f"--var {spec!r}: HIGH")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise KanxError(f"--var {spec!r}: need finite LOW < HIGH")
    return name, lo, hi


def formula_dataset(formula: str, var_specs: list[str], samples: int, seed: int, target: str = "f") -> Dataset:
    """Sample ``samples`` rows uniformly on the ``--var`` ranges and evaluate ``formula``."""
    if not var_specs:
        raise KanxError("--var: give the range of every variable of --formula, e.g. --var x=-1:1")
    if samples < MIN_ROWS:
        raise KanxError(f"--samples {samples}: need at least {MIN_ROWS}")
    specs = [parse_var_spec(spec) for spec in var_specs]
    names = [name for name, _, _ in specs]
    if len(set(names)) != len(names):
        raise KanxError("--var: a variable is declared twice")
    if target in names:
        raise KanxError(f"--target {target!r}: is also a --var name; pick another output name")
    expr = parse_expression(formula, names, "--formula")
    generator = np.random.default_rng(seed)
    lows = np.array([lo for _, lo, _ in specs])
    highs = np.array([hi for _, _, hi in specs])
    x = lows + (highs - lows) * generator.random((samples, len(names)))
    function = numpy_function([sympy.Symbol(n) for n in names], expr)
    with np.errstate(all="ignore"):
        y = np.broadcast_to(np.asarray(function(*x.T), dtype=np.float64), (samples,))
    if not np.all(np.isfinite(y)):
        raise KanxError(f"--formula {formula!r}: not finite everywhere on the --var ranges")
    return Dataset(
        float32_columns(x, names, "--var"),
        float32_columns(y.reshape(-1, 1), [target], f"--formula {formula!r}"),
        names,
        [target],
        f"formula:{formula}",
        ranges=[(lo, hi) for _, lo, hi in specs],
    )


def require_columns(source: Path | str, header: list[str], names: list[str]) -> None:
    """An error listing both sides when the file lacks any of the model's input columns."""
    missing = [name for name in names if name not in header]
    if missing:
        raise KanxError(
            f"{source}: columns do not match the model inputs; missing {', '.join(missing)} "
            f"(model inputs: {', '.join(names)}; file columns: {', '.join(header)})"
        )


def read_model_rows(model: nn.Module, path: str | Path, min_rows: int = MIN_ROWS, targets: list[str] | None = None,
                    infer_targets: bool = True) -> Rows:
    """Inputs (and targets) for ``model`` from a CSV (columns by name; what each cell means is the
    model family's ``encode``/``targets``) or a ``.npy``/``.pt`` array (inputs only, columns in input
    order); a CSV needs at least ``min_rows`` rows.

    Targets: the columns named by ``targets`` (``--target``; one per model output, in output order),
    else the columns named like the model's outputs. A file that has neither is never silently read
    as inputs only: with one output and exactly one column that is not an input, that column is the
    target (and ``notes`` says so); with other columns left over it is an error that lists them.
    ``infer_targets=False`` (prediction) reads the inputs and ignores every other column.
    """
    family = family_of(model)
    source = Path(path)
    names, outputs = family.input_names(model), family.target_names(model)
    if source.suffix.lower() != ".csv":
        if targets:
            raise KanxError(f"--target: {source} is an array of inputs; targets need a CSV with named columns")
        return Rows(load_input_array(source, names), None)
    header, columns = read_csv_columns(source)
    require_columns(source, header, names)
    rows = len(columns[header[0]])
    if rows < min_rows:
        raise KanxError(f"{source}: only {rows} data rows; need at least {min_rows}")
    x = family.encode(model, {name: columns[name] for name in names}, str(source))
    chosen, notes = target_columns(source, header, names, outputs, targets) if infer_targets or targets else ([], [])
    if not chosen:
        return Rows(x, None, [], notes)
    y = family.targets(model, {output: columns[column] for output, column in zip(outputs, chosen)}, str(source))
    return Rows(x, y, chosen, notes)


def target_columns(source: Path, header: list[str], inputs: list[str], outputs: list[str],
                   targets: list[str] | None) -> tuple[list[str], list[str]]:
    """The columns that hold the model's outputs (in output order) and notes on how they were chosen."""
    if targets:
        missing = [name for name in targets if name not in header]
        if missing:
            raise KanxError(f"--target {', '.join(missing)}: no such column in {source} (columns: {', '.join(header)})")
        if len(targets) != len(outputs):
            raise KanxError(f"--target: the model has {len(outputs)} output(s) ({', '.join(outputs)}) but "
                            f"{len(targets)} target column(s) were named")
        clash = [name for name in targets if name in inputs]
        if clash:
            raise KanxError(f"--target {', '.join(clash)}: is a model input, not an output")
        return list(targets), []
    if all(name in header for name in outputs):
        return list(outputs), []
    extra = [name for name in header if name not in inputs]
    if not extra:
        return [], []
    if len(outputs) == 1 and len(extra) == 1:
        note = (f"{source}: took column {extra[0]!r} as the model's output {outputs[0]!r} (the only column that is "
                "not an input); name it with --target to be explicit")
        return extra, [note]
    raise KanxError(
        f"{source}: columns {', '.join(extra)} are neither model inputs nor its output(s) {', '.join(outputs)}; "
        f"name the target column(s) with --target (columns: {', '.join(header)})"
    )


def load_input_array(path: str | Path, input_names: list[str]) -> torch.Tensor:
    """Model inputs from a CSV (columns selected by ``input_names``), a ``.pt`` tensor or a
    ``.npy`` array (columns in model input order). Returns ``[N, len(input_names)]`` float32."""
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix == ".csv":
        header, columns = read_csv_columns(source)
        require_columns(source, header, input_names)
        array = np.asarray(number_columns(columns, input_names, str(source)), dtype=np.float64).reshape(-1, len(input_names))
    elif suffix == ".npy":
        array = read_npy(source)
    elif suffix in (".pt", ".pth"):
        from kanx.io.torchfile import read_payload

        payload = read_payload(source)
        if not isinstance(payload, torch.Tensor):
            raise KanxError(f"{source}: expected a single tensor, found {type(payload).__name__}")
        if payload.is_complex() or payload.dtype == torch.bool or payload.layout != torch.strided:
            raise KanxError(f"{source}: expected a dense real-valued tensor, found {payload.dtype}")
        array = payload.detach().double().numpy()
    else:
        raise KanxError(f"{source}: unsupported input format {suffix or '(none)'}; use .csv, .npy or .pt")
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1 and len(input_names) == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != len(input_names):
        raise KanxError(f"{source}: expected an array of shape [rows, {len(input_names)}], got {list(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise KanxError(f"{source}: inputs hold NaN or Inf")
    return float32_columns(array, input_names, str(source))


def read_npy(path: Path) -> np.ndarray:
    """A real-valued numeric ``.npy`` array. The header is checked against the file's size before
    any data is read, so a header that claims a huge shape allocates nothing."""
    if not path.exists():
        raise KanxError(f"{path}: no such file")
    if path.is_dir():
        raise KanxError(f"{path}: is a folder, expected a .npy file")
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy format version {version}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            offset = handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise KanxError(f"{path}: not a readable .npy array ({_first_line(exc)})") from None
    if dtype.kind not in "iuf":
        raise KanxError(f"{path}: .npy array of type {dtype} is not a real-valued numeric array")
    needed = math.prod(shape) * dtype.itemsize
    if path.stat().st_size - offset < needed:
        raise KanxError(f"{path}: truncated .npy array (its header claims shape {list(shape)})")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, MemoryError) as exc:
        raise KanxError(f"{path}: not a readable .npy array ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
