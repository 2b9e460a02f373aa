"""The change feed on PostgreSQL: change table, numbering at commit, ``LISTEN``/``NOTIFY``.

:mod:`microdb.sql.feed` describes the layout. Here the whole writer's side runs in the
server: row triggers add the changes, and a deferred constraint trigger on the change
table numbers them when the transaction commits. It takes a transaction-level advisory
lock first, so numbers are handed out in commit order (the lock is held until the commit
is visible), then sends ``NOTIFY microdb_changes`` (delivered at commit). Writers need
no code of their own, so every process records its commits, whatever it knows of the feed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Sequence
from typing import Any

from microdb.errors import StorageError
from microdb.feed import Change, ChangeLog
from microdb.sql.feed import CHANGES, COLUMNS, KEPT, TRIM_EVERY, expired, whole_commits
from microdb.sql.schema import REGISTRY
from microdb.sql.steps import Run, Step, Steps, drive

__all__ = ["CHANNEL", "PostgresChangeLog", "bounds_steps", "create_sql", "read_steps", "table_triggers_sql"]

CHANNEL = "microdb_changes"
_SEAL_LOCK = 727275  # the advisory lock that orders numbering (the schema lock is 727274)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_triggers_sql(table: str) -> list[str]:
    """DDL adding the change triggers to one documents table, when the feed exists."""
    name = f"{table}_feed"
    return [
        "DO $$ BEGIN IF to_regclass('microdb_changes') IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = {_literal(name)} "
        f"AND tgrelid = to_regclass({_literal(table)})) THEN "
        f"EXECUTE 'CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION microdb_changes_add()'; END IF; END $$"
    ]


def create_sql(keep_count: int | None, keep_seconds: float | None) -> list[str]:
    """DDL starting the feed: tables, functions, triggers on the registry and every table."""
    count = "NULL" if keep_count is None else str(int(keep_count))
    seconds = "NULL" if keep_seconds is None else repr(float(keep_seconds))
    return [
        f"CREATE TABLE IF NOT EXISTS {CHANGES} (pos BIGSERIAL PRIMARY KEY, seq BIGINT, tbl TEXT NOT NULL, "
        "op TEXT NOT NULL, doc_id BIGINT, doc TEXT, ts DOUBLE PRECISION NOT NULL DEFAULT "
        "extract(epoch from clock_timestamp()))",
        f"CREATE INDEX IF NOT EXISTS {CHANGES}_seq ON {CHANGES} (seq)",
        f"CREATE TABLE IF NOT EXISTS {KEPT} (first BIGINT NOT NULL, keep_count BIGINT, keep_seconds DOUBLE PRECISION)",
        f"INSERT INTO {KEPT} SELECT 1, {count}, {seconds} WHERE NOT EXISTS (SELECT 1 FROM {KEPT})",
        # One row per changed document; the table's name comes from the registry by tid.
        "CREATE OR REPLACE FUNCTION microdb_changes_add() RETURNS trigger LANGUAGE plpgsql AS $f$ "
        "DECLARE t text; BEGIN "
        f"SELECT name INTO t FROM {REGISTRY} WHERE tid = substr(TG_TABLE_NAME, 5)::bigint; "
        "IF TG_OP = 'DELETE' THEN "
        f"INSERT INTO {CHANGES} (tbl, op, doc_id) VALUES (t, 'r', OLD.id); "
        "ELSE "
        f"INSERT INTO {CHANGES} (tbl, op, doc_id, doc) VALUES (t, CASE TG_OP WHEN 'INSERT' THEN 'i' ELSE 'u' END, "
        "NEW.id, NEW.body); "
        "END IF; RETURN NULL; END $f$",
        "CREATE OR REPLACE FUNCTION microdb_changes_drop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
        f"INSERT INTO {CHANGES} (tbl, op) VALUES (OLD.name, 'x'); RETURN NULL; END $f$",
        # At commit: number this transaction's rows, in commit order, trim now and then, notify.
        "CREATE OR REPLACE FUNCTION microdb_changes_seal() RETURNS trigger LANGUAGE plpgsql AS $f$ "
        "DECLARE n bigint; k record; cut bigint := 0; BEGIN "
        "IF current_setting('microdb.sealed', true) = txid_current()::text THEN RETURN NULL; END IF; "
        f"PERFORM pg_advisory_xact_lock({_SEAL_LOCK}); "
        f"SELECT COALESCE(MAX(seq), 0) + 1 INTO n FROM {CHANGES}; "
        f"UPDATE {CHANGES} SET seq = n WHERE seq IS NULL; "
        "PERFORM set_config('microdb.sealed', txid_current()::text, true); "
        f"IF mod(n, {TRIM_EVERY}) = 0 THEN "
        f"SELECT keep_count, keep_seconds INTO k FROM {KEPT}; "
        "IF k.keep_count IS NOT NULL THEN cut := n - k.keep_count; END IF; "
        "IF k.keep_seconds IS NOT NULL THEN "
        f"SELECT GREATEST(cut, COALESCE(MAX(seq), 0)) INTO cut FROM {CHANGES} "
        "WHERE ts < extract(epoch from clock_timestamp()) - k.keep_seconds; END IF; "
        f"IF cut > 0 THEN DELETE FROM {CHANGES} WHERE seq <= cut; "
        f"UPDATE {KEPT} SET first = GREATEST(first, cut + 1); END IF; "
        "END IF; "
        f"PERFORM pg_notify('{CHANNEL}', n::text); RETURN NULL; END $f$",
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'microdb_changes_seal' "
        f"AND tgrelid = to_regclass('{CHANGES}')) THEN "
        f"CREATE CONSTRAINT TRIGGER microdb_changes_seal AFTER INSERT ON {CHANGES} "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION microdb_changes_seal(); END IF; "
        "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'microdb_tables_feed' "
        f"AND tgrelid = to_regclass('{REGISTRY}')) THEN "
        f"CREATE TRIGGER microdb_tables_feed AFTER DELETE ON {REGISTRY} "
        "FOR EACH ROW EXECUTE FUNCTION microdb_changes_drop(); END IF; END $$",
    ]


def bounds_steps() -> Steps[tuple[int, int]]:
    """The oldest commit the history keeps and the newest, as steps (:mod:`microdb.sql.steps`)."""
    rows = yield Run(f"SELECT first, (SELECT COALESCE(MAX(seq), 0) FROM {CHANGES}) FROM {KEPT}")
    first, last = int(rows[0][0]), int(rows[0][1])
    return first, max(last, first - 1)


def read_steps(after: int, tables: Collection[str] | None, limit: int) -> Steps[tuple[list[Change], int]]:
    """Whole commits above ``after`` (of ``tables``), and the last seq read, as steps.

    One statement (one round trip, one snapshot) reads the bounds of the history and the
    first rows after ``after``: a reader woken by ``NOTIFY`` holds the commit after a
    single exchange with the server.
    """
    rows = yield Run(
        f"SELECT k.first, (SELECT COALESCE(MAX(seq), 0) FROM {CHANGES}), c.* FROM {KEPT} AS k "
        f"LEFT JOIN LATERAL (SELECT {COLUMNS}, pos FROM {CHANGES} WHERE seq > %s ORDER BY seq, pos "
        "LIMIT %s) AS c ON true ORDER BY c.seq, c.pos",
        (after, limit + 1),
    )
    first = int(rows[0][0])
    expired(first, after, max(int(rows[0][1]), first - 1), "this PostgreSQL database")
    changes = [r[2:8] for r in rows if r[2] is not None]
    return (yield from whole_commits(changes, "%s", after, tables, limit))


class PostgresChangeLog(ChangeLog):
    """A reader of the change table on a connection of its own, woken by ``NOTIFY``."""

    def __init__(self, psycopg: Any, url: str, search_path: str | None, timeout: float):
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)))
            if search_path is not None:
                self._conn.execute("SELECT set_config('search_path', %s, false)", (search_path,))
            # psycopg keeps the notices that arrive while a query of ours runs for the next
            # notifies() call, so none is slept through.
            self._conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:
            raise StorageError(f"cannot connect to PostgreSQL to read its changes: {exc}") from exc


    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, tuple(params)).fetchall()
            return rows
        except Exception as exc:
            raise StorageError(f"cannot read the PostgreSQL change feed: {exc}") from exc

    def last_seq(self) -> int:
        """The newest commit's number."""
        return drive(bounds_steps(), self._answer)[1]

    def read(self, after: int, tables: Collection[str] | None = None, limit: int = 1000) -> tuple[list[Change], int]:
        """Whole commits above ``after``; the last seq read."""
        return drive(read_steps(after, tables, limit), self._answer)

    def _answer(self, step: Step) -> list[tuple[Any, ...]]:
        assert isinstance(step, Run)
        return self._fetch(step.sql, step.params)

    def wait(self, after: int, timeout: float) -> None:
        """Return at the next ``NOTIFY`` (or after ``timeout`` seconds)."""
        try:
            for _ in self._conn.notifies(timeout=max(timeout, 0.0), stop_after=1):
                break
        except Exception as exc:
            time.sleep(min(timeout, 0.1))
            raise StorageError(f"lost the PostgreSQL change feed connection: {exc}") from exc

    def close(self) -> None:
        """Close the reader's connection."""
        with contextlib.suppress(Exception):
            self._conn.close()
