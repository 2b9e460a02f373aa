"""The read and write blocks of the in-memory engine: locks, catching up, one commit.

See :mod:`microdb.engine.memory`; these run on every read and write, so they are plain
classes rather than generator-based context managers. They hold a ``MemoryBackend`` (typed
``Any``: the engine module imports this one, and imports go one way).
"""

from __future__ import annotations

import contextlib
from typing import Any

from microdb.errors import DatabaseClosedError, ReadOnlyError, StorageError

__all__ = ["ReadBlock", "WriteBlock"]


class ReadBlock:
    """The read block of a backend: hold its lock and catch up with other processes.

    A plain class rather than a generator-based context manager: every read passes
    through here, and this halves the cost of a get by id.
    """

    __slots__ = ("_backend",)

    def __init__(self, backend: Any):
        self._backend = backend

    def __enter__(self) -> None:
        backend = self._backend
        backend._lock.acquire()
        try:
            if backend._closed:
                raise DatabaseClosedError("the database is closed")
            if backend._depth == 0 and backend._shared_store:
                backend._sync()
        except BaseException:
            backend._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._backend._lock.release()


class WriteBlock:
    """The write block of a backend: its lock, the store's lock, and one commit at the end.

    Blocks nest (a transaction holds several writes); only the outermost one takes the
    store's lock, catches up with other processes, and commits what the block changed.
    An exception rolls back what its own block changed. A plain class rather than a
    generator-based context manager, like :class:`ReadBlock`: every write passes here.
    Only the thread holding the backend's lock enters or leaves, so one stack serves.
    """

    __slots__ = ("_backend", "_frames")

    def __init__(self, backend: Any):
        self._backend = backend
        #: per open block: the store lock it took (outermost only), undo and ops marks
        self._frames: list[tuple[contextlib.AbstractContextManager[Any] | None, int, int]] = []

    def __enter__(self) -> None:
        backend = self._backend
        backend._lock.acquire()
        try:
            backend._check_open()
            if backend.store.read_only:
                raise ReadOnlyError("the database is open read-only")
            store_lock: contextlib.AbstractContextManager[Any] | None = None
            if backend._depth == 0:
                store_lock = backend.store.lock()
                store_lock.__enter__()
                try:
                    backend._sync()
                except BaseException:
                    store_lock.__exit__(None, None, None)
                    raise
                backend._ops = []
                backend._undo = []
            self._frames.append((store_lock, len(backend._undo), len(backend._ops)))
            backend._depth += 1
        except BaseException:
            backend._lock.release()
            raise

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        backend = self._backend
        store_lock, mark, ops_mark = self._frames.pop()
        pending: tuple[Any, list[tuple[Any, ...]], int] | None = None
        try:
            if kind is not None:
                backend._rollback_to(mark, ops_mark)
            elif store_lock is not None and backend._ops:
                try:
                    ticket = backend.store.commit(backend._ops, backend.state())
                except BaseException:
                    backend._rollback_to(0, 0)
                    raise
                if ticket is not None:
                    backend.commits += 1
                    pending = (ticket, backend._undo, backend.commits)
        finally:
            backend._depth -= 1
            try:
                if store_lock is not None:
                    backend._ops = []
                    backend._undo = []
                    store_lock.__exit__(None, None, None)
            finally:
                backend._lock.release()
        if pending is not None:
            self._settle(*pending)

    def _settle(self, ticket: Any, undo: list[tuple[Any, ...]], number: int) -> None:
        """Wait, without the locks, until the commit is durable (group commit).

        If its ``fsync`` fails and nothing was committed after it, the record is taken
        back and memory rolled back, as when a commit fails under the lock; otherwise
        the error says the commit may not be durable.
        """
        backend = self._backend
        try:
            backend.store.settle(ticket)
        except StorageError as exc:
            with backend._lock, backend.store.lock():
                if backend.commits == number and backend.store.take_back(ticket):
                    backend._undo = undo
                    backend._rollback_to(0, 0)
                    backend._undo = []
                    raise
            raise StorageError(f"{exc} (the commit may not be durable; reopen the database)") from exc
