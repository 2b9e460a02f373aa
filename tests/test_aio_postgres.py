"""``AsyncMicroDB`` on PostgreSQL: calls run on the event loop over psycopg's async connections.

``tests/test_aio.py`` runs the shared scenarios through both APIs on every backend; these
tests check what is particular to the async driver (``microdb.sql.pgasync``): that the
calls it serves (all of them) take no worker thread and no blocking connection, that its
writes and ``async with db.transaction()`` blocks are transactions (a failure, a
cancelled task or a lost link leaves nothing), and that its change streams follow commits
of other processes from the moment they are made.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

from microdb import DuplicateKeyError, ValidationError, where
from microdb.aio import AsyncMicroDB
from sql_backends import kill_connections, new_schema, require_postgres

ROOT = Path(__file__).resolve().parent.parent


class NoThreads(Executor):
    """An executor that refuses work: a call that needs a worker thread fails."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise AssertionError(f"a worker thread was asked to run {fn!r}")


def _open() -> AsyncMicroDB:
    return AsyncMicroDB(require_postgres(), schema=new_schema(), pool_size=2)


def _run(main: Callable[[AsyncMicroDB], Any]) -> None:
    async def go() -> None:
        db = _open()
        try:
            await main(db)
        finally:
            await db.close()

    asyncio.run(go())


def test_native_calls_take_no_worker_thread() -> None:
    """Reads, inserts, updates and removes by query, and the change feed run on the loop."""

    async def main(db: AsyncMicroDB) -> None:
        people = db.table("people")
        await people.create_index("age")
        stream = db.changes(timeout=0.1)
        watch = people.watch(timeout=0.1)
        threads, db._run.pool = db._run.pool, NoThreads()  # type: ignore[assignment]
        try:
            assert await people.insert({"name": "Ann", "age": 31}) == 1
            assert await people.insert_many([{"name": "Bob", "age": 25}, {"name": "Cy", "age": 40}]) == [2, 3]
            assert (await people.get(doc_id=2))["name"] == "Bob"
            assert (await people.get(where("age") > 35))["name"] == "Cy"
            assert await people.get(doc_id=99) is None
            assert await people.contains(doc_id=1) and not await people.contains(where("age") > 90)
            assert await people.count(where("age") >= 30) == 2
            assert await people.length() == 3
            assert [d["name"] for d in await people.search(where("age") < 35)] == ["Ann", "Bob"]
            result = people.query(where("age") > 20).sort("age", reverse=True)
            assert [d["name"] for d in await result.all()] == ["Cy", "Ann", "Bob"]
            assert (await people.query().sort("age").first())["name"] == "Bob"
            assert (await people.query().sort("age").last())["name"] == "Cy"
            assert await people.query(where("age") > 30).ids() == [1, 3]
            assert [d.doc_id async for d in people.query().skip(1)] == [2, 3]
            assert await people.update({"$inc": {"age": 1}}, where("name") == "Ann") == [1]
            assert await people.remove(where("age") < 30) == [2]
            assert [(c.op, c.doc_id) async for c in stream] == [
                ("insert", 1), ("insert", 2), ("insert", 3), ("update", 1), ("remove", 2),
            ]
            assert [c.op async for c in watch] == ["insert", "insert", "insert", "update", "remove"]
        finally:
            db._run.pool = threads  # type: ignore[assignment]
        assert await people.indexes() == [{"path": ["age"], "unique": False}]

    _run(main)


def test_large_results_are_decoded_off_the_loop() -> None:
    """Decoding hundreds of documents is work for a worker thread, not for the loop."""

    async def main(db: AsyncMicroDB) -> None:
        t = db.table("t")
        await t.insert_many([{"i": i} for i in range(1200)])
        threads, db._run.pool = db._run.pool, NoThreads()  # type: ignore[assignment]
        try:
            assert len(await t.query(where("i") < 10).all()) == 10  # small: on the loop
            with pytest.raises(AssertionError, match="worker thread"):
                await t.query().all()
        finally:
            db._run.pool = threads  # type: ignore[assignment]
        docs = await t.query().all()
        assert [d["i"] for d in docs] == list(range(1200))

    _run(main)


def test_failed_writes_leave_nothing_and_the_connection_works() -> None:
    """A write that fails part-way is rolled back; the next call works as usual."""

    async def main(db: AsyncMicroDB) -> None:
        users = db.table("users")
        await users.create_index("email", unique=True)
        await users.insert({"email": "a@x"})
        with pytest.raises(DuplicateKeyError):
            await users.insert_many([{"email": f"{i}@x"} for i in range(100)] + [{"email": "a@x"}])
        assert await users.count() == 1
        await db._run(users.sync.set_schema, {"type": "object", "required": ["email"]})
        with pytest.raises(ValidationError):
            await users.insert({"name": "no email"})
        with pytest.raises(ValidationError):
            await users.update({"$unset": {"email": ""}}, where("email") == "a@x")
        assert await users.insert({"email": "b@x"}) == 2  # the rolled-back insert took no id
        assert [d["email"] async for d in users.query()] == ["a@x", "b@x"]

    _run(main)


def test_a_cancelled_write_commits_all_or_nothing() -> None:
    """Cancelling a task in the middle of a large insert leaves all of it or none of it."""

    async def main(db: AsyncMicroDB) -> None:
        t = db.table("t")
        for delay in (0.0, 0.005, 0.02, 0.05):
            before = await t.count()
            task = asyncio.create_task(t.insert_many([{"i": i, "pad": "x" * 200} for i in range(3000)]))
            await asyncio.sleep(delay)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            assert await t.count() - before in (0, 3000)

    _run(main)


def test_expired_documents_are_hidden_and_swept() -> None:
    """A TTL index hides expired documents from native reads, and native writes sweep them."""

    async def main(db: AsyncMicroDB) -> None:
        t = db.table("sessions")
        await t.create_index("at", expire_after=60)
        old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        await db._run(t.sync.insert, {"at": old})
        t.sync._sweep_at = 0.0
        assert await t.get(doc_id=1) is None
        assert await t.count() == 0 and await t.length() == 0
        await t.insert({"at": dt.datetime.now(dt.timezone.utc)})
        assert db.sync._backend.length("sessions") == 1  # the expired row itself was swept by that insert

    _run(main)


WRITER = r"""
import sys
from microdb import MicroDB
db = MicroDB(sys.argv[1], schema=sys.argv[2])
for i in range(3):
    db.table("t").insert({"i": i})
db.close()
"""


def test_streams_follow_other_processes_and_resume() -> None:
    """A stream made "now" sees every later commit, from this program and from others."""

    async def main(db: AsyncMicroDB) -> None:
        schema = db.sync._backend.schema  # type: ignore[attr-defined]
        stream = db.changes(timeout=1.0)
        await db.table("t").insert({"i": -1})  # made right after the stream: it is seen
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, require_postgres(), schema,
            env={"PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.DEVNULL,
        )
        assert await proc.wait() == 0
        got = [c async for c in stream]
        assert [c.doc["i"] for c in got] == [-1, 0, 1, 2]
        assert [c.seq for c in got] == [1, 2, 3, 4] and stream.seq == 4
        resumed = db.changes(since=2, tables="t", timeout=0)
        assert [c.seq async for c in resumed] == [3, 4]
        assert await resumed.poll() == []
        await resumed.aclose()

    _run(main)


def test_a_second_event_loop_falls_back_to_threads() -> None:
    """The async pool belongs to the loop that opened it; another loop's calls use threads."""
    db = _open()

    async def first() -> None:
        await db.table("t").insert({"i": 1})

    async def second() -> None:
        assert db._native.get() is None  # another loop: the calls go to the threads
        await db.table("t").insert({"i": 2})
        assert [d["i"] for d in await db.table("t").all()] == [1, 2]
        await db.close()

    asyncio.run(first())
    asyncio.run(second())


def test_a_dropped_connection_is_replaced_when_nothing_was_sent() -> None:
    """The server ends every pooled connection: the next native read and write simply work."""

    async def main() -> None:
        url = require_postgres() + "?application_name=microdb_async_victim"
        db = AsyncMicroDB(url, schema=new_schema(), pool_size=2)
        try:
            t = db.table("t")
            await t.insert_many([{"a": 1}, {"a": 2}])
            assert db._native.get() is not None
            assert kill_connections("microdb_async_victim") >= 1
            assert await t.count(where("a") > 0) == 2
            kill_connections("microdb_async_victim")
            assert await t.insert({"a": 3}) == 3
            assert await t.length() == 3
        finally:
            await db.close()

    asyncio.run(main())


class NoSyncPool:
    """A stand-in for the synchronous backend's pool: a call that takes a connection fails."""

    def getconn(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a call used the synchronous pool")

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_every_call_runs_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transactions, the doc_ids forms, upsert, update_multiple, truncate, distinct,
    explain, indexes, schemas and the database's calls take no thread and no blocking
    connection: the worker pool, the transaction thread and the synchronous pool all refuse."""
    import microdb.aio

    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a transaction asked for a thread")

    async def main(db: AsyncMicroDB) -> None:
        await db.table("warm").insert({"x": 1})  # (the async pool opens on first use)
        backend = db.sync._backend
        threads, db._run.pool = db._run.pool, NoThreads()  # type: ignore[assignment]
        pool, backend._pool = backend._pool, NoSyncPool()  # type: ignore[attr-defined]
        monkeypatch.setattr(microdb.aio, "ThreadPoolExecutor", no_thread)
        try:
            t = db.table("t")
            await t.create_index("age")
            await t.create_index("email", unique=True)
            await t.create_index("city", "age")
            await t.create_index("at", expire_after=3600)
            async with db.transaction():
                ids = await t.insert_many([{"name": n, "age": a, "city": "X", "email": f"{n}@x", "tags": [n, "all"]}
                                           for n, a in (("Ann", 31), ("Bob", 25), ("Cy", 40))])
                assert await t.update({"age": 32}, doc_ids=[1]) == [1]
            assert ids == [1, 2, 3]
            assert [d["name"] for d in await t.get(doc_ids=[3, 1, 99])] == ["Cy", "Ann"]
            assert await t.update_multiple([({"$inc": {"age": 1}}, where("name") == "Bob"),
                                            ({"seen": True}, where("age") > 30)]) == [2, 1, 3]
            assert await t.upsert({"age": 50}, where("name") == "Cy") == [3]
            assert await t.upsert({"$set": {"age": 9}}, {"name": "Dee"}) == [4]
            assert (await t.get(doc_id=4)) == {"name": "Dee", "age": 9}
            doc = await t.get(doc_id=4)
            doc["age"] = 10
            assert await t.upsert(doc) == [4] and (await t.get(doc_id=4))["age"] == 10
            assert await t.query().distinct("tags") == ["Ann", "Bob", "Cy", "all"]
            assert await t.query(where("age") > 30).distinct("city") == ["X"]
            read = t.query(where("age") > 30).project(["name"])
            assert [d["name"] for d in await read.all()] == ["Ann", "Cy"]
            assert await read.count() == 2 and await read.ids() == [1, 3]
            assert await read.distinct("name") == ["Ann", "Cy"] and await read.distinct("city") == ["X"]
            plan = await t.query(where("age") > 30).explain()
            assert plan["backend"] == "postgresql" and plan["matched"] == 2 and plan["sql"]
            assert await t.indexes() == [
                {"path": ["age"], "unique": False}, {"path": ["email"], "unique": True},
                {"paths": [["city"], ["age"]], "unique": False},
                {"path": ["at"], "unique": False, "expire_after": dt.timedelta(hours=1)},
            ]
            with pytest.raises(DuplicateKeyError):
                await t.insert({"email": "Ann@x"})
            assert await t.drop_index("email") and await t.drop_index("city", "age") and await t.drop_index("at")
            assert not await t.drop_index("nothing")
            assert await t.indexes() == [{"path": ["age"], "unique": False}]
            await t.set_schema({"type": "object", "required": ["name"]})
            assert await t.schema() == {"type": "object", "required": ["name"]}
            assert await t.validate() == []
            with pytest.raises(ValidationError):
                await t.insert({"age": 1})
            await t.set_schema(None)
            assert await t.schema() is None
            assert await t.remove(doc_ids=[2, 4]) == [2, 4]
            assert await t.count() == 2
            await t.truncate()
            assert await t.count() == 0
            assert await db.tables() == {"warm", "t"}
            assert await db.drop_table("warm") and not await db.drop_table("warm")
            assert await db.last_seq() == 0  # the feed starts with its first reader
            await t.insert({"name": "Eve"})
            assert await db.last_seq() == 1
            await db.compact()
            await db.drop_tables()
            assert await db.tables() == set()
            assert [d.doc_id async for d in db.table("t").query()] == []
        finally:
            db._run.pool = threads  # type: ignore[assignment]
            backend._pool = pool  # type: ignore[attr-defined]

    _run(main)


def test_a_transaction_commits_once_and_is_invisible_until_then() -> None:
    """Other connections see nothing of an open transaction; its commit is one sequence number."""

    async def main(db: AsyncMicroDB) -> None:
        other = db.sync  # the synchronous pool: other connections of the server
        stream = db.changes(timeout=0.1)
        async with db.transaction():
            await db.table("a").insert({"x": 1})
            await db.table("b").insert_many([{"y": 1}, {"y": 2}])
            await db.table("a").update({"x": 2}, doc_ids=[1])
            assert await db.table("a").get(doc_id=1) == {"x": 2}  # the block reads its own writes
            assert other.table("a").count() == 0 and other.table("b").count() == 0
            assert await db.table("b").count() == 2
            late = db.changes(timeout=0.1)  # made inside the block: it sees the commit
        assert other.table("a").all() == [{"x": 2}] and other.table("b").count() == 2
        got = [(c.seq, c.table, c.op) async for c in stream]
        assert got == [(1, "a", "insert"), (1, "b", "insert"), (1, "b", "insert"), (1, "a", "update")]
        assert [c.seq async for c in late] == [1, 1, 1, 1]

    _run(main)


def test_a_transaction_rolls_back_on_an_exception_and_a_failed_call_alone() -> None:
    """An exception ends the block with nothing written; inside it, a call that fails is
    undone alone and the block goes on."""

    async def main(db: AsyncMicroDB) -> None:
        t = db.table("t")
        await t.create_index("k", unique=True)
        await t.insert({"k": 0})
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await t.insert({"k": 1})
                await t.truncate()
                raise RuntimeError("undo")
        assert [d["k"] for d in await t.all()] == [0]
        async with db.transaction():
            await t.insert({"k": 1})
            with pytest.raises(DuplicateKeyError):
                await t.insert_many([{"k": 2}, {"k": 0}])
            await t.insert({"k": 3})
        assert [d["k"] for d in await t.all()] == [0, 1, 3]

    _run(main)


def test_a_cancelled_transaction_leaves_nothing() -> None:
    """Cancelling the task inside the block rolls it back; the pool's connections still work."""

    async def main(db: AsyncMicroDB) -> None:
        t = db.table("t")
        inside = asyncio.Event()

        async def writer() -> None:
            async with db.transaction():
                await t.insert_many([{"i": i} for i in range(50)])
                inside.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(writer())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await t.count() == 0 and db.sync.table("t").count() == 0
        for _ in range(3):  # more transactions than the pool has connections
            async with db.transaction():
                await t.insert({"i": 1})
        assert await t.count() == 3

    _run(main)


def test_transactions_do_not_nest_and_other_tasks_use_other_connections() -> None:
    """A task in a transaction cannot open another; a task it starts is outside it."""
    from microdb import TransactionError

    async def main(db: AsyncMicroDB) -> None:
        t = db.table("t")
        async with db.transaction():
            with pytest.raises(TransactionError):
                async with db.transaction():
                    pass
            await t.insert({"who": "txn"})
            assert await asyncio.create_task(db.table("u").count()) == 0  # another connection
            assert await asyncio.create_task(t.count()) == 0  # does not see the block's insert
        assert await t.count() == 1

    _run(main)


def test_a_dropped_connection_inside_a_transaction_fails_it() -> None:
    """The server ends the transaction's connection: the next call fails with
    ``StorageError``, nothing is committed, and later calls get a fresh connection."""
    from microdb.errors import StorageError

    async def main() -> None:
        url = require_postgres() + "?application_name=microdb_async_txn_victim"
        db = AsyncMicroDB(url, schema=new_schema(), pool_size=2)
        try:
            t = db.table("t")
            await t.insert({"a": 0})
            with pytest.raises(StorageError):
                async with db.transaction():
                    await t.insert({"a": 1})
                    assert kill_connections("microdb_async_txn_victim") >= 1
                    await t.insert({"a": 2})
            assert [d["a"] for d in await t.all()] == [0]
            async with db.transaction():
                await t.insert({"a": 3})
            assert [d["a"] for d in await t.all()] == [0, 3]
        finally:
            await db.close()

    asyncio.run(main())


def test_a_transaction_aborted_on_the_server_does_not_pretend_to_commit() -> None:
    """A statement that failed outside any savepoint aborts the transaction on the server;
    its end then raises ``StorageError`` instead of a COMMIT that silently rolls back."""
    from microdb.errors import StorageError

    async def main(db: AsyncMicroDB) -> None:
        t = db.table("t")
        driver = db._native.driver
        assert driver is not None
        with pytest.raises(StorageError, match="nothing was committed"):
            async with db.transaction():
                await t.insert({"a": 1})
                held = driver.held()
                assert held is not None
                with pytest.raises(Exception, match="division by zero"):
                    await held.conn.execute("SELECT 1/0")
        assert await t.count() == 0

    _run(main)
