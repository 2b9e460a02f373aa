"""A handle opened before ``os.fork()`` is safe to use in the child (POSIX only)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from microdb import AutoSavingDict, MicroDB

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")

CHILDREN = 4
PER_CHILD = 15
ROUNDS = 20


def fork_children(work: Any, count: int) -> None:
    """Run ``work(i)`` in ``count`` forked children at once; each must exit with 0."""
    pids = []
    for i in range(count):
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                work(i)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("durable", [True, False])
def test_forked_children_writing_through_an_inherited_handle(tmp_path: Path, durable: bool) -> None:
    """Children writing through the parent's handle lose nothing and leave a file that opens, round after round."""
    for round_ in range(ROUNDS // 2):
        path = str(tmp_path / f"r{round_}.json")
        db = MicroDB(path, durable=durable, checkpoint_bytes=2000, checkpoint_ratio=0.3)
        db.insert({"who": "parent", "i": -1})

        def work(child: int, db: MicroDB = db) -> None:
            for i in range(PER_CHILD):
                db.insert({"who": child, "i": i})

        fork_children(work, CHILDREN)
        db.insert({"who": "parent", "i": -2})  # the parent goes on with the same handle
        db.close()
        with MicroDB(path) as again:
            docs = again.all()
        assert len(docs) == CHILDREN * PER_CHILD + 2
        assert len({d.doc_id for d in docs}) == len(docs)  # ids unique across processes
        for child in range(CHILDREN):
            assert sorted(d["i"] for d in docs if d["who"] == child) == list(range(PER_CHILD))


def test_an_autosaving_dict_used_in_forked_children(tmp_path: Path) -> None:
    """An AutoSavingDict inherited by forked children keeps every child's changes."""
    for round_ in range(ROUNDS // 2):
        d = AutoSavingDict(tmp_path / f"d{round_}.json", durable=round_ % 2 == 0)

        def work(child: int, d: AutoSavingDict = d) -> None:
            for i in range(PER_CHILD):
                d[f"{child}-{i}"] = i

        fork_children(work, CHILDREN)
        d.close()
        with AutoSavingDict(tmp_path / f"d{round_}.json") as again:
            assert len(again) == CHILDREN * PER_CHILD


#: A module-level handle, as an application opens it at import time before its pool forks.
HANDLE: Any = None


def pool_insert(n: int) -> int:
    """Insert one document through the module-level handle (runs in a pool worker)."""
    return int(HANDLE.insert({"n": n, "pid": os.getpid()}))


def test_fork_start_pool_with_a_module_level_handle(tmp_path: Path) -> None:
    """A fork-start multiprocessing.Pool writing through a module-level handle loses no acknowledged write."""
    global HANDLE
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        path = str(tmp_path / f"p{round_}.json")
        HANDLE = MicroDB(path, durable=round_ % 2 == 0)
        HANDLE.insert({"n": -1})
        with context.Pool(3) as pool:
            ids = pool.map(pool_insert, range(24))
        assert len(set(ids)) == 24
        HANDLE.close()
        with MicroDB(path) as again:
            assert sorted(d["n"] for d in again.all()) == [-1, *range(24)]
            assert sorted(d.doc_id for d in again.all())[1:] == sorted(ids)
    HANDLE = None


def test_the_lock_is_the_childs_own(tmp_path: Path) -> None:
    """A forked child waits for the parent's write block, as another process would."""
    path = str(tmp_path / "db.json")
    db = MicroDB(path, lock_timeout=0.3)
    db.insert({"n": 0})
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.read(go_read, 1)  # the parent now holds the lock
            db.insert({"n": 2})
            code = 0  # wrongly got the lock the parent holds
        except Exception as exc:  # noqa: BLE001
            code = 1 if type(exc).__name__ == "LockTimeout" else 3
        finally:
            os.write(done_write, bytes([code]))
            os._exit(0)
    with db.transaction():
        db.insert({"n": 1})
        os.write(go_write, b"x")
        answer = os.read(done_read, 1)
    os.waitpid(pid, 0)
    for fd in (go_read, go_write, done_read, done_write):
        os.close(fd)
    assert answer == b"\x01"
    assert [d["n"] for d in db.all()] == [0, 1]
    db.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_sql_engines_give_a_forked_child_its_own_connection(tmp_path: Path, engine: str) -> None:
    """SQLite and PostgreSQL handles used in forked children lose nothing, and the parent's connection still works."""
    if engine == "sqlite":
        url, options = f"sqlite:///{tmp_path / 'db.sqlite'}", {}
    else:
        from sql_backends import new_schema, require_postgres

        url, options = require_postgres(), {"schema": new_schema(), "pool_size": 2}
    for _ in range(5):
        db = MicroDB(url, **options)
        db.drop_tables()
        db.insert({"who": "parent"})

        def work(child: int, db: MicroDB = db) -> None:
            for i in range(PER_CHILD):
                db.insert({"who": child, "i": i})

        fork_children(work, CHILDREN)
        db.insert({"who": "parent"})  # the parent's own connection is intact
        assert db.count({"who": "parent"}) == 2
        for child in range(CHILDREN):
            assert sorted(d["i"] for d in db.search({"who": child})) == list(range(PER_CHILD))
        db.close()
