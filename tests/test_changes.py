"""The change feed of a JSON file: ``db.changes()``, ``db.last_seq`` and ``table.watch()``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from microdb import ChangesExpiredError, MicroDB, UnsupportedFeature
from microdb.feed import Change


def _ops(changes: list[Change]) -> list[tuple[int, str, str, int | None, object]]:
    return [(c.seq, c.table, c.op, c.doc_id, c.doc) for c in changes]


@pytest.fixture
def db(tmp_path: Path) -> MicroDB:
    """A JSON file database with its change feed on."""
    database = MicroDB(tmp_path / "db.json", changes=True)
    yield database
    database.close()


def test_every_kind_of_write_makes_its_event(db: MicroDB) -> None:
    """Insert, update, remove and drop each report the id and the document after."""
    users = db.table("users")
    stream = db.changes(timeout=0)
    users.insert({"name": "Ann"})
    users.update({"age": 30}, doc_ids=[1])
    users.remove(doc_ids=[1])
    db.drop_table("users")
    assert _ops(list(stream)) == [
        (1, "users", "insert", 1, {"name": "Ann"}),
        (2, "users", "update", 1, {"name": "Ann", "age": 30}),
        (3, "users", "remove", 1, None),
        (4, "users", "drop", None, None),
    ]
    assert stream.seq == 4 == db.last_seq


def test_a_transaction_is_one_sequence_number_and_a_rollback_none(db: MicroDB) -> None:
    """Every change of a commit shares its number; a rolled-back block makes no event."""
    stream = db.changes(timeout=0)
    with db.transaction():
        db.table("a").insert({"x": 1})
        db.table("b").insert_many([{"y": 1}, {"y": 2}])
    with pytest.raises(KeyError), db.transaction():
        db.table("a").insert({"x": 2})
        raise KeyError("undo")
    db.table("a").upsert({"x": 3}, {"x": {"$eq": 3}})
    changes = list(stream)
    assert [(c.seq, c.table, c.op) for c in changes] == [
        (1, "a", "insert"), (1, "b", "insert"), (1, "b", "insert"), (2, "a", "insert"),
    ]
    assert changes[-1].doc == {"x": 3}


def test_metadata_changes_and_empty_commits_make_no_event(db: MicroDB) -> None:
    """Creating an index changes no document: nothing to report, no number used."""
    db.create_index("x")
    db.update({"x": 1}, {"x": {"$eq": 99}})
    assert db.last_seq == 0


def test_changes_resume_after_a_sequence_number_and_filter_tables(db: MicroDB) -> None:
    """``since`` starts after a commit; ``tables`` keeps only those tables' events."""
    for i in range(5):
        db.table("even" if i % 2 == 0 else "odd").insert({"i": i})
    assert [c.doc["i"] for c in db.changes(since=2, timeout=0) if c.doc] == [2, 3, 4]
    assert [c.seq for c in db.changes(since=0, tables=["odd"], timeout=0)] == [2, 4]
    stream = db.changes(since=0, tables="even", timeout=0)
    assert len(list(stream)) == 3 and stream.seq == 5  # past the commits it skipped too


def test_since_none_starts_now(db: MicroDB) -> None:
    """A new stream reports only what is committed after it opened."""
    db.insert({"old": True})
    stream = db.changes(timeout=0)
    db.insert({"new": True})
    assert [c.doc for c in stream] == [{"new": True}]


def test_poll_returns_what_is_there(db: MicroDB) -> None:
    """``poll()`` hands over the available changes without blocking."""
    stream = db.changes()
    assert stream.poll() == []
    db.insert_many([{"i": 1}, {"i": 2}])
    assert [c.doc_id for c in stream.poll()] == [1, 2]
    assert stream.seq == 1


def test_the_history_survives_checkpoints(tmp_path: Path) -> None:
    """Compaction folds the journal away, not the feed."""
    db = MicroDB(tmp_path / "db.json", changes=True, checkpoint_bytes=0, checkpoint_ratio=0.01)
    for i in range(20):
        db.insert({"i": i})
    db.compact()
    db.close()
    db = MicroDB(tmp_path / "db.json")
    assert [c.doc["i"] for c in db.changes(since=0, timeout=0) if c.doc] == list(range(20))
    db.close()


def test_retention_keeps_the_newest_and_refuses_older_resumes(tmp_path: Path) -> None:
    """Past the retention, old commits go; resuming before them is a clear error."""
    db = MicroDB(tmp_path / "db.json", changes=True, changes_keep_count=10)
    for i in range(40):
        db.insert({"i": i})
    assert db.last_seq == 40
    kept = list(db.changes(since=35, timeout=0))
    assert [c.seq for c in kept] == [36, 37, 38, 39, 40]
    with pytest.raises(ChangesExpiredError, match="keeps commits from") as info:
        list(db.changes(since=1, timeout=0))
    assert info.value.seq == 1
    assert isinstance(info.value, LookupError)
    db.close()


def test_retention_by_size(tmp_path: Path) -> None:
    """The byte limit bounds the side file."""
    db = MicroDB(tmp_path / "db.json", changes=True, changes_keep_bytes=4000)
    for i in range(200):
        db.insert({"i": i, "pad": "x" * 50})
    assert os.path.getsize(tmp_path / "db.json.changes") <= 4000 * 1.25 + 200
    assert [c.seq for c in db.changes(since=199, timeout=0)] == [200]
    db.close()


def test_retention_by_age(tmp_path: Path) -> None:
    """Commits older than ``changes_keep_seconds`` go at the next trim."""
    db = MicroDB(tmp_path / "db.json", changes=True, changes_keep_seconds=0.2)
    for i in range(5):
        db.insert({"i": i})
    time.sleep(0.4)
    db.insert({"i": 5})
    assert [c.seq for c in db.changes(since=5, timeout=0)] == [6]
    with pytest.raises(ChangesExpiredError):
        list(db.changes(since=0, timeout=0))
    db.close()


def test_a_stream_follows_the_file_through_a_trim(tmp_path: Path) -> None:
    """A reader in the middle of the history keeps its place when a writer trims the file."""
    db = MicroDB(tmp_path / "db.json", changes=True, changes_keep_count=8)
    stream = db.changes(timeout=0)
    seen: list[int] = []
    for i in range(50):
        db.insert({"i": i})
        if i % 3 == 0:
            seen.extend(c.seq for c in stream.poll())
    seen.extend(c.seq for c in stream)
    assert seen == list(range(1, 51))
    db.close()


def test_large_commits_and_long_histories_are_read_whole(db: MicroDB) -> None:
    """A commit larger than a reader's read size, and a history of several reads, arrive whole."""
    big = "x" * 4000
    db.insert_many([{"i": i, "pad": big} for i in range(400)])  # one record of about 1.6 MB
    for i in range(300):
        db.insert({"i": 400 + i, "pad": big})  # about 1.2 MB more, commit by commit
    assert db.last_seq == 301
    stream = db.changes(since=0, timeout=0)
    got = [c.doc["i"] for c in stream if c.doc]
    assert got == list(range(700)) and stream.seq == 301
    assert [c.seq for c in db.changes(since=300, timeout=0)] == [301]


def test_a_stream_too_slow_for_the_retention_gets_an_error(tmp_path: Path) -> None:
    """A reader that fell behind what is kept is told, never silently skipped ahead."""
    db = MicroDB(tmp_path / "db.json", changes=True, changes_keep_count=4)
    stream = db.changes(timeout=0)
    for i in range(30):
        db.insert({"i": i})
    seen: list[int] = []
    with pytest.raises(ChangesExpiredError):
        for _ in range(10):
            seen.extend(c.seq for c in stream.poll())
    assert seen == list(range(1, len(seen) + 1))  # what it got has no hole
    db.close()


def test_a_resume_point_after_the_feed_is_an_error(db: MicroDB) -> None:
    """A sequence number the feed never reached (the feed was reset) is refused."""
    db.insert({})
    with pytest.raises(ChangesExpiredError, match="after the newest"):
        db.changes(since=7, timeout=0).poll()


def test_bad_arguments(db: MicroDB) -> None:
    """``since`` and ``timeout`` are checked up front."""
    with pytest.raises(ValueError, match="since"):
        db.changes(since=-1)
    with pytest.raises(ValueError, match="since"):
        db.changes(since="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        db.changes(timeout=-1)
    with pytest.raises(TypeError, match="tables"):
        db.changes(tables=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="changes_keep_count"):
        MicroDB(Path(db.backend.store.path).with_name("other.json"), changes_keep_count=0)  # type: ignore[attr-defined]


def test_memory_databases_have_no_feed() -> None:
    """Only the file and SQL backends keep a history; others say so."""
    with pytest.raises(UnsupportedFeature, match="change feed"):
        MicroDB().changes()


def test_the_first_reader_turns_the_feed_on(tmp_path: Path) -> None:
    """By default a file records its history once someone reads it."""
    path = tmp_path / "db.json"
    writer = MicroDB(path)
    writer.insert({"before": True})
    assert not (tmp_path / "db.json.changes").exists()
    reader = MicroDB(path)
    stream = reader.changes(timeout=0)
    writer.insert({"after": True})
    assert [c.doc for c in stream] == [{"after": True}]
    writer.close()
    reader.close()


CRASH_BETWEEN = r"""
import os, sys
from microdb import MicroDB
from microdb.storage.feed import FeedWriter
db = MicroDB(sys.argv[1])
FeedWriter.record = lambda *args: os._exit(9)  # die after the journal, before the feed
db.insert({"n": 2})
"""


def test_a_commit_missing_from_the_feed_is_reported_not_skipped(tmp_path: Path) -> None:
    """A writer killed between its journal record and its feed line leaves a reported gap."""
    path = tmp_path / "db.json"
    db = MicroDB(path, changes=True)
    stream = db.changes(timeout=0)
    db.insert({"n": 1})
    proc = subprocess.run([sys.executable, "-c", CRASH_BETWEEN, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr.decode()
    db.insert({"n": 3})
    assert [c.doc for c in stream.poll()] == [{"n": 1}]
    with pytest.raises(ChangesExpiredError, match="missing") as info:
        stream.poll()
    assert info.value.seq == 2
    assert db.all() == [{"n": 1}, {"n": 2}, {"n": 3}]  # the commit itself is there
    assert [c.doc for c in db.changes(since=info.value.seq, timeout=0)] == [{"n": 3}]
    db.close()


def test_a_missing_commit_is_reported_even_when_a_compaction_follows(tmp_path: Path) -> None:
    """A compaction right after the lost commit still records the gap before folding the journal."""
    path = tmp_path / "db.json"
    db = MicroDB(path, changes=True)
    stream = db.changes(timeout=0)
    db.insert({"n": 1})
    proc = subprocess.run([sys.executable, "-c", CRASH_BETWEEN, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr.decode()
    db.compact()
    db.insert({"n": 3})
    assert [c.doc for c in stream.poll()] == [{"n": 1}]
    with pytest.raises(ChangesExpiredError, match="missing"):
        stream.poll()
    db.close()


def test_watch_iterates_one_table(db: MicroDB) -> None:
    """``watch()`` is the table's own stream, ending after its timeout."""
    users = db.table("users")
    watch = users.watch(timeout=0.01)
    users.insert({"u": 1})
    db.table("other").insert({"o": 1})
    users.insert({"u": 2})
    assert [c.doc for c in watch] == [{"u": 1}, {"u": 2}]
    assert watch.seq == 3
    watch.stop()


def test_watch_with_a_callback_runs_until_stopped(db: MicroDB) -> None:
    """A background thread calls back for each change and ends on ``stop()``."""
    got: list[Change] = []
    arrived = threading.Event()

    def seen(change: Change) -> None:
        got.append(change)
        if len(got) == 3:
            arrived.set()

    watch = db.watch(seen)
    assert watch.running
    db.insert_many([{"i": 1}, {"i": 2}])
    db.insert({"i": 3})
    assert arrived.wait(5)
    watch.stop()
    assert not watch.running and watch.error is None
    db.insert({"i": 4})
    time.sleep(0.05)
    assert [c.doc for c in got] == [{"i": 1}, {"i": 2}, {"i": 3}]


def test_a_failing_callback_stops_its_watch_and_is_kept(db: MicroDB) -> None:
    """The callback's exception ends the thread and is available as ``error``."""
    watch = db.watch(lambda change: 1 / 0)
    db.insert({})
    deadline = time.monotonic() + 5
    while watch.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(watch.error, ZeroDivisionError)


def test_rich_values_come_back_as_they_went_in(db: MicroDB) -> None:
    """Dates and other rich values travel through the feed intact."""
    import datetime

    when = datetime.datetime(2024, 5, 1, 12, 30)
    stream = db.changes(timeout=0)
    db.insert({"when": when, "tags": {"a", "b"}})
    (change,) = list(stream)
    assert change.doc == {"when": when, "tags": {"a", "b"}}


WRITER = r"""
import sys
from microdb import MicroDB
db = MicroDB(sys.argv[1])
for i in range(int(sys.argv[2])):
    db.table("t").insert({"i": i})
db.close()
"""


def test_another_process_sees_the_commits_in_order(tmp_path: Path) -> None:
    """A reader follows a writer in another process, commit by commit."""
    path = tmp_path / "db.json"
    reader = MicroDB(path)
    stream = reader.changes(timeout=2)
    proc = subprocess.run([sys.executable, "-c", WRITER, str(path), "30"], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    changes = list(stream)
    assert [c.doc["i"] for c in changes if c.doc] == list(range(30))
    assert [c.seq for c in changes] == list(range(1, 31))
    # The data the reader sees includes what the feed announced.
    assert len(reader.table("t")) == 30
    reader.close()
