"""Documents as the page shows them: tagged JSON, a collapsible tree, and CSV cells.

The page and the API speak MicroDB's tagged JSON, so a rich value travels as what it is
(``{"$datetime": "2024-05-01T12:00:00+00:00"}``) and comes back as the same Python type
when a document is saved. :func:`html` marks such values as *rich*, with their type, so
the page shows a date as a date rather than as a nested object. It builds the HTML in one
pass rather than through template macros (a page of 50 documents is a few hundred values),
escaping every key and string with MarkupSafe, as the templates' autoescape would.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup, escape

from microdb import MicroDBError, decode, encode

__all__ = ["cell", "from_json", "html", "to_json", "to_text"]


def to_json(value: Any) -> Any:
    """The tagged JSON form of a stored value (a document, a field, a list)."""
    return encode(value)


def from_json(value: Any) -> Any:
    """The Python value of tagged JSON sent by the page; ``DocumentError`` on a bad tag."""
    return decode(value)


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


def _html(value: Any, out: list[str], open_: bool) -> None:
    if value is None:
        out.append('<span class="null">null</span>')
    elif value is True or value is False:
        out.append('<span class="bool">true</span>' if value else '<span class="bool">false</span>')
    elif isinstance(value, (int, float)):
        out.append(f'<span class="number">{json.dumps(value)}</span>')
    elif isinstance(value, str):
        out.append(f'<span class="string">"{escape(value)}"</span>')
    elif isinstance(value, dict) and _tag(value) is not None:
        tag = _tag(value)
        inner = value["$" + str(tag)]
        text = inner if isinstance(inner, str) else json.dumps(inner, ensure_ascii=False)
        out.append(f'<span class="rich" title="{escape(tag)}"><span class="type">{escape(tag)}</span> '
                   f'<span class="text">{escape(text)}</span></span>')
    elif isinstance(value, (dict, list)):
        if isinstance(value, dict):
            if set(value) == {"$escape"}:
                value = value["$escape"]
            kind, marks, items = "object", "{}", [(str(k), v) for k, v in value.items()]
            unit = "key" if len(items) == 1 else "keys"
        else:
            kind, marks, items = "array", "[]", [(str(i), v) for i, v in enumerate(value)]
            unit = "item" if len(items) == 1 else "items"
        out.append(f'<details class="json {kind}"{" open" if open_ else ""}><summary>{marks[0]}'
                   f'<span class="size">{len(items)} {unit}</span>{marks[1]}</summary><ul>')
        for key, child in items:
            out.append(f'<li><span class="key">{escape(key)}</span>: ')
            small = isinstance(child, (dict, list)) and len(child) <= 5
            _html(child, out, small)
            out.append("</li>")
        out.append("</ul></details>")
    else:  # pragma: no cover - encode() returns JSON values only
        raise MicroDBError(f"cannot show a {type(value).__name__} value")


def html(value: Any, *, open: bool = True) -> Markup:
    """The value as collapsible HTML: objects and arrays fold (``<details>``), rich values
    show their type; every key and string is escaped.
    """
    out: list[str] = []
    _html(encode(value), out, open)
    return Markup("".join(out))


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
