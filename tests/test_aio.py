"""The same scenarios through the synchronous API and through ``AsyncMicroDB``.

Each scenario is written once, as a coroutine over a *driver*: ``AsyncMicroDB`` itself,
or a thin adapter whose coroutines call the synchronous ``MicroDB`` directly. Both run on
the JSON file, SQLite, PostgreSQL and memory backends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from microdb import DocumentNotFound, DuplicateKeyError, MicroDB, ValidationError, where
from microdb.aio import AsyncMicroDB
from microdb.changes import ChangeStream
from microdb.feed import Change
from microdb.results import Result
from microdb.table import Table
from sql_backends import new_schema, require_postgres


class SyncResult:
    """A synchronous result behind coroutines, shaped like ``AsyncResult``."""

    def __init__(self, result: Result):
        self._result = result

    def sort(self, *keys: Any, reverse: bool = False) -> SyncResult:
        return SyncResult(self._result.sort(*keys, reverse=reverse))

    def limit(self, n: int) -> SyncResult:
        return SyncResult(self._result.limit(n))

    def skip(self, n: int) -> SyncResult:
        return SyncResult(self._result.skip(n))

    async def all(self) -> list[Any]:
        return self._result.all()

    async def first(self) -> Any:
        return self._result.first()

    async def count(self) -> int:
        return self._result.count()

    async def distinct(self, field: Any) -> list[Any]:
        return self._result.distinct(field)

    async def explain(self) -> dict[str, Any]:
        return self._result.explain()

    async def __aiter__(self) -> AsyncIterator[Any]:
        for doc in self._result:
            yield doc


class SyncStream:
    """A synchronous change stream behind ``async for``."""

    def __init__(self, stream: ChangeStream):
        self._stream = stream

    def __aiter__(self) -> SyncStream:
        return self

    async def __anext__(self) -> Change:
        try:
            return next(self._stream)
        except StopIteration:
            raise StopAsyncIteration from None

    @property
    def seq(self) -> int:
        return self._stream.seq


class SyncTable:
    """A synchronous table behind coroutines, shaped like ``AsyncTable``."""

    def __init__(self, table: Table):
        self._table = table

    async def insert(self, doc: Any) -> int:
        return self._table.insert(doc)

    async def insert_many(self, docs: Any) -> list[int]:
        return self._table.insert_many(docs)

    def query(self, cond: Any = None) -> SyncResult:
        return SyncResult(self._table.query(cond))

    async def all(self) -> list[Any]:
        return self._table.all()

    async def get(self, cond: Any = None, *, doc_id: int | None = None, doc_ids: Any = None) -> Any:
        return self._table.get(cond, doc_id=doc_id, doc_ids=doc_ids)

    async def count(self, cond: Any = None) -> int:
        return self._table.count(cond)

    async def update(self, fields: Any, cond: Any = None, *, doc_ids: Any = None) -> list[int]:
        return self._table.update(fields, cond, doc_ids=doc_ids)

    async def upsert(self, doc: Any, cond: Any = None) -> list[int]:
        return self._table.upsert(doc, cond)

    async def update_multiple(self, updates: Any) -> list[int]:
        return self._table.update_multiple(updates)

    async def truncate(self) -> None:
        self._table.truncate()

    async def remove(self, cond: Any = None, *, doc_ids: Any = None) -> list[int]:
        return self._table.remove(cond, doc_ids=doc_ids)

    async def create_index(self, field: Any, *fields: Any, unique: bool = False) -> None:
        self._table.create_index(field, *fields, unique=unique)

    async def drop_index(self, field: Any, *fields: Any) -> bool:
        return self._table.drop_index(field, *fields)

    async def indexes(self) -> list[dict[str, Any]]:
        return self._table.indexes()

    async def set_schema(self, schema: Any, *, validation: str = "error") -> None:
        self._table.set_schema(schema, validation=validation)

    async def schema(self) -> dict[str, Any] | None:
        return self._table.schema()

    async def validate(self) -> list[dict[str, Any]]:
        return self._table.validate()

    async def length(self) -> int:
        return len(self._table)

    def watch(self, *, since: int | None = None, timeout: float | None = None) -> SyncStream:
        return SyncStream(self._table.watch(since=since, timeout=timeout).stream)


class SyncDB(SyncTable):
    """A synchronous database behind coroutines, shaped like ``AsyncMicroDB``."""

    def __init__(self, db: MicroDB):
        super().__init__(db)
        self.sync = db

    def table(self, name: str) -> SyncTable:
        return SyncTable(self.sync.table(name))

    async def tables(self) -> set[str]:
        return self.sync.tables()

    async def drop_table(self, name: str) -> bool:
        return self.sync.drop_table(name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SyncDB]:
        with self.sync.transaction():
            yield self

    def changes(self, since: int | None = None, tables: Any = None, *, timeout: float | None = None) -> SyncStream:
        return SyncStream(self.sync.changes(since, tables, timeout=timeout))

    async def last_seq(self) -> int:
        return self.sync.last_seq

    async def close(self) -> None:
        self.sync.close()


def _postgres(tmp: Path) -> tuple[Any, dict[str, Any]]:
    return require_postgres(), {"schema": new_schema(), "pool_size": 2}


BACKENDS: dict[str, Callable[[Path], tuple[Any, dict[str, Any]]]] = {
    "json": lambda tmp: (str(tmp / "db.json"), {}),
    "sqlite": lambda tmp: (f"sqlite:///{tmp / 'db.sqlite'}", {}),
    "postgres": _postgres,
    "memory": lambda tmp: (None, {}),
}


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    """Which API the scenario goes through."""
    return str(request.param)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend the scenario runs on."""
    return str(request.param)


Scenario = Callable[[Any], Awaitable[None]]


@pytest.fixture
def run(api: str, backend: str, tmp_path: Path) -> Iterator[Callable[[Scenario], None]]:
    """Run a scenario on a fresh database through the chosen API."""

    def go(scenario: Scenario) -> None:
        async def main() -> None:
            target, options = BACKENDS[backend](tmp_path)
            driver: Any = AsyncMicroDB(target, **options) if api == "async" else SyncDB(MicroDB(target, **options))
            try:
                await scenario(driver)
            finally:
                await driver.close()

        asyncio.run(main())

    yield go


def test_insert_get_update_remove(run: Callable[[Scenario], None]) -> None:
    """The basic writes and reads give the same answers through both APIs."""

    async def scenario(db: Any) -> None:
        users = db.table("users")
        assert await users.insert({"name": "Ann", "age": 30}) == 1
        assert await users.insert_many([{"name": "Bob", "age": 25}, {"name": "Cy", "age": 41}]) == [2, 3]
        assert (await users.get(doc_id=2))["name"] == "Bob"
        assert await users.update({"age": 26}, where("name") == "Bob") == [2]
        assert await users.remove(where("age") > 40) == [3]
        assert [d["age"] for d in await users.all()] == [30, 26]
        assert await users.length() == 2
        assert await db.tables() == {"users"}
        with pytest.raises(DocumentNotFound):
            await users.update({"x": 1}, doc_ids=[99])

    run(scenario)


def test_queries_compose_and_iterate(run: Callable[[Scenario], None]) -> None:
    """Sort, skip, limit, count and ``async for`` over a query."""

    async def scenario(db: Any) -> None:
        nums = db.table("nums")
        await nums.insert_many([{"n": n} for n in (5, 3, 9, 1, 7)])
        result = nums.query(where("n") > 2).sort("n", reverse=True)
        assert [d["n"] for d in await result.all()] == [9, 7, 5, 3]
        assert [d["n"] async for d in result.skip(1).limit(2)] == [7, 5]
        assert await nums.query(where("n") > 2).count() == 4
        assert (await nums.query().sort("n").first())["n"] == 1

    run(scenario)


def test_transactions_commit_together_or_not_at_all(run: Callable[[Scenario], None]) -> None:
    """A block's writes across tables commit as one; an exception undoes them all."""

    async def scenario(db: Any) -> None:
        async with db.transaction():
            await db.table("a").insert({"x": 1})
            await db.table("b").insert({"y": 1})
            assert await db.table("a").count() == 1  # the block sees its own writes
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.table("a").insert({"x": 2})
                await db.table("b").remove(doc_ids=[1])
                raise RuntimeError("undo")
        assert await db.table("a").count() == 1
        assert await db.table("b").count() == 1

    run(scenario)


def test_id_forms_upserts_and_many_updates(run: Callable[[Scenario], None]) -> None:
    """``doc_ids=`` forms, ``upsert`` (both ways), ``update_multiple`` and ``truncate``."""

    async def scenario(db: Any) -> None:
        t = db.table("t")
        await t.insert_many([{"n": n} for n in range(1, 6)])
        assert [d["n"] for d in await t.get(doc_ids=[4, 2, 99])] == [4, 2]
        assert await t.update({"$inc": {"n": 10}}, doc_ids=[1, 2]) == [1, 2]
        assert await t.update_multiple([({"odd": True}, where("n") == 3), ({"big": True}, where("n") > 10)]) == [3, 1, 2]
        assert await t.upsert({"n": 30}, where("n") == 3) == [3]
        assert await t.upsert({"$set": {"m": 1}}, {"n": 7}) == [6]
        assert (await t.get(doc_id=6)) == {"n": 7, "m": 1}
        assert await t.remove(doc_ids=[4, 5]) == [4, 5]
        assert [d.doc_id for d in await t.all()] == [1, 2, 3, 6]
        with pytest.raises(DocumentNotFound):
            await t.remove(doc_ids=[4])
        await t.truncate()
        assert await t.count() == 0
        assert await t.insert({"n": 0}) == 7  # ids are never reused

    run(scenario)


def test_indexes_distinct_and_explain(run: Callable[[Scenario], None]) -> None:
    """Index calls, ``distinct`` and ``explain`` answer the same through both APIs."""

    async def scenario(db: Any) -> None:
        t = db.table("t")
        await t.create_index("age")
        await t.create_index("city", "age", unique=True)
        await t.insert_many([{"age": a, "city": c, "tags": [c, "x"]} for a, c in ((30, "A"), (25, "B"), (30, "B"))])
        assert await t.indexes() == [{"path": ["age"], "unique": False}, {"paths": [["city"], ["age"]], "unique": True}]
        with pytest.raises(DuplicateKeyError):
            await t.insert({"age": 25, "city": "B"})
        assert await t.query().distinct("age") == [25, 30]
        assert await t.query(where("age") > 26).distinct("tags") == ["A", "B", "x"]
        plan = await t.query(where("age") > 26).explain()
        assert plan["matched"] == 2 and plan["table"] == "t"
        assert await t.drop_index("city", "age") and await t.drop_index("age") and not await t.drop_index("age")
        assert await t.indexes() == []

    run(scenario)


def test_schemas_through_both_apis(run: Callable[[Scenario], None]) -> None:
    """A stored schema checks later writes, ``validate`` reports the older documents."""

    async def scenario(db: Any) -> None:
        t = db.table("t")
        await t.insert_many([{"name": "Ann"}, {"age": 3}])
        await t.set_schema({"type": "object", "required": ["name"]})
        assert await t.schema() == {"type": "object", "required": ["name"]}
        assert [v["doc_id"] for v in await t.validate()] == [2]
        with pytest.raises(ValidationError):
            await t.insert({"age": 4})
        with pytest.raises(ValidationError):
            await t.update({"$unset": {"name": ""}}, doc_ids=[1])
        await t.set_schema(None)
        assert await t.schema() is None and await t.validate() == []
        assert await t.insert({"age": 4}) == 3

    run(scenario)


def test_unique_index_errors_are_the_same(run: Callable[[Scenario], None]) -> None:
    """Errors raised in worker threads reach the caller unchanged."""

    async def scenario(db: Any) -> None:
        users = db.table("users")
        await users.create_index("email", unique=True)
        await users.insert({"email": "a@x"})
        with pytest.raises(DuplicateKeyError):
            await users.insert({"email": "a@x"})
        assert await users.upsert({"email": "a@x", "n": 2}, where("email") == "a@x") == [1]

    run(scenario)


#: The backends with a change feed (memory databases have none: see test_changes.py).
FEED_BACKENDS = {"json", "sqlite", "postgres"}


def test_changes_through_both_apis(run: Callable[[Scenario], None], backend: str) -> None:
    """``changes()`` and ``watch()`` report the same events through both APIs."""
    if backend not in FEED_BACKENDS:
        return

    async def scenario(db: Any) -> None:
        stream = db.changes(timeout=0.05)
        watch = db.table("t").watch(timeout=0.05)
        await db.table("t").insert({"i": 1})
        async with db.transaction():
            await db.table("t").update({"i": 2}, doc_ids=[1])
            await db.table("u").insert({"j": 1})
        await db.table("t").remove(doc_ids=[1])
        got = [(c.seq, c.table, c.op, c.doc_id, c.doc) async for c in stream]
        assert got == [
            (1, "t", "insert", 1, {"i": 1}),
            (2, "t", "update", 1, {"i": 2}),
            (2, "u", "insert", 1, {"j": 1}),
            (3, "t", "remove", 1, None),
        ]
        assert [c.op async for c in watch] == ["insert", "update", "remove"]
        assert await db.last_seq() == 3 == stream.seq
        assert [c.seq async for c in db.changes(since=2, timeout=0)] == [3]

    run(scenario)


def test_the_loop_keeps_running_while_a_call_waits(tmp_path: Path) -> None:
    """A call waiting for another process's lock does not stall other tasks."""

    async def main() -> None:
        db = AsyncMicroDB(str(tmp_path / "db.json"), lock_timeout=5)
        other = MicroDB(str(tmp_path / "db.json"))
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        release = threading.Event()

        def hold() -> None:
            with other.transaction():
                other.insert({"held": True})
                release.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(0.05)
        writer = asyncio.create_task(db.insert({"mine": True}))
        await asyncio.sleep(0.3)
        assert not writer.done() and ticks >= 20  # the loop ran while the insert waited
        release.set()
        await writer
        holder.join()
        task.cancel()
        assert await db.count() == 2
        other.close()
        await db.close()

    asyncio.run(main())


def test_tasks_outside_a_transaction_wait_for_it(tmp_path: Path) -> None:
    """Another task's write waits until the transaction ends, and the loop stays free."""

    async def main() -> None:
        db = AsyncMicroDB(str(tmp_path / "db.json"))
        order: list[str] = []

        async def outsider() -> None:
            await db.insert({"who": "outsider"})
            order.append("outsider")

        async with db.transaction():
            await db.insert({"who": "txn"})
            task = asyncio.create_task(outsider())
            await asyncio.sleep(0.05)
            order.append("txn")
        await task
        assert order == ["txn", "outsider"]
        assert [d["who"] for d in await db.all()] == ["txn", "outsider"]
        await db.close()

    asyncio.run(main())


def test_open_in_a_thread_and_async_with(tmp_path: Path) -> None:
    """``await AsyncMicroDB.open(...)`` and ``async with`` close the database."""

    async def main() -> None:
        async with await AsyncMicroDB.open(str(tmp_path / "db.json")) as db:
            await db.insert({"a": 1})
        assert db.closed
        again = await AsyncMicroDB.open(str(tmp_path / "db.json"))
        assert await again.all() == [{"a": 1}]
        await again.close()

    asyncio.run(main())


def test_result_batches_copy_a_fixed_selection() -> None:
    """``Result.batches`` fixes the selection first and hands out copies list by list."""
    from microdb import QueryError

    db = MicroDB()
    db.insert_many([{"i": i} for i in range(1200)])
    batches = db.query(where("i") >= 0).batches(500)
    first = next(batches)
    db.remove(doc_ids=[1100])
    rest = list(batches)
    assert [len(b) for b in [first, *rest]] == [500, 500, 200]
    assert rest[-1][99]["i"] == 1099 and rest[-1][99].doc_id == 1100  # selected before the removal
    first[0]["i"] = -1
    assert db.get(doc_id=1)["i"] == 0  # copies, never the stored document
    with pytest.raises(QueryError):
        next(db.query().batches(0))


def test_async_for_reads_large_results_in_batches(tmp_path: Path) -> None:
    """``async for`` over more documents than one batch yields each once, in order."""

    async def main() -> None:
        db = AsyncMicroDB(str(tmp_path / "db.json"))
        await db.insert_many([{"i": i} for i in range(1234)])
        assert [d["i"] async for d in db.query().sort("i")] == list(range(1234))
        assert [d["i"] async for d in db.query(where("i") < 3).project(["i"])] == [0, 1, 2]
        await db.close()

    asyncio.run(main())
