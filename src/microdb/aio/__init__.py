"""The asyncio face of MicroDB: ``AsyncMicroDB``, whose calls never block the event loop.

On the JSON file, SQLite and memory, every call runs the synchronous API in worker
threads: a small pool per database, and one thread of its own for each transaction (the
engine's locks belong to the thread that takes them, so a transaction's statements all
run on the thread that opened it; a context variable routes the calls of the task that
opened the transaction there, while other tasks, those it starts included, wait for it to
end like any other writer).

On PostgreSQL, every call runs on the event loop itself, over psycopg's async
connections (:mod:`microdb.sql.pgasync`): the SQL engine's own steps
(:mod:`microdb.sql.steps`), composed as the table composes them
(:mod:`microdb.aio.pgcalls`), with large decoding work in a worker thread; a transaction
is one async connection the task holds for the block. See ``docs/async.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from microdb.aio import pgcalls
from microdb.aio.runner import TRANSACTION, Native, Runner
from microdb.aio.stream import AsyncChangeStream
from microdb.backend import Backend
from microdb.compile.updates import compile_change
from microdb.database import MicroDB
from microdb.document import Document
from microdb.errors import DatabaseClosedError, TransactionError
from microdb.expiry import SWEEP_INTERVAL, rules_of
from microdb.query.fields import parse_field
from microdb.results import Result
from microdb.schema import checks as _schema
from microdb.sql.pgasync import ON_LOOP, AsyncPostgres
from microdb.sql.pgfeed import bounds_steps
from microdb.sql.postgres import PostgresBackend
from microdb.sql.session import Session
from microdb.sql.steps import Steps
from microdb.table import Table, _check_ids, _index_args

__all__ = ["AsyncChangeStream", "AsyncMicroDB", "AsyncResult", "AsyncTable", "AsyncTransaction"]

T = TypeVar("T")

_BATCH = 100  # documents copied per step of ``async for``, on the loop (well under 1 ms)


class AsyncResult:
    """A lazy query result, read with ``await`` or ``async for``.

    ``sort``, ``skip``, ``limit`` and ``project`` compose as on :class:`~microdb.Result`;
    reading runs the query in a worker thread (on PostgreSQL: on the loop, see the module).
    """

    def __init__(self, result: Result, run: Runner, native: Native):
        self._result = result
        self._run = run
        self._native = native

    @property
    def sync(self) -> Result:
        """The synchronous result underneath."""
        return self._result

    def _with(self, result: Result) -> AsyncResult:
        return AsyncResult(result, self._run, self._native)

    def sort(self, *keys: Any, reverse: bool = False) -> AsyncResult:
        """Sort by fields, ``(field, -1)`` pairs, or key functions."""
        return self._with(self._result.sort(*keys, reverse=reverse))

    def skip(self, n: int) -> AsyncResult:
        """Leave out the first ``n`` documents."""
        return self._with(self._result.skip(n))

    def limit(self, n: int) -> AsyncResult:
        """Keep at most ``n`` documents."""
        return self._with(self._result.limit(n))

    def project(self, fields: Any, *more: Any, exclude: bool = False) -> AsyncResult:
        """Return only these fields (or all but these)."""
        return self._with(self._result.project(fields, *more, exclude=exclude))

    async def _read(self, driver: AsyncPostgres, result: Result) -> Result:
        """Fix ``result``'s selection with a query on the loop (once)."""
        if result._rows is None:
            table, name = result._table, result._table.name
            plan = table._live(result.plan)
            rows = await driver.call(lambda s: driver.backend.run_steps(s, name, plan))
            result._adopt(rows)
        return result

    async def _shape(self, func: Callable[[], T], rows: int) -> T:
        """Copy read rows into documents: on the loop when few, in a thread when many."""
        return func() if rows <= ON_LOOP else await self._run.offload(func)

    async def all(self) -> list[Document]:
        """Every selected document."""
        driver = self._native.get()
        if driver is None:
            return await self._run.read(self._result.all)
        result = await self._read(driver, self._result)
        return await self._shape(result.all, len(result._rows or ()))

    async def first(self) -> Document | None:
        """The first selected document, or ``None``."""
        driver = self._native.get()
        if driver is None:
            return await self._run.read(self._result.first)
        result = self._result if self._result._rows is not None else self._result.limit(1)
        return (await self._read(driver, result)).first()

    async def last(self) -> Document | None:
        """The last selected document, or ``None``."""
        driver = self._native.get()
        if driver is None:
            return await self._run.read(self._result.last)
        return (await self._read(driver, self._result)).last()

    async def ids(self) -> list[int]:
        """The ids of the selected documents."""
        driver, rows = self._native.get(), self._result._rows
        if driver is None:
            return await self._run.read(self._result.ids)
        if rows is not None:  # the selection read: no I/O
            return await self._shape(self._result.ids, len(rows))
        name, plan = self._result._table.name, self._result._table._live(self._result.plan)
        return await driver.call(lambda s: driver.backend.ids_steps(s, name, plan))

    async def count(self) -> int:
        """How many documents are selected."""
        driver, rows = self._native.get(), self._result._rows
        if driver is None:
            return await self._run.read(self._result.count)
        if rows is not None:  # the selection read: no I/O
            return await self._shape(self._result.count, len(rows))
        name, plan = self._result._table.name, self._result._table._live(self._result.plan)
        return await driver.call(lambda s: driver.backend.count_steps(s, name, plan))

    async def distinct(self, field: Any) -> list[Any]:
        """The distinct values of ``field`` among the selected documents."""
        driver, path, rows = self._native.get(), parse_field(field), self._result._rows
        if driver is None:
            return await self._run.read(self._result.distinct, field)
        if rows is not None and self._result._holds(path):  # the selection read: no I/O
            return await self._shape(lambda: self._result.distinct(field), len(rows))
        table = self._result._table
        plan = table._live(self._result.plan)
        return await driver.call(lambda s: driver.backend.distinct_steps(s, table.name, plan, path))

    async def explain(self) -> dict[str, Any]:
        """How the query runs."""
        driver = self._native.get()
        if driver is None:
            return await self._run.read(self._result.explain)
        table = self._result._table
        plan = table._live(self._result.plan)
        return await driver.call(lambda s: driver.backend.explain_steps(s, table.name, plan))

    async def __aiter__(self) -> AsyncIterator[Document]:
        # The selection is made once (in a worker thread, or on the loop on PostgreSQL);
        # then the documents are copied a small batch at a time on the loop itself, other
        # tasks running between batches. A batch takes well under a millisecond, less than
        # a hop to a worker thread and back would cost, and a worker copying would hold the
        # interpreter lock for up to the switch interval (5 ms) whenever the loop wakes.
        driver = self._native.get()
        if driver is not None:
            result = await self._read(driver, self._result)
        else:
            result = self._result
            if result._rows is None:
                await self._run.read(result._run)
        for batch in result.batches(_BATCH):
            for doc in batch:
                yield doc
            await asyncio.sleep(0)


class AsyncTable:
    """A table whose methods are coroutines (``await table.insert(...)``)."""

    def __init__(self, table: Table, run: Runner, native: Native):
        self._table = table
        self._run = run
        self._native = native

    @property
    def name(self) -> str:
        """The table's name."""
        return self._table.name

    @property
    def sync(self) -> Table:
        """The synchronous table underneath (its calls block)."""
        return self._table

    def __repr__(self) -> str:
        return f"<AsyncTable name={self.name!r}>"

    # -- PostgreSQL on the loop (see the module docstring) -----------------------------
    async def _write(self, driver: AsyncPostgres, make: Callable[[Session], Steps[T]]) -> T:
        """A write block of its own on the loop, after the expiry sweep ``Table._write``
        makes (at most once a second: a look at the table's options, and with a TTL
        index a block removing a batch of expired documents)."""
        table, backend = self._table, driver.backend
        if table._sweep_at <= time.monotonic():
            table._sweep_at = time.monotonic() + SWEEP_INTERVAL
            options = await driver.call(lambda s: backend.table_options_steps(s, table.name))
            if rules_of(options):
                await driver.call(lambda s: pgcalls.sweep(backend, s, table.name), write=True)
        return await driver.call(make, write=True)

    async def _insert(self, driver: AsyncPostgres, documents: list[Any]) -> list[int]:
        prepare = self._table._prepare
        if len(documents) <= ON_LOOP:
            items = [prepare(doc) for doc in documents]
        else:
            items = await self._run.offload(lambda: [prepare(doc) for doc in documents])
        if not items:
            return []
        return await self._write(driver, lambda s: pgcalls.insert(driver.backend, s, self.name, items))

    # -- the API ---------------------------------------------------------------------
    async def insert(self, document: Mapping[str, Any]) -> int:
        """Insert one document; returns its id."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.insert, document)
        return (await self._insert(driver, [document]))[0]

    async def insert_many(self, documents: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert documents in one commit; returns their ids."""
        driver = self._native.get()
        if isinstance(documents, Mapping):
            return self._table.insert_many(documents)  # raises, before any I/O
        if driver is None:
            return await self._run(self._table.insert_many, list(documents))
        return await self._insert(driver, list(documents))

    def query(self, cond: Any = None) -> AsyncResult:
        """The documents matching ``cond`` (all without it), read lazily."""
        return AsyncResult(self._table.query(cond), self._run, self._native)

    async def all(self) -> list[Document]:
        """Every document of the table."""
        return await self.query().all()

    async def search(self, cond: Any) -> list[Document]:
        """The documents matching ``cond``."""
        if cond is None:
            return self._table.search(cond)  # raises, before any I/O
        return await self.query(cond).all()

    async def get(self, cond: Any = None, *, doc_id: int | None = None, doc_ids: Iterable[int] | None = None) -> Any:
        """One document by query or id (``None`` when absent), or a list for ``doc_ids``."""
        driver = self._native.get()
        if driver is None:
            return await self._run.read(self._table.get, cond, doc_id=doc_id, doc_ids=doc_ids)
        if (doc_id is None and doc_ids is None and cond is None) or (doc_id is not None and type(doc_id) is not int):
            return self._table.get(cond, doc_id=doc_id, doc_ids=doc_ids)  # raises, before any I/O
        if doc_ids is not None and doc_id is None:
            ids, table = _check_ids(doc_ids), self._table
            rows = await driver.call(lambda s: pgcalls.get_many(table, driver.backend, s, ids))
            return [table._document(doc, i) for i, doc in rows]
        if doc_id is None:
            return await self.query(cond).first()
        the_id = doc_id
        doc = await driver.call(lambda s: pgcalls.fetch(driver.backend, s, self.name, the_id))
        return None if doc is None else self._table._document(doc, doc_id)

    async def contains(self, cond: Any = None, *, doc_id: int | None = None) -> bool:
        """Whether a document matches (or has the id)."""
        if doc_id is None and cond is None:
            return self._table.contains(cond)  # raises, before any I/O
        if self._native.get() is None:
            return await self._run.read(self._table.contains, cond, doc_id=doc_id)
        if doc_id is not None:
            return await self.get(doc_id=doc_id) is not None
        return await self.query(cond).first() is not None

    async def count(self, cond: Any = None) -> int:
        """How many documents match ``cond`` (all without it)."""
        return await self.query(cond).count()

    async def length(self) -> int:
        """How many documents the table holds (``len()`` of the synchronous table)."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.__len__)
        return await driver.call(lambda s: pgcalls.length(driver.backend, s, self.name))

    async def update(self, fields: Any, cond: Any = None, *, doc_ids: Iterable[int] | None = None) -> list[int]:
        """Update the matching documents; returns their ids."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.update, fields, cond, doc_ids=doc_ids)
        if cond is None and doc_ids is None:
            return self._table.update(fields, cond)  # raises, before any I/O
        change, table = compile_change(fields), self._table  # a malformed update fails first
        return await self._write(driver, lambda s: pgcalls.update(table, driver.backend, s, change, cond, doc_ids))

    async def update_multiple(self, updates: Iterable[tuple[Any, Any]]) -> list[int]:
        """Several (update, condition) pairs in one commit."""
        driver, pairs = self._native.get(), list(updates)
        if driver is None:
            return await self._run(self._table.update_multiple, pairs)
        if not all(isinstance(pair, tuple) and len(pair) == 2 for pair in pairs):
            return self._table.update_multiple(pairs)  # raises, before any I/O
        changes, table = [(compile_change(fields), cond) for fields, cond in pairs], self._table
        return await self._write(driver, lambda s: pgcalls.update_multiple(table, driver.backend, s, changes))

    async def upsert(self, document: Any, cond: Any = None) -> list[int]:
        """Update the matching documents, or insert ``document`` when none match."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.upsert, document, cond)
        if cond is None and not (isinstance(document, Document) and document.doc_id is not None):
            return self._table.upsert(document, cond)  # raises, before any I/O
        change, table = compile_change(document), self._table
        return await self._write(driver, lambda s: pgcalls.upsert(table, driver.backend, s, document, change, cond))

    async def remove(self, cond: Any = None, *, doc_ids: Iterable[int] | None = None) -> list[int]:
        """Delete the matching documents; returns their ids."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.remove, cond, doc_ids=doc_ids)
        table = self._table
        return await self._write(driver, lambda s: pgcalls.remove(table, driver.backend, s, cond, doc_ids))

    async def truncate(self) -> None:
        """Delete every document."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.truncate)
        await self._write(driver, lambda s: driver.backend.truncate_steps(s, self.name))

    async def create_index(self, field: Any, *fields: Any, unique: bool = False, expire_after: Any = None) -> None:
        """Declare an index on ``field`` (a compound one with ``fields``; see ``Table.create_index``)."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.create_index, field, *fields, unique=unique, expire_after=expire_after)
        path, paths, seconds = _index_args(field, fields, expire_after)
        table, flag = self._table, bool(unique)
        await self._write(driver, lambda s: pgcalls.create_index(table, driver.backend, s, path, paths, flag, seconds))

    async def drop_index(self, field: Any, *fields: Any) -> bool:
        """Remove an index; true when it existed."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.drop_index, field, *fields)
        path, paths, _ = _index_args(field, fields, None)
        table = self._table
        return await self._write(driver, lambda s: pgcalls.drop_index(table, driver.backend, s, path, paths))

    async def indexes(self) -> list[dict[str, Any]]:
        """The table's indexes."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.indexes)
        table = self._table
        return await driver.call(lambda s: pgcalls.indexes(table, driver.backend, s))

    async def set_schema(self, schema: Any, *, validation: str = "error") -> None:
        """Store ``schema`` with the table (``None`` removes it); see ``Table.set_schema``."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.set_schema, schema, validation=validation)
        table = self._table
        table._schema_model = await self._write(
            driver, lambda s: pgcalls.set_schema(table, driver.backend, s, schema, validation)
        )

    async def schema(self) -> dict[str, Any] | None:
        """The stored JSON Schema, or ``None``."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.schema)
        options = await driver.call(lambda s: driver.backend.table_options_steps(s, self.name))
        return _schema.stored_schema(options)

    async def validate(self) -> list[dict[str, Any]]:
        """The stored documents that break the stored schema (see ``Table.validate``)."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._table.validate)
        return await driver.call(lambda s: pgcalls.validate(driver.backend, s, self.name))

    def watch(self, *, since: int | None = None, timeout: float | None = None) -> AsyncChangeStream:
        """This table's committed changes, from every process: ``async for change in ...``."""
        driver = self._native.for_streams()
        if driver is not None:
            if self._table._backend.closed:
                raise DatabaseClosedError("the database is closed")
            return AsyncChangeStream(None, self._run, driver, since, self.name, timeout)
        return AsyncChangeStream(self._table.watch(since=since, timeout=timeout).stream, self._run)

class AsyncTransaction:
    """``async with db.transaction():`` a block whose writes commit together or not at all."""

    def __init__(self, db: AsyncMicroDB):
        self._db = db
        self._thread: ThreadPoolExecutor | None = None
        self._block: Any = None
        self._token: contextvars.Token[tuple[int, Executor, object] | None] | None = None
        self._native: contextlib.AbstractAsyncContextManager[None] | None = None

    async def __aenter__(self) -> AsyncMicroDB:
        driver = self._db._native.get()
        if driver is not None:
            # PostgreSQL: one async connection held by this task for the block (no thread).
            self._db.sync._check_open()
            native = driver.transaction()
            await native.__aenter__()
            self._native = native
            return self._db
        run = self._db._run
        current = TRANSACTION.get()
        if current is not None and current[0] == id(run) and current[2] is asyncio.current_task():
            raise TransactionError("async transactions do not nest: this task is already in one")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="microdb-transaction")
        block = self._db.sync.transaction()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, block.__enter__)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise
        self._block = block
        self._token = TRANSACTION.set((id(run), self._thread, asyncio.current_task()))
        return self._db

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._native is not None:
            native, self._native = self._native, None
            await native.__aexit__(kind, exc, tb)
            return
        assert self._thread is not None and self._token is not None
        TRANSACTION.reset(self._token)
        loop = asyncio.get_running_loop()
        try:
            # The block ends on the thread that opened it, even when this task is cancelled.
            future = loop.run_in_executor(self._thread, self._block.__exit__, kind, exc, tb)
            await asyncio.shield(future)
        finally:
            self._thread.shutdown(wait=False)


class AsyncMicroDB(AsyncTable):
    """A MicroDB database for asyncio; it is also its own default table.

    ``AsyncMicroDB(...)`` takes what :class:`~microdb.MicroDB` takes (a path, a URL, a
    storage, options) and opens it at once; ``await AsyncMicroDB.open(...)`` opens it in a
    worker thread instead (for a large file). ``workers`` is the number of threads.
    """

    def __init__(self, storage: Any = None, *, workers: int = 4, **options: Any):
        db = storage if isinstance(storage, MicroDB) and not options else MicroDB(storage, **options)
        run = Runner(workers)
        backend = db._backend
        driver = AsyncPostgres(backend, run.offload, run.settle) if isinstance(backend, PostgresBackend) else None
        super().__init__(db, run, Native(driver, run))
        self._db = db
        self._tables: dict[str, AsyncTable] = {}

    @classmethod
    async def open(cls, storage: Any = None, *, workers: int = 4, **options: Any) -> AsyncMicroDB:
        """Open the database in a worker thread, so a large file does not stall the loop."""
        db = await asyncio.to_thread(MicroDB, storage, **options)
        return cls(db, workers=workers)

    @property
    def sync(self) -> MicroDB:
        """The synchronous database underneath (its calls block)."""
        return self._db

    def __repr__(self) -> str:
        return f"<AsyncMicroDB {self._db!r}>"

    def table(self, name: str) -> AsyncTable:
        """The table called ``name``."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = AsyncTable(self._db.table(name), self._run, self._native)
        return table

    async def tables(self) -> set[str]:
        """The names of the tables."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._db.tables)
        return set(await driver.call(driver.backend.tables_steps))

    async def drop_table(self, name: str) -> bool:
        """Remove a table; true when it existed."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._db.drop_table, name)
        return await self._write(driver, lambda s: driver.backend.drop_table_steps(s, name))

    async def drop_tables(self) -> None:
        """Remove every table."""
        driver = self._native.get()
        if driver is None:
            return await self._run(self._db.drop_tables)
        await self._write(driver, lambda s: pgcalls.drop_tables(driver.backend, s))

    def transaction(self) -> AsyncTransaction:
        """``async with db.transaction():`` writes across tables that commit together."""
        return AsyncTransaction(self)

    def changes(
        self,
        since: int | None = None,
        tables: str | Collection[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> AsyncChangeStream:
        """Committed changes of every process, for ``async for`` (see ``MicroDB.changes``)."""
        driver = self._native.for_streams()
        if driver is not None:
            if self._db.closed:
                raise DatabaseClosedError("the database is closed")
            return AsyncChangeStream(None, self._run, driver, since, tables, timeout)
        return AsyncChangeStream(self._db.changes(since, tables, timeout=timeout), self._run)

    async def last_seq(self) -> int:
        """The sequence number of the newest commit."""
        driver = self._native.get()
        if driver is None:
            return await self._run(lambda: self._db.last_seq)
        self._db._check_open()
        backend = driver.backend
        if not backend.read_only:  # the feed starts at its first reader, as in MicroDB.last_seq
            await driver.call(backend.feed_steps, write=True)
        return (await driver.call(lambda s: bounds_steps()))[1]

    async def compact(self) -> None:
        """Write a fresh checkpoint of the data."""
        if self._native.get() is not None and type(self._db.backend).compact is Backend.compact:
            return self._db.compact()  # PostgreSQL keeps no checkpoint: no I/O, so no thread
        await self._run(self._db.compact)

    async def close(self) -> None:
        """Close the database and its threads."""
        try:
            if self._native.driver is not None:
                await self._native.driver.close()
            await self._run(self._db.close)
        finally:
            self._run.pool.shutdown(wait=False)

    @property
    def closed(self) -> bool:
        """Whether the database was closed."""
        return self._db.closed

    async def __aenter__(self) -> AsyncMicroDB:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
