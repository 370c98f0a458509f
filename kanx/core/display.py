"""Notebook display: the one HTML table builder behind the result objects' ``_repr_html_``."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]], caption: str | None = None) -> str:
    """An HTML ``<table>``; every header and cell is escaped (names come from user files)."""
    head = "".join(f"<th>{html.escape(str(header))}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<tr>{head}</tr>{body}</table>"
