"""``AsyncMicroDB`` on PostgreSQL: calls run on the event loop over psycopg's async connections.

``tests/test_aio.py`` runs the shared scenarios through both APIs on every backend; these
tests check what is particular to the async driver (``microdb.sql.pgasync``): that the
calls it serves take no worker thread, that its writes are transactions (a failure or a
cancelled task leaves nothing), and that its change streams follow commits of other
processes from the moment they are made.
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
        await people.create_index("age")  # (in a thread: indexes are not native)
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
