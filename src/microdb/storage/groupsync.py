"""Group commit: one fsync makes the commits of every waiting writer durable.

A durable commit appends its journal record under the write lock, releases the lock, and
only then waits for the record to reach the disk (:meth:`GroupSync.wait`). While one
writer, the *leader*, runs ``fsync``, others append their records and queue; when the
leader is done, every record that was in the file before its ``fsync`` started is
durable, and the queued writers find theirs covered and return without a second
``fsync``. The next writer whose record came later becomes the next leader.

Threads of one process queue on a mutex. Processes share two numbers kept in the lock
file beside the journal (which holds nothing else): how far the journal has been written,
updated under the write lock with each append, and how far it is known to be durable,
updated by a leader after its ``fsync`` succeeded. Every process maps those bytes of the
lock file into memory (``mmap``, shared): reading and updating them is then a memory
access rather than a system call, and a store into a page already dirty does not touch
the file's inode, where a ``pwrite`` per commit would. (MicroDB only ever grows the lock
file; removing it is safe, but cutting it short by hand under a running process would
end that process with ``SIGBUS``, like any mapped file.) Processes queue on a POSIX record
lock (``lockf``) on a byte of the lock file, which is independent of the ``flock`` write
lock on the same file. The numbers are only ever hints that save an ``fsync``: a writer
that cannot map them, or finds them torn, runs its own ``fsync``, and a writer is never
told its record is durable before an ``fsync`` that started after the record was written
has returned without error.

A writer is acknowledged (its ``insert`` returns) only after that. Other threads and
processes may read a commit a moment before its ``fsync`` returns, as they may with
SQLite's WAL; what they read never goes before what its writer is told.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import threading
from collections.abc import Callable

from microdb.durability import fsync_fd

__all__ = ["GroupSync"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads group, processes fsync alone
    fcntl = None  # type: ignore[assignment]

#: Where the shared numbers live in the lock file, and the byte the leaders' lock covers.
_WRITTEN_AT, _SYNCED_AT, _SYNC_BYTE = 64, 96, 128
_MAPPED = _SYNC_BYTE  # the bytes of the lock file every process maps (both numbers)
_SLOT = struct.Struct("<qqqq")  # journal device, journal inode, offset, check
_CHECK = 0x4D444247  # mixed into the check word, so zeros or garbage never pass


def _pack(journal: tuple[int, int], offset: int) -> bytes:
    return _SLOT.pack(journal[0], journal[1], offset, journal[0] ^ journal[1] ^ offset ^ _CHECK)


def _unpack(shared: mmap.mmap, at: int) -> tuple[tuple[int, int], int] | None:
    dev, ino, offset, check = _SLOT.unpack_from(shared, at)
    if check != dev ^ ino ^ offset ^ _CHECK:
        return None
    return (dev, ino), offset


class GroupSync:
    """Leader/follower ``fsync`` of one journal, shared by threads and processes."""

    def __init__(self, lock_path: str, sync: Callable[[int], None] = fsync_fd):
        self._fsync = sync
        self._mutex = threading.Lock()
        #: the journal this object syncs (its own descriptor, so a checkpoint that closes
        #: the journal's main descriptor cannot pull it from under a leader)
        self._fd: int | None = None
        self._journal: tuple[int, int] | None = None
        #: how far this process knows the journal is durable
        self._synced = 0
        #: the lock file (for ``lockf``) and its first bytes, mapped: the shared numbers
        self._shared: int | None = None
        self._map: mmap.mmap | None = None
        self.failures = 0
        if fcntl is None:
            return  # no lockf to queue processes on: each process syncs alone
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        except OSError:
            return  # no write access to the lock file: every process syncs alone
        try:
            if os.fstat(fd).st_size < _MAPPED:
                # Only ever grows it (two processes doing this at once both set one size),
                # so the numbers another process put there stay.
                os.ftruncate(fd, _MAPPED)
            self._map = mmap.mmap(fd, _MAPPED)
        except (OSError, ValueError):
            os.close(fd)
            return
        self._shared = fd

    # -- under the write lock ---------------------------------------------------------------
    def written(self, fd: int, journal: tuple[int, int], end: int) -> None:
        """Note (under the write lock) that the journal ``journal`` now holds records up to ``end``."""
        if journal != self._journal:
            with self._mutex:
                if self._fd is not None:
                    os.close(self._fd)
                self._fd = os.dup(fd)
                self._journal = journal
                self._synced = 0
            if self._map is not None:
                # A new journal may have the inode number of an old one (a checkpoint
                # replaced it and every descriptor of it is closed): an old "synced" value
                # must not be read as this journal's. The first writer of a journal clears
                # it; a later one clearing it again only costs an fsync.
                self._map[_SYNCED_AT:_SYNCED_AT + _SLOT.size] = _pack(journal, 0)
        if self._map is not None:
            self._map[_WRITTEN_AT:_WRITTEN_AT + _SLOT.size] = _pack(journal, end)

    # -- after the write lock is released ---------------------------------------------------
    def _shared_slot(self, at: int) -> tuple[tuple[int, int], int] | None:
        return None if self._map is None else _unpack(self._map, at)

    def _covered(self, journal: tuple[int, int], end: int) -> bool:
        if self._journal == (-1, -1):
            return False  # the last fsync at close failed
        if journal != self._journal:
            # The journal was replaced since the record was appended: by a checkpoint,
            # whose snapshot (written and synced under the write lock, after this record)
            # holds it.
            return True
        if self._synced >= end:
            return True
        found = self._shared_slot(_SYNCED_AT)
        if found is not None and found[0] == journal and found[1] >= end:
            self._synced = max(self._synced, found[1])
            return True
        return False

    def wait(self, journal: tuple[int, int], end: int) -> None:
        """Return once the journal ``journal`` is durable up to ``end`` (raise ``OSError`` if
        the ``fsync`` this writer ran failed)."""
        if journal == self._journal and self._synced >= end:
            return
        with self._mutex:
            if self._covered(journal, end):
                return
            shared = self._shared
            if shared is not None:
                try:
                    fcntl.lockf(shared, fcntl.LOCK_EX, 1, _SYNC_BYTE)
                except OSError:
                    shared = None
            try:
                if shared is not None and self._covered(journal, end):
                    return
                if self._fd is None:
                    raise OSError(errno.EBADF, "the journal was closed before the commit was synced")
                # Everything written before the fsync starts is covered by it.
                target = end
                found = self._shared_slot(_WRITTEN_AT)
                if found is not None and found[0] == journal:
                    target = max(target, found[1])
                try:
                    self._fsync(self._fd)
                except OSError:
                    self.failures += 1
                    raise
                self._synced = max(self._synced, target)
                if self._map is not None:
                    published = self._shared_slot(_SYNCED_AT)
                    if published is None or published[0] != journal or published[1] < target:
                        self._map[_SYNCED_AT:_SYNCED_AT + _SLOT.size] = _pack(journal, target)
            finally:
                if shared is not None:
                    try:
                        fcntl.lockf(shared, fcntl.LOCK_UN, 1, _SYNC_BYTE)
                    except OSError:
                        pass

    def close(self) -> None:
        """Make what this process wrote durable, and release the descriptors."""
        with self._mutex:
            if self._fd is not None and self._journal is not None:
                try:
                    self._fsync(self._fd)
                except OSError:
                    self.failures += 1
                    self._journal = (-1, -1)  # nothing is covered any more: waiters fail
            if self._map is not None:
                self._map.close()
                self._map = None
            for fd in (self._fd, self._shared):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._fd = self._shared = None
            if self._journal != (-1, -1):
                self._journal = None
