"""Documents as the page shows them: tagged JSON, a collapsible tree, and CSV cells.

The page and the API speak MicroDB's tagged JSON, so a rich value travels as what it is
(``{"$datetime": "2024-05-01T12:00:00+00:00"}``) and comes back as the same Python type
when a document is saved. The tree given to the templates marks such values as *rich*,
with their type, so the page can show a date as a date rather than as a nested object.
"""

from __future__ import annotations

import json
from typing import Any

from microdb import DocumentError, MicroDBError, decode, encode

__all__ = ["cell", "from_json", "to_json", "to_text", "tree"]


def to_json(value: Any) -> Any:
    """The tagged JSON form of a stored value (a document, a field, a list)."""
    return encode(value)


def from_json(value: Any) -> Any:
    """The Python value of tagged JSON sent by the page; ``DocumentError`` on a bad tag."""
    try:
        return decode(value)
    except ArithmeticError as exc:  # decimal.InvalidOperation: {"$decimal": "ten"}
        raise DocumentError(f"bad tagged value: {exc!r:.80}") from exc


def to_text(value: Any, *, indent: int | None = None) -> str:
    """A stored value as tagged JSON text."""
    separators = (",", ": ") if indent is not None else (",", ":")
    return json.dumps(encode(value), ensure_ascii=False, indent=indent, separators=separators)


def _tag(value: dict[str, Any]) -> str | None:
    """The type name when ``value`` is one tagged rich value, else ``None``."""
    if len(value) == 1:
        (key,) = value
        if key.startswith("$") and key != "$escape":
            return key[1:]
    return None


def _node(value: Any) -> dict[str, Any]:
    if value is None:
        return {"kind": "null", "text": "null"}
    if value is True or value is False:
        return {"kind": "bool", "text": "true" if value else "false"}
    if isinstance(value, (int, float)):
        return {"kind": "number", "text": json.dumps(value)}
    if isinstance(value, str):
        return {"kind": "string", "text": value}
    if isinstance(value, list):
        return {"kind": "array", "size": len(value), "items": [(str(i), _node(v)) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        tag = _tag(value)
        if tag is not None:
            inner = value["$" + tag]
            text = inner if isinstance(inner, str) else json.dumps(inner, ensure_ascii=False)
            return {"kind": "rich", "type": tag, "text": text}
        if set(value) == {"$escape"}:
            value = value["$escape"]
        return {"kind": "object", "size": len(value), "items": [(k, _node(v)) for k, v in value.items()]}
    raise MicroDBError(f"cannot show a {type(value).__name__} value")  # encode() never returns one


def tree(value: Any) -> dict[str, Any]:
    """The value as nested nodes for the templates: ``kind`` (object, array, string, number,
    bool, null, rich), ``text`` for leaves, ``type`` for rich values, ``items`` for containers.
    """
    return _node(encode(value))


def cell(value: Any) -> str | int | float | None:
    """A top-level field as one CSV cell: scalars as they are, rich values as their text,
    lists and objects as compact tagged JSON.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    tagged = encode(value)
    if isinstance(tagged, dict):
        tag = _tag(tagged)
        if tag is not None and isinstance(tagged["$" + tag], str):
            return str(tagged["$" + tag])
    return json.dumps(tagged, ensure_ascii=False, separators=(",", ":"))
