"""ORDER BY for sort keys: kind rank first, then the value, as :mod:`microdb.query.values` orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from microdb.compile.sql.dialect import Dialect
from microdb.query import ast


@dataclass(frozen=True)
class SQLSort:
    """ORDER BY for a plan's sort keys, and the SQL rank columns used to fix up ties."""

    order_by: str
    #: per key: the rank column and the scalar columns (selected, to find tied rows)
    columns: tuple[tuple[str, ...], ...]
    paths: tuple[ast.Path, ...]
    reverse: tuple[bool, ...]


def compile_sort(keys: Sequence[Any], dialect: Dialect, doc: str = "doc") -> SQLSort | None:
    """ORDER BY for sort keys on paths, or ``None`` when one needs Python (a key function)."""
    columns: list[tuple[str, ...]] = []
    order: list[str] = []
    paths: list[ast.Path] = []
    for key in keys:
        if key.func is not None or key.path is None:
            return None
        t = dialect.term(doc, key.path, True)
        if t is None or t.doubt is not None:
            return None
        cols = (dialect.rank(t), *dialect.sort_scalars(t))
        direction = " DESC" if key.reverse else ""
        order.extend(c + direction for c in cols)
        columns.append(cols)
        paths.append(key.path)
    order.append("id")
    return SQLSort(", ".join(order), tuple(columns), tuple(paths), tuple(k.reverse for k in keys))
