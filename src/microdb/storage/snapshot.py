"""The snapshot: the plain JSON file a user opens, read whole and replaced whole.

:class:`SnapshotFile` reads the snapshot, remembers which file it read (so that a file
replaced by another process or by hand is noticed), locates damage in it for error
messages, and turns a snapshot value into the bytes a checkpoint writes.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Any

from microdb.durability import WINDOWS, pread_all
from microdb.errors import CorruptDatabaseError, StorageError
from microdb.serialization import MAX_DEPTH, dumpb, dumps, loads_strict
from microdb.storage.options import FileOptions

__all__ = ["BINARY", "SnapshotFile"]

BINARY = getattr(os, "O_BINARY", 0)


def _byte_offset(data: bytes, exc: ValueError, encoding: str) -> int | None:
    """Where in ``data`` the parse error ``exc`` happened, in bytes (``None``: unknown)."""
    if isinstance(exc, UnicodeDecodeError):
        return exc.start
    pos = getattr(exc, "pos", None)
    if pos is None:
        match = re.search(rb"(?<![\"\w])-?(?:NaN|Infinity)\b", data)
        return match.start() if match else None
    text = data.decode(encoding, errors="replace")
    return len(text[:pos].encode(encoding, errors="replace"))


def deep_offset(data: bytes, limit: int) -> int | None:
    """The byte offset where JSON ``data`` first nests deeper than ``limit``, if it does."""
    depth, in_string, escaped = 0, False, False
    for pos, byte in enumerate(data):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return pos
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return None


class SnapshotFile:
    """The snapshot at ``path``: what we last read or wrote there, and how to write a new one."""

    def __init__(self, path: str, options: FileOptions):
        self.path = path
        self.encoding = options.encoding
        self.dump_options: dict[str, Any] = {
            "indent": options.indent, "sort_keys": options.sort_keys, "ensure_ascii": options.ensure_ascii,
        }
        self.utf8 = self.encoding.replace("-", "").replace("_", "").lower() == "utf8"
        self._compact_utf8 = self.utf8 and options.indent is None and not options.sort_keys and not options.ensure_ascii
        #: The snapshot we read or wrote, kept open to notice changes (never on Windows,
        #: which cannot rename over a file that is open anywhere).
        self.fd: int | None = None
        #: (device, inode, size, mtime) of that file; ``None`` when there is none.
        self.id: tuple[int, int, int, int] | None = None
        self.size = 0
        #: The CRC-32 of the snapshot's bytes, when we read or wrote them.
        self.crc: int | None = None

    def corrupt(self, what: str, offset: int | None = None, path: str | None = None) -> CorruptDatabaseError:
        """The error for damage in ``path`` (default: the snapshot) at byte ``offset``."""
        where = path or self.path
        at = f" at byte {offset}" if offset is not None else ""
        return CorruptDatabaseError(f"{where!r}{at}: {what} (the file was left as it is)", path=where, offset=offset)

    def where(self, what: str, needle: str) -> CorruptDatabaseError:
        """A snapshot error, located by searching for ``needle`` (a JSON key) in the file."""
        offset = None
        try:
            with open(self.path, "rb") as handle:
                found = handle.read().find(needle.encode(self.encoding, errors="replace"))
            offset = found if found >= 0 else None
        except OSError:
            pass
        return self.corrupt(what, offset)

    def read(self) -> tuple[Any, bool]:
        """The parsed snapshot (``None`` when there is none) and whether it holds ``"$`` tags."""
        try:
            fd = os.open(self.path, os.O_RDONLY | BINARY)
        except FileNotFoundError:
            self.adopt(None)
            return None, False
        try:
            st = os.fstat(fd)
            data = pread_all(fd, st.st_size, 0)
        except BaseException:
            os.close(fd)
            raise
        self.adopt(fd)
        self.crc = zlib.crc32(data)
        if not data.strip():
            return None, False  # an empty file, as TinyDB's touch() leaves it: an empty database
        try:
            value = loads_strict(data if self.utf8 else data.decode(self.encoding))
        except RecursionError:
            offset = deep_offset(data, MAX_DEPTH + 1)
            raise self.corrupt(f"the file nests JSON values deeper than documents may be ({MAX_DEPTH} levels)", offset) from None
        except ValueError as exc:
            offset = _byte_offset(data, exc, self.encoding)
            raise self.corrupt(f"the file is not valid JSON ({exc})", offset) from exc
        return value, b'"$' in data

    def adopt(self, fd: int | None, crc: int | None = None) -> None:
        """Remember the snapshot open on ``fd`` (``None``: there is none; ``crc``: of its bytes)."""
        if self.fd is not None and self.fd != fd:
            os.close(self.fd)
        self.fd = None
        self.crc = crc
        if fd is None:
            self.id = None
            self.size = 0
            return
        st = os.fstat(fd)
        self.id = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self.size = st.st_size
        if WINDOWS:
            os.close(fd)
        else:
            self.fd = fd

    def describe(self) -> dict[str, int] | None:
        """What a journal header records of this snapshot: size, CRC-32 and modification time."""
        if self.id is None or self.crc is None:
            return None
        return {"size": self.size, "crc": self.crc, "mtime_ns": self.id[3]}

    def matches(self, described: Any) -> bool:
        """Whether the snapshot we read is the one ``described`` (size and CRC-32)."""
        return (
            isinstance(described, dict)
            and described.get("size") == self.size
            and described.get("crc") == self.crc
        )

    def changed(self) -> bool:
        """Whether the file at the path is no longer the snapshot we read or wrote."""
        if self.id is None:
            return os.path.exists(self.path)  # there was none: one appeared
        if self.fd is not None:
            own = os.fstat(self.fd)
            if own.st_nlink:
                return (own.st_size, own.st_mtime_ns) != self.id[2:]
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StorageError(
                f"{self.path!r} was removed while the database was open; nothing was changed "
                "(reopen the database)"
            ) from None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self.id

    def to_bytes(self, value: Any) -> bytes:
        """The bytes of a snapshot holding ``value``, shaped by the file's options."""
        if self._compact_utf8:
            return dumpb(value)  # already the bytes: no detour through a str of the whole file
        return dumps(value, **self.dump_options).encode(self.encoding)

    def close(self) -> None:
        """Forget the snapshot and close its descriptor."""
        self.adopt(None)
