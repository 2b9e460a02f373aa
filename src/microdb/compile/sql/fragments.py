"""The pieces compiled SQL is made of: fragments with parameters, two-sided conditions, terms.

Also the tags of :mod:`microdb.serialization` as SQL sees them, and the regex function
SQLite calls back into Python for."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from microdb.query.values import KIND_RANK

#: Tags of :mod:`microdb.serialization` and the kind rank (:mod:`microdb.query.values`) of
#: the value each stands for; any other single ``$`` key is a user type ("other").
TAG_RANKS: dict[str, int] = {
    "$decimal": KIND_RANK["number"],
    "$tuple": KIND_RANK["array"],
    "$set": KIND_RANK["array"],
    "$frozenset": KIND_RANK["array"],
    "$bytes": KIND_RANK["bytes"],
    "$uuid": KIND_RANK["uuid"],
    "$datetime": KIND_RANK["datetime"],
    "$date": KIND_RANK["date"],
    "$time": KIND_RANK["time"],
    "$timedelta": KIND_RANK["timedelta"],
    "$escape": KIND_RANK["object"],
}
ARRAY_TAGS = ("$tuple", "$set", "$frozenset")
#: Ranks whose order inside the rank SQL does not reproduce (objects, arrays, rich types):
#: rows tied on the SQL sort key with one of these are re-sorted in Python.
COMPLEX_RANKS = frozenset(
    KIND_RANK[k] for k in ("object", "array", "bytes", "uuid", "datetime", "date", "time", "timedelta", "other")
)
#: Ints SQLite holds exactly (64-bit); larger ones compare in Python.
INT64 = 2**63 - 1

DIGITS = re.compile(r"[0-9]+\Z")
#: Characters no SQL engine addresses a key by: SQLite matches JSON path labels against the
#: escaped text of the key (so ``'a\nb'`` never matches) and PostgreSQL's text refuses NUL.
#: A path holding one is evaluated by Python.
UNADDRESSABLE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Frag:
    """A piece of SQL and the parameters its placeholders take, in order."""

    sql: str
    params: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return self.sql


@dataclass(frozen=True)
class Cond:
    """A node compiled: ``sure`` implies a match, a match implies ``maybe``."""

    sure: Frag
    maybe: Frag
    exact: bool


@dataclass(frozen=True)
class Term:
    """Where a value lives in SQL: the value at a path below a base (a document or an element).

    SQLite: ``base`` is the JSON text, ``path`` a SQL expression giving the JSON path.
    PostgreSQL: ``path`` is unused and ``json`` is the ``jsonb`` value at the path.
    ``keys`` is the plain key path from the document root (for containment), else ``None``;
    ``literal`` says the expression is a constant text an expression index can match;
    ``doubt`` is true where the JSON layout differs from Python's (a tuple step).
    """

    base: str
    path: str
    json: str
    keys: tuple[str, ...] | None
    literal: bool
    doubt: Frag | None = None
    #: The path has a MicroDB index (PostgreSQL then uses its GIN index for containment).
    indexed: bool = False


def join_frags(op: str, frags: Sequence[Frag]) -> Frag:
    return Frag("(" + f" {op} ".join(f.sql for f in frags) + ")", tuple(p for f in frags for p in f.params))


def regex_match(pattern: str, flags: int, mode: str, value: Any) -> bool:
    """Python's ``re`` semantics for SQLite's registered regex function."""
    if not isinstance(value, str):
        return False
    compiled = _regex_cache.get((pattern, flags))
    if compiled is None:
        if len(_regex_cache) > 256:
            _regex_cache.clear()
        compiled = _regex_cache[(pattern, flags)] = re.compile(pattern, flags)
    return getattr(compiled, mode)(value) is not None


_regex_cache: dict[tuple[str, int], re.Pattern[str]] = {}
