"""How ``AsyncMicroDB`` runs a call: in its worker threads, or on the loop (PostgreSQL).

``Runner`` runs blocking calls of one database in its threads (the task inside a
transaction on the transaction's own thread) and keeps the change streams still finding
their start, which every call waits for; ``Native`` says whether a call may use the
PostgreSQL async driver instead (not inside a transaction run on a thread: a database
used from a second event loop; a transaction on the driver is the driver's own, see
:meth:`microdb.sql.pgasync.AsyncPostgres.transaction`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from microdb.handover import paced
from microdb.sql.pgasync import AsyncPostgres

__all__ = ["TRANSACTION", "Native", "Runner"]

T = TypeVar("T")

#: The transaction the current task opened: its database's runner, its thread, the task.
TRANSACTION: contextvars.ContextVar[tuple[int, Executor, object] | None] = contextvars.ContextVar(
    "microdb_transaction", default=None
)


class Runner:
    """Runs blocking calls of one database in its threads."""

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="microdb")
        #: Change streams finding where "now" is (see AsyncChangeStream): calls wait for them.
        self.pending: set[asyncio.Task[Any]] = set()

    def track(self, task: asyncio.Task[Any]) -> None:
        """Make the next calls wait for ``task`` (a change stream's start)."""
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def settle(self) -> None:
        """Wait for the change streams that are still finding their start."""
        if self.pending:
            await asyncio.wait(list(self.pending))

    async def __call__(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        await self.settle()
        current = TRANSACTION.get()
        executor = current[1] if current is not None and self.in_transaction() else self.pool
        call = functools.partial(func, *args, **kwargs) if args or kwargs else func
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    async def read(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a read as :meth:`__call__` does, its long loops handing the interpreter lock
        over to the loop every millisecond (see :mod:`microdb.handover`)."""
        return await self(paced, func, *args, **kwargs)

    def in_transaction(self) -> bool:
        """Whether the calling task is inside a transaction of this database."""
        current = TRANSACTION.get()
        return current is not None and current[0] == id(self) and current[2] is asyncio.current_task()

    async def offload(self, func: Callable[..., T], *args: Any) -> T:
        """Run pure work in the pool (never the transaction's thread)."""
        call = functools.partial(func, *args) if args else func
        return await asyncio.get_running_loop().run_in_executor(self.pool, call)


class Native:
    """The PostgreSQL driver of one database, for the calls of tasks outside a thread's transaction."""

    def __init__(self, driver: AsyncPostgres | None, run: Runner):
        self.driver = driver
        self.run = run

    def for_streams(self) -> AsyncPostgres | None:
        """The async driver for a change stream (transactions do not matter to those)."""
        return self.driver if self.driver is not None and self.driver.usable() else None

    def get(self) -> AsyncPostgres | None:
        """The async driver, or ``None`` when the call must go to a thread."""
        if self.driver is None or self.run.in_transaction() or not self.driver.usable():
            return None
        return self.driver
