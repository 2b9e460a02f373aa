"""The PostgreSQL backend: ``MicroDB('postgresql://user@host/dbname')``.

Any libpq connection string works (URL or ``key=value`` form, several hosts with
``target_session_attrs``...). Connections come from a pool (``psycopg_pool``); each thread
uses its own connection for the length of a block, so threads work in parallel.

Each MicroDB table is a SQL table ``mdb_<tid>(id bigint, body text, doc jsonb)``: ``body``
is the exact JSON text (so documents come back with their key order and number forms) and
``doc`` is the ``jsonb`` PostgreSQL generates from it for queries and indexes. An index on
a field is a set of PostgreSQL indexes: type-guarded expression indexes for numbers and
strings (a document holding another type at that path simply is not in them, so no insert
ever fails because of an index), a GIN index on ``doc`` for containment (equality,
``any``, ``fragment``), and for ``unique=True`` a unique index on the ``jsonb`` value.

A write block is one transaction; rows read inside it are locked (``SELECT ... FOR
UPDATE``), so a read-modify-write from many processes or machines loses nothing. A
connection dropped by the server is replaced and the statement retried once when nothing
of the block has been sent yet; otherwise the block fails with ``StorageError``.

psycopg 3 and psycopg_pool are an optional extra: ``pip install "microdb[postgres]"``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from microdb import process
from microdb.compile.sql import POSTGRES, Frag, PostgresDialect
from microdb.compile.sql.fragments import Term
from microdb.errors import DocumentError, DuplicateKeyError, ReadOnlyError, StorageError, UnsupportedFeature
from microdb.expiry import Rule
from microdb.query import ast
from microdb.sql.backend import SQLBackend
from microdb.sql.feed import DEFAULT_KEEP_COUNT, check_retention
from microdb.sql.pgfeed import PostgresChangeLog, create_sql, table_triggers_sql
from microdb.sql.schema import REGISTRY, TableInfo, index_name
from microdb.sql.session import Session
from microdb.sql.steps import Copy, Many, Run, Steps

__all__ = ["CONNECT_TIMEOUT", "PostgresBackend", "session_settings"]

_INSTALL = 'the PostgreSQL backend needs psycopg 3 and psycopg_pool: pip install "microdb[postgres]"'
_cursor_names = itertools.count(1)
#: Seconds to wait for the server to answer a new connection, unless the URL sets
#: ``connect_timeout`` itself.
CONNECT_TIMEOUT = 5


def _import() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise UnsupportedFeature(_INSTALL) from exc
    return psycopg, psycopg_pool


#: Pools inherited through a fork, kept (never closed, never used) in the child.
_ABANDONED: list[Any] = []


class PostgresBackend(SQLBackend):
    """MicroDB on a PostgreSQL database (see the module docstring).

    Options: ``schema`` (the schema holding MicroDB's tables; created if missing; default:
    the connection's ``search_path``), ``pool_size`` (most connections kept, default 4),
    ``timeout`` (seconds to wait for a connection or a lock, default 30), ``read_only``.
    A server that does not answer fails the open within :data:`CONNECT_TIMEOUT` seconds
    (``connect_timeout=N`` in the URL changes it), with the server's or the network's own
    error in the :class:`StorageError`.
    """

    dialect: PostgresDialect = POSTGRES
    name = "postgresql"
    body_column = "body"
    reads_in_transaction = False

    def __init__(
        self, url: str, *, schema: str | None = None, pool_size: int = 4, timeout: float = 30.0,
        read_only: bool = False, changes: bool | None = None,
        changes_keep_count: int | None = DEFAULT_KEEP_COUNT, changes_keep_seconds: float | None = None,
    ):
        super().__init__()
        check_retention(changes_keep_count, changes_keep_seconds)
        self._keep = (changes_keep_count, changes_keep_seconds)
        self._psycopg, pool_mod = _import()
        self.url = url
        self.schema = schema
        self.read_only = bool(read_only)
        self.timeout = float(timeout)
        self._local = threading.local()
        lock_ms = int(self.timeout * 1000)

        settings = session_settings(schema, lock_ms)

        def configure(conn: Any) -> None:
            for sql, params in settings:
                conn.execute(sql, params)

        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self._psycopg.conninfo.conninfo_to_dict(url):
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        try:
            # One connection first, outside the pool: an unreachable or refusing server
            # fails here within the connect timeout, with the server's own message (the
            # pool would retry until ``timeout`` and report only that it gave up).
            self._psycopg.connect(url, **kwargs).close()
        except self._psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc

        def make_pool() -> Any:
            return pool_mod.ConnectionPool(
                url, min_size=1, max_size=max(1, int(pool_size)), open=True, timeout=self.timeout,
                kwargs=kwargs, configure=configure, name=f"microdb-{id(self):x}",
            )

        self._make_pool = make_pool
        # What psycopg's async connections need to open the same sessions (microdb.sql.pgasync).
        self.pool_size = max(1, int(pool_size))
        self.connect_options = kwargs
        self.settings = settings
        self.pool_module = pool_mod
        try:
            self._pool = make_pool()
            self._pool.wait(timeout=self.timeout)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._pool.close()
            raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
        process.after_fork(self)
        if schema is not None and not self.read_only:
            with self._op(write=True) as s:
                self._execute(s, f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
        if not self.read_only:
            with self._op(write=True) as s:
                self._create_schema(s)
                if changes:
                    self._drive(s, self._create_feed(s))

    def __repr__(self) -> str:
        return f"PostgresBackend(schema={self.schema!r})"

    def after_fork(self) -> None:
        """In a forked child: a pool of its own (a connection must never serve two processes)."""
        # The parent's pool is left as it is, never closed here: closing would end the
        # parent's sessions on the server. It is kept referenced so it never is.
        _ABANDONED.append(self._pool)
        # Should the child ever free them, libpq would say goodbye to the server on the
        # parent's sockets: point the child's copies of the idle ones at /dev/null.
        for conn in list(getattr(self._pool, "_pool", ())):
            with contextlib.suppress(Exception):
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, conn.pgconn.socket)
                os.close(null)
        self._local = threading.local()
        if not self._closed:
            self._pool = self._make_pool()

    # -- change feed (microdb.sql.pgfeed) -------------------------------------------------
    def _create_feed(self, s: Session) -> Steps[None]:
        yield Run("SELECT pg_advisory_xact_lock(727274)")
        for ddl in create_sql(*self._keep):
            yield Run(ddl)
        for (tid,) in (yield Run(f"SELECT tid FROM {REGISTRY}")):
            for ddl in table_triggers_sql(f"mdb_{int(tid)}"):
                yield Run(ddl)

    def feed_steps(self, s: Session) -> Steps[None]:
        """Start the change feed if it had not (in a write block), as steps."""
        if not (yield Run("SELECT to_regclass('microdb_changes_kept') IS NOT NULL"))[0][0]:
            yield from self._create_feed(s)

    def change_log(self) -> PostgresChangeLog:
        """A reader of the change feed, which starts now if it had not."""
        self._check_open()
        if not self.read_only:
            with self._op(write=True) as s:
                self._drive(s, self.feed_steps(s))
        return PostgresChangeLog(self._psycopg, self.url, self.search_path, self.timeout)

    @property
    def search_path(self) -> str | None:
        """The ``search_path`` of MicroDB's sessions (``None``: the connection's own)."""
        return None if self.schema is None else _ident(self.schema)

    # -- connections ----------------------------------------------------------------------
    def _mine(self) -> Session:
        s: Session | None = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = Session()
        return s

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        s = self._mine()
        if s.conn is not None:
            yield s
            return
        self._check_open()
        try:
            s.conn = self._pool.getconn(timeout=self.timeout)
        except Exception as exc:
            raise StorageError(f"no PostgreSQL connection within {self.timeout}s: {exc}") from exc
        try:
            yield s
        finally:
            conn, s.conn = s.conn, None
            self._give_back(conn)

    def _give_back(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            if not conn.closed and conn.info.transaction_status != 0:  # not idle: throw it away
                conn.close()
            self._pool.putconn(conn)

    def _reconnect(self, s: Session) -> None:
        old, s.conn = s.conn, None
        with contextlib.suppress(Exception):
            old.close()
            self._pool.putconn(old)
        with contextlib.suppress(Exception):
            # The server may have ended every connection at once (a restart, a failover):
            # drop the pool's dead ones so the retry gets a live link.
            self._pool.check()
        try:
            s.conn = self._pool.getconn(timeout=self.timeout)
        except Exception as exc:
            raise StorageError(f"lost the PostgreSQL connection and could not get another: {exc}") from exc

    def _wrap(self, exc: Exception, sql: str) -> Exception:
        errors = self._psycopg.errors
        message = str(exc).strip()
        if isinstance(exc, errors.UniqueViolation):
            return DuplicateKeyError(f"a unique index rejected the write ({message}); nothing was changed")
        if isinstance(exc, (errors.UntranslatableCharacter, errors.CharacterNotInRepertoire,
                            errors.InvalidTextRepresentation, errors.NumericValueOutOfRange)):
            return DocumentError(f"PostgreSQL cannot store this value: {message}")
        if isinstance(exc, errors.ReadOnlySqlTransaction):
            return ReadOnlyError(f"the PostgreSQL server refused a write: {message}")
        return StorageError(f"PostgreSQL failed: {message} (in {sql[:120]!r})")

    def _lost(self, exc: Exception, s: Session) -> bool:
        """Whether ``exc`` means the connection is gone."""
        conn = s.conn
        if not isinstance(exc, self._psycopg.OperationalError):
            return False
        state = getattr(exc, "sqlstate", None) or ""
        # 57P0x: the server is shutting the session down; 08xxx: the link itself failed.
        return conn is None or conn.closed or conn.broken or state.startswith(("57P0", "08"))

    def _run(self, s: Session, call: Any, sql: str, retry: bool) -> Any:
        try:
            return call(s.conn)
        except self._psycopg.Error as exc:
            if retry and self._lost(exc, s):
                # Safe to send again: nothing of this block reached the server before.
                self._reconnect(s)
                try:
                    return call(s.conn)
                except self._psycopg.Error as again:
                    raise self._wrap(again, sql) from again
            if self._lost(exc, s):
                raise StorageError(f"the PostgreSQL connection was lost inside a transaction: {exc}") from exc
            raise self._wrap(exc, sql) from exc

    def _execute(self, s: Session, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def call(conn: Any) -> list[tuple[Any, ...]]:
            # Always a list, even empty: psycopg then reads %% in literals as %.
            cur = conn.execute(sql, list(params), prepare=False)
            return cur.fetchall() if cur.description is not None else []

        return self._run(s, call, sql, retry=not s.writing or s.fresh)  # type: ignore[no-any-return]

    def _execute_many(self, s: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        def call(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.executemany(sql, rows)

        self._run(s, call, sql, retry=False)

    def _stream(self, s: Session, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        # A server-side cursor sends rows in batches, so stopping early reads little. It
        # needs a transaction: reads outside one get a short read-only one.
        own = s.conn.info.transaction_status == 0
        if own:
            self._execute(s, "BEGIN READ ONLY")
        try:
            cur = s.conn.cursor(name=f"microdb_c{next(_cursor_names)}")
            cur.itersize = 500
            try:
                try:
                    cur.execute(sql, list(params))
                except self._psycopg.Error as exc:
                    raise self._wrap(exc, sql) from exc
                while True:
                    try:
                        batch = cur.fetchmany(500)
                    except self._psycopg.Error as exc:
                        raise self._wrap(exc, sql) from exc
                    if not batch:
                        return
                    yield from batch
            finally:
                with contextlib.suppress(Exception):
                    cur.close()
        finally:
            if own:
                with contextlib.suppress(Exception):
                    s.conn.execute("COMMIT" if s.conn.info.transaction_status == 2 else "ROLLBACK")

    def _begin(self, s: Session, write: bool) -> None:
        if write and self.read_only:
            raise ReadOnlyError("the database is open read-only")
        if write:
            s.fresh = True
            try:
                self._execute(s, "BEGIN")
            finally:
                s.fresh = False
        # Reads run each statement on its own (one snapshot per statement): no round trips
        # for BEGIN/COMMIT on the hot path.

    def _end(self, s: Session, commit: bool) -> None:
        if not s.writing or s.conn is None or s.conn.closed:
            return
        if commit:
            self._execute(s, "COMMIT")
        else:
            with contextlib.suppress(Exception):
                s.conn.execute("ROLLBACK")

    # -- schema -----------------------------------------------------------------------------
    def _create_schema(self, s: Session) -> None:
        self._execute(s, "SELECT pg_advisory_xact_lock(727274)")  # concurrent first opens
        self._execute(
            s,
            f"CREATE TABLE IF NOT EXISTS {REGISTRY} (tid BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
            "next_id BIGINT NOT NULL DEFAULT 1, indexes TEXT NOT NULL DEFAULT '[]', "
            "options TEXT NOT NULL DEFAULT '{}')",
        )
        # A database made before table options existed gains the column.
        self._execute(s, f"ALTER TABLE {REGISTRY} ADD COLUMN IF NOT EXISTS options TEXT NOT NULL DEFAULT '{{}}'")

    def _create_table_sql(self, info: TableInfo) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {info.sql} (id BIGINT PRIMARY KEY, body TEXT NOT NULL, "
            "doc JSONB GENERATED ALWAYS AS (body::jsonb) STORED)",
            *table_triggers_sql(info.sql),
        ]

    def _insert_registry(self, s: Session, name: str) -> Steps[int]:
        rows = yield Run(
            f"INSERT INTO {REGISTRY} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING RETURNING tid", (name,)
        )
        if not rows:
            rows = yield Run(f"SELECT tid FROM {REGISTRY} WHERE name = %s", (name,))
        return int(rows[0][0])

    def _insert_rows(self, s: Session, info: TableInfo, rows: list[tuple[int, str]]) -> Steps[None]:
        if len(rows) < 50:
            yield Many(f"INSERT INTO {info.sql} (id, body) VALUES (%s, %s)", rows)
        else:
            yield Copy(f"COPY {info.sql} (id, body) FROM STDIN", rows)

    def _copy(self, s: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        def call(conn: Any) -> None:
            with conn.cursor() as cur, cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)

        self._run(s, call, sql, retry=False)

    def _expired_sql(self, rule: Rule) -> Frag:
        # The server's clock (now(): the transaction's start). Stored datetimes are ISO 8601
        # text; one without an offset counts as UTC. Anything else at the path is NULL.
        path, seconds = rule
        text = "(doc #>> %s::text[])"
        stamp = (rf"CASE WHEN {text} ~ '[+-][0-9]{{2}}:[0-9]{{2}}(:[0-9]{{2}}(\.[0-9]+)?)?$' "
                 f"THEN {text}::timestamptz ELSE {text}::timestamp AT TIME ZONE 'UTC' END")
        steps = [str(p) for p in path] + ["$datetime"]
        return Frag(f"COALESCE({stamp} <= now() - make_interval(secs => %s), false)", (steps, steps, steps, seconds))

    def _index_ddl(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        t = self.dialect.term("doc", path, True)
        if t is None:
            return []
        names = self._index_names(info, path, unique)
        ddl = [
            f"CREATE INDEX IF NOT EXISTS {names[0]} ON {info.sql} ({self.dialect.number_expr(t)})",
            f"CREATE INDEX IF NOT EXISTS {names[1]} ON {info.sql} ({self.dialect.string_expr(t)})",
            f"CREATE INDEX IF NOT EXISTS {names[2]} ON {info.sql} USING gin (doc jsonb_path_ops)",
        ]
        if unique:
            ddl.append(f"CREATE UNIQUE INDEX IF NOT EXISTS {names[3]} ON {info.sql} (({t.json}))")
        return ddl

    def _compound_ddl(self, s: Session, info: TableInfo, spec: dict[str, Any]) -> Steps[list[str]]:
        terms = [self.dialect.term("doc", tuple(p), True) for p in spec["paths"]]
        if any(t is None for t in terms):
            return []
        if "kinds" not in spec:
            # Queries compare numbers and strings through separate typed expressions, and
            # an index serves one of them: take the kind most documents hold today.
            kinds: list[str] = []
            for t in terms:
                if t is not None:
                    kinds.append((yield from self._common_kind(info, t)))
            spec["kinds"] = kinds
        exprs = [
            self.dialect.number_expr(t) if k == "number" else self.dialect.string_expr(t)
            for t, k in zip(terms, spec["kinds"]) if t is not None
        ]
        names = self._compound_names(info, spec)
        ddl = [f"CREATE INDEX IF NOT EXISTS {names[0]} ON {info.sql} ({', '.join(exprs)})"]
        if spec.get("unique"):
            keys = ", ".join(f"({t.json})" for t in terms if t is not None)
            ddl.append(f"CREATE UNIQUE INDEX IF NOT EXISTS {names[1]} ON {info.sql} ({keys})")
        return ddl

    def _common_kind(self, info: TableInfo, t: Term) -> Steps[str]:
        rows = yield Run(
            f"SELECT jsonb_typeof({t.json}) AS k FROM (SELECT doc FROM {info.sql} LIMIT 1000) AS sample "
            "GROUP BY k ORDER BY count(*) DESC, k LIMIT 1",
        )
        return "number" if rows and rows[0][0] == "number" else "string"

    def _index_names(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        names = [index_name(info, path, "_n"), index_name(info, path, "_s"), f"{info.sql}_gin"]
        if unique:
            names.append(index_name(info, path, "_u"))
        return names

    def _shared_index_names(self, info: TableInfo) -> set[str]:
        return {f"{info.sql}_gin"}

    def _explain(self, s: Session, sql: str, params: Sequence[Any]) -> Steps[list[str]]:
        lines = [str(r[0]) for r in (yield Run("EXPLAIN " + sql, params))]
        if any("Index" in line for line in lines) or "WHERE" not in sql:
            return lines
        # A small table is cheaper to scan, so the server ignores the index; show which
        # index it uses once the table is large (the real plan comes first). Only a write
        # block is a transaction here (reads run each statement on its own).
        inside = s.writing
        yield Run("SAVEPOINT microdb_explain" if inside else "BEGIN")
        try:
            # Bitmap scans only: a walk of the primary key (for ORDER BY id) is not an answer.
            yield Run("SELECT set_config('enable_seqscan', 'off', true), "
                      "set_config('enable_indexscan', 'off', true), set_config('enable_indexonlyscan', 'off', true)")
            forced = [str(r[0]) for r in (yield Run("EXPLAIN " + sql, params))]
        finally:
            yield Run("ROLLBACK TO SAVEPOINT microdb_explain" if inside else "ROLLBACK")
        if not any("Index" in line for line in forced):
            return lines
        return lines + ["-- at a larger table size (sequential and plain index scans off):"] + forced

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            self._pool.close(timeout=5)


def session_settings(schema: str | None, lock_ms: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements each new connection runs once: its schema and lock timeout stay for its life."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    if schema is not None:
        out.append(("SELECT set_config('search_path', %s, false)", (_ident(schema),)))
    out.append(("SELECT set_config('lock_timeout', %s, false)", (f"{lock_ms}ms",)))
    # The JIT compiles a plan when its estimated cost passes jit_above_cost; the jsonb
    # expressions of a dotted dict filter are costed so high that a query on 100 rows
    # spent 1 to 10 s compiling and 1 ms running. Queries never use it.
    out.append(("SELECT set_config('jit', 'off', false)", ()))
    return out


def _ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
