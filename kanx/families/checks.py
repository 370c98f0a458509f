"""Type and range checks for values read from files (checkpoint configs, foreign configs).

A config is hostile until checked: every value a model family reads from it passes through one
of these functions first, so a wrong type, a NaN, a huge integer or an over-long name is a
one-line :class:`~kanx.core.errors.KanxError` (``"<where>: config <what> ..."``) rather than a crash,
a hang or an allocation of arbitrary size later. ``where`` names the file; ``what`` names the
config entry (``'widths'``, ``'basis'['grid']``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from kanx.core.errors import KanxError

MAX_NAME_LENGTH = 256  # characters of a variable, field, token or function name
MAX_TEXT_LENGTH = 4000  # characters of a formula (matches kanx.functions.parser.ParseLimits)
MAX_LIST_LENGTH = 1_000_000  # entries of any list read from a config
MAX_TREE_ITEMS = 100_000  # values in a free-form JSON tree (provenance, training settings)
MAX_TREE_DEPTH = 16


def entry(config: dict, key: str, where: str) -> object:
    """``config[key]``, or an error naming the missing key."""
    if key not in config:
        raise KanxError(f"{where}: config has no {key!r}")
    return config[key]


def integer(value: object, what: str, where: str, low: int, high: int) -> int:
    """An ``int`` (not a bool, not a float) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise KanxError(f"{where}: config {what} must be an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise KanxError(f"{where}: config {what} = {value} is outside {low}..{high}")
    return value


def number(value: object, what: str, where: str, positive: bool = False) -> float:
    """A finite real number (``int`` or ``float``, not a bool); ``positive`` requires > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KanxError(f"{where}: config {what} must be a number, got {_kind(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise KanxError(f"{where}: config {what} must be finite, got {result}")
    if positive and not result > 0:
        raise KanxError(f"{where}: config {what} must be positive, got {result}")
    return result


def boolean(value: object, what: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise KanxError(f"{where}: config {what} must be true or false, got {_kind(value)}")
    return value


def text(value: object, what: str, where: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """A non-empty string of at most ``max_length`` characters without control characters."""
    if not isinstance(value, str):
        raise KanxError(f"{where}: config {what} must be text, got {_kind(value)}")
    if not value.strip():
        raise KanxError(f"{where}: config {what} is empty")
    if len(value) > max_length:
        raise KanxError(f"{where}: config {what} is longer than {max_length} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise KanxError(f"{where}: config {what} holds control characters")
    return value


def sequence(value: object, what: str, where: str, min_length: int = 0, max_length: int = MAX_LIST_LENGTH) -> list:
    """A list with ``min_length..max_length`` entries."""
    if not isinstance(value, list):
        raise KanxError(f"{where}: config {what} must be a list, got {_kind(value)}")
    if not min_length <= len(value) <= max_length:
        raise KanxError(f"{where}: config {what} has {len(value)} entries, expected {min_length}..{max_length}")
    return value


def mapping(value: object, what: str, where: str, max_length: int = MAX_LIST_LENGTH) -> dict:
    """A dict with string keys and at most ``max_length`` entries."""
    if not isinstance(value, dict):
        raise KanxError(f"{where}: config {what} must be a mapping, got {_kind(value)}")
    if len(value) > max_length:
        raise KanxError(f"{where}: config {what} has more than {max_length} entries")
    for key in value:
        text(key, f"{what} key", where)
    return value


def integers(value: object, what: str, where: str, low: int, high: int, min_length: int = 0,
             max_length: int = 1000) -> list[int]:
    """A list of integers, each within ``[low, high]``."""
    items = sequence(value, what, where, min_length, max_length)
    return [integer(item, f"{what}[{index}]", where, low, high) for index, item in enumerate(items)]


def names(value: object, what: str, where: str, count: int | None = None, unique: bool = True) -> list[str]:
    """A list of names (``count`` of them when given), distinct when ``unique``."""
    items = sequence(value, what, where)
    if count is not None and len(items) != count:
        raise KanxError(f"{where}: config {what} has {len(items)} entries, the model has {count}")
    result = [text(item, f"{what}[{index}]", where) for index, item in enumerate(items)]
    if unique and len(set(result)) != len(result):
        duplicate = next(name for name in result if result.count(name) > 1)
        raise KanxError(f"{where}: config {what} names {duplicate!r} twice")
    return result


def value_ranges(value: object, what: str, where: str, count: int) -> list[tuple[float, float]]:
    """``count`` pairs ``[low, high]`` of finite numbers with ``low < high``."""
    items = sequence(value, what, where)
    if len(items) != count:
        raise KanxError(f"{where}: config {what} has {len(items)} entries, the model has {count}")
    ranges = []
    for index, pair in enumerate(items):
        label = f"{what}[{index}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise KanxError(f"{where}: config {label} must be a pair [low, high], got {_kind(pair)}")
        low, high = number(pair[0], label, where), number(pair[1], label, where)
        if not low < high:
            raise KanxError(f"{where}: config {label} = [{low}, {high}] needs low < high")
        ranges.append((low, high))
    return ranges


def json_tree(value: object, what: str, where: str) -> dict:
    """A free-form record (provenance, training settings): a dict of JSON values, bounded in size
    and depth, holding no tensors or other objects."""
    mapping(value, what, where)
    budget = [MAX_TREE_ITEMS]

    def visit(item: object, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise KanxError(f"{where}: config {what} holds more than {MAX_TREE_ITEMS} values")
        if depth > MAX_TREE_DEPTH:
            raise KanxError(f"{where}: config {what} is nested deeper than {MAX_TREE_DEPTH} levels")
        if item is None or isinstance(item, (bool, int)):
            return
        if isinstance(item, float):
            return
        if isinstance(item, str):
            if len(item) > MAX_LIST_LENGTH:
                raise KanxError(f"{where}: config {what} holds a string of {len(item)} characters")
            return
        if isinstance(item, (list, tuple)):
            for child in item:
                visit(child, depth + 1)
            return
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise KanxError(f"{where}: config {what} has a key of type {_kind(key)}")
                visit(child, depth + 1)
            return
        raise KanxError(f"{where}: config {what} holds {_kind(item)}, expected plain JSON values")

    visit(value, 0)
    return value


def recorded(record: object, *keys: str) -> object:
    """``record[k1][k2]...`` of a free-form provenance/training record, or ``None`` where a step
    is missing or not a mapping (such records hold whatever the file held)."""
    for key in keys:
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


def recorded_number(record: object, *keys: str, default: float) -> float:
    """A finite number stored in a free-form record at ``keys``, else ``default``."""
    value = recorded(record, *keys)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return float(value)


def number_columns(columns: dict[str, list[str]], names: list[str], where: str) -> list[list[float]]:
    """Rows ``[N][len(names)]`` of finite numbers from text columns (a data file's cells), with an
    error naming the line (header = line 1) and column of the first cell that is not one."""
    parsed = []
    for name in names:
        column = []
        for line, cell in enumerate(columns[name], start=2):
            try:
                number = float(cell)
            except ValueError:
                raise KanxError(f"{where}: line {line}, column {name!r}: {cell[:60]!r} is not a number") from None
            if not math.isfinite(number):
                raise KanxError(f"{where}: line {line}, column {name!r}: value {cell!r} is NaN or infinite")
            column.append(number)
        parsed.append(column)
    return [list(row) for row in zip(*parsed)] if parsed else []


FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def float32_columns(values: object, names: list[str], where: str) -> torch.Tensor:
    """Data ``values`` (rows ``[N][len(names)]`` of finite float64 numbers) as the float32 tensor
    ``[N, len(names)]`` the networks compute with. A value beyond float32's range (about 3.4e+38)
    would become infinite there: an error naming its column (and how large it is)."""
    array = torch.tensor(values, dtype=torch.float64).reshape(-1, len(names))  # a copy: the values may be read-only
    if array.numel():
        largest = array.abs().amax(dim=0)
        for name, size in zip(names, largest.tolist()):
            if size > FLOAT32_MAX:
                raise KanxError(f"{where}: column {name!r} reaches {size:.3g}, beyond float32 (the networks' numbers, up to "
                                f"{FLOAT32_MAX:.3g}); express it in larger units")
    return array.float()


def choice(value: object, what: str, where: str, allowed: Iterable[str]) -> str:
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        shown = repr(value) if isinstance(value, str) and len(value) <= 40 else _kind(value)
        raise KanxError(f"{where}: config {what} must be one of {', '.join(options)}, got {shown}")
    return value


def validate_tensors(state: dict, expected: dict[str, tuple[int, ...]], where: str) -> None:
    """Every expected tensor present with its shape (``-1`` = any size), none extra, floats finite."""
    missing = sorted(set(expected) - set(state))
    if missing:
        raise KanxError(f"{where}: missing tensor {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = sorted(set(state) - set(expected), key=str)
    if extra:
        raise KanxError(f"{where}: unexpected tensor {str(extra[0])[:MAX_NAME_LENGTH]!r} for this architecture")
    for name, shape in expected.items():
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            raise KanxError(f"{where}: entry {name!r} is not a tensor")
        actual = tuple(tensor.shape)
        if len(actual) != len(shape) or any(s != -1 and s != a for s, a in zip(shape, actual)):
            raise KanxError(f"{where}: tensor {name!r} has shape {list(actual)}, config implies {list(shape)}")
        if tensor.is_complex() or tensor.dtype == torch.bool or tensor.is_sparse or tensor.is_quantized:
            raise KanxError(f"{where}: tensor {name!r} has unsupported type {tensor.dtype}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise KanxError(f"{where}: tensor {name!r} holds NaN or Inf")


def element_count(shapes: Iterable[tuple[int, ...]]) -> int:
    """Total number of elements of tensors with these shapes (``-1`` dimensions count as 0)."""
    return sum(math.prod(max(s, 0) for s in shape) for shape in shapes)


def _kind(value: object) -> str:
    return type(value).__name__
