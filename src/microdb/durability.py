"""The durability rules, in one place: how bytes reach the disk so a crash never tears a file.

1. Serialise completely before touching the disk, so a failure while encoding changes nothing.
2. Replace a whole file by writing a temporary file in the same folder, fsyncing it,
   ``os.replace``-ing it over the target and fsyncing the folder (so the new name itself
   is durable). A crash at any instant leaves either the old file or the new one.
3. Append to a journal with positioned writes of whole records, then fsync it when the
   caller asked for durability. A record cut short by a crash is recognised by its length
   and checksum (see :mod:`microdb.storage.jsonfile`), never mistaken for data.

Platform notes: ``fdatasync`` is used where it exists (Linux), ``fsync`` elsewhere; on macOS
a plain ``fsync`` leaves data in the drive's cache, so checkpoints (rare, and the only step
that can lose a whole database) ask for ``F_FULLFSYNC``, while commits use ``fsync`` as
SQLite does by default. Folders cannot be fsynced on Windows; there ``os.replace`` is
already durable through NTFS's own journal.
"""

from __future__ import annotations

import errno
import os
import secrets
import sys
import time

from microdb.errors import ReadOnlyError, StorageError

__all__ = [
    "WINDOWS",
    "create_temp",
    "fsync_dir",
    "fsync_fd",
    "is_denied",
    "is_full",
    "pread_all",
    "pwrite_all",
    "remove_quietly",
    "replace",
    "storage_error",
]

#: The one test for Windows used by the package (renames, locks and folder fsyncs differ there).
WINDOWS = sys.platform == "win32"
_MACOS = sys.platform == "darwin"
_BINARY = getattr(os, "O_BINARY", 0)
_fdatasync = getattr(os, "fdatasync", os.fsync)
_HAS_PWRITE = hasattr(os, "pwrite")

# Folder fsync is refused by some filesystems (EINVAL) and unsupported by others; the
# rename is then as durable as that filesystem makes it, and there is nothing more to do.
_DIR_FSYNC_IGNORED = {errno.EINVAL, errno.EBADF, errno.EACCES, errno.EPERM, getattr(errno, "ENOTSUP", -1)}


def fsync_fd(fd: int, *, full: bool = False) -> None:
    """Flush an open file's data to stable storage (``full``: past the drive cache on macOS)."""
    if full and _MACOS:
        import fcntl

        full_fsync = getattr(fcntl, "F_FULLFSYNC", None)
        if full_fsync is not None:
            try:
                fcntl.fcntl(fd, full_fsync)
                return
            except OSError:
                pass  # not every filesystem supports it (e.g. network shares): plain fsync
    _fdatasync(fd)


def fsync_dir(folder: str) -> None:
    """Make the names in ``folder`` (a rename, a new file) durable, where the OS allows it."""
    if WINDOWS:
        return
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _DIR_FSYNC_IGNORED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_IGNORED:
            raise
    finally:
        os.close(fd)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (looping over short writes)."""
    if _HAS_PWRITE and os.pwrite(fd, data, offset) == len(data):
        return  # the usual case, in one call
    view = memoryview(data)
    while view:
        if hasattr(os, "pwrite"):
            written = os.pwrite(fd, view, offset)
        else:  # Windows has no pwrite; callers hold a lock, so seek-then-write is safe
            os.lseek(fd, offset, os.SEEK_SET)
            written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "the write made no progress")
        view = view[written:]
        offset += written


def pread_all(fd: int, size: int, offset: int) -> bytes:
    """Read up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
    chunks: list[bytes] = []
    while size > 0:
        if hasattr(os, "pread"):
            chunk = os.pread(fd, size, offset)
        else:
            os.lseek(fd, offset, os.SEEK_SET)
            chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def remove_quietly(path: str) -> None:
    """Remove a file if it is there; errors are ignored (used while cleaning up a failure)."""
    try:
        os.remove(path)
    except OSError:
        pass


def create_temp(target: str, data: bytes, *, full: bool = True) -> tuple[str, int]:
    """Write ``data`` to a new temporary file beside ``target`` and fsync it.

    Returns the temporary path and its open (read-write) descriptor; on failure nothing is
    left behind.
    """
    folder, name = os.path.split(target)
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _BINARY, 0o666)
    try:
        pwrite_all(fd, data, 0)
        fsync_fd(fd, full=full)
    except BaseException:
        os.close(fd)
        remove_quietly(temp)
        raise
    return temp, fd


def replace(source: str, target: str) -> None:
    """``os.replace``, retried briefly on Windows, where a reader holding the file blocks it."""
    attempts = 20 if WINDOWS else 1
    for attempt in range(attempts):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


_FULL_ERRORS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)}
_DENIED_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS}


def is_full(exc: OSError) -> bool:
    """Whether ``exc`` says the disk (or a size limit) is full."""
    return exc.errno in _FULL_ERRORS


def is_denied(exc: OSError) -> bool:
    """Whether ``exc`` says the file or folder may not be written."""
    return exc.errno in _DENIED_ERRORS


def storage_error(exc: OSError, what: str, path: str) -> StorageError:
    """A clear MicroDB error for an OS error (kept as the cause by the caller's ``from``)."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL_ERRORS:
        return StorageError(f"cannot {what} {path!r}: the disk is full ({reason}); nothing was changed")
    if exc.errno in _DENIED_ERRORS:
        return ReadOnlyError(f"cannot {what} {path!r}: permission denied ({reason}); nothing was changed")
    return StorageError(f"cannot {what} {path!r}: {reason}; nothing was changed")
