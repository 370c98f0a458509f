"""Safe output writing: atomic replace, clear errors for bad output paths."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kanx.core.errors import KanxError


def check_output_path(path: str | os.PathLike, option: str, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Validate an output path before any work is done.

    The parent folder must exist and the path must not be one of ``inputs`` (kanx never
    overwrites its input). ``option`` names the CLI option in error messages.
    """
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise KanxError(f"{option} {out}: folder {parent} does not exist")
    if out.is_dir():
        raise KanxError(f"{option} {out}: is a folder, expected a file path")
    for source in inputs:
        if Path(source).exists() and out.exists() and out.resolve() == Path(source).resolve():
            raise KanxError(f"{option} {out}: refusing to overwrite the input file")
    return out


def check_output_folder(path: str | os.PathLike, option: str) -> Path:
    """Validate an output folder before any work is done: it is a folder or does not exist
    yet, inside an existing folder. ``option`` names the CLI option in error messages."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise KanxError(f"{option} {out}: exists and is not a folder")
    if not out.parent.exists():
        raise KanxError(f"{option} {out}: folder {out.parent} does not exist")
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path`` and rename it into place,
    so a crash never leaves a half-written output."""
    out = Path(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


MAX_TEXT_FILE_BYTES = 64 * 2**20


def read_text_file(path: str | os.PathLike, label: str, max_bytes: int = MAX_TEXT_FILE_BYTES) -> str:
    """The UTF-8 text of a small input file (a config), with one-line errors naming ``label``
    (the file or option) for a missing, unreadable, oversized or non-UTF-8 file."""
    source = Path(path)
    try:
        if source.is_dir():
            raise KanxError(f"{label}: is a folder, expected a file")
        size = source.stat().st_size
        if size > max_bytes:
            raise KanxError(f"{label}: {size} bytes is larger than the {max_bytes} a config may have")
        return source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise KanxError(f"{label}: no such file") from None
    except PermissionError:
        raise KanxError(f"{label}: permission denied") from None
    except UnicodeDecodeError:
        raise KanxError(f"{label}: not UTF-8 text") from None
    except OSError as exc:
        raise KanxError(f"{label}: cannot be read ({exc.strerror or type(exc).__name__})") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(data: Any) -> str:
    """JSON text with NaN/Inf written as null (strict JSON)."""
    return json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False)
