"""What the SQLite and PostgreSQL backends share: schema, documents, queries and transactions.

Layout in the database (both engines)::

    microdb_tables(tid, name, next_id, indexes)   one row per MicroDB table
    mdb_<tid>(id, doc ...)                        the documents of one table

``tid`` is never reused, so a process holding a stale ``tid`` for a dropped table cannot
write into a new table of the same name. ``next_id`` lives in the registry: ids increase
and are never reused, even after the highest is removed. ``indexes`` is the JSON list of
index definitions (``{"path": [...], "unique": bool}``); each maps to SQL indexes that the
dialect builds (:meth:`SQLBackend._index_ddl`).

Queries compile with :mod:`microdb.query.sql`: SQL narrows the rows, Python checks only
the rows SQL could not decide. Sorting is pushed down as ``ORDER BY`` kind rank, then
value; rows tied in SQL that hold objects, arrays or rich values are re-sorted in Python.
An include-projection reads only the top-level fields it (and the sort) needs, as exact
JSON text; ``distinct`` groups values in SQL and finishes in Python only where MongoDB's
rules reach through arrays of sub-documents (:meth:`SQLBackend.distinct`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import threading
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from microdb import serialization
from microdb.backend import Backend, Plan, assign_ids
from microdb.errors import (
    DatabaseClosedError,
    DuplicateKeyError,
    MicroDBError,
    UnsupportedFeature,
)
from microdb.query import ast
from microdb.query.compiler import predicate, resolve
from microdb.query.sql import (
    COMPLEX_RANKS,
    Dialect,
    Frag,
    SQLCompiler,
    SQLFilter,
    SQLSort,
    compile_filter,
    compile_sort,
    node_paths,
)
from microdb.query.values import sort_key, values_equal
from microdb.results import _reach, distinct_values
from microdb.serialization import decode, dumps, encode, loads

__all__ = ["SQLBackend", "TableInfo"]

#: How many ids go into one ``IN (...)`` list.
CHUNK = 500
REGISTRY = "microdb_tables"


@dataclass
class TableInfo:
    """One table's registry row."""

    tid: int
    name: str
    indexes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sql(self) -> str:
        """The SQL name of the table holding the documents."""
        return f"mdb_{self.tid}"


@dataclass
class Session:
    """The state of one connection in use: nesting depth and what this block has cached."""

    conn: Any = None
    depth: int = 0
    writing: bool = False
    savepoints: int = 0
    #: True while sending the first statement of a block (safe to retry on a new link).
    fresh: bool = False
    tables: dict[str, TableInfo | None] = field(default_factory=dict)


def index_name(info: TableInfo, path: ast.Path, suffix: str = "") -> str:
    """The SQL name of an index on ``path`` (stable, short, safe)."""
    digest = hashlib.sha1(json.dumps(list(path)).encode("utf-8")).hexdigest()[:12]
    return f"{info.sql}_x{digest}{suffix}"


def encode_doc(doc: dict[str, Any]) -> str:
    """The stored JSON text of a checked document."""
    return dumps(encode(doc))


def decode_doc(text: str | bytes) -> dict[str, Any]:
    """A document from its stored JSON text."""
    return decode(loads(text))  # type: ignore[no-any-return]


def decode_part(row: Sequence[Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The part of a document made of ``keys``, read from the JSON texts ending ``row``."""
    start = len(row) - len(keys)
    return {key: decode(loads(text)) for key, text in zip(keys, row[start:]) if text is not None}


class SQLBackend(Backend):
    """A :class:`~microdb.backend.Backend` on a SQL engine (see the module docstring)."""

    shares_documents = False
    dialect: Dialect
    #: The column read to get the document text back.
    body_column = "doc"
    #: Whether a read block is a transaction of its own (else a write nested in a read
    #: block starts one).
    reads_in_transaction = True

    def __init__(self) -> None:
        self._closed = False
        self._close_lock = threading.Lock()

    # -- what each engine provides ----------------------------------------------------------
    @abstractmethod
    def _session(self) -> contextlib.AbstractContextManager[Session]:
        """The session of the calling thread, held for the block (locks as the engine needs)."""

    @abstractmethod
    def _execute(self, s: Session, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returns (wrapping driver errors)."""

    @abstractmethod
    def _execute_many(self, s: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""

    @abstractmethod
    def _stream(self, s: Session, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of a query, fetched lazily (so a caller that stops early reads little)."""

    @abstractmethod
    def _begin(self, s: Session, write: bool) -> None:
        """Start the outermost transaction of a block."""

    @abstractmethod
    def _end(self, s: Session, commit: bool) -> None:
        """Commit or roll back the outermost transaction."""

    @abstractmethod
    def _create_schema(self, s: Session) -> None:
        """Create the registry table if it is missing."""

    @abstractmethod
    def _create_table_sql(self, info: TableInfo) -> list[str]:
        """DDL creating the documents table."""

    @abstractmethod
    def _insert_registry(self, s: Session, name: str) -> int:
        """Add a table to the registry (or find it, if another process just did); its tid."""

    @abstractmethod
    def _index_ddl(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        """DDL creating the SQL indexes of one MicroDB index."""

    @abstractmethod
    def _index_names(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        """Names of the SQL indexes :meth:`_index_ddl` creates."""

    @abstractmethod
    def _explain(self, s: Session, sql: str, params: Sequence[Any]) -> list[str]:
        """The engine's own plan for a query, as lines of text."""

    @abstractmethod
    def _insert_rows(self, s: Session, info: TableInfo, rows: list[tuple[int, str]]) -> None:
        """Insert ``(id, json text)`` rows."""

    def _unique_path(self, info: TableInfo, message: str) -> str:
        """A readable name for the unique index a driver message mentions."""
        for spec in info.indexes:
            path = tuple(spec["path"])
            if spec.get("unique") and any(n in message for n in self._index_names(info, path, True)):
                return ast.path_repr(path)
        return "a unique index"

    # -- lifecycle --------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError("the database is closed")

    # -- blocks -------------------------------------------------------------------------
    def write(self) -> contextlib.AbstractContextManager[None]:
        return self._block(write=True)

    def read(self) -> contextlib.AbstractContextManager[None]:
        return self._block(write=False)

    @contextlib.contextmanager
    def _block(self, write: bool) -> Iterator[None]:
        self._check_open()
        with self._session() as s:
            if s.depth == 0:
                s.tables = {}
                s.writing = write
                try:
                    self._begin(s, write)
                except BaseException:
                    s.writing = False
                    raise
                s.depth = 1
                try:
                    yield
                except BaseException:
                    s.depth = 0
                    try:
                        self._end(s, commit=False)
                    finally:
                        s.writing = False
                    raise
                s.depth = 0
                try:
                    self._end(s, commit=True)
                finally:
                    s.writing = False
                return
            if not write:
                s.depth += 1
                try:
                    yield
                finally:
                    s.depth -= 1
                return
            if not s.writing and not self.reads_in_transaction:
                # A write inside a read block: the write is a transaction of its own.
                self._begin(s, True)
                s.writing = True
                s.depth += 1
                try:
                    yield
                except BaseException:
                    self._end(s, commit=False)
                    raise
                else:
                    self._end(s, commit=True)
                finally:
                    s.depth -= 1
                    s.writing = False
                return
            with self._savepoint(s):
                s.depth += 1
                try:
                    yield
                finally:
                    s.depth -= 1

    @contextlib.contextmanager
    def _savepoint(self, s: Session) -> Iterator[None]:
        """A nested atomic step: on an exception only its own changes are undone."""
        s.savepoints += 1
        name = f"microdb_sp{s.savepoints}"
        self._execute(s, f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            cached = dict(s.tables)
            with contextlib.suppress(MicroDBError):
                self._execute(s, f"ROLLBACK TO SAVEPOINT {name}")
                self._execute(s, f"RELEASE SAVEPOINT {name}")
            # The registry may have changed inside: forget what was cached.
            s.tables = {} if cached else s.tables
            raise
        else:
            self._execute(s, f"RELEASE SAVEPOINT {name}")
        finally:
            s.savepoints -= 1

    @contextlib.contextmanager
    def _op(self, write: bool = False) -> Iterator[Session]:
        """A session for one backend call (inside the table's block, or a block of its own)."""
        with self._block(write), self._session() as s:
            yield s

    # -- registry -----------------------------------------------------------------------------
    def _info(self, s: Session, name: str, create: bool = False) -> TableInfo | None:
        if name in s.tables:
            info = s.tables[name]
            if info is not None or not create:
                return info
        rows = self._execute(s, f"SELECT tid, indexes FROM {REGISTRY} WHERE name = {self.dialect.param}", (name,))
        if rows:
            info = TableInfo(int(rows[0][0]), name, json.loads(rows[0][1]))
        elif create:
            tid = self._insert_registry(s, name)
            info = TableInfo(tid, name, [])
            for ddl in self._create_table_sql(info):
                self._execute(s, ddl)
        else:
            info = None
        s.tables[name] = info
        return info

    def _save_indexes(self, s: Session, info: TableInfo) -> None:
        p = self.dialect.param
        self._execute(s, f"UPDATE {REGISTRY} SET indexes = {p} WHERE tid = {p}", (json.dumps(info.indexes), info.tid))

    def tables(self) -> list[str]:
        with self._op() as s:
            return [r[0] for r in self._execute(s, f"SELECT name FROM {REGISTRY} ORDER BY tid")]

    def drop_table(self, table: str) -> bool:
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is None:
                return False
            self._execute(s, f"DROP TABLE IF EXISTS {info.sql}")
            self._execute(s, f"DELETE FROM {REGISTRY} WHERE tid = {self.dialect.param}", (info.tid,))
            s.tables[table] = None
            return True

    # -- documents ----------------------------------------------------------------------
    def _next_id(self, s: Session, info: TableInfo) -> int:
        lock = " FOR UPDATE" if self.dialect.row_locks else ""
        rows = self._execute(s, f"SELECT next_id FROM {REGISTRY} WHERE tid = {self.dialect.param}{lock}", (info.tid,))
        return int(rows[0][0])

    def _existing(self, s: Session, info: TableInfo, ids: Sequence[int]) -> list[int]:
        found: list[int] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            marks = ", ".join(self.dialect.param for _ in chunk)
            found.extend(int(r[0]) for r in self._execute(s, f"SELECT id FROM {info.sql} WHERE id IN ({marks})", chunk))
        return found

    def insert(self, table: str, docs: Sequence[tuple[int | None, dict[str, Any]]]) -> list[int]:
        with self._op(write=True) as s:
            info = self._info(s, table, create=True)
            assert info is not None
            next_id = self._next_id(s, info)
            rows = [(doc_id, encode_doc(doc)) for doc_id, doc in assign_ids(table, docs, next_id)]
            explicit = sorted({i for i, _ in docs if i is not None})
            if explicit:
                clash = self._existing(s, info, explicit)
                if clash:
                    raise DuplicateKeyError(f"document {clash[0]} already exists in table {table!r}")
            if not rows:
                return []
            new_next = max(next_id, max(i for i, _ in rows) + 1)
            with self._savepoint(s):
                self._insert_rows(s, info, rows)
                p = self.dialect.param
                self._execute(s, f"UPDATE {REGISTRY} SET next_id = {p} WHERE tid = {p}", (new_next, info.tid))
            return [i for i, _ in rows]

    def replace(self, table: str, docs: dict[int, dict[str, Any]]) -> None:
        if not docs:
            return
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is None:
                return
            p = self.dialect.param
            rows = [(encode_doc(doc), doc_id) for doc_id, doc in docs.items()]
            with self._savepoint(s):
                self._execute_many(s, f"UPDATE {info.sql} SET {self.body_column} = {p} WHERE id = {p}", rows)

    def delete(self, table: str, doc_ids: Sequence[int]) -> None:
        if not doc_ids:
            return
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is None:
                return
            ids = list(dict.fromkeys(doc_ids))
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                marks = ", ".join(self.dialect.param for _ in chunk)
                self._execute(s, f"DELETE FROM {info.sql} WHERE id IN ({marks})", chunk)

    def truncate(self, table: str) -> None:
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is not None:
                self._execute(s, f"DELETE FROM {info.sql}")

    def fetch(self, table: str, doc_id: int) -> dict[str, Any] | None:
        with self._op() as s:
            info = self._info(s, table)
            if info is None:
                return None
            lock = self._lock_clause(s)
            rows = self._execute(
                s, f"SELECT {self.body_column} FROM {info.sql} WHERE id = {self.dialect.param}{lock}", (doc_id,)
            )
            return decode_doc(rows[0][0]) if rows else None

    def fetch_many(self, table: str, doc_ids: Sequence[int]) -> list[tuple[int, dict[str, Any]]]:
        if not doc_ids:
            return []
        with self._op() as s:
            info = self._info(s, table)
            if info is None:
                return []
            found = self._fetch_ids(s, info, list(dict.fromkeys(doc_ids)), Frag(self.dialect.true))
            return [(i, decode_doc(found[i])) for i in doc_ids if i in found]

    def _fetch_ids(self, s: Session, info: TableInfo, ids: list[int], where: Frag) -> dict[int, Any]:
        found: dict[int, Any] = {}
        lock = self._lock_clause(s)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            marks = ", ".join(self.dialect.param for _ in chunk)
            sql = f"SELECT id, {self.body_column} FROM {info.sql} WHERE id IN ({marks}) AND {where.sql}{lock}"
            for doc_id, text in self._execute(s, sql, list(chunk) + list(where.params)):
                found[int(doc_id)] = text
        return found

    def _lock_clause(self, s: Session) -> str:
        # Rows read inside a write block are locked until it ends, so a read-modify-write
        # from another connection waits instead of overwriting (a lost update).
        return " FOR UPDATE" if self.dialect.row_locks and s.writing else ""

    def next_id(self, table: str) -> int:
        """The id the next insert into ``table`` gets."""
        with self._op() as s:
            info = self._info(s, table)
            return 1 if info is None else self._next_id(s, info)

    def reserve_ids(self, table: str, next_id: int) -> None:
        """Make sure no id below ``next_id`` is handed out again (used when copying data in)."""
        with self._op(write=True) as s:
            info = self._info(s, table, create=True)
            assert info is not None
            p = self.dialect.param
            self._execute(s, f"UPDATE {REGISTRY} SET next_id = {p} WHERE tid = {p} AND next_id < {p}",
                          (next_id, info.tid, next_id))

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
            info = self._info(s, table)
            if info is None:
                return 0
            return int(self._execute(s, f"SELECT count(*) FROM {info.sql}")[0][0])

    # -- queries ------------------------------------------------------------------------
    def _select_sql(
        self, s: Session, info: TableInfo, f: SQLFilter, order: SQLSort | None,
        limit: int | None = None, offset: int = 0, node: ast.Node | None = None,
        narrow: tuple[str, ...] | None = None,
    ) -> tuple[str, list[Any]]:
        """``SELECT id, body, [sure], [sort columns...], [narrow fields...]`` for a filter.

        With ``narrow``, ``body`` is NULL except on rows Python must still check (which
        need the whole document), and the named top-level fields follow as JSON text.
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
        elif f.pushed and node_paths(node) & {tuple(x["path"]) for x in info.indexes}:
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
        return sql, params

    def _rows(self, s: Session, info: TableInfo, plan: Plan) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, Any]]:
        """The plan's rows, and how they were found (for ``explain``)."""
        d = self.dialect
        f = compile_filter(plan.node, d, "doc", _indexed(info))
        check = predicate(plan.node) if f.residual is not None and plan.node is not None else None
        stop = None if plan.limit is None else plan.skip + plan.limit
        how: dict[str, Any] = {"filter": f.pushed, "exact": f.exact}
        if plan.doc_ids is not None:
            ids = list(dict.fromkeys(plan.doc_ids))
            found = self._fetch_ids(s, info, ids, f.where)
            out = [(i, decode_doc(found[i])) for i in plan.doc_ids if i in found]
            if check is not None:
                out = [(i, doc) for i, doc in out if check(doc)]
            if plan.sort:
                out = _python_sort(out, plan)
            how.update(sort="python" if plan.sort else None, limit="python")
            return out[plan.skip:stop], how
        order = compile_sort(plan.sort, d) if plan.sort else None
        if plan.sort and order is None:
            # A key function: SQL filters, Python sorts.
            sql, params = self._select_sql(s, info, f, None, node=plan.node)
            out = self._collect(s, sql, params, f, check, None, None)
            how.update(sort="python", limit="python", sql=sql, params=params)
            return _python_sort(out, plan)[plan.skip:stop], how
        how["sort"] = "sql" if order is not None else None
        narrow = self._narrow(plan)
        how["projection"] = list(narrow) if narrow is not None else None
        if f.exact and stop is not None:
            sql, params = self._select_sql(s, info, f, order, plan.limit, plan.skip, plan.node, narrow)
            rows = self._execute(s, sql, params)
            full = plan.limit is not None and len(rows) == plan.limit
            if order is None or not _boundary_tied(rows, order, 2, plan.skip > 0, full):
                how.update(limit="sql", sql=sql, params=params)
                return self._finish(rows, f, None, order, narrow), how
            # Rows tied in SQL at the edge of the page may be reordered by Python: read on.
        elif stop is not None:
            # Usually every row of the page is sure (Python would reject none of them):
            # then LIMIT in SQL gives the exact page. Otherwise read on without it.
            sql, params = self._select_sql(s, info, f, order, stop, 0, plan.node, narrow)
            rows = self._execute(s, sql, params)
            if all(r[2] for r in rows) and (
                order is None or not _boundary_tied(rows, order, 3, False, len(rows) == stop)
            ):
                how.update(limit="sql", sql=sql, params=params)
                return self._finish(rows, f, None, order, narrow)[plan.skip:], how
        sql, params = self._select_sql(s, info, f, order, node=plan.node, narrow=narrow)
        how.update(limit="python" if stop is not None else None, sql=sql, params=params)
        out = self._collect(s, sql, params, f, check, order, stop, narrow)
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
        self, s: Session, sql: str, params: list[Any], f: SQLFilter, check: Any,
        order: SQLSort | None, stop: int | None, narrow: tuple[str, ...] | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Rows of ``sql`` that pass the residual check, sorted, stopping once ``stop`` are sure."""
        out: list[tuple[int, dict[str, Any]]] = []
        extra = 0 if f.exact else 1
        group: list[tuple[Any, ...]] = []
        group_key: tuple[Any, ...] | None = None
        finished = False

        def flush() -> None:
            if group:
                out.extend(self._finish(group, f, check, order, narrow))
                group.clear()

        for row in (self._stream(s, sql, params) if stop is not None else self._execute(s, sql, params)):
            key = _group_key(row, 2 + extra, order) if order is not None else None
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
        self, rows: Sequence[tuple[Any, ...]], f: SQLFilter, check: Any, order: SQLSort | None,
        narrow: tuple[str, ...] | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Decode rows, run the residual check, and re-sort SQL ties that Python orders.

        A row read narrowly is the part of its document :meth:`_narrow` named, unless it
        came with the whole document (a row Python must check).
        """
        out: list[tuple[int, dict[str, Any]]] = []
        complex_rows = False
        for row in rows:
            if row[1] is not None or narrow is None:
                doc = decode_doc(row[1])
            else:
                doc = decode_part(row, narrow)
            if not f.exact and not row[2] and check is not None and not check(doc):
                continue
            out.append((int(row[0]), doc))
            if order is not None and not complex_rows:
                base = 2 + (0 if f.exact else 1)
                ranks = [row[base + sum(len(k) for k in order.columns[:i])] for i in range(len(order.columns))]
                complex_rows = any(int(r) in COMPLEX_RANKS for r in ranks)
        if order is not None and complex_rows:
            out = _tie_sort(out, rows, order, 2 + (0 if f.exact else 1))
        return out

    def run(self, table: str, plan: Plan) -> Iterator[tuple[int, dict[str, Any]]]:
        with self._op() as s:
            info = self._info(s, table)
            if info is None:
                return iter(())
            rows, _ = self._rows(s, info, plan)
            return iter(rows)

    def ids(self, table: str, plan: Plan) -> list[int]:
        # Read no field: rows SQL decides alone come back without their document, so an
        # update or a remove finds its targets without parsing every one of them.
        if plan.fields is None and all(k.func is None for k in plan.sort):
            plan = dataclasses.replace(plan, fields=(), exclude=False)
        return [doc_id for doc_id, _ in self.run(table, plan)]

    def count(self, table: str, plan: Plan) -> int:
        with self._op() as s:
            info = self._info(s, table)
            if info is None:
                return 0
            f = compile_filter(plan.node, self.dialect, "doc", _indexed(info))
            if plan.skip or plan.limit is not None or plan.doc_ids is not None or not f.exact:
                if plan.doc_ids is None and not plan.skip and plan.limit is None:
                    return self._count_residual(s, info, f, plan)
                rows, _ = self._rows(s, info, Plan(node=plan.node, skip=plan.skip, limit=plan.limit,
                                                     doc_ids=plan.doc_ids))
                return len(rows)
            sql = f"SELECT count(*) FROM {info.sql}"
            if f.pushed:
                sql += f" WHERE {f.where.sql}"
            return int(self._execute(s, sql, f.where.params)[0][0])

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
            info = self._info(s, table)
            if info is None:
                return []
            if self._distinct_in_sql(plan, path):
                found = self._distinct_sql(s, info, plan, path)
                if found is not None:
                    return found
            head = dataclasses.replace(plan, fields=(path[:1],), exclude=False)
            rows, _ = self._rows(s, info, head)
            return distinct_values((doc for _, doc in rows), path)

    def _distinct_in_sql(self, plan: Plan, path: ast.Path) -> bool:
        d = self.dialect
        return (
            d.reads_text and plan.doc_ids is None and not plan.skip and plan.limit is None
            and all(d.addressable(k) and not _DIGITS.match(str(k)) for k in path)
            # A registered dict, list or tuple subclass is walked into by MongoDB's rules,
            # but SQL sees a tagged object there.
            and not any(issubclass(cls, (dict, list, tuple)) for cls in serialization._user_types)
        )

    def _distinct_sql(self, s: Session, info: TableInfo, plan: Plan, path: ast.Path) -> list[Any] | None:
        """Distinct values with SQL doing the grouping; ``None`` when Python must redo it.

        One statement (so one snapshot) returns two kinds of rows: ``(id, position, text,
        NULL, NULL)``, the first occurrence of each distinct JSON text among rows SQL
        reads alone; and ``(id, NULL, NULL, document or NULL, head field)``, rows whose
        path crosses an array or a tuple (Python follows it) or that the filter left to
        Python (their document is read, to check them).
        """
        d = self.dialect
        c = SQLCompiler(d)
        f = compile_filter(plan.node, d, "doc", _indexed(info))
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
        found: list[tuple[tuple[int, int], Any]] = []
        for doc_id, idx, value, text, head in self._stream(s, sql, params):
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
        values, order_matters = _distinct_first(item for _, item in found)
        if plan.sort and order_matters:
            return None  # which equal value is kept, or the order of ties, follows the sort
        return values

    def _count_residual(self, s: Session, info: TableInfo, f: SQLFilter, plan: Plan) -> int:
        # Sure rows are counted without decoding them; only the rest go to Python.
        assert plan.node is not None
        check = predicate(plan.node)
        sql = (
            f"SELECT CASE WHEN {f.sure.sql} THEN NULL ELSE {self.body_column} END FROM {info.sql}"
            + (f" WHERE {f.where.sql}" if f.pushed else "")
        )
        n = 0
        for (text,) in self._stream(s, sql, list(f.sure.params) + list(f.where.params)):
            if text is None or check(decode_doc(text)):
                n += 1
        return n

    def explain(self, table: str, plan: Plan) -> dict[str, Any]:
        with self._op() as s:
            info = self._info(s, table)
            if info is None:
                return {"backend": self.name, "table": table, "access": "empty table", "index": None,
                        "examined": 0, "matched": 0, "ordered_by_index": False, "plan": [], "sql": None}
            rows, how = self._rows(s, info, plan)
            sql = how.get("sql")
            params = how.get("params", [])
            lines = self._explain(s, sql, params) if sql else []
            used = self._indexes_used(info, lines, plan.node)
            total = int(self._execute(s, f"SELECT count(*) FROM {info.sql}")[0][0])
            examined = total if not used else self._examined(s, info, plan, used, total)
            f = compile_filter(plan.node, self.dialect, "doc", _indexed(info))
            return {
                "backend": self.name,
                "table": table,
                "access": ("index " + ", ".join(used)) if used else ("by id" if plan.doc_ids is not None else "full scan"),
                "index": ", ".join(f"index {p}" for p in used) if used else None,
                "examined": examined,
                "matched": len(rows) if plan.skip == 0 and plan.limit is None else self.count(table, Plan(node=plan.node)),
                "ordered_by_index": False,
                "query": repr(plan.node) if plan.node is not None else None,
                "sql": sql,
                "params": list(params),
                "plan": lines,
                "residual": repr(f.residual) if f.residual is not None else None,
                "pushed": {"filter": how.get("filter", False), "sort": how.get("sort"), "limit": how.get("limit")},
                # The top-level fields read instead of whole documents (None: whole documents).
                "projection": how.get("projection"),
            }

    def _indexes_used(self, info: TableInfo, lines: list[str], node: ast.Node | None) -> list[str]:
        used: list[str] = []
        text = "\n".join(lines)
        tested = node_paths(node)
        for spec in info.indexes:
            path = tuple(spec["path"])
            names = self._index_names(info, path, bool(spec.get("unique")))
            for name in names:
                if re.search(rf"\b{re.escape(name)}\b", text) is None:
                    continue
                # A table-wide index (PostgreSQL's GIN) serves the indexed paths the query tests.
                if name in self._shared_index_names(info) and path not in tested:
                    continue
                used.append(ast.path_repr(path))
                break
        return used

    def _shared_index_names(self, info: TableInfo) -> set[str]:
        """Indexes one table's MicroDB indexes share (none, unless the engine has one)."""
        return set()

    def _examined(self, s: Session, info: TableInfo, plan: Plan, used: list[str], total: int) -> int:
        """Rows the index part of the query selects (what the engine reads through the index)."""
        node = plan.node
        if node is None:
            return total
        parts = node.items if isinstance(node, ast.And) else (node,)
        indexed = [p for p in parts if _paths_of(p) and all(ast.path_repr(q) in used for q in _paths_of(p))]
        if not indexed:
            return total
        sub = indexed[0] if len(indexed) == 1 else ast.And(tuple(indexed))
        f = compile_filter(sub, self.dialect, "doc", _indexed(info))
        sql = f"SELECT count(*) FROM {info.sql}" + (f" WHERE {f.where.sql}" if f.pushed else "")
        return int(self._execute(s, sql, f.where.params)[0][0])

    # -- indexes --------------------------------------------------------------------------
    def create_index(self, table: str, path: ast.Path, unique: bool) -> None:
        with self._op(write=True) as s:
            info = self._info(s, table, create=True)
            assert info is not None
            current = [x for x in info.indexes if tuple(x["path"]) == path]
            if current and bool(current[0].get("unique")) == unique:
                return
            ddl = self._index_ddl(info, path, unique)
            if unique and not ddl:
                raise UnsupportedFeature(
                    f"a unique index on {ast.path_repr(path)} ({self.name} cannot index that path)"
                )
            with self._savepoint(s):
                if current:
                    for name in self._index_names(info, path, bool(current[0].get("unique"))):
                        self._execute(s, f"DROP INDEX IF EXISTS {name}")
                for statement in ddl:
                    self._execute(s, statement)
                info.indexes = [x for x in info.indexes if tuple(x["path"]) != path]
                info.indexes.append({"path": list(path), "unique": unique})
                self._save_indexes(s, info)

    def drop_index(self, table: str, path: ast.Path) -> bool:
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is None:
                return False
            current = [x for x in info.indexes if tuple(x["path"]) == path]
            if not current:
                return False
            # An index shared by the table's indexes (PostgreSQL's GIN) stays while others remain.
            shared = self._shared_index_names(info) if len(info.indexes) > 1 else set()
            for name in self._index_names(info, path, bool(current[0].get("unique"))):
                if name not in shared:
                    self._execute(s, f"DROP INDEX IF EXISTS {name}")
            info.indexes = [x for x in info.indexes if tuple(x["path"]) != path]
            self._save_indexes(s, info)
            return True

    def indexes(self, table: str) -> list[dict[str, Any]]:
        with self._op() as s:
            info = self._info(s, table)
            if info is None:
                return []
            return [{"path": list(x["path"]), "unique": bool(x.get("unique"))} for x in info.indexes]


def _indexed(info: TableInfo) -> frozenset[ast.Path]:
    return frozenset(tuple(x["path"]) for x in info.indexes)


_DIGITS = re.compile(r"[0-9]+\Z")


def _occurrences(doc: dict[str, Any], path: ast.Path) -> Iterator[Any]:
    """The values ``distinct`` counts at ``path`` in ``doc``, in order (arrays give their items)."""
    for value in _reach(doc, path):
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


def _paths_of(node: ast.Node) -> list[ast.Path]:
    """The paths a leaf (or an Or of leaves) tests; empty for anything else."""
    if isinstance(node, ast.Or):
        out: list[ast.Path] = []
        for item in node.items:
            sub = _paths_of(item)
            if not sub:
                return []
            out.extend(sub)
        return out
    path = getattr(node, "path", None)
    if isinstance(node, (ast.Compare, ast.OneOf, ast.AnyOf, ast.ElemMatch)) and path is not None:
        return [path]
    return []


def _boundary_tied(rows: Sequence[tuple[Any, ...]], order: SQLSort, base: int, first: bool, last: bool) -> bool:
    """Whether a page cut by LIMIT/OFFSET may split rows that Python would reorder."""
    if not rows:
        return first
    checks = ([rows[0]] if first else []) + ([rows[-1]] if last else [])
    for row in checks:
        at = base
        for key in order.columns:
            if int(row[at]) in COMPLEX_RANKS:
                return True
            at += len(key)
    return False


def _group_key(row: Sequence[Any], base: int, order: SQLSort) -> tuple[Any, ...]:
    """The SQL sort key of a row up to its first key of a complex kind.

    SQL orders complex values (objects, arrays, rich types) only by kind, so every row that
    agrees up to such a key may still move in Python's order: they form one group.
    """
    out: list[Any] = []
    at = base
    for key in order.columns:
        out.extend(row[at:at + len(key)])
        if int(row[at]) in COMPLEX_RANKS:
            break
        at += len(key)
    return tuple(out)


def _tie_sort(
    out: list[tuple[int, dict[str, Any]]], rows: Sequence[tuple[Any, ...]], order: SQLSort, base: int
) -> list[tuple[int, dict[str, Any]]]:
    """Re-sort, in Python, runs of rows that SQL's sort key could not tell apart."""
    keys = {int(r[0]): _group_key(r, base, order) for r in rows}
    result: list[tuple[int, dict[str, Any]]] = []
    run: list[tuple[int, dict[str, Any]]] = []
    current: tuple[Any, ...] | None = None
    for item in out:
        k = keys[item[0]]
        if k != current and run:
            result.extend(_fine_sort(run, order))
            run = []
        current = k
        run.append(item)
    result.extend(_fine_sort(run, order))
    return result


def _fine_sort(run: list[tuple[int, dict[str, Any]]], order: SQLSort) -> list[tuple[int, dict[str, Any]]]:
    if len(run) < 2:
        return run
    out = list(run)
    for path, reverse in reversed(list(zip(order.paths, order.reverse))):
        out.sort(key=lambda item: sort_key(resolve(item[1], path)), reverse=reverse)
    return out


def _python_sort(rows: list[tuple[int, dict[str, Any]]], plan: Plan) -> list[tuple[int, dict[str, Any]]]:
    out = list(rows)
    # Stable sorts from the last key to the first: each key keeps its own direction.
    for key in reversed(plan.sort):
        if key.func is not None:
            func = key.func
            out.sort(key=lambda item: sort_key(func(item[1])), reverse=key.reverse)
        else:
            path = key.path
            assert path is not None
            out.sort(key=lambda item: sort_key(resolve(item[1], path)), reverse=key.reverse)
    return out
