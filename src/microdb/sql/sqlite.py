"""The SQLite backend: ``MicroDB('sqlite:///path/to/file.db')``.

Documents are JSON text in one table per MicroDB table; queries run as SQL with SQLite's
JSON functions and ``json_extract`` expression indexes (:mod:`microdb.compile.sql`). The file
uses write-ahead logging, so readers never block the writer; a write block is one
``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock at once, so several
processes updating the same documents wait for each other and lose nothing.

URL forms (as SQLAlchemy writes them): ``sqlite:///relative/path.db``,
``sqlite:////absolute/path.db``, ``sqlite://`` or ``sqlite:///:memory:`` (in memory).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from microdb import process
from microdb.compile.sql import SQLITE, Frag, SQLiteDialect, regex_match
from microdb.errors import (
    DocumentError,
    DuplicateKeyError,
    QueryError,
    ReadOnlyError,
    StorageError,
    UnsupportedFeature,
)
from microdb.expiry import Rule
from microdb.handover import ROWS, pacer
from microdb.query import ast
from microdb.sql.backend import SQLBackend
from microdb.sql.feed import DEFAULT_KEEP_COUNT, SQLiteChangeLog, SQLiteFeed
from microdb.sql.schema import REGISTRY, TableInfo, index_name
from microdb.sql.session import Session
from microdb.sql.steps import Many, Run, Steps

__all__ = ["SQLiteBackend", "parse_sqlite_url"]

_KIND_CODE = (
    "CASE json_type(doc, {p}) WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'true' THEN 8 "
    "WHEN 'false' THEN 8 WHEN 'null' THEN 1 WHEN 'text' THEN 3 WHEN 'array' THEN 5 WHEN 'object' THEN 4 END"
)


def parse_sqlite_url(url: str) -> str:
    """The file path (or ``:memory:``) of a ``sqlite://`` URL."""
    if not url.lower().startswith("sqlite://"):
        raise QueryError(f"not a sqlite:// URL: {url!r}")
    rest = url[len("sqlite://"):]
    rest = rest.split("?", 1)[0]
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise QueryError(f"a SQLite URL is sqlite:///path/to/file.db, got {url!r}")
    return unquote(rest[1:])


#: Connections inherited through a fork, kept (never closed, never used) in the child.
_ABANDONED: list[Any] = []


class SQLiteBackend(SQLBackend):
    """MicroDB on a SQLite file (see the module docstring).

    Options: ``timeout`` (seconds to wait for another process's write lock, default 30),
    ``durable`` (fsync every commit, default True; False survives a process crash but
    not a power loss), ``read_only`` (open the file read-only), and the change feed's
    ``changes`` (``True``: start it now) and retention, ``changes_keep_count`` (commits,
    default 100,000) and ``changes_keep_seconds`` (:mod:`microdb.sql.feed`).
    """

    dialect: SQLiteDialect = SQLITE
    name = "sqlite"
    body_column = "doc"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        durable: bool = True,
        read_only: bool = False,
        changes: bool | None = None,
        changes_keep_count: int | None = DEFAULT_KEEP_COUNT,
        changes_keep_seconds: float | None = None,
    ):
        super().__init__()
        self._feed = SQLiteFeed(changes_keep_count, changes_keep_seconds)
        self._changed_at = 0  # the connection's total_changes when the block began
        self.url = url
        self.path = parse_sqlite_url(url)
        self.read_only = bool(read_only)
        self._lock = threading.RLock()
        self._state = Session()
        self._timeout, self._durable = timeout, durable
        conn = self._connect()
        self._conn = conn
        self._state.conn = conn
        process.after_fork(self)
        if not self.read_only:
            with self._op(write=True) as s:
                self._create_schema(s)
                if changes:
                    self._feed.create(conn)
        else:
            with self._op() as s:
                self._options_column = self._has_options_column(s)

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.url!r})"

    def _connect(self) -> sqlite3.Connection:
        """A new connection to the database, set up as this backend uses it."""
        try:
            if self.path == ":memory:":
                conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            else:
                if not self.read_only:
                    folder = os.path.dirname(os.path.abspath(self.path))
                    if not os.path.isdir(folder):
                        raise StorageError(f"cannot open {self.path!r}: folder {folder!r} does not exist")
                mode = "ro" if self.read_only else "rwc"
                uri = "file:" + _quote_path(os.path.abspath(self.path)) + f"?mode={mode}"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                                       timeout=self._timeout)
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            if not self.read_only and self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
            conn.create_function("microdb_regexp", 4, regex_match, deterministic=True)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        return conn

    def after_fork(self) -> None:
        """In a forked child: a connection of its own (SQLite connections must not cross a fork)."""
        self._lock = threading.RLock()
        if self._closed or self.path == ":memory:":
            return  # a memory database is the child's own copy
        # The parent's connection is left unclosed: closing it here could release or
        # checkpoint files the parent still uses. It is kept referenced so it never is.
        _ABANDONED.append(self._conn)
        self._conn = self._connect()
        self._state = Session()
        self._state.conn = self._conn

    def change_log(self) -> SQLiteChangeLog:
        """A reader of the change feed, which starts now if it had not (see :mod:`microdb.sql.feed`)."""
        if self.path == ":memory:":
            raise UnsupportedFeature("a SQLite database in memory keeps no change feed: use a file")
        if not self.read_only:
            with self._op(write=True):
                self._feed.create(self._conn)
        elif not self._feed.exists(self._conn):
            raise UnsupportedFeature(f"{self.path!r} has no change feed and is open read-only")
        return SQLiteChangeLog(self.path)

    # -- connection ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        # One connection, one thread at a time: the lock is held for a whole block.
        with self._lock:
            yield self._state

    def _wrap(self, exc: sqlite3.Error, sql: str) -> Exception:
        message = str(exc)
        if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in message:
            return DuplicateKeyError(f"a unique index rejected the write ({message}); nothing was changed")
        if "readonly" in message.replace(" ", "").lower():
            return ReadOnlyError(f"the database {self.path!r} is read-only: {message}")
        if isinstance(exc, (sqlite3.DataError, sqlite3.ProgrammingError)) and "malformed JSON" not in message:
            return DocumentError(f"SQLite cannot store this value: {message}")
        return StorageError(f"SQLite failed: {message} (in {sql[:120]!r})")

    def _execute(self, s: Session, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            pace = pacer()
            if pace is not None:  # a read for the event loop: in slices (see microdb.handover)
                cursor = self._conn.execute(sql, tuple(params))
                rows: list[tuple[Any, ...]] = []
                while part := cursor.fetchmany(ROWS):
                    rows.extend(part)
                    pace.tick()
                return rows
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise self._wrap(exc, sql) from exc
        except OverflowError as exc:
            raise DocumentError(f"SQLite cannot hold this number: {exc}") from exc

    def _execute_many(self, s: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._wrap(exc, sql) from exc

    def _stream(self, s: Session, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        try:
            cursor = self._conn.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise self._wrap(exc, sql) from exc
        try:
            while True:
                try:
                    batch = cursor.fetchmany(256)
                except sqlite3.Error as exc:
                    raise self._wrap(exc, sql) from exc
                if not batch:
                    return
                yield from batch
        finally:
            cursor.close()

    def _begin(self, s: Session, write: bool) -> None:
        if write and self.read_only:
            raise ReadOnlyError(f"the database {self.path!r} is open read-only")
        # IMMEDIATE takes the write lock now: a read-modify-write cannot interleave with
        # another process's (no lost update), and waits up to the busy timeout for it.
        self._execute(s, "BEGIN IMMEDIATE" if write else "BEGIN")
        self._changed_at = self._conn.total_changes

    def _end(self, s: Session, commit: bool) -> None:
        if not self._conn.in_transaction:
            return
        if commit:
            try:
                if self._conn.total_changes != self._changed_at:
                    self._feed.seal(self._conn)  # number the block's changes, in its transaction
                self._execute(s, "COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
        else:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    # -- schema -----------------------------------------------------------------------------
    def _create_schema(self, s: Session) -> None:
        self._execute(
            s,
            f"CREATE TABLE IF NOT EXISTS {REGISTRY} (tid INTEGER PRIMARY KEY AUTOINCREMENT, "
            "name TEXT NOT NULL UNIQUE, next_id INTEGER NOT NULL DEFAULT 1, indexes TEXT NOT NULL DEFAULT '[]', "
            "options TEXT NOT NULL DEFAULT '{}')",
        )
        if not self._has_options_column(s):
            # A database made before table options existed.
            self._execute(s, f"ALTER TABLE {REGISTRY} ADD COLUMN options TEXT NOT NULL DEFAULT '{{}}'")

    def _has_options_column(self, s: Session) -> bool:
        return any(row[1] == "options" for row in self._execute(s, f"PRAGMA table_info({REGISTRY})"))

    def _expired_sql(self, rule: Rule) -> Frag:
        # julianday() reads ISO 8601 with or without an offset (none counts as UTC), the
        # form datetimes are stored in; anything else at the path is NULL: never expired.
        path, seconds = rule
        steps = "".join(f"[{p}]" if isinstance(p, int) else '."' + str(p) + '"' for p in path)
        return Frag("COALESCE(julianday(json_extract(doc, ?)) <= julianday('now') - ?, 0)",
                    ("$" + steps + '."$datetime"', seconds / 86400.0))

    def _create_table_sql(self, info: TableInfo) -> list[str]:
        ddl = [f"CREATE TABLE IF NOT EXISTS {info.sql} (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)"]
        if self._feed.on(self._conn):
            ddl.extend(self._feed.triggers(info.tid, info.name))
        return ddl

    def _insert_registry(self, s: Session, name: str) -> Steps[int]:
        rows = yield Run(f"INSERT INTO {REGISTRY} (name, next_id) VALUES (?, 1) RETURNING tid", (name,))
        return int(rows[0][0])

    def _insert_rows(self, s: Session, info: TableInfo, rows: list[tuple[int, str]]) -> Steps[None]:
        yield Many(f"INSERT INTO {info.sql} (id, doc) VALUES (?, ?)", rows)

    def _index_ddl(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        t = self.dialect.term("doc", path, True)
        if t is None or not t.literal:
            return []
        names = self._index_names(info, path, unique)
        value = f"json_extract(doc, {t.path})"
        dec = f"json_extract(doc, {t.path[:-1]}.\"$decimal\"')"
        ddl = [
            f"CREATE INDEX IF NOT EXISTS {names[0]} ON {info.sql} ({value})",
            # Tagged Decimals: a small partial index keeps "number OR decimal" on indexes.
            f"CREATE INDEX IF NOT EXISTS {names[1]} ON {info.sql} ({dec}) WHERE {dec} > ''",
        ]
        if unique:
            kind = _KIND_CODE.format(p=t.path)
            key = f"CASE WHEN json_type(doc, {t.path}) = 'null' THEN 0 ELSE {value} END"
            ddl.append(f"CREATE UNIQUE INDEX IF NOT EXISTS {names[2]} ON {info.sql} (({kind}), ({key}))")
        return ddl

    def _compound_ddl(self, s: Session, info: TableInfo, spec: dict[str, Any]) -> Steps[list[str]]:
        yield from ()  # (steps with no statement: SQLite indexes each path whatever it holds)
        terms = [self.dialect.term("doc", tuple(p), True) for p in spec["paths"]]
        if any(t is None or not t.literal for t in terms):
            return []
        names = self._compound_names(info, spec)
        cols = ", ".join(f"json_extract(doc, {t.path})" for t in terms if t is not None)
        ddl = [f"CREATE INDEX IF NOT EXISTS {names[0]} ON {info.sql} ({cols})"]
        if spec.get("unique"):
            # Kind and value per path, as a unique single-path index: ``true`` is not 1.
            # A document missing any of the paths has a NULL there, and never conflicts.
            keys = ", ".join(
                f"({_KIND_CODE.format(p=t.path)}), "
                f"(CASE WHEN json_type(doc, {t.path}) = 'null' THEN 0 ELSE json_extract(doc, {t.path}) END)"
                for t in terms if t is not None
            )
            ddl.append(f"CREATE UNIQUE INDEX IF NOT EXISTS {names[1]} ON {info.sql} ({keys})")
        return ddl

    def _index_names(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        names = [index_name(info, path), index_name(info, path, "_d")]
        if unique:
            names.append(index_name(info, path, "_u"))
        return names

    def _explain(self, s: Session, sql: str, params: Sequence[Any]) -> Steps[list[str]]:
        rows = yield Run("EXPLAIN QUERY PLAN " + sql, params)
        return [str(r[3]) for r in rows]

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if not self.read_only and self.path != ":memory:":
                    # Fold the write-ahead log back into the file: a closed database is one file.
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    def compact(self) -> None:
        self._check_open()
        with self._lock:
            try:
                self._conn.execute("VACUUM")
            except sqlite3.Error as exc:
                raise self._wrap(exc, "VACUUM") from exc


def _quote_path(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/:")
