"""Bounds for dict filters that come from untrusted sources (a command line, a web form, a request).

A filter is data, never code, but data can still be heavy: a regular expression such as
``(a+)+b`` backtracks for seconds on 26 characters and doubles with each more, and a
filter nested 10,000 deep or holding a million terms costs memory and time before any
document is read. :func:`untrusted_filter` checks a filter against :class:`FilterLimits`
and returns a query that ``table.query()``, ``count()``, ``update()`` and ``remove()``
accept; past a limit it raises :class:`~microdb.errors.QueryError` saying which one.

Regular expressions are bounded one of two ways:

- **With the** ``regex`` **package** (``pip install 'microdb[regex]'``), every ``$regex`` is
  matched by it with a time limit: all the matching one filter does, over every document
  it is tested against, shares :attr:`FilterLimits.regex_seconds`; past it the query raises
  ``QueryError``. Such a condition is evaluated in Python on the SQL backends.
- **Without it**, each pattern must pass a safe-pattern check before the query runs: no
  backreferences, no quantifier (``*``, ``+``, ``?``, ``{m,n}``) or alternation (``|``)
  inside a repeated group (``(a+)+``, ``(a|ab)*``, ``(\\w+\\s?)*``), and at most
  :attr:`FilterLimits.max_regex_quantifiers` variable quantifiers in all. This rules out
  exponential backtracking; the time left grows at most as a power of the value's length,
  the power bounded by that count.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from microdb import serialization
from microdb.errors import QueryError
from microdb.query import ast
from microdb.query.fields import dot_path
from microdb.query.mongo import parse_filter

if sys.version_info >= (3, 11):
    import re._constants as _sre_constants
    import re._parser as _sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_constants
    import sre_parse as _sre_parse

__all__ = ["FilterLimits", "untrusted_filter"]

_REGEX_INSTALL = "pip install 'microdb[regex]'"


@dataclass(frozen=True)
class FilterLimits:
    """What a filter from outside may cost; every field has a safe default.

    ``regex`` picks how regular expressions are bounded: ``"auto"`` (a time limit when the
    ``regex`` package is installed, else the safe-pattern check), ``"timeout"`` (the time
    limit; raises ``QueryError`` naming the install command if the package is missing) or
    ``"check"`` (the safe-pattern check, even when the package is installed).
    """

    #: Length of a filter given as text, in characters.
    max_text: int = 65_536
    #: Keys, values and list elements in the filter, counted together.
    max_items: int = 2_000
    #: Nesting of mappings and lists (``{"a": {"$in": [1]}}`` is 3 deep).
    max_depth: int = 24
    #: Steps of one dotted field name (``"a.b.c"`` has 3).
    max_path_steps: int = 12
    #: Length of one string in the filter, key or value.
    max_string: int = 4_096
    #: Length of one regular expression.
    max_pattern: int = 512
    #: Quantifiers with a variable count (``*``, ``+``, ``?``, ``{1,5}``) in one pattern (safe-pattern check).
    max_regex_quantifiers: int = 4
    #: Seconds of regex matching one filter may spend in all (with the ``regex`` package).
    regex_seconds: float = 1.0
    #: ``"auto"``, ``"timeout"`` or ``"check"`` (see the class docstring).
    regex: str = "auto"

    def __post_init__(self) -> None:
        if self.regex not in ("auto", "timeout", "check"):
            raise QueryError(f"FilterLimits.regex must be 'auto', 'timeout' or 'check', got {self.regex!r}")
        for name in ("max_text", "max_items", "max_depth", "max_path_steps", "max_string", "max_pattern"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise QueryError(f"FilterLimits.{name} must be a positive integer, got {value!r}")
        if not self.regex_seconds > 0:
            raise QueryError(f"FilterLimits.regex_seconds must be positive, got {self.regex_seconds!r}")


def _regex_module() -> Any:
    try:
        import regex  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    return regex


def untrusted_filter(filter: Mapping[str, Any] | str | bytes, limits: FilterLimits | None = None) -> ast.Node:
    """A query for ``filter`` (a dict filter, or its JSON text) checked against ``limits``.

    JSON text is parsed here, after its length is checked, with rich values in tagged form
    (``{"$date": "2024-05-01"}``). Raises :class:`~microdb.errors.QueryError` naming the
    limit a filter goes past, or what is wrong with it.
    """
    limits = limits or FilterLimits()
    if isinstance(filter, (str, bytes)):
        filter = _parse_text(filter, limits)
    if not isinstance(filter, Mapping):
        raise QueryError(f"a filter must be a JSON object (a mapping), got {type(filter).__name__}")
    _Walk(limits).value(filter, 1)
    try:
        node = parse_filter(filter)
    except RecursionError as exc:  # pragma: no cover - the depth limit comes first
        raise QueryError("the filter is nested too deeply") from exc
    return _Bounder(limits).visit(node)


def _parse_text(text: str | bytes, limits: FilterLimits) -> Any:
    if len(text) > limits.max_text:
        raise QueryError(f"the filter is {len(text)} characters long; the limit is {limits.max_text}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError(f"the filter is not UTF-8 text: {exc}") from exc
    # The nesting is checked before parsing: the JSON parser recurses once per level.
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > limits.max_depth:
        raise QueryError(f"the filter is nested {deepest} deep; the limit is {limits.max_depth}")
    try:
        return serialization.decode(serialization.loads_strict(text))
    except json.JSONDecodeError as exc:
        raise QueryError(f"the filter is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except ValueError as exc:
        raise QueryError(f"the filter is not valid JSON: {exc}") from exc


class _Walk:
    """Counts items and checks depth, strings and dotted paths of a parsed filter."""

    def __init__(self, limits: FilterLimits):
        self.limits = limits
        self.items = 0

    def count(self) -> None:
        self.items += 1
        if self.items > self.limits.max_items:
            raise QueryError(f"the filter holds more than {self.limits.max_items} keys and values")

    def string(self, text: str, what: str) -> None:
        if len(text) > self.limits.max_string:
            raise QueryError(
                f"{what} {text[:40]!r}... is {len(text)} characters long; the limit is {self.limits.max_string}"
            )

    def value(self, value: Any, depth: int) -> None:
        self.count()
        if isinstance(value, (Mapping, list, tuple, set, frozenset)) and depth > self.limits.max_depth:
            raise QueryError(f"the filter is nested more than {self.limits.max_depth} deep")
        if isinstance(value, Mapping):
            for key, item in value.items():
                self.count()
                if isinstance(key, str):
                    self.string(key, "the key")
                    if not key.startswith("$"):
                        steps = dot_path(key)
                        if len(steps) > self.limits.max_path_steps:
                            raise QueryError(
                                f"the field {key[:60]!r} has {len(steps)} steps; the limit is "
                                f"{self.limits.max_path_steps}"
                            )
                self.value(item, depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                self.value(item, depth + 1)
        elif isinstance(value, str):
            self.string(value, "the string")
        elif isinstance(value, re.Pattern):
            self.string(value.pattern, "the pattern")


class _Bounder:
    """Rebuilds a query with every ``Regex`` node checked or replaced by a time-limited test."""

    def __init__(self, limits: FilterLimits):
        self.limits = limits
        self.mode = limits.regex
        self.module = None if self.mode == "check" else _regex_module()
        if self.mode == "timeout" and self.module is None:
            raise QueryError(
                f"FilterLimits(regex='timeout') needs the regex package: {_REGEX_INSTALL}"
            )
        self.budget = _Budget(limits.regex_seconds)

    def visit(self, node: ast.Node) -> ast.Node:
        if isinstance(node, ast.Regex):
            return self.regex(node)
        if isinstance(node, (ast.Test, ast.Call)):  # pragma: no cover - a dict filter builds neither
            raise QueryError("a filter from outside cannot hold a function")
        changed = False
        values: dict[str, Any] = {}
        for name in node._fields:
            value = getattr(node, name)
            if isinstance(value, ast.Node):
                new: Any = self.visit(value)
            elif isinstance(value, tuple) and any(isinstance(v, ast.Node) for v in value):
                new = tuple(self.visit(v) if isinstance(v, ast.Node) else v for v in value)
            else:
                new = value
            changed = changed or new is not value
            values[name] = new
        if not changed:
            return node
        rebuilt = object.__new__(type(node))
        rebuilt._set(**values)
        return rebuilt

    def regex(self, node: ast.Regex) -> ast.Node:
        where = ast.path_repr(node.path) if node.path else "an element"
        if len(node.pattern) > self.limits.max_pattern:
            raise QueryError(
                f"the regular expression at {where} is {len(node.pattern)} characters long; "
                f"the limit is {self.limits.max_pattern}"
            )
        if self.module is None:
            check_pattern(node.pattern, node.flags, self.limits, where)
            return node
        flags = 0
        for name in ("IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII"):
            if node.flags & getattr(re, name):
                flags |= getattr(self.module, name)
        try:
            compiled = self.module.compile(node.pattern, flags)
        except self.module.error as exc:
            raise QueryError(f"bad regular expression {node.pattern!r} at {where}: {exc}") from exc
        return ast.Test(node.path, _timed_match(getattr(compiled, node.mode), node.pattern, self.budget))


class _Budget:
    """The seconds of regex matching left to one filter, shared by every pattern in it."""

    def __init__(self, seconds: float):
        self.left = seconds
        self.lock = threading.Lock()

    def spend(self, seconds: float) -> None:
        with self.lock:
            self.left -= seconds


def _timed_match(match: Callable[..., Any], pattern: str, budget: _Budget) -> Callable[[Any], bool]:
    def timed(value: Any) -> bool:
        if type(value) is not str:
            return False
        left = budget.left
        if left <= 0:
            raise QueryError(f"the regular expression {pattern[:60]!r} used up its time limit")
        start = time.perf_counter()
        try:
            return match(value, timeout=left) is not None
        except TimeoutError as exc:
            raise QueryError(
                f"the regular expression {pattern[:60]!r} took longer than its time limit; simplify it"
            ) from exc
        finally:
            budget.spend(time.perf_counter() - start)

    timed.__name__ = "bounded_regex"
    return timed


# --- the safe-pattern check --------------------------------------------------------------

_C = _sre_constants
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT} | ({_C.POSSESSIVE_REPEAT} if hasattr(_C, "POSSESSIVE_REPEAT") else set())
_ATOMIC = getattr(_C, "ATOMIC_GROUP", object())
_BACKREFS = {_C.GROUPREF, _C.GROUPREF_EXISTS} | ({_C.GROUPREF_IGNORE} if hasattr(_C, "GROUPREF_IGNORE") else set())


def check_pattern(pattern: str, flags: int, limits: FilterLimits, where: str = "the filter") -> None:
    """Raise ``QueryError`` unless ``pattern`` passes the safe-pattern check (module docstring)."""
    try:
        parsed = _sre_parse.parse(pattern, flags)
    except (re.error, RecursionError, OverflowError) as exc:
        raise QueryError(f"bad regular expression {pattern!r} at {where}: {exc}") from exc
    quantifiers = [0]

    def unsafe(reason: str) -> QueryError:
        return QueryError(
            f"the regular expression {pattern[:60]!r} at {where} could take exponential time: {reason} "
            f"(install the regex package for a time limit instead: {_REGEX_INSTALL})"
        )

    def walk(items: Any, repeated: bool) -> None:
        for op, arg in items:
            if op in _BACKREFS:
                raise unsafe("it has a backreference")
            if op in _REPEATS:
                low, high, body = arg
                variable = low != high
                if variable:
                    quantifiers[0] += 1
                    if repeated:
                        raise unsafe("a quantifier is inside a repeated group")
                walk(body, repeated or high > 1)
            elif op is _C.BRANCH:
                if repeated:
                    raise unsafe("an alternation (|) is inside a repeated group")
                for branch in arg[1]:
                    walk(branch, repeated)
            elif op is _C.SUBPATTERN:
                walk(arg[-1], repeated)
            elif op in (_C.ASSERT, _C.ASSERT_NOT):
                walk(arg[1], repeated)
            elif op is _ATOMIC:
                walk(arg, repeated)

    walk(parsed, False)
    if quantifiers[0] > limits.max_regex_quantifiers:
        raise unsafe(
            f"it has {quantifiers[0]} quantifiers of variable count; the limit is {limits.max_regex_quantifiers}"
        )
