"""How MicroDB compares values of any kind: one rule for queries, indexes and sorting.

Values fall into *kinds*, ordered as MongoDB orders BSON types: null < numbers < strings <
objects < arrays < bytes < UUIDs < booleans < datetimes < dates < times < durations. An
ordering comparison (``<``) between values of different kinds is false; equality between
them is false (so ``True`` is not ``1``); sorting puts kinds in the order above. Every
engine (the in-memory one and the SQL compilers) follows this table.
"""

from __future__ import annotations

import datetime as _dt
import functools
import uuid
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from microdb.query.fields import Path
from microdb.serialization import copy_value

__all__ = ["KIND_RANK", "MISSING", "distinct_values", "index_key", "kind", "reach", "sort_key", "values_equal"]


class _Missing:
    """The value found at a path that leads nowhere."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

KIND_RANK: dict[str, int] = {
    "null": 1,
    "number": 2,
    "string": 3,
    "object": 4,
    "array": 5,
    "bytes": 6,
    "uuid": 7,
    "bool": 8,
    "datetime": 9,
    "date": 10,
    "time": 11,
    "timedelta": 12,
    "other": 13,
}

_KIND_OF_TYPE: dict[type, str] = {
    type(None): "null",
    int: "number",
    float: "number",
    Decimal: "number",
    str: "string",
    dict: "object",
    list: "array",
    tuple: "array",
    set: "array",
    frozenset: "array",
    bytes: "bytes",
    uuid.UUID: "uuid",
    bool: "bool",
    _dt.datetime: "datetime",
    _dt.date: "date",
    _dt.time: "time",
    _dt.timedelta: "timedelta",
}


def kind(value: Any) -> str:
    """The kind of ``value`` (see the module docstring)."""
    k = _KIND_OF_TYPE.get(type(value))
    if k is not None:
        return k
    for typ, name in _KIND_OF_TYPE.items():
        if isinstance(value, typ):
            return name
    return "object" if isinstance(value, Mapping) else "other"


def values_equal(a: Any, b: Any) -> bool:
    """Equality under MicroDB's rules: same kind and equal value."""
    if a is MISSING or b is MISSING:
        return False
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return False
    if ka in ("object", "array"):
        return _deep_equal(a, b, ka)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _deep_equal(a: Any, b: Any, k: str) -> bool:
    if k == "object":
        if len(a) != len(b) or set(a) != set(b):
            return False
        return all(values_equal(a[key], b[key]) for key in a)
    if isinstance(a, (set, frozenset)) or isinstance(b, (set, frozenset)):
        try:
            return bool(a == b) if type(a) is type(b) else False
        except TypeError:
            return False
    if len(a) != len(b):
        return False
    return all(values_equal(x, y) for x, y in zip(a, b))


def _aware_key(value: _dt.datetime) -> tuple[int, Any]:
    # Naive and aware datetimes cannot be compared in Python; sort naive ones first.
    if value.tzinfo is None or value.utcoffset() is None:
        return (0, value)
    return (1, value.astimezone(_dt.timezone.utc).replace(tzinfo=None))


def _time_key(value: _dt.time) -> tuple[int, Any]:
    # Python orders aware times by their UTC-adjusted clock and finds 12:00+00:00 equal
    # to 13:00+01:00: the key must agree, or an index would file them apart.
    offset = value.utcoffset()
    if offset is None:
        return (0, value.replace(tzinfo=None))
    clock = _dt.timedelta(hours=value.hour, minutes=value.minute, seconds=value.second,
                          microseconds=value.microsecond)
    return (1, clock - offset)


@functools.total_ordering
class _Opaque:
    """The sort key of a value of a registered type: ordered by its own ``==`` and ``<``.

    Values of classes that cannot be compared with each other fall back to the class
    name, then ``repr``, so sorting never raises.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Opaque):
            return NotImplemented
        try:
            return bool(self.value == other.value)
        except (TypeError, ValueError):
            return False

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, _Opaque):
            return NotImplemented
        try:
            return bool(self.value < other.value)
        except (TypeError, ValueError):
            a, b = self.value, other.value
            return (type(a).__qualname__, repr(a)) < (type(b).__qualname__, repr(b))

    def __hash__(self) -> int:
        try:
            return hash(self.value)
        except TypeError:
            # Unhashable values share one bucket per class: equal values must hash alike.
            return hash(type(self.value).__qualname__)

    def __repr__(self) -> str:
        return repr(self.value)


def sort_key(value: Any) -> tuple[Any, ...]:
    """A key that orders any two stored values without raising (kind first, then value)."""
    if value is MISSING:
        return (0,)
    k = kind(value)
    rank = KIND_RANK[k]
    if k == "number":
        if value != value:  # NaN sorts before every other number, as in MongoDB.
            return (rank, 0, 0)
        return (rank, 1, value)
    if k in ("string", "bytes", "bool", "date", "timedelta"):
        return (rank, value)
    if k == "uuid":
        return (rank, value.bytes)
    if k == "datetime":
        return (rank,) + _aware_key(value)
    if k == "time":
        return (rank,) + _time_key(value)
    if k == "object":
        # Key order does not make two objects different (values_equal), so it cannot
        # change their key either: an index looks equal objects up under one key.
        return (rank, tuple(sorted((str(key), sort_key(v)) for key, v in value.items())))
    if k == "array":
        items = sorted(value, key=sort_key) if isinstance(value, (set, frozenset)) else value
        return (rank, tuple(sort_key(v) for v in items))
    if k == "null":
        return (rank,)
    return (rank, _Opaque(value))


def index_key(value: Any) -> Any:
    """A hashable key under which an index files ``value`` (equal values, equal keys)."""
    k = _KIND_OF_TYPE.get(type(value))
    if k == "string":
        return value
    if k == "number":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if k == "bool":
        return ("\x00bool", value)
    if k == "null":
        return ("\x00null",)
    return ("\x00" + (k or kind(value)), sort_key(value))


def reach(value: Any, path: Path) -> Iterator[Any]:
    """Every value a path reaches, MongoDB-style: through sub-documents and arrays of them.

    Used by ``distinct`` and projections; queries compile their own walk.
    """
    if not path:
        yield value
        return
    step, rest = path[0], path[1:]
    if isinstance(value, dict):
        key = str(step)
        if key in value:
            yield from reach(value[key], rest)
    elif isinstance(value, (list, tuple)):
        if isinstance(step, int) or (isinstance(step, str) and step.isdigit()):
            position = int(step)
            if position < len(value):
                yield from reach(value[position], rest)
        for item in value:
            if isinstance(item, dict):
                yield from reach(item, path)


def distinct_values(docs: Iterable[dict[str, Any]], path: Path) -> list[Any]:
    """The distinct values at ``path`` in ``docs`` (see :meth:`microdb.results.Result.distinct`), sorted."""
    seen: list[Any] = []
    keys: set[Any] = set()
    for doc in docs:
        for value in reach(doc, path):
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                key = sort_key(item)
                if key in keys and any(values_equal(item, s) for s in seen):
                    continue
                keys.add(key)
                seen.append(copy_value(item))
    return sorted(seen, key=sort_key)
