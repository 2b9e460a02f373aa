"""The kinds of values a JSON Schema names, and JSON's equality, for the validator.

``TYPE_NAMES`` maps JSON Schema's type names, MongoDB's ``bsonType`` names and MicroDB's rich
types to a test; :func:`same` is JSON's equality (``True`` is not ``1``) and :func:`freeze`
a hashable form of a value under it (for ``uniqueItems``).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

__all__ = ["TYPE_NAMES", "freeze", "is_int", "is_integral", "is_number", "same"]


def is_int(v: Any) -> bool:
    return type(v) is int


def is_number(v: Any) -> bool:
    return (isinstance(v, (int, float, Decimal))) and not isinstance(v, bool)


def is_integral(v: Any) -> bool:
    if type(v) is int:
        return True
    if type(v) is float:
        return v.is_integer()
    return isinstance(v, Decimal) and v == v.to_integral_value()


#: type name -> test. JSON Schema's names, MongoDB's ``bsonType`` names, MicroDB's rich types.
TYPE_NAMES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": is_number,
    "integer": lambda v: is_number(v) and is_integral(v),
    "boolean": lambda v: isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "double": lambda v: type(v) is float,
    "int": lambda v: is_int(v) and -(2**31) <= v < 2**31,
    "long": is_int,
    "decimal": lambda v: isinstance(v, Decimal),
    "date": lambda v: isinstance(v, _dt.datetime),
    "binData": lambda v: isinstance(v, bytes),
    "uuid": lambda v: isinstance(v, uuid.UUID),
    "calendarDate": lambda v: isinstance(v, _dt.date) and not isinstance(v, _dt.datetime),
    "time": lambda v: isinstance(v, _dt.time),
    "timedelta": lambda v: isinstance(v, _dt.timedelta),
}

def same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``, ``1`` is ``1.0``, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and bool(a == b)


def freeze(v: Any) -> Any:
    if isinstance(v, bool):
        return ("bool", v)
    if is_number(v):
        return ("num", v)
    if isinstance(v, dict):
        return ("obj", frozenset((k, freeze(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("arr", tuple(freeze(x) for x in v))
    return (type(v).__name__, v)
