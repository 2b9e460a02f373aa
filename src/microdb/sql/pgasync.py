"""PostgreSQL for asyncio: the SQL engine's steps run on psycopg's async connections.

The SQL engine writes each read and write once, as a generator of statements
(:mod:`microdb.sql.steps`). :class:`AsyncPostgres` drives those same generators on the
event loop: each statement goes out on a ``psycopg.AsyncConnection`` from a
``psycopg_pool.AsyncConnectionPool`` (opened on the loop that first uses it, with the
sessions of :func:`microdb.sql.postgres.session_settings`), and the loop runs other tasks
while the server works. Pure Python work on many rows (decoding documents, checking them)
is a :class:`~microdb.sql.steps.Work` step: small ones run on the loop, large ones in a
worker thread, so that no call holds the loop for long. Driver errors become MicroDB's
errors exactly as in the blocking driver (``PostgresBackend._wrap``).

A block (:meth:`AsyncPostgres.call`) takes one connection for its steps: a write block is
one transaction (``BEGIN`` ... ``COMMIT``, rolled back if a step or the caller fails); a
read block runs each statement on its own, as the blocking backend does.

A transaction (:meth:`AsyncPostgres.transaction`) is a write block the task holds across
calls: while it lasts, every call of the task that opened it runs on its connection (a
write inside a savepoint, so that a failed call is undone alone, as in the blocking
backend), and its end commits, or rolls back on an exception or a cancellation.

:class:`AsyncPostgresChangeLog` reads the change feed the same way: its own async
connection, ``LISTEN microdb_changes``, and ``notifies()`` to wake at the next commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

from microdb.errors import DatabaseClosedError, ReadOnlyError, StorageError, TransactionError
from microdb.feed import Change
from microdb.sql.pgfeed import CHANNEL, bounds_steps, read_steps
from microdb.sql.postgres import PostgresBackend
from microdb.sql.session import Session
from microdb.sql.steps import Copy, Many, Run, Step, Steps, Stream, Work

__all__ = ["ON_LOOP", "AsyncPostgres", "AsyncPostgresChangeLog"]

T = TypeVar("T")

#: Rows of pure Python work done on the loop itself; more go to a worker thread.
ON_LOOP = 500
#: Rows converted from a result at a time, the loop running other tasks in between.
_FETCH = 2000

#: libpq's transaction status of a transaction aborted by a failed statement (INERROR).
_FAILED = 3

#: The transaction the current task holds: its driver, its session, the task.
_HELD: contextvars.ContextVar[tuple[AsyncPostgres, Session, object] | None] = contextvars.ContextVar(
    "microdb_pg_transaction", default=None
)


class _LostLink(StorageError):
    """The connection died; ``first``: at the block's first statement (safe to run again)."""

    def __init__(self, message: str, first: bool):
        super().__init__(message)
        self.first = first


class AsyncPostgres:
    """Runs the SQL engine's steps for a :class:`PostgresBackend` on the event loop.

    ``offload(func, *args)`` runs large :class:`~microdb.sql.steps.Work` steps (a worker
    thread of the caller's choosing); ``before()`` is awaited before each block that
    :meth:`call` opens.
    """

    def __init__(
        self, backend: PostgresBackend, offload: Callable[..., Awaitable[Any]],
        before: Callable[[], Awaitable[None]] | None = None,
    ):
        self.backend = backend
        self._offload = offload
        self._before = before
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def usable(self) -> bool:
        """Whether the running loop may use the driver: its pool belongs to the first loop
        that used it (a database used from another loop later runs its calls in threads)."""
        if self._loop is None:
            return True
        try:
            return self._loop is asyncio.get_running_loop()
        except RuntimeError:  # no loop running yet (a stream made outside one)
            return True

    async def _connections(self) -> Any:
        """The pool of async connections, opened on first use (on the running loop)."""
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._loop = asyncio.get_running_loop()
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                b = self.backend
                settings = b.settings

                async def configure(conn: Any) -> None:
                    for sql, params in settings:
                        await conn.execute(sql, params)

                pool = b.pool_module.AsyncConnectionPool(
                    b.url, min_size=1, max_size=b.pool_size, open=False, timeout=b.timeout,
                    kwargs=b.connect_options, configure=configure, name=f"microdb-async-{id(self):x}",
                )
                try:
                    await pool.open(wait=True, timeout=b.timeout)
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await pool.close()
                    raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
                self._pool = pool
        return self._pool

    @contextlib.asynccontextmanager
    async def block(self, write: bool) -> AsyncIterator[Session]:
        """A session holding one connection; a write block is one transaction."""
        b = self.backend
        if b.closed:
            raise DatabaseClosedError("the database is closed")
        if write and b.read_only:
            raise ReadOnlyError("the database is open read-only")
        pool = await self._connections()
        try:
            conn = await pool.getconn(timeout=b.timeout)
        except Exception as exc:
            raise StorageError(f"no PostgreSQL connection within {b.timeout}s: {exc}") from exc
        s = Session(conn=conn, depth=1, writing=write, fresh=True)
        try:
            if write:
                await self._answer(s, Run("BEGIN"))
            try:
                yield s
            except BaseException:
                if write:
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
            if write:
                if conn.info.transaction_status == _FAILED:
                    # The server would answer COMMIT with a silent rollback: say so instead.
                    raise StorageError("a statement failed inside the transaction: nothing was committed")
                await self._answer(s, Run("COMMIT"))
        finally:
            s.writing, s.conn = False, None
            # A connection left inside a transaction (an error, a cancelled task) is closed:
            # closing ends the transaction on the server, and the pool opens a fresh one.
            with contextlib.suppress(Exception):
                if not conn.closed and conn.info.transaction_status != 0:
                    await conn.close()
            with contextlib.suppress(Exception):
                await pool.putconn(conn)

    def held(self) -> Session | None:
        """The session of the transaction the calling task holds on this driver, if any."""
        held = _HELD.get()
        if held is None or held[0] is not self:
            return None
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no loop running
            return None
        # Tasks started inside the transaction inherit the variable, not the transaction.
        return held[1] if held[2] is task else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A write block held by the calling task: its calls run inside it until it ends."""
        if self.held() is not None:
            raise TransactionError("async transactions do not nest: this task is already in one")
        if self._before is not None:
            await self._before()
        async with contextlib.AsyncExitStack() as stack:
            try:
                s = await stack.enter_async_context(self.block(write=True))
            except _LostLink as lost:  # dead at BEGIN: nothing was sent, take another link
                if not lost.first:
                    raise
                with contextlib.suppress(Exception):
                    await (await self._connections()).check()
                s = await stack.enter_async_context(self.block(write=True))
            token = _HELD.set((self, s, asyncio.current_task()))
            try:
                yield
            finally:
                _HELD.reset(token)
            if self._before is not None:
                await self._before()  # a stream made in the block finds "now" before the commit

    async def call(self, make: Callable[[Session], Steps[T]], *, write: bool = False, before: bool = True) -> T:
        """Run ``make(session)``'s steps in a block of their own (or in the task's
        transaction); their result.

        A connection found dead at the block's first statement (the server restarted, or
        ended it) is replaced and the block run again, once: nothing of it reached the
        server. A link lost later fails the call with ``StorageError``.
        """
        if before and self._before is not None:
            await self._before()
        held = self.held()
        if held is not None:
            return await self._inside(held, make, write)
        try:
            async with self.block(write) as s:
                return await self.drive(s, make(s))
        except _LostLink as lost:
            if not lost.first:
                raise
            with contextlib.suppress(Exception):
                await (await self._connections()).check()  # drop the pool's other dead links
        async with self.block(write) as s:
            return await self.drive(s, make(s))

    async def _inside(self, s: Session, make: Callable[[Session], Steps[T]], write: bool) -> T:
        """``make``'s steps inside the held transaction ``s``: a write in a savepoint of
        its own (its failure undoes it alone, and the transaction goes on)."""
        if s.conn is None:
            raise TransactionError("the transaction has ended")
        s.depth += 1
        try:
            steps = make(s)
            return await self.drive(s, self.backend._savepoint_steps(s, steps) if write else steps)
        finally:
            s.depth -= 1

    async def drive(self, s: Session, steps: Steps[T]) -> T:
        """Run ``steps`` on ``s``'s async connection; their result."""
        try:
            step = next(steps)
            while True:
                try:
                    result = await self._answer(s, step)
                except BaseException as exc:  # noqa: BLE001 - handed to the steps, which re-raise
                    step = steps.throw(exc)
                else:
                    step = steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _answer(self, s: Session, step: Step) -> Any:
        if isinstance(step, Work):
            if step.size > ON_LOOP:
                return await self._offload(step.func, *step.args)
            return step.func(*step.args)
        conn = s.conn
        psycopg = self.backend._psycopg
        try:
            if isinstance(step, (Run, Stream)):
                cur = await conn.execute(step.sql, list(step.params), prepare=False)
                s.fresh = False
                if cur.description is None:
                    return []
                rows: list[Any] = []
                while True:
                    part = await cur.fetchmany(_FETCH)
                    rows.extend(part)
                    if len(part) < _FETCH:
                        return rows
                    await asyncio.sleep(0)  # turning a large result into rows: let others run
            s.fresh = False  # (a failure below leaves the block unsure of what was sent)
            if isinstance(step, Many):
                async with conn.cursor() as cur:
                    await cur.executemany(step.sql, step.rows)
                return None
            if isinstance(step, Copy):
                async with conn.cursor() as cur, cur.copy(step.sql) as copy:
                    for row in step.rows:
                        await copy.write_row(row)
                return None
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                raise _LostLink(f"the PostgreSQL connection was lost: {str(exc).strip()}", s.fresh) from exc
            raise self.backend._wrap(exc, step.sql) from exc
        raise TypeError(f"not a step: {step!r}")

    async def close(self) -> None:
        """Close the pool of async connections."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close(timeout=5)


class AsyncPostgresChangeLog:
    """The change feed's reader on an async connection of its own, woken by ``NOTIFY``.

    The asyncio twin of :class:`microdb.sql.pgfeed.PostgresChangeLog`: the same steps
    (:func:`~microdb.sql.pgfeed.read_steps`), awaited. Open it with :meth:`open`.
    """

    def __init__(self, conn: Any):
        self._conn = conn

    @classmethod
    async def open(cls, native: AsyncPostgres) -> AsyncPostgresChangeLog:
        """Start the feed if it had not, and connect a reader that listens for commits."""
        b = native.backend
        if not b.read_only:
            await native.call(b.feed_steps, write=True, before=False)
        try:
            conn = await b._psycopg.AsyncConnection.connect(
                b.url, autocommit=True, connect_timeout=max(1, int(b.timeout))
            )
        except Exception as exc:
            raise StorageError(f"cannot connect to PostgreSQL to read its changes: {exc}") from exc
        try:
            if b.search_path is not None:
                await conn.execute("SELECT set_config('search_path', %s, false)", (b.search_path,))
            await conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:
            with contextlib.suppress(Exception):
                await conn.close()
            raise StorageError(f"cannot listen to the PostgreSQL change feed: {exc}") from exc
        return cls(conn)

    async def _drive(self, steps: Steps[T]) -> T:
        try:
            step = next(steps)
            while True:
                assert isinstance(step, Run)
                try:
                    cur = await self._conn.execute(step.sql, step.params)
                    rows = await cur.fetchall()
                except Exception as exc:
                    raise StorageError(f"cannot read the PostgreSQL change feed: {exc}") from exc
                step = steps.send(rows)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def last_seq(self) -> int:
        """The newest commit's number."""
        return (await self._drive(bounds_steps()))[1]

    async def read(self, after: int, tables: Collection[str] | None = None, limit: int = 1000) -> tuple[list[Change], int]:
        """Whole commits above ``after``; the last seq read."""
        return await self._drive(read_steps(after, tables, limit))

    async def wait(self, timeout: float) -> None:
        """Return at the next ``NOTIFY`` (or after ``timeout`` seconds)."""
        try:
            async for _ in self._conn.notifies(timeout=max(timeout, 0.0), stop_after=1):
                break
        except Exception as exc:
            await asyncio.sleep(min(timeout, 0.1))
            raise StorageError(f"lost the PostgreSQL change feed connection: {exc}") from exc

    async def close(self) -> None:
        """Close the reader's connection."""
        with contextlib.suppress(Exception):
            await self._conn.close()

    def __del__(self) -> None:
        # A stream dropped without aclose(): end the link at once (nothing to await here).
        with contextlib.suppress(Exception):
            if not self._conn.closed:
                self._conn.pgconn.finish()
