"""Compile the query AST to parameterised SQL for SQLite and PostgreSQL.

Documents are stored as JSON text (SQLite) or ``jsonb`` (PostgreSQL) in the tagged form of
:mod:`microdb.serialization`. Every node compiles to a :class:`Cond` holding *two* SQL
conditions:

``sure``
    true only for documents that certainly match (never a false positive);
``maybe``
    true for every document that may match (never a false negative).

Where SQL can say exactly what the Python engine says, both are the same and the condition
is *exact*. Where it cannot (a ``test(fn)``, a ``map`` step, a ``Decimal`` stored as a
tagged string, a regex PostgreSQL reads differently, a node this module does not know),
``maybe`` narrows the rows and the whole query runs again in Python
(:func:`microdb.query.compiler.predicate`) on the narrowed rows where ``sure`` is false.
Negation swaps the two (``NOT maybe`` is sure, ``NOT sure`` is maybe), and every operand of
``NOT`` is wrapped in ``COALESCE(..., FALSE)`` so SQL's three-valued logic never leaks:
``~(where('a') == 1)`` matches documents without ``a``, as in Python.

Dialect differences are data and a handful of small methods on :class:`Dialect` subclasses;
the per-node compiler (:class:`SQLCompiler`) never asks which engine it is talking to.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar

from microdb.query import ast
from microdb.query.values import KIND_RANK
from microdb.serialization import dumps, encode

__all__ = [
    "POSTGRES",
    "SQLITE",
    "Cond",
    "Dialect",
    "Frag",
    "PostgresDialect",
    "SQLCompiler",
    "SQLFilter",
    "SQLSort",
    "SQLiteDialect",
    "Term",
    "compile_filter",
    "compile_sort",
    "node_paths",
    "regex_match",
]

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
_INT64 = 2**63 - 1

_DIGITS = re.compile(r"[0-9]+\Z")


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


def _join(op: str, frags: Sequence[Frag]) -> Frag:
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


# ---------------------------------------------------------------------------------------
# Dialects
# ---------------------------------------------------------------------------------------

class Dialect:
    """What differs between SQL engines, as data and a few small builders."""

    name: ClassVar[str] = "sql"
    #: The placeholder of one parameter.
    param: ClassVar[str] = "?"
    true: ClassVar[str] = "1"
    false: ClassVar[str] = "0"
    #: kind -> the names the engine's JSON type function returns for it.
    type_names: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Whether ``jsonb @>`` containment (and a GIN index) can answer equality.
    containment: ClassVar[bool] = False
    #: Whether SELECT ... FOR UPDATE locks rows.
    row_locks: ClassVar[bool] = False
    #: ORDER BY for id order when an index may answer the filter. SQLite otherwise walks
    #: the whole table in rowid order to avoid a sort; ``+id`` lets it pick the index.
    id_order_indexed: ClassVar[str] = "id"

    def literal(self, text: str) -> str:
        """A string literal (constant text, so expression indexes can match it)."""
        return "'" + text.replace("'", "''") + "'"

    def term(self, base: str, path: ast.Path, root: bool) -> Term | None:
        """The value at ``path`` below ``base``, or ``None`` when SQL cannot address it."""
        raise NotImplementedError

    def type_of(self, t: Term) -> str:
        """SQL giving the JSON type name of the value, NULL when it is missing."""
        raise NotImplementedError

    def kind_is(self, t: Term, *kinds: str) -> Frag:
        """The value is of one of these kinds (JSON types only; tags are separate)."""
        names = [n for k in kinds for n in self.type_names[k]]
        if len(names) == 1:
            return Frag(f"{self.type_of(t)} = {self.literal(names[0])}")
        return Frag(f"{self.type_of(t)} IN ({', '.join(self.literal(n) for n in names)})")

    def exists(self, t: Term) -> Frag:
        """The path leads to a value."""
        return Frag(f"{self.type_of(t)} IS NOT NULL")

    def tagged(self, t: Term, tag: str) -> Frag:
        """The value may be a tagged rich value (an object with the key ``tag``)."""
        raise NotImplementedError

    def number_cmp(self, t: Term, op: str, operand: int | float) -> Frag | None:
        """A JSON number compared with ``operand`` (``None``: SQL cannot do it exactly)."""
        raise NotImplementedError

    def string_cmp(self, t: Term, op: str, operand: str) -> Frag:
        """A JSON string compared with ``operand`` by code point."""
        raise NotImplementedError

    def in_strings(self, t: Term, values: Sequence[str]) -> Frag:
        """The value is a string among ``values``."""
        raise NotImplementedError

    def bool_cmp(self, t: Term, op: str, operand: bool) -> Frag:
        """A JSON boolean compared with ``operand`` (``False < True``)."""
        raise NotImplementedError

    def contains(self, t: Term, value: Any) -> Frag | None:
        """Containment of ``{path: value}`` in the document, where the engine has it."""
        return None

    def regex(self, t: Term, node: ast.Regex) -> Frag | None:
        """The string value matches ``node`` exactly as Python would, or ``None``."""
        return None

    def array_length(self, t: Term) -> str:
        """SQL giving the length of an array value."""
        raise NotImplementedError

    def elements(self, t: Term, alias: str) -> tuple[str, str]:
        """``(FROM clause, element base)`` iterating the elements of an array value."""
        raise NotImplementedError

    def coalesce(self, frag: Frag) -> Frag:
        """``frag`` with NULL read as false (two-valued, for use under NOT)."""
        return Frag(f"COALESCE({frag.sql}, {self.false})", frag.params)

    # -- reading parts of documents (projection, distinct) ---------------------------------
    #: Whether the engine can return the exact JSON text of a part of a document.
    reads_text: ClassVar[bool] = True

    def addressable(self, key: Any) -> bool:
        """Whether SQL can read the object member ``key`` by name.

        Keys starting with ``$`` are refused: a document or object whose only key starts
        with ``$`` is stored wrapped (``{"$escape": ...}``), so SQL would look in the wrong place.
        """
        return isinstance(key, str) and not key.startswith("$") and '"' not in key and "\\" not in key

    def json_text(self, body: str, keys: Sequence[str]) -> str:
        """SQL giving the exact JSON text at ``keys`` in the stored text ``body`` (NULL when missing).

        Exact text, not the engine's reading of it: ``1.0`` stays a float and ``1e16`` is
        not turned into an integer, so decoding it in Python gives the value stored.
        """
        raise NotImplementedError

    def json_items(self, text: str, alias: str) -> tuple[str, str, str]:
        """``(FROM item, position, JSON text)`` for each element of the JSON array ``text``.

        ``text`` is SQL giving JSON text; callers use it only on arrays.
        """
        raise NotImplementedError

    # -- sorting -----------------------------------------------------------------------
    def rank(self, t: Term) -> str:
        """SQL giving the kind rank of :mod:`microdb.query.values` (0 when missing)."""
        raise NotImplementedError

    def sort_scalars(self, t: Term) -> list[str]:
        """SQL expressions ordering values inside the simple ranks (numbers, strings, bools)."""
        raise NotImplementedError

    def object_rank(self, keys_from: str, key: str) -> str:
        """A scalar subquery ranking an object by its single ``$`` tag (4 when untagged)."""
        whens = " ".join(f"WHEN min({key}) = {self.literal(tag)} THEN {rank}" for tag, rank in TAG_RANKS.items())
        return (
            f"(SELECT CASE WHEN count(*) <> 1 OR substr(min({key}), 1, 1) <> '$' THEN {KIND_RANK['object']} "
            f"{whens} ELSE {KIND_RANK['other']} END FROM {keys_from})"
        )


class SQLiteDialect(Dialect):
    """SQLite's JSON1 functions: ``json_type``/``json_extract`` on JSON text."""

    name = "sqlite"
    param = "?"
    true = "1"
    false = "0"
    id_order_indexed = "+id"
    type_names = {
        "null": ("null",),
        "number": ("integer", "real"),
        "string": ("text",),
        "bool": ("true", "false"),
        "array": ("array",),
        "object": ("object",),
    }

    def term(self, base: str, path: ast.Path, root: bool) -> Term | None:
        text = "$"
        literal = True
        dynamic: str | None = None  # set once the path is no longer a constant
        doubt: list[Frag] = []
        keys: list[str] | None = [] if root else None
        for step in path:
            if isinstance(step, ast.MapStep):
                return None
            if isinstance(step, bool):
                return None
            if isinstance(step, str):
                if step.startswith("$") or '"' in step or "\\" in step:
                    return None
                if _DIGITS.match(step):
                    # A digit step is a key of an object but a position in a list.
                    keys = None
                    current = dynamic if dynamic is not None else self.literal(text)
                    doubt.append(Frag(f"json_type({base}, {current} || '.\"$tuple\"') IS NOT NULL"))
                    dynamic = (
                        f"(CASE json_type({base}, {current}) WHEN 'array' THEN {current} || '[{int(step)}]' "
                        f"ELSE {current} || {self.literal(f'.{chr(34)}{step}{chr(34)}')} END)"
                    )
                    literal = False
                    continue
                piece = f'."{step}"'
                if keys is not None:
                    keys.append(step)
            else:
                keys = None
                current = dynamic if dynamic is not None else self.literal(text)
                doubt.append(Frag(f"json_type({base}, {current} || '.\"$tuple\"') IS NOT NULL"))
                piece = f"[{step}]" if step >= 0 else f"[#{step}]"
            if dynamic is not None:
                dynamic = f"({dynamic} || {self.literal(piece)})"
            else:
                text += piece
        path_sql = dynamic if dynamic is not None else self.literal(text)
        return Term(
            base=base, path=path_sql, json="", keys=tuple(keys) if keys is not None else None,
            literal=literal and root, doubt=_join("OR", doubt) if doubt else None,
        )

    def _with(self, t: Term, suffix: str) -> str:
        if t.path.startswith("'") and t.path.endswith("'") and t.literal:
            return t.path[:-1] + suffix.replace("'", "''") + "'"
        return f"({t.path} || {self.literal(suffix)})"

    def type_of(self, t: Term) -> str:
        return f"json_type({t.base}, {t.path})"

    def value_of(self, t: Term) -> str:
        """SQL giving the value (numbers and text as SQL values, containers as JSON text)."""
        return f"json_extract({t.base}, {t.path})"

    def tagged(self, t: Term, tag: str) -> Frag:
        # ``> ''`` rather than ``IS NOT NULL`` lets SQLite answer an OR with two indexes.
        return Frag(f"json_extract({t.base}, {self._with(t, f'.{chr(34)}{tag}{chr(34)}')}) > ''")

    def number_cmp(self, t: Term, op: str, operand: int | float) -> Frag | None:
        if isinstance(operand, int) and not -_INT64 <= operand <= _INT64:
            return None
        return Frag(
            f"({self.value_of(t)} {ast.COMPARE_OPS[op].replace('==', '=')} ? AND {self.kind_is(t, 'number').sql})",
            (operand,),
        )

    def string_cmp(self, t: Term, op: str, operand: str) -> Frag:
        return Frag(
            f"({self.value_of(t)} {ast.COMPARE_OPS[op].replace('==', '=')} ? AND {self.kind_is(t, 'string').sql})",
            (operand,),
        )

    def bool_cmp(self, t: Term, op: str, operand: bool) -> Frag:
        if op == "eq":
            return Frag(f"{self.type_of(t)} = {self.literal('true' if operand else 'false')}")
        return Frag(
            f"({self.value_of(t)} {ast.COMPARE_OPS[op]} ? AND {self.kind_is(t, 'bool').sql})", (int(operand),)
        )

    def in_strings(self, t: Term, values: Sequence[str]) -> Frag:
        marks = ", ".join("?" for _ in values)
        return Frag(f"({self.value_of(t)} IN ({marks}) AND {self.kind_is(t, 'string').sql})", tuple(values))

    def regex(self, t: Term, node: ast.Regex) -> Frag | None:
        return Frag(
            f"({self.kind_is(t, 'string').sql} AND microdb_regexp(?, ?, ?, {self.value_of(t)}))",
            (node.pattern, node.flags, node.mode),
        )

    def array_length(self, t: Term) -> str:
        return f"json_array_length({t.base}, {t.path})"

    def elements(self, t: Term, alias: str) -> tuple[str, str]:
        # The element's own path (``fullkey``) addresses it inside the same document.
        return f"json_each({t.base}, {t.path}) AS {alias}", f"{alias}.fullkey"

    def element_term(self, base: str, elem_path: str, path: ast.Path) -> Term | None:
        """The value at ``path`` below an element whose JSON path is the SQL ``elem_path``."""
        inner = self.term(base, path, root=False)
        if inner is None:
            return None
        suffix = inner.path
        if inner.doubt is not None:
            return None  # a position step below an element: let Python decide
        # Re-root the relative path at the element: replace the leading '$'.
        if suffix.startswith("'$"):
            rel = "'" + suffix[2:]
            new_path = f"({elem_path} || {rel})" if rel != "''" else elem_path
        else:
            return None  # a dynamic relative path: keep it simple, let Python decide
        return Term(base=base, path=new_path, json="", keys=None, literal=False, doubt=inner.doubt)

    # ``->`` (SQLite 3.38) returns the JSON text of a part; json_extract would turn numbers
    # into SQL values and lose their exact form.
    reads_text = sqlite3.sqlite_version_info >= (3, 38, 0)

    def _key_path(self, keys: Sequence[str]) -> str:
        return self.literal("$" + "".join(f'."{k}"' for k in keys))

    def json_text(self, body: str, keys: Sequence[str]) -> str:
        return f"({body} -> {self._key_path(keys)})"

    def json_items(self, text: str, alias: str) -> tuple[str, str, str]:
        # The element's own text by its path: ``value`` would give numbers as SQL values.
        return f"json_each({text}) AS {alias}", f"{alias}.key", f"({text} -> {alias}.fullkey)"

    def rank(self, t: Term) -> str:
        typ = self.type_of(t)
        obj = self.object_rank(f"json_each({t.base}, {t.path})", "key")
        return (
            f"(CASE {typ} WHEN 'null' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 "
            f"WHEN 'array' THEN 5 WHEN 'true' THEN 8 WHEN 'false' THEN 8 WHEN 'object' THEN {obj} ELSE 0 END)"
        )

    def sort_scalars(self, t: Term) -> list[str]:
        typ = self.type_of(t)
        dec = self._with(t, '."$decimal"')
        return [
            f"(CASE WHEN {typ} IN ('integer', 'real', 'text', 'true', 'false') THEN {self.value_of(t)} "
            f"WHEN {typ} = 'object' AND json_type({t.base}, {dec}) = 'text' "
            f"AND (SELECT count(*) FROM json_each({t.base}, {t.path})) = 1 "
            f"THEN CAST(json_extract({t.base}, {dec}) AS REAL) END)"
        ]


class PostgresDialect(Dialect):
    """PostgreSQL's ``jsonb`` operators, GIN containment and type-guarded expressions."""

    name = "postgresql"
    param = "%s"
    true = "TRUE"
    false = "FALSE"
    containment = True
    row_locks = True
    type_names = {
        "null": ("null",),
        "number": ("number",),
        "string": ("string",),
        "bool": ("boolean",),
        "array": ("array",),
        "object": ("object",),
    }

    def literal(self, text: str) -> str:
        # psycopg reads % as a placeholder even inside literals.
        return "'" + text.replace("'", "''").replace("%", "%%") + "'"

    def term(self, base: str, path: ast.Path, root: bool) -> Term | None:
        expr = base
        doubt: list[Frag] = []
        keys: list[str] | None = [] if root else None
        for step in path:
            if isinstance(step, ast.MapStep) or isinstance(step, bool):
                return None
            if isinstance(step, str):
                if step.startswith("$"):
                    return None
                if _DIGITS.match(step):
                    keys = None
                    doubt.append(Frag(f"({expr} ? '$tuple')"))
                    # ``#>`` reads a digit step as a key of an object and a position in an
                    # array; a scalar would be read as a one-element array, hence the guard.
                    expr = (
                        f"(CASE WHEN jsonb_typeof({expr}) IN ('array', 'object') "
                        f"THEN {expr} #> {self.literal('{' + json.dumps(step) + '}')} END)"
                    )
                    continue
                if keys is not None:
                    keys.append(step)
                expr = f"({expr} -> {self.literal(step)})"
            else:
                keys = None
                doubt.append(Frag(f"({expr} ? '$tuple')"))
                expr = f"(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} -> {int(step)} END)"
        return Term(
            base=base, path="", json=expr, keys=tuple(keys) if keys is not None else None,
            literal=root, doubt=_join("OR", doubt) if doubt else None,
        )

    def type_of(self, t: Term) -> str:
        return f"jsonb_typeof({t.json})"

    def exists(self, t: Term) -> Frag:
        return Frag(f"({t.json} IS NOT NULL)")

    def number_expr(self, t: Term) -> str:
        """The type-guarded numeric value (the expression a range index is built on)."""
        return f"(CASE WHEN jsonb_typeof({t.json}) = 'number' THEN ({t.json})::numeric END)"

    def string_expr(self, t: Term) -> str:
        """The type-guarded text value, compared by code point (an index expression too)."""
        return f"(CASE WHEN jsonb_typeof({t.json}) = 'string' THEN ({t.json} #>> '{{}}') COLLATE \"C\" END)"

    def tagged(self, t: Term, tag: str) -> Frag:
        if t.keys is not None and t.literal and t.indexed:
            # ``@?`` with a constant path is answered by the GIN index on the document.
            jp = "$" + "".join("." + json.dumps(k) for k in t.keys) + "." + json.dumps(tag)
            return Frag(f"({t.base} @? {self.literal(jp)})")
        return Frag(f"({t.json} ? {self.literal(tag)})")

    def number_cmp(self, t: Term, op: str, operand: int | float) -> Frag | None:
        # Floats travel as their shortest repr, exactly as they were written into the JSON.
        value = Decimal(repr(operand)) if isinstance(operand, float) else Decimal(operand)
        return Frag(f"({self.number_expr(t)} {ast.COMPARE_OPS[op].replace('==', '=')} %s::numeric)", (value,))

    def string_cmp(self, t: Term, op: str, operand: str) -> Frag:
        return Frag(f"({self.string_expr(t)} {ast.COMPARE_OPS[op].replace('==', '=')} %s)", (operand,))

    def in_strings(self, t: Term, values: Sequence[str]) -> Frag:
        marks = ", ".join("%s" for _ in values)
        return Frag(f"({self.string_expr(t)} IN ({marks}))", tuple(values))

    def bool_cmp(self, t: Term, op: str, operand: bool) -> Frag:
        guarded = f"(CASE WHEN jsonb_typeof({t.json}) = 'boolean' THEN ({t.json})::boolean END)"
        return Frag(f"({guarded} {ast.COMPARE_OPS[op].replace('==', '=')} %s)", (operand,))

    def contains(self, t: Term, value: Any) -> Frag | None:
        if t.keys is None or not t.keys or not t.literal or not t.indexed:
            return None
        doc: Any = encode(value)
        for key in reversed(t.keys):
            doc = {key: doc}
        return Frag(f"({t.base} @> %s::jsonb)", (dumps(doc),))

    def regex(self, t: Term, node: ast.Regex) -> Frag | None:
        translated = _posix_regex(node.pattern, node.flags)
        if translated is None:
            return None
        if node.mode == "match":
            translated = f"^(?:{translated})"
        elif node.mode == "fullmatch":
            translated = f"^(?:{translated})$"
        return Frag(f"(({t.json} #>> '{{}}') ~ %s AND jsonb_typeof({t.json}) = 'string')", (translated,))

    def array_length(self, t: Term) -> str:
        return f"jsonb_array_length({t.json})"

    def elements(self, t: Term, alias: str) -> tuple[str, str]:
        return f"jsonb_array_elements({t.json}) AS {alias}(v)", f"{alias}.v"

    def element_term(self, base: str, elem: str, path: ast.Path) -> Term | None:
        """The value at ``path`` below the element ``elem``."""
        return self.term(elem, path, root=False)

    def _json_at(self, body: str, keys: Sequence[str]) -> str:
        # ``json`` (not ``jsonb``) keeps the text as written: jsonb reads 1e16 as an integer.
        expr = f"({body}::json)"
        for key in keys:
            expr = f"({expr} -> {self.literal(key)})"
        return expr

    def json_text(self, body: str, keys: Sequence[str]) -> str:
        return f"({self._json_at(body, keys)})::text"

    def json_items(self, text: str, alias: str) -> tuple[str, str, str]:
        value = f"({text})::json"
        # json_array_elements raises on anything but an array, and the planner may call it
        # before the caller's filter has dropped the other rows.
        source = f"CASE WHEN json_typeof({value}) = 'array' THEN {value} ELSE '[]'::json END"
        return (f"json_array_elements({source}) WITH ORDINALITY AS {alias}(v, n)", f"{alias}.n",
                f"{alias}.v::text")

    def rank(self, t: Term) -> str:
        obj = self.object_rank(f"jsonb_object_keys({t.json}) AS k(k)", "k.k")
        return (
            f"(CASE jsonb_typeof({t.json}) WHEN 'null' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3 "
            f"WHEN 'array' THEN 5 WHEN 'boolean' THEN 8 WHEN 'object' THEN {obj} ELSE 0 END)"
        )

    def sort_scalars(self, t: Term) -> list[str]:
        dec = (
            f"WHEN jsonb_typeof({t.json}) = 'object' AND ({t.json} ? '$decimal') "
            f"AND (SELECT count(*) FROM jsonb_object_keys({t.json})) = 1 "
            f"AND jsonb_typeof({t.json} -> '$decimal') = 'string' THEN ({t.json} ->> '$decimal')::numeric"
        )
        return [
            f"(CASE WHEN jsonb_typeof({t.json}) = 'number' THEN ({t.json})::numeric {dec} END)",
            self.string_expr(t),
            f"(CASE WHEN jsonb_typeof({t.json}) = 'boolean' THEN ({t.json})::boolean END)",
        ]


SQLITE = SQLiteDialect()
POSTGRES = PostgresDialect()


# PostgreSQL's regular expressions (ARE) and Python's agree on a common core only; anything
# outside it is narrowed to strings in SQL and matched by Python's ``re``.
_ARE_SPECIAL = set(".[]()*+?{}|^$\\")


def _posix_regex(pattern: str, flags: int) -> str | None:
    """``pattern`` as an ARE meaning exactly what Python means, or ``None``."""
    if flags & ~re.UNICODE:
        return None
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                return None
            nxt = pattern[i + 1]
            if nxt.isascii() and not nxt.isalnum() and nxt not in "\n ":
                out.append("\\" + nxt)
                i += 2
                continue
            return None
        if ch == ".":
            out.append("[^\n]")
        elif ch == "^":
            if i != 0:
                return None
            out.append("^")
        elif ch == "$":
            return None
        elif ch == "(":
            if pattern.startswith("(?", i):
                return None
            out.append("(")
        elif ch in ")|*+?":
            out.append(ch)
        elif ch == "{":
            m = re.match(r"\{(\d+)(,(\d*))?\}", pattern[i:])
            if m is None or (out and out[-1] in ("(", "|")) or not out:
                return None
            out.append(m.group(0))
            i += len(m.group(0))
            continue
        elif ch == "}":
            return None
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[^", i) else i + 1)
            if end < 0:
                return None
            body = pattern[i + 1:end]
            if "\\" in body or "[" in body or not body or body == "^":
                return None
            out.append("[" + body + "]")
            i = end + 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SQLFilter:
    """A compiled query: ``where`` narrows rows, ``sure`` marks rows needing no Python check."""

    where: Frag
    sure: Frag
    exact: bool
    #: The node Python must check on rows where ``sure`` is false (``None`` when exact).
    residual: ast.Node | None

    @property
    def pushed(self) -> bool:
        """Whether SQL narrows the rows at all."""
        return self.where.sql not in ("1", "TRUE")




class SQLCompiler:
    """Compiles nodes for one dialect; one handler per node type (unknown nodes go to Python)."""

    handlers: ClassVar[dict[type, str]] = {
        ast.Const: "_const",
        ast.And: "_and",
        ast.Or: "_or",
        ast.Not: "_not",
        ast.Compare: "_compare",
        ast.Exists: "_exists",
        ast.Regex: "_regex",
        ast.OneOf: "_one_of",
        ast.AnyOf: "_any_of",
        ast.AllOf: "_all_of",
        ast.ElemMatch: "_elem_match",
        ast.Fragment: "_fragment",
        ast.Size: "_size",
        ast.TypeIs: "_guarded",
        ast.Mod: "_mod",
        ast.Test: "_guarded",
    }

    def __init__(self, dialect: Dialect, doc: str = "doc", indexed: frozenset[ast.Path] = frozenset()):
        self.d = dialect
        self.doc = doc
        self.indexed = indexed
        self._alias = 0
        self.TRUE = Frag(dialect.true)
        self.FALSE = Frag(dialect.false)

    # -- helpers ------------------------------------------------------------------------
    def exact(self, frag: Frag) -> Cond:
        return Cond(frag, frag, True)

    def unknown(self, maybe: Frag | None = None) -> Cond:
        """Python decides; SQL only narrows to ``maybe``."""
        return Cond(self.FALSE, maybe if maybe is not None else self.TRUE, False)

    def and_(self, frags: Sequence[Frag]) -> Frag:
        items = [f for f in frags if f.sql != self.TRUE.sql]
        if any(f.sql == self.FALSE.sql for f in items):
            return self.FALSE
        if not items:
            return self.TRUE
        return items[0] if len(items) == 1 else _join("AND", items)

    def or_(self, frags: Sequence[Frag]) -> Frag:
        items = [f for f in frags if f.sql != self.FALSE.sql]
        if any(f.sql == self.TRUE.sql for f in items):
            return self.TRUE
        if not items:
            return self.FALSE
        return items[0] if len(items) == 1 else _join("OR", items)

    def not_(self, frag: Frag) -> Frag:
        if frag.sql == self.TRUE.sql:
            return self.FALSE
        if frag.sql == self.FALSE.sql:
            return self.TRUE
        c = self.d.coalesce(frag)
        return Frag(f"(NOT {c.sql})", c.params)

    def term(self, path: ast.Path, base: str, root: bool) -> Term | None:
        if root:
            t = self.d.term(base, path, True)
            if t is not None and path in self.indexed:
                t = replace(t, indexed=True)
            return t
        return self.d.element_term(self.doc, base, path)  # type: ignore[attr-defined,no-any-return]

    def with_doubt(self, t: Term, cond: Cond) -> Cond:
        """Widen ``cond`` where a tuple step makes the JSON layout differ from Python's."""
        if t.doubt is None:
            return cond
        return Cond(self.and_([cond.sure, self.not_(t.doubt)]), self.or_([cond.maybe, t.doubt]), False)

    # -- entry point ----------------------------------------------------------------------
    def cond(self, node: ast.Node, base: str | None = None, root: bool = True) -> Cond:
        """Compile ``node`` against the document (or an element, when ``root`` is false)."""
        name = self.handlers.get(type(node))
        if name is None:
            return self.unknown()
        handler = getattr(self, name)
        return handler(node, self.doc if base is None else base, root)  # type: ignore[no-any-return]

    # -- combinators ----------------------------------------------------------------------
    def _const(self, node: ast.Const, base: str, root: bool) -> Cond:
        return self.exact(self.TRUE if node.truth else self.FALSE)

    def _and(self, node: ast.And, base: str, root: bool) -> Cond:
        parts = [self.cond(n, base, root) for n in node.items]
        return Cond(self.and_([p.sure for p in parts]), self.and_([p.maybe for p in parts]),
                    all(p.exact for p in parts))

    def _or(self, node: ast.Or, base: str, root: bool) -> Cond:
        parts = [self.cond(n, base, root) for n in node.items]
        return Cond(self.or_([p.sure for p in parts]), self.or_([p.maybe for p in parts]),
                    all(p.exact for p in parts))

    def _not(self, node: ast.Not, base: str, root: bool) -> Cond:
        inner = self.cond(node.item, base, root)
        if inner.exact:
            return self.exact(self.not_(inner.sure))
        return Cond(self.not_(inner.maybe), self.not_(inner.sure), False)

    # -- leaves ---------------------------------------------------------------------------
    def _exists(self, node: ast.Exists, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        return self.with_doubt(t, self.exact(self.d.exists(t)))

    def _compare(self, node: ast.Compare, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        if node.op == "ne":
            eq = self.compare(t, "eq", node.operand)
            present = self.d.exists(t)
            cond = Cond(
                self.and_([present, self.not_(eq.maybe)]),
                self.and_([present, self.not_(eq.sure)]),
                eq.exact,
            )
        else:
            cond = self.compare(t, node.op, node.operand)
        return self.with_doubt(t, cond)

    def compare(self, t: Term, op: str, operand: Any) -> Cond:
        """``value OP operand`` under the rules of :mod:`microdb.query.values` (op is not ``ne``)."""
        d = self.d
        typ = type(operand)
        if operand is None:
            return self.exact(d.kind_is(t, "null") if op == "eq" else self.FALSE)
        if typ is bool:
            if op == "eq" and d.containment:
                found = d.contains(t, operand)
                if found is not None:
                    return self.exact(found)
            return self.exact(d.bool_cmp(t, op, operand))
        if typ is str:
            if op == "eq" and d.containment:
                found = d.contains(t, operand)
                if found is not None:
                    return self.exact(found)
            return self.exact(d.string_cmp(t, op, operand))
        if typ in (int, float):
            if typ is float and not math.isfinite(operand):
                if operand != operand:
                    return self.exact(self.FALSE)
                return self.unknown(self.or_([d.kind_is(t, "number"), d.tagged(t, "$decimal")]))
            sure: Frag | None = None
            if op == "eq" and d.containment:
                sure = d.contains(t, operand)
            if sure is None:
                sure = d.number_cmp(t, op, operand)
            if sure is None:
                return self.unknown(self.or_([d.kind_is(t, "number"), d.tagged(t, "$decimal")]))
            # A Decimal is stored as a tagged string: SQL finds it, Python compares it.
            return Cond(sure, self.or_([sure, d.tagged(t, "$decimal")]), False)
        if typ is Decimal:
            return self.unknown(self.or_([d.kind_is(t, "number"), d.tagged(t, "$decimal")]))
        return self.unknown(self.kind_guard(t, operand))

    def kind_guard(self, t: Term, operand: Any) -> Frag:
        """Rows whose value may be of the same kind as ``operand``."""
        d = self.d
        if isinstance(operand, (list, tuple, set, frozenset)):
            return self.or_([d.kind_is(t, "array")] + [d.tagged(t, tag) for tag in ARRAY_TAGS])
        if isinstance(operand, dict):
            return d.kind_is(t, "object")
        for tag, cls_name in (("$datetime", "datetime"), ("$date", "date"), ("$time", "time"),
                              ("$timedelta", "timedelta"), ("$uuid", "UUID"), ("$bytes", "bytes")):
            if type(operand).__name__ == cls_name:
                return d.tagged(t, tag)
        return d.kind_is(t, "object")

    def _regex(self, node: ast.Regex, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        found = self.d.regex(t, node)
        if found is None:
            return self.with_doubt(t, self.unknown(self.d.kind_is(t, "string")))
        return self.with_doubt(t, self.exact(found))

    def _one_of(self, node: ast.OneOf, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        values = node.values
        if values and all(type(v) is str for v in values):
            return self.with_doubt(t, self.exact(self.d.in_strings(t, values)))
        parts = [self.compare(t, "eq", v) for v in values]
        cond = Cond(self.or_([p.sure for p in parts]), self.or_([p.maybe for p in parts]), all(p.exact for p in parts))
        return self.with_doubt(t, cond)

    def _array(self, t: Term) -> tuple[Frag, Frag]:
        """(is a JSON array, may be a tagged tuple or set)."""
        return self.d.kind_is(t, "array"), self.or_([self.d.tagged(t, tag) for tag in ARRAY_TAGS])

    def _elements(self, t: Term, elem_cond: Callable[[str], Cond], every: bool = False) -> Cond:
        """Some (or, with ``every``, each) element of the array at ``t`` satisfies ``elem_cond``."""
        self._alias += 1
        alias = f"e{self._alias}"
        from_, elem = self.d.elements(t, alias)
        inner = elem_cond(elem)
        is_array, tagged = self._array(t)

        def over(frag: Frag) -> Frag:
            if every:
                bad = self.not_(frag)
                test = f"NOT EXISTS (SELECT 1 FROM {from_} WHERE {bad.sql})"
                params = bad.params
            else:
                if frag.sql == self.FALSE.sql:
                    return self.FALSE
                test, params = f"EXISTS (SELECT 1 FROM {from_} WHERE {frag.sql})", frag.params
            # Only arrays are iterated: json_each/jsonb_array_elements of a scalar misbehave.
            return self.and_([is_array, Frag(f"(CASE WHEN {is_array.sql} THEN {test} END)", is_array.params + params)])

        sure, maybe = over(inner.sure), over(inner.maybe)
        # A tuple or set is a tagged object in JSON: found by SQL, decided by Python.
        return Cond(sure, self.or_([maybe, tagged]), False)

    def _any_of(self, node: ast.AnyOf, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        if isinstance(node.cond, ast.Node):
            sub = node.cond
            return self.with_doubt(t, self._elements(t, lambda e: self.cond(sub, e, False)))
        values = node.cond

        def elem(e: str) -> Cond:
            et = self.term((), e, False)
            if et is None:
                return self.unknown()
            parts = [self.compare(et, "eq", v) for v in values]
            return Cond(self.or_([p.sure for p in parts]), self.or_([p.maybe for p in parts]), all(p.exact for p in parts))

        generic = self._elements(t, elem)
        if self.d.containment and t.keys and t.literal and t.indexed and values and all(
            v is None or type(v) in (str, bool) or (type(v) in (int, float) and math.isfinite(v)) for v in values
        ):
            # ``doc @> {"tags": [v]}``: answered by the GIN index.
            found = [self.d.contains(t, [v]) for v in values]
            sure = self.or_([f for f in found if f is not None])
            if not any(type(v) in (int, float) for v in values):
                _, tagged = self._array(t)
                return Cond(sure, self.or_([sure, tagged]), False)
            return Cond(sure, self.or_([sure, generic.maybe]), False)
        return self.with_doubt(t, generic)

    def _all_of(self, node: ast.AllOf, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        if isinstance(node.cond, ast.Node):
            sub = node.cond
            return self.with_doubt(t, self._elements(t, lambda e: self.cond(sub, e, False), every=True))
        values = node.cond
        if not values:
            is_array, tagged = self._array(t)
            return self.with_doubt(t, Cond(is_array, self.or_([is_array, tagged]), False))
        parts = [self._any_of(ast.AnyOf(node.path, (v,)), base, root) for v in values]
        return Cond(self.and_([p.sure for p in parts]), self.and_([p.maybe for p in parts]), False)

    def _elem_match(self, node: ast.ElemMatch, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        sub = node.cond
        return self.with_doubt(t, self._elements(t, lambda e: self.cond(sub, e, False)))

    def _fragment(self, node: ast.Fragment, base: str, root: bool) -> Cond:
        if any(not isinstance(k, str) or k.startswith("$") for k in node.fragment):
            return self.unknown()
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        parts = [self.cond(ast.Compare(node.path + (k,), "eq", v), base, root) for k, v in node.fragment.items()]
        is_object = self.d.kind_is(t, "object")
        if not parts:
            return self.with_doubt(t, Cond(self.FALSE, is_object, False))
        return self.with_doubt(t, Cond(
            self.and_([is_object] + [p.sure for p in parts]),
            self.and_([is_object] + [p.maybe for p in parts]),
            all(p.exact for p in parts),
        ))

    def _size(self, node: ast.Size, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None or type(node.size) is not int:
            return self.unknown()
        is_array = self.d.kind_is(t, "array")
        sure = self.and_([is_array, Frag(
            f"(CASE WHEN {is_array.sql} THEN {self.d.array_length(t)} END) = {self.d.param}", (node.size,)
        )])
        return self.with_doubt(t, Cond(sure, self.or_([sure, self.d.tagged(t, "$tuple")]), False))

    def _mod(self, node: ast.Mod, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        return self.unknown(self.or_([self.d.kind_is(t, "number"), self.d.tagged(t, "$decimal")]))

    def _guarded(self, node: Any, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None or t.doubt is not None:
            return self.unknown()
        return self.unknown(self.d.exists(t))


def node_paths(node: ast.Node | None) -> set[ast.Path]:
    """Every path a query tests, at any depth (used to tell whether an index may help)."""
    out: set[ast.Path] = set()
    if node is None:
        return out
    path = getattr(node, "path", None)
    if isinstance(path, tuple):
        out.add(path)
    if isinstance(node, ast.Fragment):
        out.update(path + (k,) for k in node.fragment if isinstance(path, tuple))
    for child in node.children():
        out.update(node_paths(child))
    return out


def compile_filter(
    node: ast.Node | None, dialect: Dialect, doc: str = "doc", indexed: frozenset[ast.Path] = frozenset()
) -> SQLFilter:
    """Compile a query (``None``: every document) to SQL plus the part Python must check.

    ``indexed`` names the paths that have an index, where the dialect picks its SQL form
    by that (PostgreSQL answers equality on them with GIN containment).
    """
    compiler = SQLCompiler(dialect, doc, indexed)
    if node is None:
        return SQLFilter(compiler.TRUE, compiler.TRUE, True, None)
    cond = compiler.cond(node)
    if cond.exact:
        return SQLFilter(cond.maybe, cond.maybe, True, None)
    return SQLFilter(cond.maybe, cond.sure, False, node)


@dataclass(frozen=True)
class SQLSort:
    """ORDER BY for a plan's sort keys, and the SQL rank columns used to fix up ties."""

    order_by: str
    #: per key: the rank column and the scalar columns (selected, to find tied rows)
    columns: tuple[tuple[str, ...], ...]
    paths: tuple[ast.Path, ...]
    reverse: tuple[bool, ...]


def compile_sort(keys: Sequence[Any], dialect: Dialect, doc: str = "doc") -> SQLSort | None:
    """ORDER BY for sort keys on paths, or ``None`` when one needs Python (a key function)."""
    columns: list[tuple[str, ...]] = []
    order: list[str] = []
    paths: list[ast.Path] = []
    for key in keys:
        if key.func is not None or key.path is None:
            return None
        t = dialect.term(doc, key.path, True)
        if t is None or t.doubt is not None:
            return None
        cols = (dialect.rank(t), *dialect.sort_scalars(t))
        direction = " DESC" if key.reverse else ""
        order.extend(c + direction for c in cols)
        columns.append(cols)
        paths.append(key.path)
    order.append("id")
    return SQLSort(", ".join(order), tuple(columns), tuple(paths), tuple(k.reverse for k in keys))
