"""Following a database's committed changes: ``db.changes()`` and ``table.watch()``.

Both read the backend's :class:`~microdb.feed.ChangeLog` (the JSON file's side file, or a
SQL change table), so they see every process's commits, in commit order. See
``docs/changes.md``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from typing import Any

from microdb.backend import Backend
from microdb.engine import MemoryBackend
from microdb.errors import DatabaseClosedError, UnsupportedFeature
from microdb.feed import Change, ChangeLog
from microdb.storage.jsonfile import JSONFileStorage

__all__ = ["Change", "ChangeStream", "Watch", "open_change_log"]


def open_change_log(backend: Backend) -> ChangeLog:
    """A new reader of ``backend``'s change history (each stream has its own)."""
    if backend.closed:
        raise DatabaseClosedError("the database is closed")
    if isinstance(backend, MemoryBackend) and isinstance(backend.store, JSONFileStorage):
        return backend.store.change_log()
    opener = getattr(backend, "change_log", None)
    if callable(opener):
        log = opener()
        if isinstance(log, ChangeLog):
            return log
    raise UnsupportedFeature(
        f"the {backend.name!r} backend keeps no change feed: changes() and watch() need a JSON "
        "file, SQLite or PostgreSQL database"
    )


def table_names(tables: str | Collection[str] | None) -> frozenset[str] | None:
    if tables is None:
        return None
    if isinstance(tables, str):
        return frozenset((tables,))
    names = frozenset(tables)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"tables must be table names, got {tables!r}")
    return names


def check_since(since: Any) -> int | None:
    if since is None:
        return None
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise ValueError(f"since must be a sequence number (an int >= 0) or None, got {since!r}")
    return since


class ChangeStream(Iterator[Change]):
    """The committed changes after ``since``, oldest first; iterating waits for new ones.

    ``timeout``: stop iterating once no change came for that many seconds (``None``: wait
    for ever). :attr:`seq` is where the stream stands: pass it as ``since`` to resume,
    in this process or another, after a restart too.
    """

    def __init__(
        self,
        log: ChangeLog,
        *,
        since: int | None = None,
        tables: str | Collection[str] | None = None,
        timeout: float | None = None,
    ):
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        start = check_since(since)
        self._log = log
        self._tables = table_names(tables)
        self._timeout = timeout
        self._buffer: deque[Change] = deque()
        self._stopped = threading.Event()
        #: The sequence number of the last commit delivered (or skipped as not asked for).
        self.seq = log.last_seq() if start is None else start
        self._position = self.seq

    def __iter__(self) -> ChangeStream:
        return self

    def __next__(self) -> Change:
        if not self._buffer:
            self._fill(self._timeout)
        if not self._buffer:
            raise StopIteration
        change = self._buffer.popleft()
        if not self._buffer:
            self.seq = self._position
        else:
            # Resuming is by whole commits: until its last change is delivered, a commit
            # is not behind us.
            self.seq = change.seq - 1 if self._buffer[0].seq == change.seq else change.seq
        return change

    def poll(self, timeout: float = 0.0) -> list[Change]:
        """The changes available now, waiting up to ``timeout`` seconds for the first."""
        if not self._buffer:
            self._fill(timeout)
        out = list(self._buffer)
        self._buffer.clear()
        self.seq = self._position
        return out

    def _fill(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopped.is_set():
            changes, self._position = self._log.read(self._position, self._tables)
            if changes:
                self._buffer.extend(changes)
                return
            self.seq = self._position
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            # Short slices, so that stop() is seen quickly even by a backend that blocks.
            self._log.wait(self._position, 0.1 if left is None else min(left, 0.1))

    def stop(self) -> None:
        """End the iteration (from any thread); the stream's files or connection are released."""
        self._stopped.set()

    def close(self) -> None:
        """Stop and release the reader."""
        self._stopped.set()
        self._log.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._log.close()

    def __enter__(self) -> ChangeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watch:
    """A table's changes: iterate them (with a timeout), or have a thread call you back.

    ``table.watch()`` returns one to iterate; ``table.watch(callback)`` has already started
    a background thread calling ``callback(change)`` for each change, until :meth:`stop`.
    An exception raised by the callback (or by the feed) stops the thread and is kept in
    :attr:`error`.
    """

    def __init__(self, stream: ChangeStream):
        self._stream = stream
        self._thread: threading.Thread | None = None
        #: What stopped the background thread, if it was an exception.
        self.error: BaseException | None = None

    @property
    def seq(self) -> int:
        """The last commit delivered: resume from here with ``watch(since=...)``."""
        return self._stream.seq

    @property
    def stream(self) -> ChangeStream:
        """The stream this watch reads."""
        return self._stream

    def __iter__(self) -> Iterator[Change]:
        return self._stream

    def __next__(self) -> Change:
        return next(self._stream)

    def start(self, callback: Callable[[Change], Any]) -> Watch:
        """Call ``callback(change)`` from a background thread for each change."""
        if self._thread is not None:
            raise RuntimeError("this watch already has a callback thread")

        def run() -> None:
            try:
                while not self._stream._stopped.is_set():
                    for change in self._stream.poll(0.1):
                        callback(change)
            except BaseException as exc:  # noqa: BLE001 - kept for the owner to see
                self.error = exc
            finally:
                self._stream._log.close()

        self._thread = threading.Thread(target=run, name="microdb-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the watch; with a callback thread, wait (up to ``timeout``) for it to end."""
        self._stream.stop()
        if self._thread is not None:
            if self._thread is not threading.current_thread():
                self._thread.join(timeout)
        else:
            self._stream.close()

    @property
    def running(self) -> bool:
        """Whether the callback thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
