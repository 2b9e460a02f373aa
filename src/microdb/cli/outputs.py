"""Printing documents: a JSON array, JSON lines, CSV, TSV or an aligned table.

Rich values print in tagged JSON (``{"$date": "2024-05-01"}``), which ``insert`` reads back
to the same values; in CSV, TSV and table cells a nested value is its JSON text.
"""

from __future__ import annotations

import csv
import json
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from microdb import encode

from .common import terminal_width

OUTPUTS = ("json", "nl", "csv", "tsv", "table")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """Every field of ``rows``, in the order they first appear."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def cell(value: Any) -> str:
    """The text of one value in a CSV, TSV or table cell (``""`` for a missing one)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return _json(value)


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO | None = None, *, pretty: bool = False) -> int:
    """Print JSON-ready rows (already encoded) in ``fmt``; returns how many were printed."""
    out = out or sys.stdout
    if fmt == "nl":
        n = 0
        for row in rows:
            out.write(_json(row) + "\n")
            n += 1
        return n
    if fmt == "json":
        # One document per line inside the array (as sqlite-utils prints): readable, and
        # still one JSON value for tools such as jq.
        n = 0
        out.write("[")
        for row in rows:
            text = json.dumps(row, ensure_ascii=False, indent=2).replace("\n", "\n  ") if pretty else _json(row)
            out.write(("," if n else "") + ("\n  " if pretty else "\n " if n else "") + text)
            n += 1
        out.write(("\n]" if pretty and n else "]") + "\n")
        return n
    listed = list(rows)
    names = columns_of(listed)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        if names:
            writer.writerow(names)
        for row in listed:
            writer.writerow([cell(row.get(k)) for k in names])
        return len(listed)
    if fmt == "tsv":
        # TSV has no quoting: a tab, newline or backslash in a value is written escaped.
        if names:
            out.write("\t".join(tsv_escape(n) for n in names) + "\n")
        for row in listed:
            out.write("\t".join(tsv_escape(cell(row.get(k))) for k in names) + "\n")
        return len(listed)
    table(listed, names, out)
    return len(listed)


def tsv_escape(text: str) -> str:
    """A TSV field: backslash, tab, newline and carriage return escaped as ``\\``, ``\\t``..."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1 for ch in text)


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", "\\n").replace("\t", " ")
    if _width(text) <= width:
        return text + " " * (width - _width(text))
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…" + " " * (width - 1 - used)


def fit_widths(natural: list[int], total: int, gap: int = 2) -> list[int]:
    """Column widths that fit ``total`` characters: the widest columns shrink first."""
    widths = list(natural)
    budget = total - gap * max(0, len(widths) - 1)
    while sum(widths) > budget and max(widths, default=0) > 4:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def table(rows: list[dict[str, Any]], names: list[str], out: TextIO, width: int | None = None) -> None:
    """An aligned table, clipped (with ``…``) to fit the terminal's width."""
    if not names:
        return
    cells = [[cell(row.get(k)).replace("\n", "\\n") for k in names] for row in rows]
    natural = [max([_width(n)] + [_width(c[i]) for c in cells]) for i, n in enumerate(names)]
    widths = fit_widths(natural, width or terminal_width())
    lines = ["  ".join(_clip(n, w) for n, w in zip(names, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(_clip(v, w) for v, w in zip(c, widths)).rstrip())
    out.write("\n".join(lines) + "\n")


def document_rows(docs: Iterable[Any], *, ids: bool) -> Iterator[dict[str, Any]]:
    """Documents as JSON-ready rows, with ``_id`` first when ``ids``."""
    for doc in docs:
        row = encode(dict(doc))
        if ids:
            row = {"_id": doc.doc_id, **row}
        yield row
