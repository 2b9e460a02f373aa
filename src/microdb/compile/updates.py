"""Turning what ``update`` accepts into a function that changes a document copy in place.

``update`` takes a mapping of fields to set (TinyDB), a function of the document (TinyDB's
operations among them), or MongoDB-style update operators (``{'$inc': {'n': 1}}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from microdb.compile.update_ops import compile_operators
from microdb.errors import UpdateError

__all__ = ["Updater", "compile_update", "is_operator_update"]

Updater = Callable[[dict[str, Any]], None]


def is_operator_update(spec: Any) -> bool:
    """True when ``spec`` is a mapping of MongoDB-style update operators."""
    return isinstance(spec, Mapping) and bool(spec) and all(isinstance(k, str) and k.startswith("$") for k in spec)


def compile_update(spec: Any) -> Updater:
    """A function applying ``spec`` to a document in place; raises ``UpdateError`` if malformed."""
    if callable(spec) and not isinstance(spec, Mapping):
        def call(doc: dict[str, Any]) -> None:
            spec(doc)

        return call
    if isinstance(spec, Mapping):
        keys = list(spec)
        if any(isinstance(k, str) and k.startswith("$") for k in keys):
            if not is_operator_update(spec):
                raise UpdateError(f"an update mixes operators and plain fields: {sorted(map(str, keys))}")
            return compile_operators(spec)
        fields = dict(spec)

        def merge(doc: dict[str, Any]) -> None:
            doc.update(fields)

        return merge
    raise UpdateError(
        f"an update must be a mapping of fields, update operators, or a function, got {spec!r:.60}"
    )
