"""Parsing the field names users give to ``sort``, ``project``, ``distinct`` and ``create_index``."""

from __future__ import annotations

from typing import Any

from microdb.errors import QueryError
from microdb.query.ast import Path

__all__ = ["parse_field"]


def parse_field(field: Any) -> Path:
    """A path from ``'a.b.0'`` (dot path), ``['a', 'b']`` (literal steps) or ``Query().a.b``.

    A dot path splits on ``.``; digit steps stay strings, which address list positions as
    well as keys. Use the list form for a key that itself contains a dot.
    """
    from microdb.query.builders import Query

    if isinstance(field, Query):
        path = field._path
        if not path:
            raise QueryError("an empty Query() is not a field")
        return path
    if isinstance(field, str):
        if not field:
            raise QueryError("a field name cannot be empty")
        return tuple(field.split("."))
    if isinstance(field, (list, tuple)) and field and all(
        isinstance(s, (str, int)) and not isinstance(s, bool) for s in field
    ):
        return tuple(field)
    raise QueryError(f"a field must be a name, a dot path, a list of steps or a Query path, got {field!r}")
