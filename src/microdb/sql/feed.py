"""The change feed of the SQL backends: a change table written in each commit's transaction.

Layout (both engines)::

    microdb_changes(pos, seq, tbl, op, doc_id, doc, ts)   one row per changed document
    microdb_changes_kept(first, keep_count, keep_seconds) one row: what the history holds

Triggers on every documents table (and on the registry, for dropped tables) add a row per
change with ``seq`` still empty, inside the writer's own transaction: a rolled-back
transaction leaves none. Just before the transaction commits, its rows get the next
sequence number, all the same one:

- SQLite: the backend does it before ``COMMIT`` (:meth:`SQLiteFeed.seal`). Writers hold
  SQLite's write lock from ``BEGIN IMMEDIATE`` on, so numbers follow commit order.
  Readers notice commits with ``PRAGMA data_version``, which changes when another
  connection commits: one cheap statement per look.
- PostgreSQL (:mod:`microdb.sql.pgfeed`): a deferred constraint trigger numbers the rows at
  commit, under a transaction-level advisory lock (so numbers follow commit order), and
  sends ``NOTIFY microdb_changes``, which wakes listening readers at once.

The feed starts when it is first asked for (the first ``changes()``/``watch()``, or
``changes=True`` when opening); tables created later get their triggers as they are
created. Every 1,000 commits, the commit that numbers itself trims the history to the
retention in ``microdb_changes_kept``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from microdb.errors import ChangesExpiredError, StorageError
from microdb.feed import Change, ChangeLog
from microdb.serialization import loads
from microdb.sql.schema import REGISTRY
from microdb.sql.steps import Run, Step, Steps, drive

__all__ = ["CHANGES", "KEPT", "SQLiteChangeLog", "SQLiteFeed", "check_retention", "rows_to_changes"]

CHANGES = "microdb_changes"
KEPT = "microdb_changes_kept"
#: The history kept by default: the newest 100,000 commits.
DEFAULT_KEEP_COUNT = 100_000
TRIM_EVERY = 1000
_OPS = {"i": "insert", "u": "update", "r": "remove", "x": "drop"}


def check_retention(keep_count: Any, keep_seconds: Any) -> None:
    """Refuse a retention that is not a positive number (or ``None``)."""
    if keep_count is not None and (not isinstance(keep_count, int) or isinstance(keep_count, bool) or keep_count < 1):
        raise ValueError(f"changes_keep_count must be an int >= 1 or None, got {keep_count!r}")
    if keep_seconds is not None and (not isinstance(keep_seconds, (int, float)) or keep_seconds <= 0):
        raise ValueError(f"changes_keep_seconds must be a number of seconds > 0 or None, got {keep_seconds!r}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rows_to_changes(rows: Sequence[Sequence[Any]], tables: Collection[str] | None) -> list[Change]:
    """``(seq, tbl, op, doc_id, doc, ts)`` rows as changes (of ``tables`` only, when given)."""
    return [
        Change(int(seq), tbl, _OPS[op], None if doc_id is None else int(doc_id),
               None if doc is None else loads(doc), float(ts or 0.0))
        for seq, tbl, op, doc_id, doc, ts in rows
        if tables is None or tbl in tables
    ]


def read_commits(
    fetch: Any, param: str, after: int, tables: Collection[str] | None, limit: int
) -> tuple[list[Change], int]:
    """Whole commits above ``after`` through ``fetch(sql, params)``; the last seq read."""
    def answer(step: Step) -> Any:
        assert isinstance(step, Run)
        return fetch(step.sql, step.params)

    return drive(read_commits_steps(param, after, tables, limit), answer)


#: The columns a change row is read with (see :func:`rows_to_changes`).
COLUMNS = "seq, tbl, op, doc_id, doc, ts"


def read_commits_steps(
    param: str, after: int, tables: Collection[str] | None, limit: int
) -> Steps[tuple[list[Change], int]]:
    """:func:`read_commits` as steps (:mod:`microdb.sql.steps`): only :class:`Run` steps."""
    rows = yield Run(
        f"SELECT {COLUMNS} FROM {CHANGES} WHERE seq > {param} ORDER BY seq, pos LIMIT {param}", (after, limit + 1)
    )
    return (yield from whole_commits(rows, param, after, tables, limit))


def whole_commits(
    rows: list[Any], param: str, after: int, tables: Collection[str] | None, limit: int
) -> Steps[tuple[list[Change], int]]:
    """The changes of up to ``limit + 1`` rows read after ``after``, cut at a commit's end
    (a single commit larger than the limit is read whole); the last seq read."""
    if len(rows) > limit:
        last = rows[-1][0]
        rows = [r for r in rows if r[0] != last]
        if not rows:  # one commit larger than the limit: read it whole
            rows = yield Run(f"SELECT {COLUMNS} FROM {CHANGES} WHERE seq = {param} ORDER BY pos", (last,))
    if not rows:
        return [], after
    return rows_to_changes(rows, tables), int(rows[-1][0])


def expired(first: int, after: int, last: int, where: str) -> None:
    """Raise when the history kept cannot resume after ``after``."""
    if after < first - 1:
        raise ChangesExpiredError(
            f"the change feed of {where} keeps commits from {first} on, so it cannot resume after "
            f"commit {after} (raise the retention, or reload the data and resume from last_seq)", seq=after,
        )
    if after > last:
        raise ChangesExpiredError(
            f"commit {after} is after the newest commit of {where} ({last}): was the feed removed "
            "and started again?", seq=after,
        )


class SQLiteFeed:
    """The writer's side on SQLite: triggers, numbering at commit, trimming."""

    def __init__(self, keep_count: int | None, keep_seconds: float | None):
        check_retention(keep_count, keep_seconds)
        self.keep_count = keep_count
        self.keep_seconds = keep_seconds
        self._schema_version = -1
        self._on = False

    @staticmethod
    def exists(conn: sqlite3.Connection) -> bool:
        """Whether the change table exists in the database."""
        return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (CHANGES,)).fetchall())

    def triggers(self, tid: int, name: str) -> list[str]:
        """DDL of the triggers recording the changes of one documents table."""
        table, tbl = f"mdb_{tid}", _literal(name)
        ins = f"INSERT INTO {CHANGES} (tbl, op, doc_id, doc) VALUES ({tbl}, "
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_feed_i AFTER INSERT ON {table} BEGIN {ins}'i', NEW.id, NEW.doc); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_feed_u AFTER UPDATE ON {table} BEGIN {ins}'u', NEW.id, NEW.doc); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_feed_r AFTER DELETE ON {table} BEGIN {ins}'r', OLD.id, NULL); END",
        ]

    def create(self, conn: sqlite3.Connection) -> None:
        """Start the feed (inside a write transaction): the tables and every table's triggers."""
        if self.exists(conn):
            return
        conn.execute(
            f"CREATE TABLE {CHANGES} (pos INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER, tbl TEXT NOT NULL, "
            "op TEXT NOT NULL, doc_id INTEGER, doc TEXT, "
            "ts REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0))"
        )
        conn.execute(f"CREATE INDEX {CHANGES}_seq ON {CHANGES} (seq)")
        conn.execute(f"CREATE TABLE {KEPT} (first INTEGER NOT NULL, keep_count INTEGER, keep_seconds REAL)")
        conn.execute(f"INSERT INTO {KEPT} VALUES (1, ?, ?)", (self.keep_count, self.keep_seconds))
        conn.execute(
            f"CREATE TRIGGER {REGISTRY}_feed_x AFTER DELETE ON {REGISTRY} BEGIN "
            f"INSERT INTO {CHANGES} (tbl, op) VALUES (OLD.name, 'x'); END"
        )
        for tid, name in conn.execute(f"SELECT tid, name FROM {REGISTRY}").fetchall():
            for ddl in self.triggers(int(tid), str(name)):
                conn.execute(ddl)

    def on(self, conn: sqlite3.Connection) -> bool:
        """Whether the feed exists (one ``PRAGMA schema_version`` when nothing changed)."""
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        if version != self._schema_version:
            self._schema_version = version
            self._on = self.exists(conn)
        return self._on

    def seal(self, conn: sqlite3.Connection) -> None:
        """Number this transaction's changes (just before ``COMMIT``), and trim now and then."""
        if not self.on(conn):
            return
        if not conn.execute(f"SELECT 1 FROM {CHANGES} WHERE seq IS NULL LIMIT 1").fetchall():
            return
        seq = int(conn.execute(f"SELECT IFNULL(MAX(seq), 0) + 1 FROM {CHANGES}").fetchone()[0])
        conn.execute(f"UPDATE {CHANGES} SET seq = ? WHERE seq IS NULL", (seq,))
        if seq % TRIM_EVERY == 0:
            self.trim(conn, seq)

    @staticmethod
    def trim(conn: sqlite3.Connection, last: int) -> None:
        """Drop the commits beyond the retention."""
        keep_count, keep_seconds = conn.execute(f"SELECT keep_count, keep_seconds FROM {KEPT}").fetchone()
        cut = 0
        if keep_count is not None:
            cut = max(cut, last - int(keep_count))
        if keep_seconds is not None:
            row = conn.execute(
                f"SELECT MAX(seq) FROM {CHANGES} WHERE ts < (julianday('now') - 2440587.5) * 86400.0 - ?",
                (keep_seconds,),
            ).fetchone()
            cut = max(cut, int(row[0] or 0))
        if cut > 0:
            conn.execute(f"DELETE FROM {CHANGES} WHERE seq <= ?", (cut,))
            conn.execute(f"UPDATE {KEPT} SET first = MAX(first, ?)", (cut + 1,))


class SQLiteChangeLog(ChangeLog):
    """A reader of a SQLite database's change table, on a connection of its own."""

    def __init__(self, path: str, *, interval: float = 0.002):
        self.path = path
        self.interval = interval
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {path!r} to read its changes: {exc}") from exc
        self._version: int | None = None
        self._known = 0  # the newest seq seen: nothing new until data_version moves

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the changes of {self.path!r}: {exc}") from exc

    def _bounds(self) -> tuple[int, int]:
        rows = self._fetch(f"SELECT first, (SELECT IFNULL(MAX(seq), 0) FROM {CHANGES}) FROM {KEPT}", ())
        first, last = int(rows[0][0]), int(rows[0][1])
        return first, max(last, first - 1)

    def last_seq(self) -> int:
        """The newest commit's number."""
        return self._bounds()[1]

    def read(self, after: int, tables: Collection[str] | None = None, limit: int = 1000) -> tuple[list[Change], int]:
        """Whole commits above ``after``; the last seq read."""
        version = self._fetch("PRAGMA data_version", ())[0][0]
        if version == self._version and after == self._known:
            return [], after  # no other connection committed since our last look
        self._conn.execute("BEGIN")  # one snapshot for the bounds and the rows
        try:
            first, last = self._bounds()
            expired(first, after, last, repr(self.path))
            changes, seq = read_commits(self._fetch, "?", after, tables, limit)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("COMMIT")
        # Only once we have read to the end may an unchanged data_version mean "nothing new".
        self._version, self._known = (version, seq) if seq >= last else (None, 0)
        return changes, seq

    def close(self) -> None:
        """Close the reader's connection."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
