"""Checking, copying and encoding documents: what MicroDB can store, and how it looks in JSON.

A document is a mapping with ``str`` keys whose values are JSON values (``None``, ``bool``,
``int``, ``float``, ``str``, lists and mappings) or one of the *rich types* below. Rich
values are written to JSON files (and SQL ``json`` columns) as a one-key object tagged with
``$`` so that the file stays readable and every value comes back as the type it was::

    datetime   {"$datetime": "2024-05-01T12:00:00+00:00"}
    date       {"$date": "2024-05-01"}
    time       {"$time": "12:30:00"}
    timedelta  {"$timedelta": [days, seconds, microseconds]}
    UUID       {"$uuid": "2f1c...-..."}
    Decimal    {"$decimal": "10.50"}
    bytes      {"$bytes": "<base64>"}
    set        {"$set": [...]}         frozenset  {"$frozenset": [...]}
    tuple      {"$tuple": [...]}

A stored mapping that itself has exactly one key starting with ``$`` is wrapped as
``{"$escape": {...}}`` so it can never be mistaken for a tag. Your own types join with
:func:`register_type`. NaN and infinities, integers beyond 64 bits, non-string keys and other objects are rejected
with :class:`~microdb.errors.DocumentError` *before* anything is stored.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import json
import math
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from microdb.errors import DocumentError

__all__ = [
    "MAX_DEPTH",
    "check_document",
    "copy_value",
    "decode",
    "dumpb",
    "dumps",
    "encode",
    "is_checked",
    "loads",
    "loads_strict",
    "nests_too_deep",
    "register_type",
]

try:  # orjson is an optional fast path: pip install "microdb[fast]"
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _orjson = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------
# Checking and copying
# ---------------------------------------------------------------------------------------

_ATOMS: frozenset[type] = frozenset((str, int, bool, type(None)))
_PLAIN: frozenset[type] = frozenset((str, bool, type(None)))
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
#: How deeply a document may nest containers (objects, lists, sets, tuples), the document
#: itself being level 1. One limit for every backend: deeper values would exceed Python's
#: recursion limit somewhere (JSON parsers, SQL engines' JSON functions, copies).
MAX_DEPTH = 100
_RICH_IMMUTABLE: set[type] = {_dt.datetime, _dt.date, _dt.time, _dt.timedelta, uuid.UUID, Decimal, bytes}

_lock = threading.Lock()
_user_types: dict[type, tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = {}
_user_tags: dict[str, tuple[type, Callable[[Any], Any]]] = {}


def _where(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p!r}]" for p in path) or "the document"


def _check_user(value: Any, path: tuple[Any, ...]) -> Any:
    name, encoder, _ = _user_types[type(value)]
    try:
        encoded = encoder(value)
    except Exception as exc:
        raise DocumentError(f"the encoder of type {name!r} failed on {value!r:.60} at {_where(path)}: {exc}") from exc
    # What the encoder returns is stored as it is: it must be storable itself.
    _check(encoded, path + (f"${name}",))
    return copy.deepcopy(value)


def _check_int(value: int, path: tuple[Any, ...]) -> int:
    if not _INT_MIN <= value <= _INT_MAX:
        # JSON parsers (orjson) and SQL engines turn such numbers into floats: refuse them
        # rather than have them come back changed.
        raise DocumentError(
            f"the integer {value} at {_where(path)} is beyond 64 bits, which JSON engines do not "
            "hold exactly; store it as a Decimal or a string"
        )
    return value


def _too_deep(path: tuple[Any, ...]) -> DocumentError:
    where = _where(path)
    if len(where) > 80:
        where = f"{where[:40]}...{where[-30:]}"
    return DocumentError(
        f"the document nests containers more than {MAX_DEPTH} levels deep (at {where}); "
        "MicroDB stores documents up to that depth"
    )


def _check(value: Any, path: tuple[Any, ...]) -> Any:
    t = type(value)
    if t in _PLAIN:
        return value
    if len(path) >= MAX_DEPTH and (t in _CONTAINERS or isinstance(value, (Mapping, list))):
        raise _too_deep(path)
    if t is int:
        return _check_int(value, path)
    if t in _user_types:
        return _check_user(value, path)
    if t is float:
        if math.isnan(value) or math.isinf(value):
            raise DocumentError(
                f"{value!r} at {_where(path)} cannot be stored: JSON has no NaN or infinity"
            )
        return value
    if t is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise DocumentError(
                        f"key {key!r} at {_where(path)} is not a string; JSON object keys are strings"
                    )
                key = str.__str__(key)
            out[key] = _check(item, path + (key,))
        return out
    if t is list:
        return [_check(item, path + (i,)) for i, item in enumerate(value)]
    if t is tuple:
        return tuple(_check(item, path + (i,)) for i, item in enumerate(value))
    if t is set or t is frozenset:
        items = [_check(item, path + ("<item>",)) for item in value]
        try:
            return t(items)
        except TypeError as exc:
            raise DocumentError(f"a set at {_where(path)} holds an unhashable value") from exc
    if t in _RICH_IMMUTABLE:
        if t is Decimal and not value.is_finite():
            raise DocumentError(f"{value!r} at {_where(path)} cannot be stored: not a finite number")
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _check_int(int(value), path)
    if isinstance(value, float):
        return _check(float(value), path)
    if isinstance(value, str):
        return str.__str__(value)  # str(), for a (str, Enum) member, is its name
    if isinstance(value, list):
        return _check(list(value), path)
    raise DocumentError(
        f"{type(value).__name__} value {value!r:.60} at {_where(path)} cannot be stored; "
        "use JSON types, a supported rich type, or microdb.register_type()"
    )


class _Unusual(Exception):
    """Raised by the fast checker for anything it does not handle; the full checker decides."""


_CONTAINERS: frozenset[type] = frozenset((dict, list, tuple, set, frozenset))


def _fast(value: Any, depth: int = 1) -> Any:
    # The common case (plain JSON values) without tracking paths: about twice as fast as
    # _check. Anything unusual, including errors, is handed to _check, which knows the path.
    if depth > MAX_DEPTH:
        raise _Unusual
    t = type(value)
    if t is dict:
        # Copied whole in C, then only the containers replaced: the copy is made at its
        # final size in one piece (no table grown key by key and left behind), so the
        # documents of a bulk insert lie side by side, and a scan over them is fast.
        out = value.copy()
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            ti = type(item)
            if ti in _PLAIN:
                continue
            if ti is int:
                if not _INT_MIN <= item <= _INT_MAX:
                    raise _Unusual
            elif ti is float:
                if item - item != 0:  # NaN or an infinity
                    raise _Unusual
            else:
                out[key] = _fast(item, depth + 1)
        return out
    if t is list:
        items = []
        for item in value:
            ti = type(item)
            if ti in _PLAIN:
                items.append(item)
            elif ti is int:
                if not _INT_MIN <= item <= _INT_MAX:
                    raise _Unusual
                items.append(item)
            elif ti is float:
                if item - item != 0:
                    raise _Unusual
                items.append(item)
            else:
                items.append(_fast(item, depth + 1))
        return items
    if t in _RICH_IMMUTABLE and t is not Decimal:
        return value
    raise _Unusual


def _valid(value: Any, depth: int = 1) -> bool:
    # _fast without the copy: true when checking would return an equal copy of plain values.
    if depth > MAX_DEPTH:
        return False  # check_document raises the depth error, with the path
    t = type(value)
    items: Iterable[Any]
    if t is dict:
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    elif t is list:
        items = value
    else:
        return t in _RICH_IMMUTABLE and t is not Decimal
    for item in items:
        ti = type(item)
        if ti in _PLAIN:
            continue
        if ti is int:
            if not _INT_MIN <= item <= _INT_MAX:
                return False
        elif ti is float:
            if item - item != 0:
                return False
        elif not _valid(item, depth + 1):
            return False
    return True


def is_checked(value: Any, depth: int) -> bool:
    """Whether a value at nesting ``depth`` (the document is 1) is plain and storable as it
    is; false for anything :func:`check_document` must look at (it may still accept it)."""
    t = type(value)
    if t in _PLAIN:
        return True
    if t is int:
        return bool(_INT_MIN <= value <= _INT_MAX)
    if t is float:
        return bool(value - value == 0)  # not NaN or an infinity
    return _valid(value, depth)


def check_private(doc: dict[str, Any]) -> dict[str, Any]:
    """:func:`check_document` for a document nobody else holds (an update's fresh copy):
    the document itself when it is plain, without a second copy."""
    if type(doc) is dict and _valid(doc):
        return doc
    return check_document(doc)


def check_document(doc: Any) -> dict[str, Any]:
    """A private deep copy of ``doc``, checked to be storable; raises ``DocumentError`` if not."""
    if not isinstance(doc, Mapping):
        raise DocumentError(f"a document must be a mapping (dict), got {type(doc).__name__}: {doc!r:.60}")
    if isinstance(doc, dict):
        try:
            return _fast(dict(doc) if type(doc) is not dict else doc)  # type: ignore[no-any-return]
        except _Unusual:
            pass
        except RecursionError as exc:
            raise DocumentError("the document is nested too deeply (or contains itself)") from exc
    try:
        return _check(doc, ())  # type: ignore[no-any-return]
    except RecursionError as exc:
        raise DocumentError("the document is nested too deeply (or contains itself)") from exc


def nests_too_deep(value: Any, level: int = 1) -> bool:
    """Whether a loaded JSON value (at nesting ``level``) nests deeper than :data:`MAX_DEPTH`.

    For values read from files, which never went through :func:`check_document`; it
    descends at most ``MAX_DEPTH`` levels, so it cannot itself exceed the recursion limit.
    """
    t = type(value)
    if t is not dict and t is not list:
        return False
    if level > MAX_DEPTH:
        return True
    for item in value.values() if t is dict else value:
        ti = type(item)
        if (ti is dict or ti is list) and nests_too_deep(item, level + 1):
            return True
    return False


#: Types whose values are immutable: a copy may share them.
IMMUTABLE_TYPES: frozenset[type] = frozenset(_ATOMS | _RICH_IMMUTABLE | {float, frozenset})


def copy_value(value: Any) -> Any:
    """A deep copy of an already checked value (containers copied, immutables shared)."""
    t = type(value)
    # Copy the container in C, then replace only the values that are containers: about
    # 1.5x faster than rebuilding it item by item, and this runs for every returned document.
    if t is dict:
        out = value.copy()
        for key, item in out.items():
            if type(item) not in IMMUTABLE_TYPES:
                out[key] = copy_value(item)
        return out
    if t is list:
        items = value[:]
        for i, item in enumerate(items):
            if type(item) not in IMMUTABLE_TYPES:
                items[i] = copy_value(item)
        return items
    if t is tuple:
        return tuple(copy_value(v) for v in value)
    if t is set:
        return set(value)
    if t in _user_types:
        return copy.deepcopy(value)  # a registered type may be mutable
    return value


def copy_into(target: dict[str, Any], doc: dict[str, Any]) -> None:
    """Fill ``target`` (an empty dict, e.g. a new ``Document``) with a deep copy of ``doc``."""
    target.update(doc)
    for key, item in doc.items():
        if type(item) not in IMMUTABLE_TYPES:
            target[key] = copy_value(item)


# ---------------------------------------------------------------------------------------
# Tagged JSON
# ---------------------------------------------------------------------------------------

def _enc_datetime(v: _dt.datetime) -> Any:
    return {"$datetime": v.isoformat()}


def _enc_date(v: _dt.date) -> Any:
    return {"$date": v.isoformat()}


def _enc_time(v: _dt.time) -> Any:
    return {"$time": v.isoformat()}


def _enc_timedelta(v: _dt.timedelta) -> Any:
    return {"$timedelta": [v.days, v.seconds, v.microseconds]}


def _enc_uuid(v: uuid.UUID) -> Any:
    return {"$uuid": str(v)}


def _enc_decimal(v: Decimal) -> Any:
    return {"$decimal": str(v)}


def _enc_bytes(v: bytes) -> Any:
    return {"$bytes": base64.b64encode(v).decode("ascii")}


def _enc_set(v: set[Any]) -> Any:
    return {"$set": [encode(x) for x in v]}


def _enc_frozenset(v: frozenset[Any]) -> Any:
    return {"$frozenset": [encode(x) for x in v]}


def _enc_tuple(v: tuple[Any, ...]) -> Any:
    return {"$tuple": [encode(x) for x in v]}


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    _dt.datetime: _enc_datetime,
    _dt.date: _enc_date,
    _dt.time: _enc_time,
    _dt.timedelta: _enc_timedelta,
    uuid.UUID: _enc_uuid,
    Decimal: _enc_decimal,
    bytes: _enc_bytes,
    set: _enc_set,
    frozenset: _enc_frozenset,
    tuple: _enc_tuple,
}

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$datetime": _dt.datetime.fromisoformat,
    "$date": _dt.date.fromisoformat,
    "$time": _dt.time.fromisoformat,
    "$timedelta": lambda v: _dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "$uuid": uuid.UUID,
    "$decimal": Decimal,
    "$bytes": lambda v: base64.b64decode(v.encode("ascii"), validate=True),
    "$set": lambda v: {decode(x) for x in v},
    "$frozenset": lambda v: frozenset(decode(x) for x in v),
    "$tuple": lambda v: tuple(decode(x) for x in v),
}


def encode(value: Any) -> Any:
    """The JSON-safe, tagged form of a checked value."""
    t = type(value)
    if t in _ATOMS or t is float:
        return value
    if t is dict:
        out = {k: (v if type(v) in _ATOMS or type(v) is float else encode(v)) for k, v in value.items()}
        if len(out) == 1:
            (key,) = out
            if key.startswith("$"):
                return {"$escape": out}
        return out
    if t is list:
        return [v if type(v) in _ATOMS or type(v) is float else encode(v) for v in value]
    enc = _ENCODERS.get(t)
    if enc is not None:
        return enc(value)
    user = _user_types.get(t)
    if user is not None:
        return {"$" + user[0]: encode(_check(user[1](value), ()))}
    raise DocumentError(f"cannot encode {type(value).__name__} value {value!r:.60}")


def decode(value: Any) -> Any:
    """The Python value of a tagged JSON value (the inverse of :func:`encode`)."""
    t = type(value)
    if t is dict:
        if len(value) == 1:
            (key,) = value
            if key.startswith("$"):
                if key == "$escape":
                    inner = value[key]
                    if type(inner) is not dict:
                        raise DocumentError(f"bad $escape value {inner!r:.60}: not an object")
                    return {k: decode(v) for k, v in inner.items()}
                dec = _DECODERS.get(key)
                if dec is not None:
                    try:
                        return dec(value[key])
                    # ArithmeticError: decimal.InvalidOperation for {"$decimal": "ten"}.
                    except (TypeError, ValueError, ArithmeticError, IndexError, KeyError, AttributeError) as exc:
                        raise DocumentError(f"bad {key} value {value[key]!r:.60}: {exc}") from exc
                user = _user_tags.get(key)
                if user is not None:
                    try:
                        return user[1](decode(value[key]))
                    except DocumentError:
                        raise
                    except Exception as exc:
                        raise DocumentError(f"the decoder of {key} failed on {value[key]!r:.60}: {exc}") from exc
        return {k: (v if type(v) in _ATOMS or type(v) is float else decode(v)) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _ATOMS or type(v) is float else decode(v) for v in value]
    return value


def register_type(
    cls: type, name: str, encoder: Callable[[Any], Any], decoder: Callable[[Any], Any]
) -> None:
    """Store values of ``cls`` as ``{"$<name>": encoder(value)}`` and read them back with ``decoder``.

    ``encoder`` returns any value MicroDB can store (JSON values, or rich types such as
    ``datetime``); ``decoder`` receives that value back. Values of a registered type
    compare, sort and are indexed by their own ``==`` and ``<``. Raises ``DocumentError``
    for a class MicroDB already stores, or a name that is not an identifier or is taken.
    """
    if not isinstance(cls, type):
        raise DocumentError(f"register_type() needs a class, got {cls!r}")
    if cls in _ATOMS or cls in _ENCODERS or cls in (float, dict, list):
        raise DocumentError(f"{cls.__name__} is stored natively; it cannot be registered")
    if not isinstance(name, str) or not name.isidentifier():
        raise DocumentError(f"a type name must be an identifier, got {name!r}")
    tag = "$" + name
    if tag in _DECODERS or tag == "$escape":
        raise DocumentError(f"{name!r} is a built-in type tag")
    if not callable(encoder) or not callable(decoder):
        raise DocumentError("register_type() needs an encoder and a decoder function")
    with _lock:
        taken = _user_tags.get(tag)
        if taken is not None and taken[0] is not cls:
            raise DocumentError(f"the type name {name!r} is taken by {taken[0].__qualname__}")
        old = _user_types.get(cls)
        if old is not None:
            _user_tags.pop("$" + old[0], None)
        _user_types[cls] = (name, encoder, decoder)
        _user_tags[tag] = (cls, decoder)


# ---------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------

def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    """JSON text of an already encoded value (orjson when present and the options allow)."""
    if _orjson is not None and indent in (None, 2) and not ensure_ascii:
        option = 0
        if indent == 2:
            option |= _orjson.OPT_INDENT_2
        if sort_keys:
            option |= _orjson.OPT_SORT_KEYS
        try:
            return _orjson.dumps(value, option=option).decode("utf-8")
        except TypeError:
            pass  # e.g. ints beyond 64 bits: the standard library handles those.
    return json.dumps(
        value, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii, allow_nan=False,
        separators=(",", ":") if indent is None else None,
    )


_LONG_INT = re.compile(r"\d{19,}")
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def _has_long_int(text: str | bytes) -> bool:
    """Whether ``text`` holds a run of 19 or more digits (maybe an integer beyond 64 bits)."""
    if isinstance(text, bytes):
        # translate + find run at memory speed: about 8x faster than the regex on a large
        # file, which matters when a database of 100,000 documents opens.
        return text.translate(_DIGITS_TO_ZERO).find(_LONG_RUN) >= 0
    return _LONG_INT.search(text) is not None


#: Texts longer than this are parsed by the standard library even when orjson is present.
#: orjson builds a whole intermediate tree before the Python objects, so parsing a large
#: file with it needs about three times the memory the standard library needs (400 MiB
#: instead of 140 MiB for a file of 100,000 documents), for a gain of 10 % in time at that
#: size. Journal records and SQL rows, small and many, keep orjson's speed.
ORJSON_MAX_BYTES = 1 << 20


def _use_orjson(text: str | bytes) -> bool:
    return _orjson is not None and len(text) <= ORJSON_MAX_BYTES and not _has_long_int(text)


def loads(text: str | bytes) -> Any:
    """Parse JSON text (orjson when present, for texts up to :data:`ORJSON_MAX_BYTES`)."""
    if _use_orjson(text):
        # orjson reads integers beyond 64 bits as floats; such texts go to the standard
        # library, which keeps every integer exact.
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass  # fall through for the standard library's error, with its position
    return json.loads(text)


def dumpb(value: Any) -> bytes:
    """Compact UTF-8 JSON bytes of an already encoded value, one line (journal records)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value)
        except TypeError:
            pass  # e.g. ints beyond 64 bits: the standard library handles those.
    return _COMPACT.encode(value).encode("utf-8")


# Built once: json.dumps with non-default options builds a new encoder on every call, which
# costs more than encoding a small journal record.
_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads_strict(text: str | bytes) -> Any:
    """Parse JSON text, rejecting NaN and Infinity; a syntax error is a ``json.JSONDecodeError``."""
    if _use_orjson(text):
        # orjson reads integers beyond 64 bits as floats; such texts go to the standard
        # library, which keeps every integer exact.
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass  # the standard library's error carries the position we report
    return json.loads(text, parse_constant=_reject_constant)
