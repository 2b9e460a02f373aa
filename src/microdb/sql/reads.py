"""Reads of the SQL engine: the SELECT a plan compiles to, residual checks, pages and counts.

Queries compile with :mod:`microdb.compile.sql`: SQL narrows the rows, Python checks only
the rows SQL could not decide. Sorting is pushed down as ``ORDER BY`` kind rank, then
value; rows tied in SQL that hold objects, arrays or rich values are re-sorted in Python.
An include-projection reads only the top-level fields it (and the sort) needs, as exact
JSON text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from microdb.backend import Plan
from microdb.compile.python import predicate
from microdb.compile.sql import Frag, SQLFilter, SQLSort, compile_sort, node_paths
from microdb.handover import pacer
from microdb.query import ast
from microdb.sql.registry import SQLRegistry
from microdb.sql.rows import RowLayout, boundary_tied, decode_doc, python_sort, tie_sort
from microdb.sql.schema import TableInfo, indexed_paths
from microdb.sql.session import Session
from microdb.sql.steps import Run, Steps, Stream, Work


class SQLReads(SQLRegistry):
    """The part of :class:`~microdb.sql.backend.SQLBackend` that reads documents."""

    def fetch(self, table: str, doc_id: int) -> dict[str, Any] | None:
        with self._op() as s:
            return self._drive(s, self.fetch_steps(s, table, doc_id))

    def fetch_steps(self, s: Session, table: str, doc_id: int) -> Steps[dict[str, Any] | None]:
        """:meth:`fetch` as steps (:mod:`microdb.sql.steps`)."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return None
        lock = self._lock_clause(s)
        rows = yield Run(f"SELECT {self.body_column} FROM {info.sql} WHERE id = {self.dialect.param}{lock}", (doc_id,))
        return decode_doc(rows[0][0]) if rows else None

    def fetch_many(self, table: str, doc_ids: Sequence[int]) -> list[tuple[int, dict[str, Any]]]:
        if not doc_ids:
            return []
        with self._op() as s:
            return self._drive(s, self.fetch_many_steps(s, table, doc_ids))

    def fetch_many_steps(self, s: Session, table: str, doc_ids: Sequence[int]) -> Steps[list[tuple[int, dict[str, Any]]]]:
        """:meth:`fetch_many` as steps."""
        info = yield from self._info_steps(s, table)
        if info is None or not doc_ids:
            return []
        found = yield from self._fetch_ids(s, info, list(dict.fromkeys(doc_ids)), Frag(self.dialect.true))
        return (yield Work(_decode_found, (doc_ids, found), len(found)))  # type: ignore[no-any-return]

    def _fetch_ids(self, s: Session, info: TableInfo, ids: list[int], where: Frag) -> Steps[dict[int, Any]]:
        found: dict[int, Any] = {}
        lock = self._lock_clause(s)
        for chunk, marks in self._id_lists(ids):
            sql = f"SELECT id, {self.body_column} FROM {info.sql} WHERE id IN ({marks}) AND {where.sql}{lock}"
            for doc_id, text in (yield Run(sql, list(chunk) + list(where.params))):
                found[int(doc_id)] = text
        return found

    def iter_batches(self, table: str, size: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        """Every document in id order, ``size`` at a time, each batch read on its own."""
        last = None
        while True:
            with self._op() as s:
                info = self._info(s, table)
                if info is None:
                    return
                p = self.dialect.param
                where = "" if last is None else f" WHERE id > {p}"
                params = ([] if last is None else [last]) + [size]
                rows = self._execute(s, f"SELECT id, {self.body_column} FROM {info.sql}{where} ORDER BY id LIMIT {p}", params)
            if not rows:
                return
            last = int(rows[-1][0])
            yield [(int(i), decode_doc(text)) for i, text in rows]
            if len(rows) < size:
                return

    def length(self, table: str) -> int:
        with self._op() as s:
            return self._drive(s, self.length_steps(s, table))

    def length_steps(self, s: Session, table: str) -> Steps[int]:
        """:meth:`length` as steps."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return 0
        return int((yield Run(f"SELECT count(*) FROM {info.sql}"))[0][0])

    # -- queries ------------------------------------------------------------------------
    def _select_sql(
        self, s: Session, info: TableInfo, f: SQLFilter, order: SQLSort | None,
        limit: int | None = None, offset: int = 0, node: ast.Node | None = None,
        narrow: tuple[str, ...] | None = None,
    ) -> tuple[str, list[Any], RowLayout]:
        """``SELECT id, body, [sure], [sort columns...], [narrow fields...]`` for a filter.

        With ``narrow``, ``body`` is NULL except on rows Python must still check (which
        need the whole document), and the named top-level fields follow as JSON text.
        The :class:`RowLayout` names the columns of its rows.
        """
        d = self.dialect
        body = self.body_column
        params: list[Any] = []
        if narrow is None:
            cols = ["id", body]
        elif f.exact:
            cols = ["id", "NULL"]
        else:
            cols = ["id", f"CASE WHEN {f.sure.sql} THEN NULL ELSE {body} END"]
            params.extend(f.sure.params)
        if not f.exact:
            cols.append(f"CASE WHEN {f.sure.sql} THEN 1 ELSE 0 END")
            params.extend(f.sure.params)
        if order is not None:
            cols.extend(c for key in order.columns for c in key)
        if narrow is not None:
            cols.extend(d.json_text(body, (key,)) for key in narrow)
        sql = f"SELECT {', '.join(cols)} FROM {info.sql}"
        if f.pushed:
            sql += f" WHERE {f.where.sql}"
            params.extend(f.where.params)
        if order is not None:
            sql += f" ORDER BY {order.order_by}"
        elif f.pushed and node_paths(node) & indexed_paths(info):
            sql += f" ORDER BY {d.id_order_indexed}"
        else:
            sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {d.param}"
            params.append(limit)
            if offset:
                sql += f" OFFSET {d.param}"
                params.append(offset)
        sql += self._lock_clause(s)
        return sql, params, RowLayout(f.exact, order, narrow)

    def _rows(self, s: Session, info: TableInfo, plan: Plan) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, Any]]:
        """The plan's rows, and how they were found (for ``explain``)."""
        return self._drive(s, self._rows_steps(s, info, plan))

    def _rows_steps(
        self, s: Session, info: TableInfo, plan: Plan
    ) -> Steps[tuple[list[tuple[int, dict[str, Any]]], dict[str, Any]]]:
        d = self.dialect
        f = self._filter(info, plan.node)
        check = predicate(plan.node) if f.residual is not None and plan.node is not None else None
        stop = None if plan.limit is None else plan.skip + plan.limit
        how: dict[str, Any] = {"filter": f.pushed, "exact": f.exact}
        if plan.doc_ids is not None:
            ids = list(dict.fromkeys(plan.doc_ids))
            found = yield from self._fetch_ids(s, info, ids, f.where)
            out = yield Work(_decode_found, (plan.doc_ids, found), len(found))
            if check is not None:
                out = [(i, doc) for i, doc in out if check(doc)]
            if plan.sort:
                out = python_sort(out, plan)
            how.update(sort="python" if plan.sort else None, limit="python")
            return out[plan.skip:stop], how
        order = compile_sort(plan.sort, d) if plan.sort else None
        if plan.sort and order is None:
            # A key function: SQL filters, Python sorts.
            sql, params, layout = self._select_sql(s, info, f, None, node=plan.node)
            out = yield from self._collect(sql, params, layout, check, None, None)
            how.update(sort="python", limit="python", sql=sql, params=params)
            return (yield Work(python_sort, (out, plan), len(out)))[plan.skip:stop], how
        how["sort"] = "sql" if order is not None else None
        narrow = self._narrow(plan)
        how["projection"] = list(narrow) if narrow is not None else None
        if f.exact and stop is not None:
            sql, params, layout = self._select_sql(s, info, f, order, plan.limit, plan.skip, plan.node, narrow)
            rows = yield Run(sql, params)
            full = plan.limit is not None and len(rows) == plan.limit
            if order is None or not boundary_tied(rows, layout, plan.skip > 0, full):
                how.update(limit="sql", sql=sql, params=params)
                return (yield Work(self._finish, (rows, layout, None, order), len(rows))), how
            # Rows tied in SQL at the edge of the page may be reordered by Python: read on.
        elif stop is not None:
            # Usually every row of the page is sure (Python would reject none of them):
            # then LIMIT in SQL gives the exact page. Otherwise read on without it.
            sql, params, layout = self._select_sql(s, info, f, order, stop, 0, plan.node, narrow)
            rows = yield Run(sql, params)
            if all(layout.is_sure(r) for r in rows) and (
                order is None or not boundary_tied(rows, layout, False, len(rows) == stop)
            ):
                how.update(limit="sql", sql=sql, params=params)
                return (yield Work(self._finish, (rows, layout, None, order), len(rows)))[plan.skip:], how
        sql, params, layout = self._select_sql(s, info, f, order, node=plan.node, narrow=narrow)
        how.update(limit="python" if stop is not None else None, sql=sql, params=params)
        out = yield from self._collect(sql, params, layout, check, order, stop)
        return out[plan.skip:stop], how

    def _narrow(self, plan: Plan) -> tuple[str, ...] | None:
        """The top-level fields a plan's rows need, or ``None`` when they need whole documents.

        An include-projection needs the fields its paths start with, plus those its sort
        keys start with (Python re-sorts rows SQL leaves tied, reading the sort values).
        A key function may read anything, and an exclude-projection keeps all but a few
        fields: both read whole documents. So do the rows Python must check against the
        query: :meth:`_select_sql` still reads the document for those.
        """
        d = self.dialect
        if plan.fields is None or plan.exclude or not d.reads_text:
            return None
        heads: list[Any] = [p[0] if p else None for p in plan.fields]
        for key in plan.sort:
            if key.func is not None or not key.path:
                return None
            heads.append(key.path[0])
        keys: dict[str, None] = {}
        for head in heads:
            if isinstance(head, bool) or not isinstance(head, (str, int)):
                return None  # an empty path or a map() step reads the whole document
            # The projection keeps str(step), so an int step names the same member.
            if not d.addressable(str(head)):
                return None
            keys[str(head)] = None
        return tuple(keys)

    def _collect(
        self, sql: str, params: list[Any], layout: RowLayout, check: Any,
        order: SQLSort | None, stop: int | None,
    ) -> Steps[list[tuple[int, dict[str, Any]]]]:
        """Rows of ``sql`` that pass the residual check, sorted, stopping once ``stop`` are sure."""
        rows = yield (Stream(sql, params) if stop is not None else Run(sql, params))
        size = len(rows) if isinstance(rows, list) else 0
        return (yield Work(self._sift, (rows, layout, check, order, stop), size))  # type: ignore[no-any-return]

    def _sift(
        self, rows: Iterable[tuple[Any, ...]], layout: RowLayout, check: Any,
        order: SQLSort | None, stop: int | None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """:meth:`_collect`'s work on the rows (a lazy iterable: stops reading at ``stop``)."""
        out: list[tuple[int, dict[str, Any]]] = []
        group: list[tuple[Any, ...]] = []
        group_key: tuple[Any, ...] | None = None
        finished = False

        def flush() -> None:
            if group:
                out.extend(self._finish(group, layout, check, order))
                group.clear()

        pace = pacer()
        for row in rows if pace is None else pace.each(rows):  # a read for the event loop: paced
            key = layout.group(row) if order is not None else None
            if key != group_key or key is None:
                flush()
                group_key = key
                if stop is not None and len(out) >= stop:
                    finished = True
                    break
            group.append(row)
        if not finished:
            flush()
        return out

    def _finish(
        self, rows: Sequence[tuple[Any, ...]], layout: RowLayout, check: Any, order: SQLSort | None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Decode rows, run the residual check, and re-sort SQL ties that Python orders.

        A row read narrowly is the part of its document :meth:`_narrow` named, unless it
        came with the whole document (a row Python must check).
        """
        out: list[tuple[int, dict[str, Any]]] = []
        complex_rows = False
        doc_id, body, whole = layout.ID, layout.BODY, layout.names is None
        for row in rows:
            doc = decode_doc(row[body]) if whole or row[body] is not None else layout.part(row)
            if check is not None and not layout.is_sure(row) and not check(doc):
                continue
            out.append((int(row[doc_id]), doc))
            if order is not None and not complex_rows:
                complex_rows = layout.has_complex(row)
        if order is not None and complex_rows:
            out = tie_sort(out, rows, order, layout)
        return out

    def run(self, table: str, plan: Plan) -> Iterator[tuple[int, dict[str, Any]]]:
        with self._op() as s:
            return iter(self._drive(s, self.run_steps(s, table, plan)))

    def run_steps(self, s: Session, table: str, plan: Plan) -> Steps[list[tuple[int, dict[str, Any]]]]:
        """:meth:`run` as steps: the plan's ``(id, document)`` rows."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return []
        rows, _ = yield from self._rows_steps(s, info, plan)
        return rows

    def ids(self, table: str, plan: Plan) -> list[int]:
        with self._op() as s:
            return self._drive(s, self.ids_steps(s, table, plan))

    def ids_steps(self, s: Session, table: str, plan: Plan) -> Steps[list[int]]:
        """:meth:`ids` as steps."""
        # Read no field: rows SQL decides alone come back without their document, so an
        # update or a remove finds its targets without parsing every one of them.
        if plan.fields is None and all(k.func is None for k in plan.sort):
            plan = dataclasses.replace(plan, fields=(), exclude=False)
        rows = yield from self.run_steps(s, table, plan)
        return [doc_id for doc_id, _ in rows]

    def count(self, table: str, plan: Plan) -> int:
        with self._op() as s:
            return self._drive(s, self.count_steps(s, table, plan))

    def count_steps(self, s: Session, table: str, plan: Plan) -> Steps[int]:
        """:meth:`count` as steps."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return 0
        f = self._filter(info, plan.node)
        if plan.skip or plan.limit is not None or plan.doc_ids is not None or not f.exact:
            if plan.doc_ids is None and not plan.skip and plan.limit is None:
                return (yield from self._count_residual(info, f, plan))
            rows, _ = yield from self._rows_steps(
                s, info, Plan(node=plan.node, skip=plan.skip, limit=plan.limit, doc_ids=plan.doc_ids)
            )
            return len(rows)
        sql = f"SELECT count(*) FROM {info.sql}"
        if f.pushed:
            sql += f" WHERE {f.where.sql}"
        return int((yield Run(sql, f.where.params))[0][0])

    def _count_residual(self, info: TableInfo, f: SQLFilter, plan: Plan) -> Steps[int]:
        # Sure rows are counted without decoding them; only the rest go to Python.
        assert plan.node is not None
        check = predicate(plan.node)
        sql = (
            f"SELECT CASE WHEN {f.sure.sql} THEN NULL ELSE {self.body_column} END FROM {info.sql}"
            + (f" WHERE {f.where.sql}" if f.pushed else "")
        )
        rows = yield Stream(sql, list(f.sure.params) + list(f.where.params))
        size = len(rows) if isinstance(rows, list) else 0
        return (yield Work(_count_passing, (rows, check), size))  # type: ignore[no-any-return]


def _decode_found(doc_ids: Sequence[int], found: dict[int, Any]) -> list[tuple[int, dict[str, Any]]]:
    """``(id, document)`` for the ids found, in the order asked."""
    return [(i, decode_doc(found[i])) for i in doc_ids if i in found]


def _count_passing(rows: Iterable[tuple[Any, ...]], check: Any) -> int:
    """Rows that are sure (no text) or whose document passes ``check``."""
    n = 0
    for (text,) in rows:
        if text is None or check(decode_doc(text)):
            n += 1
    return n
