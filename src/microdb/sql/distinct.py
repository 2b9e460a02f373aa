"""``distinct`` in the SQL engine: SQL groups values, Python follows arrays of sub-documents."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import Any

from microdb import serialization
from microdb.backend import Plan
from microdb.compile.python import predicate
from microdb.compile.sql import Frag, SQLCompiler
from microdb.query import ast
from microdb.query.values import distinct_values, reach, sort_key, values_equal
from microdb.serialization import decode, dumps, encode, loads
from microdb.sql.reads import SQLReads
from microdb.sql.rows import decode_doc
from microdb.sql.schema import TableInfo
from microdb.sql.session import Session
from microdb.sql.steps import Steps, Stream, Work


class SQLDistinct(SQLReads):
    """The part of :class:`~microdb.sql.backend.SQLBackend` that answers ``distinct``."""

    def distinct(self, table: str, plan: Plan, path: ast.Path) -> list[Any]:
        """The distinct values at ``path`` (see :func:`microdb.results.distinct_values`), in SQL.

        SQL groups the values of the rows where the path meets no array of sub-documents
        (one row per distinct JSON text, with where it first occurs); Python reaches into
        the others, checks rows the filter left undecided, and merges everything in
        document order, so the value kept for ``1`` and ``1.0`` is the first one met, as in
        memory. A page (``skip``/``limit``), ids, position steps and registered types run
        in Python on the one field the path starts with.
        """
        with self._op() as s:
            return self._drive(s, self.distinct_steps(s, table, plan, path))

    def distinct_steps(self, s: Session, table: str, plan: Plan, path: ast.Path) -> Steps[list[Any]]:
        """:meth:`distinct` as steps."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return []
        if self._distinct_in_sql(plan, path):
            found = yield from self._distinct_sql(info, plan, path)
            if found is not None:
                return found
        head = dataclasses.replace(plan, fields=(path[:1],), exclude=False)
        rows, _ = yield from self._rows_steps(s, info, head)
        return (yield Work(_distinct_of, (rows, path), len(rows)))  # type: ignore[no-any-return]

    def _distinct_in_sql(self, plan: Plan, path: ast.Path) -> bool:
        d = self.dialect
        return (
            d.reads_text and plan.doc_ids is None and not plan.skip and plan.limit is None
            and all(d.addressable(k) and not _DIGITS.match(str(k)) for k in path)
            # A registered dict, list or tuple subclass is walked into by MongoDB's rules,
            # but SQL sees a tagged object there.
            and not any(issubclass(cls, (dict, list, tuple)) for cls in serialization._user_types)
        )

    def _distinct_sql(self, info: TableInfo, plan: Plan, path: ast.Path) -> Steps[list[Any] | None]:
        """Distinct values with SQL doing the grouping; ``None`` when Python must redo it.

        One statement (so one snapshot) returns two kinds of rows: ``(id, position, text,
        NULL, NULL)``, the first occurrence of each distinct JSON text among rows SQL
        reads alone; and ``(id, NULL, NULL, document or NULL, head field)``, rows whose
        path crosses an array or a tuple (Python follows it) or that the filter left to
        Python (their document is read, to check them).
        """
        d = self.dialect
        c = SQLCompiler(d)
        f = self._filter(info, plan.node)
        keys = tuple(str(k) for k in path)
        body = self.body_column
        terms = [d.term("doc", keys[:i], True) for i in range(1, len(keys) + 1)]
        if any(t is None or t.doubt is not None for t in terms):
            return None
        leaf = terms[-1]
        assert leaf is not None
        # Where MongoDB's rules fan out: an array (or a tuple) above the leaf, a tuple as
        # the leaf (its items count one by one, and SQL sees an object).
        deep = c.or_(
            [d.coalesce(d.kind_is(t, "array")) for t in terms[:-1] if t is not None]
            + [d.coalesce(d.tagged(t, "$tuple")) for t in terms if t is not None]
        )
        sure = Frag("1") if f.exact else Frag(f"CASE WHEN {f.sure.sql} THEN 1 ELSE 0 END", f.sure.params)
        is_array = d.kind_is(leaf, "array")
        alone = "mdb_sure = 1 AND mdb_deep = 0"
        # Each matching row once: its flags, the JSON text at the path (read once: arrays
        # are walked in that small text, not in the document), and the document only
        # where Python needs it.
        row = Frag(
            f"SELECT id, {body} AS mdb_body, {sure.sql} AS mdb_sure, "
            f"CASE WHEN {deep.sql} THEN 1 ELSE 0 END AS mdb_deep, "
            f"CASE WHEN {is_array.sql} THEN 1 ELSE 0 END AS mdb_array, {d.json_text(body, keys)} AS mdb_v "
            f"FROM {info.sql}" + (f" WHERE {f.where.sql}" if f.pushed else ""),
            sure.params + deep.params + is_array.params + (f.where.params if f.pushed else ()),
        )
        items, position, text = d.json_items("r.mdb_v", "e")
        # One row per distinct text, except texts holding a value of a registered type: its
        # own == need not find two readings of one text equal, so each occurrence counts.
        tags = sorted(serialization._user_tags)
        partition = Frag("v")
        if tags:
            own = " OR ".join(f"v LIKE {d.param}" for _ in tags)
            patterns = tuple(f'%"{tag}"%' for tag in tags)
            partition = Frag(f"v, CASE WHEN {own} THEN id END, CASE WHEN {own} THEN idx END", patterns * 2)
        sql = (
            "WITH r AS (SELECT id, mdb_sure, mdb_deep, mdb_array, mdb_v, "
            f"CASE WHEN {alone} THEN NULL ELSE mdb_body END AS mdb_body FROM ({row.sql}) AS r0), "
            f"c AS (SELECT id, -1 AS idx, mdb_v AS v FROM r WHERE {alone} AND mdb_v IS NOT NULL AND mdb_array = 0 "
            f"UNION ALL SELECT r.id, {position}, {text} FROM r, {items} WHERE {alone} AND mdb_array = 1) "
            "SELECT id, idx, v, NULL, NULL FROM ("
            f"SELECT id, idx, v, row_number() OVER (PARTITION BY {partition.sql} ORDER BY id, idx) AS rn "
            "FROM c) AS w WHERE rn = 1 "
            "UNION ALL SELECT id, NULL, NULL, CASE WHEN mdb_sure = 1 THEN NULL ELSE mdb_body END, "
            f"{d.json_text('mdb_body', keys[:1])} FROM r WHERE mdb_sure = 0 OR mdb_deep = 1"
        )
        params = list(row.params) + list(partition.params)
        check = predicate(plan.node) if not f.exact and plan.node is not None else None
        rows = yield Stream(sql, params)
        size = len(rows) if isinstance(rows, list) else 0
        values, order_matters = yield Work(_distinct_rows, (rows, keys, path, check), size)
        if plan.sort and order_matters:
            return None  # which equal value is kept, or the order of ties, follows the sort
        return values  # type: ignore[no-any-return]


def _distinct_of(rows: list[tuple[int, dict[str, Any]]], path: ast.Path) -> list[Any]:
    return distinct_values((doc for _, doc in rows), path)


def _distinct_rows(
    rows: Iterable[tuple[Any, ...]], keys: tuple[str, ...], path: ast.Path, check: Any
) -> tuple[list[Any], bool]:
    """:meth:`SQLDistinct._distinct_sql`'s work on its rows: the distinct values, and
    whether the order they came in shows (see :func:`_distinct_first`)."""
    found: list[tuple[tuple[int, int], Any]] = []
    for doc_id, idx, value, text, head in rows:
        if idx is not None:
            found.append(((int(doc_id), int(idx)), decode(loads(value))))
            continue
        if text is not None:
            doc = decode_doc(text)
            if check is not None and not check(doc):
                continue
        else:
            doc = {} if head is None else {keys[0]: decode(loads(head))}
        found.extend(((int(doc_id), n), item) for n, item in enumerate(_occurrences(doc, path)))
    # Document order (ids; positions inside one), as the in-memory engine meets them.
    found.sort(key=lambda item: item[0])
    return _distinct_first(item for _, item in found)


_DIGITS = re.compile(r"[0-9]+\Z")


def _occurrences(doc: dict[str, Any], path: ast.Path) -> Iterator[Any]:
    """The values ``distinct`` counts at ``path`` in ``doc``, in order (arrays give their items)."""
    for value in reach(doc, path):
        yield from (value if isinstance(value, (list, tuple)) else [value])


def _text(value: Any) -> str:
    return dumps(encode(value))


def _distinct_first(values: Iterable[Any]) -> tuple[list[Any], bool]:
    """The first of each class of equal values, sorted (as ``distinct_values``), and whether
    the order they came in shows: two values of one class that look different (``1`` and
    ``1.0``) or two kept values that sort alike (``[1]`` and ``{1}``)."""
    seen: dict[Any, list[Any]] = {}
    kept: list[Any] = []
    order_matters = False
    for item in values:
        key = sort_key(item)
        same = seen.setdefault(key, [])
        match = next((s for s in same if values_equal(item, s)), _NOTHING)
        if match is not _NOTHING:
            if not order_matters and (type(match) is not type(item) or _text(match) != _text(item)):
                order_matters = True
            continue
        same.append(item)
        kept.append(item)
    kept.sort(key=sort_key)
    if not order_matters:
        order_matters = any(len(same) > 1 for same in seen.values())
    return kept, order_matters


_NOTHING = object()
