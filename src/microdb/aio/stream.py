"""``AsyncChangeStream``: a database's committed changes for ``async for``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

from microdb.aio.runner import Runner
from microdb.changes import ChangeStream, check_since, table_names
from microdb.feed import Change
from microdb.sql.pgasync import AsyncPostgres, AsyncPostgresChangeLog

__all__ = ["AsyncChangeStream"]


class AsyncChangeStream:
    """Committed changes for ``async for``.

    On PostgreSQL it reads and waits on the loop (an async connection that ``LISTEN``s,
    woken by ``NOTIFY``); elsewhere it waits in a worker thread.
    """

    def __init__(
        self, stream: ChangeStream | None, run: Runner, driver: AsyncPostgres | None = None,
        since: int | None = None, tables: str | Collection[str] | None = None, timeout: float | None = None,
    ):
        self._stream = stream
        self._run = run
        self._buffer: list[Change] = []
        if stream is not None:
            self._timeout = stream._timeout
            return
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        self._timeout = timeout
        self._driver = driver
        self._since = check_since(since)
        self._tables = table_names(tables)
        self._log: AsyncPostgresChangeLog | None = None
        self._seq = -1 if self._since is None else self._since
        self._position = self._seq
        self._starting: asyncio.Task[AsyncPostgresChangeLog] | None = None
        if self._since is None:
            # "From now on": the newest commit is read at once, in a task; this database's
            # next calls wait for it, so the stream sees every write made after this line.
            with contextlib.suppress(RuntimeError):  # no running loop: found at the first read
                self._starting = asyncio.get_running_loop().create_task(self._open())
                run.track(self._starting)

    @property
    def seq(self) -> int:
        """The last commit delivered: resume from here with ``since=``."""
        return self._stream.seq if self._stream is not None else self._seq

    def __aiter__(self) -> AsyncChangeStream:
        return self

    async def _open(self) -> AsyncPostgresChangeLog:
        if self._starting is not None and self._starting is not asyncio.current_task():
            task, self._starting = self._starting, None
            await task
        if self._log is None:
            assert self._driver is not None
            log = await AsyncPostgresChangeLog.open(self._driver)
            if self._position < 0:  # from now on: where now is
                try:
                    self._seq = self._position = await log.last_seq()
                except BaseException:
                    await log.close()
                    raise
            self._log = log
        return self._log

    async def _fill(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (``None``: for ever) for changes in the buffer."""
        if self._stream is not None:
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                # Wait in short slices: a cancelled task leaves its thread within 0.1 s.
                left = 0.1 if deadline is None else min(0.1, deadline - loop.time())
                self._buffer = await self._run(self._stream.poll, max(left, 0.0))
                if self._buffer or (deadline is not None and loop.time() >= deadline):
                    return
        log = await self._open()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            changes, self._position = await log.read(self._position, self._tables)
            if changes:
                self._buffer = changes
                return
            self._seq = self._position
            left = 1.0 if deadline is None else deadline - loop.time()
            if left <= 0:
                return
            await log.wait(min(left, 1.0))

    async def __anext__(self) -> Change:
        if not self._buffer:
            await self._fill(self._timeout)
            if not self._buffer:
                if self._stream is None:
                    # The iteration is over: its connection goes (a new one resumes here).
                    await self.aclose()
                raise StopAsyncIteration
        change = self._buffer.pop(0)
        if self._stream is None:
            # Resuming is by whole commits: until its last change is delivered, a commit
            # is not behind us.
            if not self._buffer:
                self._seq = self._position
            else:
                self._seq = change.seq - 1 if self._buffer[0].seq == change.seq else change.seq
        return change

    async def poll(self, timeout: float = 0.0) -> list[Change]:
        """The changes available now, waiting up to ``timeout`` seconds for the first."""
        if not self._buffer:
            await self._fill(timeout)
        out, self._buffer = self._buffer, []
        if self._stream is None:
            self._seq = self._position
        return out

    async def aclose(self) -> None:
        """Release the stream's reader."""
        if self._stream is not None:
            await self._run(self._stream.close)
            return
        if self._starting is not None:
            task, self._starting = self._starting, None
            with contextlib.suppress(Exception):
                await task
        if self._log is not None:
            log, self._log = self._log, None
            await log.close()
