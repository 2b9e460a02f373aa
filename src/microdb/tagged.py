"""Tagged JSON: the text form of documents that keeps rich values (dates, bytes, sets...) exact.

MicroDB writes a value JSON has no type for as a one-key object tagged with ``$``
(``{"$date": "2024-05-01"}``, ``{"$bytes": "aGk="}``; the list is in
:mod:`microdb.serialization`). These four functions are the public way to read and write
that form, for programs that exchange documents as text (the ``microdb`` command, the web
page, your own export scripts)::

    >>> import datetime, microdb
    >>> text = microdb.dumps({"when": datetime.date(2024, 5, 1), "tags": {"a"}})
    >>> text
    '{"when":{"$date":"2024-05-01"},"tags":{"$set":["a"]}}'
    >>> microdb.loads(text) == {"when": datetime.date(2024, 5, 1), "tags": {"a"}}
    True

A value MicroDB cannot store (NaN, an integer beyond 64 bits, an unknown object) raises
:class:`~microdb.errors.DocumentError`; text that is not JSON raises ``DocumentError`` too,
naming the line and column.
"""

from __future__ import annotations

import json
from typing import Any

from microdb import serialization
from microdb.errors import DocumentError

__all__ = ["decode", "dumps", "encode", "loads"]


def _checked(value: Any) -> Any:
    try:
        return serialization._check(value, ())
    except RecursionError as exc:
        raise DocumentError("the value is nested too deeply (or contains itself)") from exc


def encode(value: Any) -> Any:
    """The JSON-ready form of ``value``: plain JSON values, with rich values as ``$`` tags."""
    try:
        return serialization.encode(_checked(value))
    except RecursionError as exc:
        raise DocumentError("the value is nested too deeply (or contains itself)") from exc


def decode(value: Any) -> Any:
    """The Python value of a JSON-ready tagged value (the inverse of :func:`encode`)."""
    try:
        return serialization.decode(value)
    except RecursionError as exc:
        raise DocumentError("the value is nested too deeply") from exc


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """Tagged JSON text of ``value`` (compact on one line unless ``indent`` is given)."""
    return serialization.dumps(encode(value), indent=indent, sort_keys=sort_keys)


def loads(text: str | bytes) -> Any:
    """The Python value of tagged JSON text; ``NaN`` and ``Infinity`` are refused."""
    try:
        parsed = serialization.loads_strict(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # NaN/Infinity, bad UTF-8 bytes
        raise DocumentError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise DocumentError("the JSON text is nested too deeply") from exc
    return decode(parsed)
