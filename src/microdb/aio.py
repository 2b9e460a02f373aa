"""The asyncio face of MicroDB: ``AsyncMicroDB``, whose calls never block the event loop.

Every call runs the synchronous API in worker threads: a small pool per database, and
one thread of its own for each transaction (the engine's locks belong to the thread that
takes them, so a transaction's statements all run on the thread that opened it; a
context variable routes the calls of the task that opened the transaction there, while
other tasks, those it starts included, wait for it to end like any other writer). This holds for every backend, PostgreSQL included: its driver calls run
in the threads too. See ``docs/async.md``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from microdb.changes import ChangeStream
from microdb.database import MicroDB
from microdb.document import Document
from microdb.errors import TransactionError
from microdb.feed import Change
from microdb.results import Result
from microdb.table import Table

__all__ = ["AsyncChangeStream", "AsyncMicroDB", "AsyncResult", "AsyncTable", "AsyncTransaction"]

T = TypeVar("T")

#: The transaction the current task opened: its database's runner, its thread, the task.
_current: contextvars.ContextVar[tuple[int, Executor, object] | None] = contextvars.ContextVar(
    "microdb_transaction", default=None
)
_BATCH = 500  # documents copied per step of ``async for`` (below the collector's pause size)


class _Runner:
    """Runs blocking calls of one database in its threads."""

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="microdb")

    async def __call__(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        current = _current.get()
        if current is not None and current[0] == id(self) and current[2] is asyncio.current_task():
            executor = current[1]
        else:
            executor = self.pool
        call = functools.partial(func, *args, **kwargs) if args or kwargs else func
        return await asyncio.get_running_loop().run_in_executor(executor, call)


class AsyncResult:
    """A lazy query result, read with ``await`` or ``async for``.

    ``sort``, ``skip``, ``limit`` and ``project`` compose as on :class:`~microdb.Result`;
    reading runs the query in a worker thread.
    """

    def __init__(self, result: Result, run: _Runner):
        self._result = result
        self._run = run

    @property
    def sync(self) -> Result:
        """The synchronous result underneath."""
        return self._result

    def sort(self, *keys: Any, reverse: bool = False) -> AsyncResult:
        """Sort by fields, ``(field, -1)`` pairs, or key functions."""
        return AsyncResult(self._result.sort(*keys, reverse=reverse), self._run)

    def skip(self, n: int) -> AsyncResult:
        """Leave out the first ``n`` documents."""
        return AsyncResult(self._result.skip(n), self._run)

    def limit(self, n: int) -> AsyncResult:
        """Keep at most ``n`` documents."""
        return AsyncResult(self._result.limit(n), self._run)

    def project(self, fields: Any, *more: Any, exclude: bool = False) -> AsyncResult:
        """Return only these fields (or all but these)."""
        return AsyncResult(self._result.project(fields, *more, exclude=exclude), self._run)

    async def all(self) -> list[Document]:
        """Every selected document."""
        return await self._run(self._result.all)

    async def first(self) -> Document | None:
        """The first selected document, or ``None``."""
        return await self._run(self._result.first)

    async def last(self) -> Document | None:
        """The last selected document, or ``None``."""
        return await self._run(self._result.last)

    async def ids(self) -> list[int]:
        """The ids of the selected documents."""
        return await self._run(self._result.ids)

    async def count(self) -> int:
        """How many documents are selected."""
        return await self._run(self._result.count)

    async def distinct(self, field: Any) -> list[Any]:
        """The distinct values of ``field`` among the selected documents."""
        return await self._run(self._result.distinct, field)

    async def explain(self) -> dict[str, Any]:
        """How the query runs."""
        return await self._run(self._result.explain)

    async def __aiter__(self) -> AsyncIterator[Document]:
        # The selection is made once; the copies are made a batch at a time, each in its
        # own short call: a large result never builds a million fresh objects at once,
        # which would hold the interpreter lock through long garbage collections.
        batches = self._result.batches(_BATCH)
        while True:
            batch = await self._run(next, batches, None)
            if batch is None:
                return
            for doc in batch:
                yield doc


class AsyncTable:
    """A table whose methods are coroutines (``await table.insert(...)``)."""

    def __init__(self, table: Table, run: _Runner):
        self._table = table
        self._run = run

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

    async def insert(self, document: Mapping[str, Any]) -> int:
        """Insert one document; returns its id."""
        return await self._run(self._table.insert, document)

    async def insert_many(self, documents: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert documents in one commit; returns their ids."""
        return await self._run(self._table.insert_many, list(documents))

    def query(self, cond: Any = None) -> AsyncResult:
        """The documents matching ``cond`` (all without it), read lazily."""
        return AsyncResult(self._table.query(cond), self._run)

    async def all(self) -> list[Document]:
        """Every document of the table."""
        return await self._run(self._table.all)

    async def search(self, cond: Any) -> list[Document]:
        """The documents matching ``cond``."""
        return await self._run(self._table.search, cond)

    async def get(self, cond: Any = None, *, doc_id: int | None = None, doc_ids: Iterable[int] | None = None) -> Any:
        """One document by query or id (``None`` when absent), or a list for ``doc_ids``."""
        return await self._run(self._table.get, cond, doc_id=doc_id, doc_ids=doc_ids)

    async def contains(self, cond: Any = None, *, doc_id: int | None = None) -> bool:
        """Whether a document matches (or has the id)."""
        return await self._run(self._table.contains, cond, doc_id=doc_id)

    async def count(self, cond: Any = None) -> int:
        """How many documents match ``cond`` (all without it)."""
        return await self._run(self._table.count, cond)

    async def length(self) -> int:
        """How many documents the table holds (``len()`` of the synchronous table)."""
        return await self._run(self._table.__len__)

    async def update(self, fields: Any, cond: Any = None, *, doc_ids: Iterable[int] | None = None) -> list[int]:
        """Update the matching documents; returns their ids."""
        return await self._run(self._table.update, fields, cond, doc_ids=doc_ids)

    async def update_multiple(self, updates: Iterable[tuple[Any, Any]]) -> list[int]:
        """Several (update, condition) pairs in one commit."""
        return await self._run(self._table.update_multiple, list(updates))

    async def upsert(self, document: Any, cond: Any = None) -> list[int]:
        """Update the matching documents, or insert ``document`` when none match."""
        return await self._run(self._table.upsert, document, cond)

    async def remove(self, cond: Any = None, *, doc_ids: Iterable[int] | None = None) -> list[int]:
        """Delete the matching documents; returns their ids."""
        return await self._run(self._table.remove, cond, doc_ids=doc_ids)

    async def truncate(self) -> None:
        """Delete every document."""
        await self._run(self._table.truncate)

    async def create_index(self, field: Any, *, unique: bool = False) -> None:
        """Declare an index on ``field``."""
        await self._run(self._table.create_index, field, unique=unique)

    async def drop_index(self, field: Any) -> bool:
        """Remove an index; true when it existed."""
        return await self._run(self._table.drop_index, field)

    async def indexes(self) -> list[dict[str, Any]]:
        """The table's indexes."""
        return await self._run(self._table.indexes)

    def watch(self, *, since: int | None = None, timeout: float | None = None) -> AsyncChangeStream:
        """This table's committed changes, from every process: ``async for change in ...``."""
        return AsyncChangeStream(self._table.watch(since=since, timeout=timeout).stream, self._run)


class AsyncChangeStream:
    """Committed changes for ``async for``; waiting happens in a worker thread."""

    def __init__(self, stream: ChangeStream, run: _Runner):
        self._stream = stream
        self._run = run
        self._buffer: list[Change] = []
        self._timeout = stream._timeout

    @property
    def seq(self) -> int:
        """The last commit delivered: resume from here with ``since=``."""
        return self._stream.seq

    def __aiter__(self) -> AsyncChangeStream:
        return self

    async def __anext__(self) -> Change:
        if self._buffer:
            return self._buffer.pop(0)
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        while True:
            # Wait in short slices: a cancelled task leaves its thread within 0.1 s.
            left = 0.1 if deadline is None else min(0.1, deadline - loop.time())
            changes = await self._run(self._stream.poll, max(left, 0.0))
            if changes:
                self._buffer = changes
                return self._buffer.pop(0)
            if deadline is not None and loop.time() >= deadline:
                raise StopAsyncIteration

    async def poll(self, timeout: float = 0.0) -> list[Change]:
        """The changes available now, waiting up to ``timeout`` seconds for the first."""
        out, self._buffer = self._buffer, []
        return out + await self._run(self._stream.poll, timeout)

    async def aclose(self) -> None:
        """Release the stream's reader."""
        await self._run(self._stream.close)


class AsyncTransaction:
    """``async with db.transaction():`` a block whose writes commit together or not at all."""

    def __init__(self, db: AsyncMicroDB):
        self._db = db
        self._thread: ThreadPoolExecutor | None = None
        self._block: Any = None
        self._token: contextvars.Token[tuple[int, Executor, object] | None] | None = None

    async def __aenter__(self) -> AsyncMicroDB:
        run = self._db._run
        current = _current.get()
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
        self._token = _current.set((id(run), self._thread, asyncio.current_task()))
        return self._db

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._thread is not None and self._token is not None
        _current.reset(self._token)
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
        super().__init__(db, _Runner(workers))
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
            table = self._tables[name] = AsyncTable(self._db.table(name), self._run)
        return table

    async def tables(self) -> set[str]:
        """The names of the tables."""
        return await self._run(self._db.tables)

    async def drop_table(self, name: str) -> bool:
        """Remove a table; true when it existed."""
        return await self._run(self._db.drop_table, name)

    async def drop_tables(self) -> None:
        """Remove every table."""
        await self._run(self._db.drop_tables)

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
        return AsyncChangeStream(self._db.changes(since, tables, timeout=timeout), self._run)

    async def last_seq(self) -> int:
        """The sequence number of the newest commit."""
        return await self._run(lambda: self._db.last_seq)

    async def compact(self) -> None:
        """Write a fresh checkpoint of the data."""
        await self._run(self._db.compact)

    async def close(self) -> None:
        """Close the database and its threads."""
        try:
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
