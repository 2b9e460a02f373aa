"""``with db.transaction():`` commits every write inside it, across tables, as one unit or not at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microdb import DatabaseClosedError, DuplicateKeyError, MicroDB, where
from microdb.storage.jsonfile import JOURNAL_SUFFIX


class Boom(Exception):
    """Raised inside a transaction by the tests."""


def snapshot(db: MicroDB) -> dict[str, Any]:
    """Every table's documents (with ids) and indexes."""
    out: dict[str, Any] = {}
    for name in sorted(db.tables()):
        table = db.table(name)
        out[name] = ([(d.doc_id, dict(d)) for d in table.all()], sorted(map(repr, table.indexes())))
    return out


def seeded(db: MicroDB) -> MicroDB:
    """Some committed data in three tables."""
    db.insert_many([{"n": 1}, {"n": 2}])
    db.table("users").insert_many([{"name": "ann", "email": "a@x"}, {"name": "bob", "email": "b@x"}])
    db.table("users").create_index("email", unique=True)
    db.table("logs").insert({"msg": "start"})
    return db


def test_a_transaction_commits_writes_across_tables(opener: Callable[[], MicroDB]) -> None:
    """Writes to several tables inside one block are all there afterwards, and after reopening."""
    db = seeded(opener())
    with db.transaction():
        db.table("users").insert({"name": "cid", "email": "c@x"})
        db.table("orders").insert({"user": "cid", "total": 3})
        db.update({"$inc": {"n": 10}}, where("n") == 1)
        db.table("logs").remove(where("msg") == "start")
    expected = snapshot(db)
    assert [d["name"] for d in db.table("users").all()] == ["ann", "bob", "cid"]
    assert db.table("orders").count() == 1
    assert db.get(doc_id=1) == {"n": 11}
    assert len(db.table("logs")) == 0
    db.close()
    assert snapshot(opener()) == expected


def test_an_exception_rolls_back_every_write(opener: Callable[[], MicroDB]) -> None:
    """An exception inside the block undoes inserts, updates, removals, new tables, drops and indexes."""
    db = seeded(opener())
    before = snapshot(db)
    with pytest.raises(Boom):
        with db.transaction():
            db.insert({"n": 3})
            db.update({"n": 0}, {})
            db.table("users").insert({"name": "cid", "email": "c@x"})
            db.table("users").remove(where("name") == "ann")
            db.table("users").create_index("name")
            db.table("orders").insert({"total": 1})
            db.drop_table("logs")
            db.table("users").truncate()
            raise Boom
    assert snapshot(db) == before
    db.close()
    assert snapshot(opener()) == before


def test_a_failed_write_inside_rolls_back_the_whole_block(opener: Callable[[], MicroDB]) -> None:
    """A unique-index violation escaping the block undoes the block's earlier writes too."""
    db = seeded(opener())
    before = snapshot(db)
    with pytest.raises(DuplicateKeyError):
        with db.transaction():
            db.table("orders").insert({"total": 1})
            db.table("users").insert({"name": "bob2", "email": "b@x"})
    assert snapshot(db) == before
    db.close()
    assert snapshot(opener()) == before


def test_reads_inside_see_the_transactions_own_writes(db: MicroDB) -> None:
    """Inside the block, every kind of read sees what the block wrote so far."""
    seeded(db)
    users = db.table("users")
    with db.transaction():
        new = users.insert({"name": "cid", "email": "c@x"})
        assert users.get(doc_id=new) == {"name": "cid", "email": "c@x"}
        assert users.count(where("name") == "cid") == 1
        assert [d["name"] for d in users.query().sort(("name", -1)).limit(1)] == ["cid"]
        users.update({"name": "CID"}, doc_ids=[new])
        assert users.search({"name": "CID"})[0].doc_id == new
        users.remove(doc_ids=[1])
        assert len(users) == 2 and not users.contains(doc_id=1)
        assert "orders" not in db.tables()
        db.table("orders").insert({"x": 1})
        assert "orders" in db.tables()


def test_nested_blocks_roll_back_only_the_failed_inner_block(opener: Callable[[], MicroDB]) -> None:
    """An inner block that raises undoes its own writes; the outer block goes on and commits."""
    db = opener()
    with db.transaction():
        db.insert({"step": "a"})
        try:
            with db.transaction():
                db.insert({"step": "b"})
                db.table("other").insert({"step": "b"})
                raise Boom
        except Boom:
            pass
        assert [d["step"] for d in db.all()] == ["a"]
        with db.transaction():
            db.insert({"step": "c"})
        db.insert({"step": "d"})
    assert [d["step"] for d in db.all()] == ["a", "c", "d"]
    assert "other" not in db.tables()
    db.close()
    assert [d["step"] for d in opener().all()] == ["a", "c", "d"]


def test_an_outer_failure_undoes_committed_inner_blocks(opener: Callable[[], MicroDB]) -> None:
    """An inner block's writes become permanent only when the outermost block commits."""
    db = seeded(opener())
    before = snapshot(db)
    with pytest.raises(Boom):
        with db.transaction():
            with db.transaction():
                db.insert({"n": 3})
                db.table("users").update({"$set": {"seen": True}}, {})
            assert db.count() == 3
            raise Boom
    assert snapshot(db) == before
    db.close()
    assert snapshot(opener()) == before


def test_a_transaction_on_a_closed_database_raises(db: MicroDB) -> None:
    """After close(), transaction() raises DatabaseClosedError."""
    db.close()
    with pytest.raises(DatabaseClosedError):
        with db.transaction():
            pass


def test_other_threads_see_all_or_nothing(db: MicroDB) -> None:
    """A thread reading while a block writes never sees part of it."""
    steps = 30
    db.table("t").insert({"i": -1})
    seen: list[int] = []
    started, done = threading.Event(), threading.Event()

    def reader() -> None:
        started.set()
        while not done.is_set():
            seen.append(len(db.table("t")))
        seen.append(len(db.table("t")))

    thread = threading.Thread(target=reader)
    with db.transaction():
        thread.start()
        started.wait()
        for i in range(steps):
            db.table("t").insert({"i": i})
    done.set()
    thread.join()
    assert seen and set(seen) <= {1, steps + 1}
    assert seen[-1] == steps + 1


def test_a_transaction_is_one_journal_record(tmp_path: Path) -> None:
    """On the JSON file, a block of many writes across tables appends exactly one journal record."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path))
    db.insert({"warm": 1})
    journal = Path(str(path) + JOURNAL_SUFFIX)
    lines = journal.read_bytes().count(b"\n")
    with db.transaction():
        for i in range(20):
            db.table("a").insert({"i": i})
            db.table("b").insert({"i": i})
        db.update({"warm": 2}, {})
    assert journal.read_bytes().count(b"\n") == lines + 1
    with pytest.raises(Boom):
        with db.transaction():
            db.table("a").insert({"i": 99})
            raise Boom
    assert journal.read_bytes().count(b"\n") == lines + 1
    db.close()


# ---------------------------------------------------------------------------------------
# Real processes on the JSON file: killed mid-transaction, and readers in other processes
# ---------------------------------------------------------------------------------------


def _child(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


HOLD_OPEN = """
    import sys
    from microdb import MicroDB
    db = MicroDB(sys.argv[1])
    with db.transaction():
        for i in range(500):
            db.table("a").insert({"i": i})
            db.table("b").insert({"i": i})
        db.update({"$set": {"state": "changed"}}, {})
        print("inside", flush=True)
        sys.stdin.read()  # wait here, inside the block, until killed
"""


@pytest.mark.slow
def test_a_process_killed_mid_transaction_leaves_nothing(tmp_path: Path) -> None:
    """Killing a process inside a block leaves the file as it was; others never saw the block."""
    path = str(tmp_path / "db.json")
    db = MicroDB(path)
    db.insert({"state": "committed"})
    db.table("a").insert({"i": "before"})
    before = snapshot(db)
    child = _child(HOLD_OPEN, path)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "inside"
        assert snapshot(db) == before  # this process, reading meanwhile, sees nothing of it
    finally:
        child.kill()
        child.communicate()
    assert snapshot(db) == before
    db.close()
    after = MicroDB(path)
    assert snapshot(after) == before
    after.insert({"state": "next"})  # the dead process's lock is gone
    after.close()


WRITER = """
    import sys
    import time
    from microdb import MicroDB
    db = MicroDB(sys.argv[1])
    k = int(sys.argv[2])
    counter = db.get({"counter": True})
    n = counter["n"] if counter else 0  # go on from what an earlier, killed writer left
    while True:
        n += 1
        with db.transaction():
            db.table("a").insert_many([{"n": n, "j": j} for j in range(k)])
            for j in range(k):
                db.table("b").insert({"n": n, "j": j})
            db.upsert({"$set": {"n": n}}, {"counter": True})
        print(n, flush=True)
        time.sleep(0.002)  # room for other processes to take the write lock now and then
"""


def _check_whole(db: MicroDB, k: int) -> int:
    """Both tables hold the same whole number of blocks, and the counter says how many."""
    a, b = db.table("a").all(), db.table("b").all()
    blocks = len(a) // k
    assert len(a) == len(b) == blocks * k
    counter = db.get({"counter": True})
    assert (counter["n"] if counter else 0) == blocks
    assert sorted((d["n"], d["j"]) for d in a) == sorted((d["n"], d["j"]) for d in b)
    return blocks


@pytest.mark.slow
def test_a_process_killed_while_committing_leaves_whole_transactions(tmp_path: Path) -> None:
    """However often a writer is killed and restarted, the file holds whole transactions only."""
    path, k = str(tmp_path / "db.json"), 25
    done = 0
    for after_commits in (1, 7, 2, 40, 3, 15):
        child = _child(WRITER, path, str(k))
        try:
            assert child.stdout is not None
            for _ in range(after_commits):
                assert child.stdout.readline().strip(), child.stderr.read() if child.stderr else ""
        finally:
            child.kill()  # lands wherever the writer is: between blocks, or in the middle of one
            child.communicate()
        db = MicroDB(path)
        blocks = _check_whole(db, k)
        db.close()
        assert blocks >= done + after_commits
        done = blocks


@pytest.mark.slow
def test_readers_in_other_processes_never_see_a_partial_transaction(tmp_path: Path) -> None:
    """A reader polling the file while another process commits blocks always sees whole blocks."""
    path, k = str(tmp_path / "db.json"), 10
    reader = MicroDB(path)
    child = _child(WRITER, path, str(k))
    try:
        assert child.stdout is not None
        seen = set()
        for _ in range(60):
            assert len(reader.table("a")) % k == 0
            with reader.transaction():  # a consistent view of both tables at once
                seen.add(_check_whole(reader, k))
            child.stdout.readline()
        assert len(seen) > 1  # the reader did see the writer's progress
    finally:
        child.kill()
        child.communicate()
        reader.close()

