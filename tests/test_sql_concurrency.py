"""Many writers at once lose nothing; a dropped PostgreSQL connection is retried or reported."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, StorageError, where
from microdb.operations import increment
from sql_backends import kill_connections, new_schema, require_postgres

WORKERS = 4
ROUNDS = 40


def _target(kind: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}", {}
    return require_postgres(), {"schema": new_schema(), "pool_size": 2}


def _work(url: str, options: dict[str, Any], worker: int) -> None:
    """One process: increment the shared counter and insert its own documents."""
    with MicroDB(url, **options) as db:
        t = db.table("c")
        for i in range(ROUNDS):
            t.update(increment("n"), where("name") == "counter")
            t.insert({"worker": worker, "i": i})
            with db.transaction():
                doc = t.get(where("name") == "pair")
                t.update({"a": doc["a"] + 1, "b": doc["b"] - 1}, doc_ids=[doc.doc_id])


def _seed(url: str, options: dict[str, Any]) -> None:
    with MicroDB(url, **options) as db:
        db.table("c").insert_many([{"name": "counter", "n": 0}, {"name": "pair", "a": 0, "b": 0}])


def _check(url: str, options: dict[str, Any], writers: int) -> None:
    with MicroDB(url, **options) as db:
        t = db.table("c")
        assert t.get(where("name") == "counter")["n"] == writers * ROUNDS
        pair = t.get(where("name") == "pair")
        assert pair["a"] == writers * ROUNDS and pair["b"] == -writers * ROUNDS
        rows = t.search(where("worker").exists())
        assert len(rows) == writers * ROUNDS
        assert len({d.doc_id for d in rows}) == len(rows)
        for w in range(writers):
            assert sorted(d["i"] for d in rows if d["worker"] == w) == list(range(ROUNDS))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_writing_at_once_lose_nothing(kind: str, tmp_path: Path) -> None:
    """Several processes doing read-modify-write updates and inserts: every one counts."""
    url, options = _target(kind, tmp_path)
    _seed(url, options)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_work, args=(url, options, w)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    _check(url, options, WORKERS)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_threads_sharing_one_database_lose_nothing(kind: str, tmp_path: Path) -> None:
    """Threads sharing one database object: updates and inserts all land."""
    url, options = _target(kind, tmp_path)
    _seed(url, options)
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            _work(url, options, worker)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors
    _check(url, options, 3)


def test_a_failed_block_rolls_back_and_nested_blocks_are_savepoints(tmp_path: Path) -> None:
    """An exception rolls the whole block back; a caught one inside rolls back only its part."""
    with MicroDB(f"sqlite:///{tmp_path / 'tx.db'}") as db:
        t = db.table("t")
        with pytest.raises(RuntimeError), db.transaction():
            t.insert({"a": 1})
            raise RuntimeError("boom")
        assert len(t) == 0
        with db.transaction():
            t.insert({"a": 1})
            with pytest.raises(RuntimeError), db.transaction():
                t.insert({"a": 2})
                raise RuntimeError("inner")
            t.insert({"a": 3})
        assert [d["a"] for d in t] == [1, 3]


def test_a_dropped_connection_is_retried_once_when_safe() -> None:
    """The server ends every pooled connection: the next read and write simply work."""
    url = require_postgres() + "?application_name=microdb_victim"
    with MicroDB(url, schema=new_schema(), pool_size=2) as db:
        db.insert_many([{"a": 1}, {"a": 2}])
        assert kill_connections("microdb_victim") >= 1
        assert db.count(where("a") > 0) == 2
        kill_connections("microdb_victim")
        db.insert({"a": 3})
        assert len(db) == 3


def test_a_connection_dropped_inside_a_transaction_is_reported() -> None:
    """Mid-transaction, a lost connection raises StorageError and nothing is committed."""
    url = require_postgres() + "?application_name=microdb_victim2"
    with MicroDB(url, schema=new_schema(), pool_size=2) as db:
        db.insert({"a": 1})
        with pytest.raises(StorageError) as info, db.transaction():
            db.insert({"a": 2})
            kill_connections("microdb_victim2")
            db.insert({"a": 3})
        assert info.value.__cause__ is not None
        assert [d["a"] for d in db] == [1]
