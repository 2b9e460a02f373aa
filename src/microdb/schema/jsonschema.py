"""A JSON Schema validator for documents: the subset MongoDB's ``$jsonSchema`` supports.

A schema is compiled once into a tree of small checking functions (:func:`compile_schema`);
checking a document walks only the rules the schema has. Keywords:

``type`` / ``bsonType``
    a name or a list of names. JSON Schema's names (``object``, ``array``, ``string``,
    ``number``, ``integer``, ``boolean``, ``null``) and MongoDB's (``double``, ``int``,
    ``long``, ``decimal``, ``number``, ``bool``, ``date`` (a ``datetime``), ``binData``
    (``bytes``)), plus MicroDB's rich types: ``uuid``, ``calendarDate`` (a ``date``),
    ``time``, ``timedelta``. ``bool`` is never a number, as in JSON.
``required``, ``properties``, ``additionalProperties``, ``minProperties``, ``maxProperties``
``enum``, ``const``
``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` (a number, or a
    boolean beside ``minimum``/``maximum`` as MongoDB writes it), ``multipleOf``
``minLength``, ``maxLength``, ``pattern`` (a Python regular expression, searched)
``items`` (one schema, or a list for the leading elements), ``additionalItems``,
    ``minItems``, ``maxItems``, ``uniqueItems``
``allOf``, ``anyOf``, ``oneOf``, ``not``
``title``, ``description``, ``$comment``, ``default``, ``examples``, ``format``
    are annotations and never fail (``format`` is not checked, as MongoDB does not).

An unknown keyword raises :class:`~microdb.errors.SchemaError` when the schema is
compiled, so a typo never turns into a rule that silently passes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sized
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from microdb.errors import SchemaError
from microdb.schema.values import TYPE_NAMES, freeze, is_integral, is_number, same

__all__ = ["Validator", "Violation", "compile_schema", "TYPE_NAMES"]


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (``path``), which keyword (``rule``), and a sentence."""

    path: str
    rule: str
    message: str


_Check = Callable[[Any, tuple[Any, ...]], "Violation | None"]


_ANNOTATIONS = frozenset({"title", "description", "$comment", "default", "examples", "format", "$schema", "$id"})


def _where(path: tuple[Any, ...]) -> str:
    return ".".join(str(step) for step in path)


def _show(path: tuple[Any, ...]) -> str:
    return f"field {_where(path)!r}" if path else "the document"


class _Compiler:
    def __init__(self, root: Any):
        self.root = root

    def fail(self, where: str, message: str) -> SchemaError:
        return SchemaError(f"schema{where}: {message}")

    def number(self, where: str, key: str, value: Any) -> Any:
        if not is_number(value):
            raise self.fail(where, f"{key!r} needs a number, got {value!r}")
        return value

    def count(self, where: str, key: str, value: Any) -> int:
        if type(value) is not int or value < 0:
            raise self.fail(where, f"{key!r} needs a non-negative integer, got {value!r}")
        return value

    def compile(self, schema: Any, where: str = "") -> list[_Check]:
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [lambda v, p: Violation(_where(p), "false", f"{_show(p)} is not allowed")]
        if not isinstance(schema, dict):
            raise self.fail(where, f"a schema is an object, got {schema!r:.60}")
        checks: list[_Check] = []
        for key in schema:
            if not isinstance(key, str):
                raise self.fail(where, f"keys are strings, got {key!r}")
            if key not in _KEYWORDS and key not in _ANNOTATIONS:
                raise self.fail(where, f"unknown keyword {key!r}")
        if "type" in schema and "bsonType" in schema:
            raise self.fail(where, "give 'type' or 'bsonType', not both")
        for key in ("type", "bsonType"):
            if key in schema:
                checks.append(self.type_check(where, key, schema[key]))
        for key in _ORDER:
            if key in schema:
                made = _KEYWORDS[key](self, schema, f"{where}.{key}" if key in _NESTING else where)
                if made is not None:
                    checks.append(made)
        return checks

    def type_check(self, where: str, key: str, value: Any) -> _Check:
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) for n in names):
            raise self.fail(where, f"{key!r} needs a type name or a list of them, got {value!r}")
        unknown = [n for n in names if n not in TYPE_NAMES]
        if unknown:
            raise self.fail(where, f"unknown type {unknown[0]!r} (known: {', '.join(sorted(TYPE_NAMES))})")
        tests = [TYPE_NAMES[n] for n in names]
        wanted = " or ".join(names)

        def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
            for test in tests:
                if test(v):
                    return None
            return Violation(_where(p), key, f"{_show(p)} must be of type {wanted}, got {_kind(v)}")

        return check

    def sub(self, schema: Any, where: str) -> _Check:
        checks = self.compile(schema, where)
        return _all(checks)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    for name in ("boolean", "integer", "number", "string", "object", "array", "date", "calendarDate",
                 "time", "timedelta", "uuid", "decimal", "binData"):
        if TYPE_NAMES[name](v):
            return "double" if name == "number" and type(v) is float else name
    return type(v).__name__


def _all(checks: list[_Check]) -> _Check:
    if not checks:
        return lambda v, p: None
    if len(checks) == 1:
        return checks[0]

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        for c in checks:
            found = c(v, p)
            if found is not None:
                return found
        return None

    return check


# -- keywords ------------------------------------------------------------------------------
def _k_required(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    names = s["required"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise c.fail(where, f"'required' needs a list of field names, got {names!r}")

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if isinstance(v, dict):
            for name in names:
                if name not in v:
                    return Violation(_where((*p, name)), "required", f"{_show((*p, name))} is required")
        return None

    return check


def _k_properties(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    props = s["properties"]
    if not isinstance(props, dict):
        raise c.fail(where, f"'properties' needs an object, got {props!r:.60}")
    subs = [(name, c.sub(sub, f"{where}.{name}")) for name, sub in props.items()]

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if isinstance(v, dict):
            for name, sub in subs:
                if name in v:
                    found = sub(v[name], (*p, name))
                    if found is not None:
                        return found
        return None

    return check


def _k_additional(c: _Compiler, s: dict[str, Any], where: str) -> _Check | None:
    extra = s["additionalProperties"]
    if extra is True:
        return None
    known = set(s.get("properties", {}))
    patterns = [re.compile(x) for x in s.get("patternProperties", {})]
    sub = None if extra is False else c.sub(extra, where)

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if isinstance(v, dict):
            for name, value in v.items():
                if name in known or any(r.search(name) for r in patterns):
                    continue
                if sub is None:
                    return Violation(_where((*p, name)), "additionalProperties",
                                     f"{_show((*p, name))} is not allowed (not among the schema's properties)")
                found = sub(value, (*p, name))
                if found is not None:
                    return found
        return None

    return check


def _k_pattern_properties(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    pats = s["patternProperties"]
    if not isinstance(pats, dict):
        raise c.fail(where, "'patternProperties' needs an object")
    subs = [(_regex(c, where, x), c.sub(sub, f"{where}.{x}")) for x, sub in pats.items()]

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if isinstance(v, dict):
            for name, value in v.items():
                for rx, sub in subs:
                    if rx.search(name):
                        found = sub(value, (*p, name))
                        if found is not None:
                            return found
        return None

    return check


def _k_size(key: str, kind: type[Sized], unit: str) -> Callable[[_Compiler, dict[str, Any], str], _Check]:
    """``minProperties``/``maxProperties`` (``kind`` dict), ``minLength``/``maxLength`` (str),
    ``minItems``/``maxItems`` (list): a bound on ``len`` of values of that kind."""
    low = key.startswith("min")
    word = "at least" if low else "at most"

    def make(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
        n = c.count(where, key, s[key])

        def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
            if isinstance(v, kind) and (len(v) < n if low else len(v) > n):
                return Violation(_where(p), key, f"{_show(p)} must have {word} {n} {unit}, got {len(v)}")
            return None

        return check

    return make


def _k_enum(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    options = s["enum"]
    if not isinstance(options, list) or not options:
        raise c.fail(where, f"'enum' needs a non-empty list, got {options!r:.60}")

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if any(same(v, o) for o in options):
            return None
        return Violation(_where(p), "enum", f"{_show(p)} must be one of {options!r:.80}, got {v!r:.40}")

    return check


def _k_const(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    want = s["const"]

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        return None if same(v, want) else Violation(_where(p), "const", f"{_show(p)} must be {want!r:.60}")

    return check


def _k_bound(key: str) -> Callable[[_Compiler, dict[str, Any], str], _Check | None]:
    low = key in ("minimum", "exclusiveMinimum")

    def make(c: _Compiler, s: dict[str, Any], where: str) -> _Check | None:
        raw = s[key]
        if key.startswith("exclusive") and isinstance(raw, bool):
            # MongoDB's (and draft 4's) form: a flag beside minimum/maximum, read there.
            partner = "minimum" if low else "maximum"
            if partner not in s:
                raise c.fail(where, f"{key!r}: true needs {partner!r} beside it")
            return None
        bound = c.number(where, key, raw)
        exclusive = key.startswith("exclusive") or s.get("exclusive" + key[:1].upper() + key[1:]) is True
        word = ("greater than" if exclusive else "at least") if low else ("less than" if exclusive else "at most")

        def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
            if not is_number(v):
                return None
            ok = (v > bound if exclusive else v >= bound) if low else (v < bound if exclusive else v <= bound)
            return None if ok else Violation(_where(p), key, f"{_show(p)} must be {word} {bound}, got {v!r}")

        return check

    return make


def _k_multiple(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    step = c.number(where, "multipleOf", s["multipleOf"])
    if step <= 0:
        raise c.fail(where, "'multipleOf' needs a positive number")

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if is_number(v) and not is_integral(v / step if not isinstance(v, Decimal) else v / Decimal(str(step))):
            return Violation(_where(p), "multipleOf", f"{_show(p)} must be a multiple of {step}, got {v!r}")
        return None

    return check


def _regex(c: _Compiler, where: str, text: Any) -> re.Pattern[str]:
    if not isinstance(text, str):
        raise c.fail(where, f"a pattern is a string, got {text!r}")
    try:
        return re.compile(text)
    except re.error as exc:
        raise c.fail(where, f"bad pattern {text!r}: {exc}") from exc


def _k_pattern(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    rx = _regex(c, where, s["pattern"])

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if isinstance(v, str) and rx.search(v) is None:
            return Violation(_where(p), "pattern", f"{_show(p)} must match {rx.pattern!r}, got {v!r:.40}")
        return None

    return check


def _k_items(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    items = s["items"]
    if isinstance(items, list):
        subs = [c.sub(x, f"{where}.{i}") for i, x in enumerate(items)]
        extra = s.get("additionalItems", True)
        rest = None if extra is True else c.sub(extra, f"{where}.additionalItems")

        def check_tuple(v: Any, p: tuple[Any, ...]) -> Violation | None:
            if isinstance(v, list):
                for i, item in enumerate(v):
                    sub = subs[i] if i < len(subs) else rest
                    if sub is not None:
                        found = sub(item, (*p, i))
                        if found is not None:
                            if found.rule == "false":
                                return Violation(found.path, "additionalItems",
                                                 f"{_show(p)} may hold at most {len(subs)} items")
                            return found
            return None

        return check_tuple
    sub = c.sub(items, where)

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if isinstance(v, list):
            for i, item in enumerate(v):
                found = sub(item, (*p, i))
                if found is not None:
                    return found
        return None

    return check


def _k_unique(c: _Compiler, s: dict[str, Any], where: str) -> _Check | None:
    if not isinstance(s["uniqueItems"], bool):
        raise c.fail(where, "'uniqueItems' needs true or false")
    if not s["uniqueItems"]:
        return None

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if isinstance(v, list):
            seen: set[Any] = set()
            for i, item in enumerate(v):
                key = freeze(item)
                if key in seen:
                    return Violation(_where((*p, i)), "uniqueItems", f"{_show(p)} holds {item!r:.40} twice")
                seen.add(key)
        return None

    return check


def _schemas(c: _Compiler, s: dict[str, Any], key: str, where: str) -> list[_Check]:
    value = s[key]
    if not isinstance(value, list) or not value:
        raise c.fail(where, f"{key!r} needs a non-empty list of schemas")
    return [c.sub(x, f"{where}.{i}") for i, x in enumerate(value)]


def _k_all_of(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    return _all(_schemas(c, s, "allOf", where))


def _k_any_of(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    subs = _schemas(c, s, "anyOf", where)

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        first = None
        for sub in subs:
            found = sub(v, p)
            if found is None:
                return None
            first = first or found
        assert first is not None
        return Violation(first.path, "anyOf", f"{_show(p)} matches none of the 'anyOf' schemas ({first.message})")

    return check


def _k_one_of(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    subs = _schemas(c, s, "oneOf", where)

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        hits = sum(1 for sub in subs if sub(v, p) is None)
        if hits == 1:
            return None
        return Violation(_where(p), "oneOf", f"{_show(p)} matches {hits} of the 'oneOf' schemas, not exactly one")

    return check


def _k_not(c: _Compiler, s: dict[str, Any], where: str) -> _Check:
    sub = c.sub(s["not"], where)

    def check(v: Any, p: tuple[Any, ...]) -> Violation | None:
        if sub(v, p) is None:
            return Violation(_where(p), "not", f"{_show(p)} must not match the 'not' schema")
        return None

    return check


def _k_noop(c: _Compiler, s: dict[str, Any], where: str) -> None:
    return None


_KEYWORDS: dict[str, Callable[[_Compiler, dict[str, Any], str], _Check | None]] = {
    "type": _k_noop,
    "bsonType": _k_noop,
    "required": _k_required,
    "properties": _k_properties,
    "patternProperties": _k_pattern_properties,
    "additionalProperties": _k_additional,
    "minProperties": _k_size("minProperties", dict, "fields"),
    "maxProperties": _k_size("maxProperties", dict, "fields"),
    "enum": _k_enum,
    "const": _k_const,
    "minimum": _k_bound("minimum"),
    "maximum": _k_bound("maximum"),
    "exclusiveMinimum": _k_bound("exclusiveMinimum"),
    "exclusiveMaximum": _k_bound("exclusiveMaximum"),
    "multipleOf": _k_multiple,
    "minLength": _k_size("minLength", str, "characters"),
    "maxLength": _k_size("maxLength", str, "characters"),
    "pattern": _k_pattern,
    "items": _k_items,
    "additionalItems": _k_noop,  # read by items
    "minItems": _k_size("minItems", list, "items"),
    "maxItems": _k_size("maxItems", list, "items"),
    "uniqueItems": _k_unique,
    "allOf": _k_all_of,
    "anyOf": _k_any_of,
    "oneOf": _k_one_of,
    "not": _k_not,
}
#: The order rules are checked in: a missing field is reported before a wrong value inside.
_ORDER = tuple(k for k in _KEYWORDS if k not in ("type", "bsonType", "additionalItems"))
_NESTING = frozenset({"properties", "patternProperties", "items", "allOf", "anyOf", "oneOf", "not",
                      "additionalProperties"})


class Validator:
    """A compiled schema: :meth:`first` finds the first broken rule of a document."""

    __slots__ = ("schema", "_check")

    def __init__(self, schema: dict[str, Any]):
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema is an object (a dict), got {type(schema).__name__}")
        self.schema = schema
        self._check = _Compiler(schema).sub(schema, "")

    def first(self, doc: Any) -> Violation | None:
        """The first rule ``doc`` breaks, or ``None`` when it is valid."""
        return self._check(doc, ())

    def is_valid(self, doc: Any) -> bool:
        """Whether ``doc`` keeps every rule."""
        return self._check(doc, ()) is None


_cache: dict[str, Validator] = {}


def compile_schema(schema: dict[str, Any]) -> Validator:
    """The validator of ``schema``, compiled once per distinct schema (raises ``SchemaError``)."""
    try:
        key = json.dumps(schema, sort_keys=True, default=repr)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"a schema must be JSON: {exc}") from exc
    found = _cache.get(key)
    if found is None:
        found = Validator(schema)
        if len(_cache) > 256:
            _cache.clear()
        _cache[key] = found
    return found
