"""TinyDB's update operations: functions that change a document in place.

Pass one to ``table.update(...)``: ``table.update(increment('visits'), where('id') == 7)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["add", "decrement", "delete", "increment", "set", "subtract"]

Operation = Callable[[dict[str, Any]], None]


def delete(field: str) -> Operation:
    """Remove ``field`` from the document."""

    def transform(doc: dict[str, Any]) -> None:
        del doc[field]

    return transform


def add(field: str, n: Any) -> Operation:
    """Add ``n`` to ``field`` (numbers add, strings and lists concatenate)."""

    def transform(doc: dict[str, Any]) -> None:
        doc[field] += n

    return transform


def subtract(field: str, n: Any) -> Operation:
    """Subtract ``n`` from ``field``."""

    def transform(doc: dict[str, Any]) -> None:
        doc[field] -= n

    return transform


def set(field: str, val: Any) -> Operation:  # noqa: A001 - TinyDB's name
    """Set ``field`` to ``val``."""

    def transform(doc: dict[str, Any]) -> None:
        doc[field] = val

    return transform


def increment(field: str) -> Operation:
    """Add one to ``field``."""
    return add(field, 1)


def decrement(field: str) -> Operation:
    """Subtract one from ``field``."""
    return subtract(field, 1)
