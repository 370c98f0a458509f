"""Figures as a result and as files: :class:`Figures` (named matplotlib figures, what the plot
stage and the interaction reports give) and the one way kanx writes a figure, atomically and with
fixed metadata so that the same model gives the same bytes."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kanx.core.choices import FIGURE_FORMATS
from kanx.core.errors import KanxError
from kanx.io.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NOTEBOOK_DPI = 72


@dataclass
class Figures:
    """Named figures (``names[i]`` names ``figures[i]``, e.g. ``layer0``, ``diagram``). Iterating,
    indexing and ``len`` see the figures themselves."""

    names: list[str]
    figures: list[Figure]

    def __len__(self) -> int:
        return len(self.figures)

    def __iter__(self) -> Iterator[Figure]:
        return iter(self.figures)

    def __getitem__(self, index: int) -> Figure:
        return self.figures[index]

    def to_dict(self) -> dict:
        return {"figures": list(self.names)}

    def __repr__(self) -> str:
        return f"Figures({', '.join(self.names)})"

    def _repr_html_(self) -> str:
        """Each figure as an inline PNG under its name."""
        parts = []
        for name, figure in zip(self.names, self.figures):
            buffer = io.BytesIO()
            save_figure(figure, buffer, "png", NOTEBOOK_DPI)
            data = base64.b64encode(buffer.getvalue()).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}'/><figcaption>{html.escape(name)}</figcaption></figure>")
        return "".join(parts)

    def save(self, stem: str | Path, fmt: str = "png", dpi: int = 100) -> list[Path]:
        """Write ``<stem>_<name>.<fmt>`` per figure (png/svg), or one multipage ``<stem>.pdf``;
        return the written paths."""
        if fmt not in FIGURE_FORMATS:
            raise KanxError(f"--format {fmt!r}: use one of {', '.join(FIGURE_FORMATS)}")
        paths = output_paths(Path(stem), self.names, fmt)
        if fmt == "pdf":
            atomic_write(paths[0], lambda tmp: save_pdf(self.figures, tmp, dpi))
            return paths
        for path, figure in zip(paths, self.figures):
            atomic_write(path, lambda tmp, figure=figure: save_figure(figure, tmp, fmt, dpi))
        return paths

    def save_each(self, path: str | Path, dpi: int) -> list[Path]:
        """Write one file per figure in ``path``'s format: ``path`` itself for a single figure,
        ``<stem>_<name><suffix>`` beside it for several; return the written paths."""
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FIGURE_FORMATS:
            raise KanxError(f"{path}: use a .png, .svg or .pdf file name")
        targets = [path] if len(self.figures) == 1 else [path.with_name(f"{path.stem}_{name}{path.suffix}") for name in self.names]
        for target, figure in zip(targets, self.figures):
            atomic_write(target, lambda tmp, figure=figure: save_figure(figure, tmp, fmt, dpi))
        return targets


def fixed_metadata(fmt: str) -> dict:
    """Metadata that carries no date or version, so the same figure gives the same bytes."""
    return {
        "png": {"Software": None},
        "svg": {"Date": None, "Creator": None},
        "pdf": {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
    }[fmt]


def save_figure(figure: Figure, target: str | Path | io.BytesIO, fmt: str, dpi: int) -> None:
    """Write one figure (png/svg/pdf) to a path or a binary buffer, reproducibly."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "kanx", "svg.fonttype": "path"}):
        figure.savefig(target, format=fmt, dpi=dpi, metadata=fixed_metadata(fmt), facecolor="white")


def save_pdf(figures: list[Figure], path: Path, dpi: int) -> None:
    """Several figures as the pages of one pdf."""
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path, metadata=fixed_metadata("pdf")) as pdf:
        for figure in figures:
            pdf.savefig(figure, dpi=dpi)


def output_paths(stem: Path, names: list[str], fmt: str) -> list[Path]:
    """The files :meth:`Figures.save` writes: ``<stem>_<name>.<fmt>``, or ``<stem>.pdf``."""
    if fmt == "pdf":
        return [stem.with_name(stem.name + ".pdf")]
    return [stem.with_name(f"{stem.name}_{name}.{fmt}") for name in names]
