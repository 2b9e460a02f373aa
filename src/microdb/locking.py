"""An exclusive lock shared by processes and threads, held on a small lock file.

POSIX systems use ``fcntl.flock``: the lock belongs to the open file description, so two
handles in one process exclude each other just as two processes do, and closing some other
descriptor of the same file does not drop it (the trap of ``fcntl.lockf``). Windows uses
``msvcrt.locking`` on the file's first byte. The OS drops the lock when its holder dies, so
a crashed process never leaves the database locked. A process made by ``os.fork()``
opens the lock file again for itself (see :mod:`microdb.process`).

Neither call takes a timeout, so waiting is a poll with a short, growing, jittered sleep,
bounded by the timeout; :class:`~microdb.errors.LockTimeout` is raised when it runs out.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from types import TracebackType

from microdb import process
from microdb.durability import WINDOWS
from microdb.errors import LockTimeout, StorageError

__all__ = ["FileLock"]

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


# A busy lock is polled (flock has no timeout of its own). Writers hold it about 0.1 ms
# per commit: short first waits, growing slowly to a few milliseconds, keep a waiter from
# sleeping long past the release while other processes keep taking the lock (with 10 ms
# waits, four processes committing in turn starved each other); a poll costs microseconds.
_FIRST_WAIT = 0.00005
_LONGEST_WAIT = 0.002
_GROW = 1.5


class FileLock:
    """An exclusive, re-entrant lock across threads and processes, kept on ``path``.

    ``acquire()`` waits at most ``timeout`` seconds, then raises ``LockTimeout``. The same
    thread may acquire it again (it is released when every acquire has been released).
    """

    def __init__(self, path: str, *, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        process.after_fork(self)

    def _open(self) -> int:
        flags = os.O_CREAT | getattr(os, "O_BINARY", 0)
        try:
            return os.open(self.path, os.O_RDWR | flags, 0o666)
        except PermissionError:
            # flock needs no write access: a lock file made by another user still works.
            return os.open(self.path, os.O_RDONLY)

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at ``path`` (someone may have removed it)."""
        if WINDOWS:  # pragma: no cover - an open file cannot be removed on Windows
            return True
        # A removed or replaced file has no name left: fstat says so without a path lookup.
        return os.fstat(fd).st_nlink > 0

    def acquire(self, timeout: float | None = None) -> None:
        """Take the lock, waiting at most ``timeout`` (default: the lock's own) seconds."""
        limit = self.timeout if timeout is None else max(timeout, 0.0)
        if not self._thread_lock.acquire(blocking=False) and not self._thread_lock.acquire(timeout=limit):
            raise LockTimeout(f"another thread held the lock on {self.path!r} for more than {limit:g} s")
        if self._depth:
            self._depth += 1
            return
        try:
            self._acquire_file(limit)
        except BaseException:
            self._thread_lock.release()
            raise
        self._depth = 1

    def _acquire_file(self, limit: float) -> None:
        deadline = 0.0
        wait = _FIRST_WAIT
        while True:
            try:
                if self._fd is None:
                    self._fd = self._open()
                if _try_lock(self._fd):
                    if self._is_current(self._fd):
                        return
                    # The lock file was removed (or replaced) while we waited: a lock on
                    # the old one excludes nobody, so start again on the file now there.
                    _unlock(self._fd)
                    os.close(self._fd)
                    self._fd = None
                    continue
            except OSError as exc:
                raise StorageError(f"cannot lock {self.path!r}: {exc.strerror or exc}") from exc
            now = time.monotonic()
            if not deadline:
                deadline = now + limit
            if now >= deadline:
                raise LockTimeout(
                    f"could not lock {self.path!r} within {limit:g} s: another process is writing "
                    "(raise lock_timeout= to wait longer)"
                )
            time.sleep(min(wait * (0.5 + random.random()), deadline - now))
            wait = min(wait * _GROW, _LONGEST_WAIT)

    def release(self) -> None:
        """Give back one acquire; the lock is free again after the last one."""
        if self._depth <= 0:
            raise RuntimeError("release() of a lock that is not held")
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                try:
                    _unlock(self._fd)
                except OSError:
                    # The lock dies with the descriptor: closing it is the sure way out.
                    os.close(self._fd)
                    self._fd = None
        finally:
            self._thread_lock.release()

    @property
    def held(self) -> bool:
        """Whether some thread of this object holds the lock."""
        return self._depth > 0

    def close(self) -> None:
        """Release the lock file's descriptor (the lock must not be held)."""
        with self._thread_lock:
            if self._fd is not None:
                if self._depth:
                    _unlock(self._fd)
                    self._depth = 0
                os.close(self._fd)
                self._fd = None

    def after_fork(self) -> None:
        """In a forked child: forget the parent's descriptor, so this process locks for itself.

        ``flock`` locks belong to the open file description, which a fork shares: through
        the inherited descriptor the child would hold (or take) the very lock its parent
        holds, and the two would not exclude each other. The descriptor is closed, never
        unlocked (that would release the parent's lock); the parent's copy keeps it alive.
        """
        fd, self._fd = self._fd, None
        self._depth = 0
        self._thread_lock = threading.RLock()
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({self.path!r}, held={self.held})"
