"""The change feed of the SQL backends: SQLite and PostgreSQL change tables."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from microdb import ChangesExpiredError, MicroDB, UnsupportedFeature
from sql_backends import new_schema, require_postgres


def _sqlite(tmp: Path) -> tuple[str, dict[str, object]]:
    return f"sqlite:///{tmp / 'db.sqlite'}", {}


def _postgres(tmp: Path) -> tuple[str, dict[str, object]]:
    return require_postgres(), {"schema": new_schema(), "pool_size": 2}


TARGETS = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(TARGETS))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., MicroDB]]:
    """Opens the same SQL database as often as asked (options may be added)."""
    url, base = TARGETS[request.param](tmp_path)
    opened: list[MicroDB] = []

    def open_db(**options: object) -> MicroDB:
        db = MicroDB(url, **{**base, **options})
        opened.append(db)
        return db

    yield open_db
    for db in opened:
        db.close()


def test_writes_transactions_and_drops(opener: Callable[..., MicroDB]) -> None:
    """Each kind of write, one number per commit, nothing from a rollback."""
    db = opener()
    db.table("keep").insert({"before": True})  # a table from before the feed started
    stream = db.changes(timeout=0.3)
    users = db.table("users")
    users.insert({"name": "Ann"})
    with db.transaction():
        users.update({"age": 30}, doc_ids=[1])
        db.table("keep").insert({"k": 2})
    with pytest.raises(KeyError), db.transaction():
        users.insert({"name": "ghost"})
        raise KeyError("undo")
    users.remove(doc_ids=[1])
    db.drop_table("users")
    got = [(c.seq, c.table, c.op, c.doc_id, c.doc) for c in stream]
    assert got == [
        (1, "users", "insert", 1, {"name": "Ann"}),
        (2, "users", "update", 1, {"name": "Ann", "age": 30}),
        (2, "keep", "insert", 2, {"k": 2}),
        (3, "users", "remove", 1, None),
        (4, "users", "drop", None, None),
    ]
    assert db.last_seq == 4
    assert [c.seq for c in db.changes(since=2, tables="users", timeout=0)] == [3, 4]


def test_a_second_connection_sees_commits_in_order(opener: Callable[..., MicroDB]) -> None:
    """A reader on another connection follows a writer commit by commit."""
    writer = opener(changes=True)
    reader = opener()
    stream = reader.changes(timeout=0.3)
    for i in range(20):
        writer.table("t").insert({"i": i})
    changes = list(stream)
    assert [c.seq for c in changes] == list(range(1, 21))
    assert [c.doc["i"] for c in changes if c.doc] == list(range(20))


def test_retention_and_resume_errors(opener: Callable[..., MicroDB]) -> None:
    """Past the retention, resuming is refused; a number past the end too."""
    db = opener(changes=True, changes_keep_count=10)
    db.insert_many([{"i": i} for i in range(5)])
    for i in range(1000):  # the 1,000th commit trims
        db.table("bulk").insert({"i": i})
    last = db.last_seq
    assert last == 1001
    assert [c.seq for c in db.changes(since=last - 2, timeout=0)] == [last - 1, last]
    with pytest.raises(ChangesExpiredError, match="keeps commits from"):
        list(db.changes(since=5, timeout=0))
    with pytest.raises(ChangesExpiredError, match="after the newest"):
        db.changes(since=last + 5, timeout=0).poll()


def test_watch_callback(opener: Callable[..., MicroDB]) -> None:
    """A callback thread gets a table's changes until stopped."""
    db = opener()
    got: list[object] = []
    watch = db.table("t").watch(got.append)
    db.table("t").insert({"x": 1})
    db.table("other").insert({"y": 1})
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    watch.stop()
    assert [c.doc for c in got] == [{"x": 1}]  # type: ignore[attr-defined]


def test_bad_retention_is_refused(opener: Callable[..., MicroDB]) -> None:
    """A retention that is not a positive number is refused when opening."""
    with pytest.raises(ValueError, match="changes_keep_count"):
        opener(changes_keep_count=0)


def test_sqlite_in_memory_has_no_feed() -> None:
    """A feed needs a file other connections can read."""
    with MicroDB("sqlite://") as db, pytest.raises(UnsupportedFeature):
        db.changes()


WRITER = r"""
import sys
from microdb import MicroDB
db = MicroDB(sys.argv[1])
for i in range(int(sys.argv[2])):
    db.table("t").insert({"i": i})
db.close()
"""


def test_sqlite_feed_across_processes(tmp_path: Path) -> None:
    """A writer process that knew nothing of the feed when it opened still records into it."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with MicroDB(url) as reader:
        stream = reader.changes(timeout=2)
        proc = subprocess.run([sys.executable, "-c", WRITER, url, "25"], capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        assert [c.seq for c in stream] == list(range(1, 26))


def test_sqlite_retention_by_age(tmp_path: Path) -> None:
    """On SQLite, the 1,000th commit drops the commits older than ``changes_keep_seconds``."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with MicroDB(url, durable=False, changes=True, changes_keep_seconds=0.3) as db:
        db.insert({"old": True})
        time.sleep(0.6)
        for i in range(999):
            db.insert({"i": i})
        assert db.last_seq == 1000
        with pytest.raises(ChangesExpiredError):
            list(db.changes(since=0, timeout=0))
        assert [c.seq for c in db.changes(since=999, timeout=0)] == [1000]
