"""The journal machinery under every JSON file MicroDB writes: snapshot, journal, lock.

A file ``x.json`` (the *snapshot*, replaced whole, never written in place) has beside it
``x.json.journal``, which holds one line per commit, appended and never rewritten::

    <length: 8 hex digits> <CRC-32: 8 hex digits> <payload: one line of JSON>\\n

The CRC covers the length digits and the payload. The first line is a header,
``{"microdb": "journal", "format": 1, "kind": ..., "generation": n, "meta": {...}}``: the
format version, what kind of file this is, and what the snapshot cannot hold (the
:class:`Codec` decides). Every other line is a commit whose payload is a JSON list that
the codec reads, or a checkpoint marker ``{"checkpoint": n}``. After the last record the
file holds zero bytes: space allocated ahead, so durable commits do not grow the file.
``x.json.lock`` is the file the cross-process write lock is held on.

A checkpoint writes the new snapshot and a fresh journal (header only) to temporary files,
fsyncs both, appends the marker to the old journal so that other processes know to
reload, renames the snapshot into place, then the journal, then fsyncs the folder.
Replaying a prefix of the journal twice gives the state of replaying it once, which makes
every crash window of a checkpoint safe. ``docs/storage.md`` has the whole story.

Users of this module: :mod:`microdb.storage.jsonfile` (a database, TinyDB's shape) and
:mod:`microdb.autosave` (one JSON object).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
import zlib
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from microdb.durability import (
    create_temp,
    fsync_dir,
    fsync_fd,
    pread_all,
    pwrite_all,
    remove_quietly,
    replace,
)
from microdb.errors import (
    CorruptDatabaseError,
    FormatVersionError,
    MicroDBError,
    ReadOnlyError,
    StorageError,
)
from microdb.locking import FileLock
from microdb.serialization import dumpb, dumps, encode, loads_strict

__all__ = [
    "DEFAULT_CHECKPOINT_BYTES",
    "FORMAT_VERSION",
    "JOURNAL_SUFFIX",
    "LOCK_SUFFIX",
    "Codec",
    "JournaledFile",
    "encode_value",
    "frame_record",
]

#: The journal may always grow to this size before a checkpoint (as SQLite's WAL does to
#: about 4 MB by default): small databases are not rewritten every few hundred commits.
DEFAULT_CHECKPOINT_BYTES = 4 << 20
#: The journal format this MicroDB writes; files with a higher number are refused.
FORMAT_VERSION = 1
JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"

_PREFIX = 18  # "llllllll cccccccc "
_LINE_HEAD = re.compile(rb"[0-9a-f]{8} [0-9a-f]{8} ")
_MAX_PAYLOAD = 0xFFFFFFFF
_GROW_MIN = 1 << 16  # zero bytes allocated ahead of the journal's records, at least...
_GROW_MAX = 1 << 22  # ...and at most, half the journal's size in between
_BINARY = getattr(os, "O_BINARY", 0)
_pread = getattr(os, "pread", None) or (lambda fd, n, offset: pread_all(fd, n, offset))
# Windows cannot rename over a file that is open anywhere, so there no descriptor is kept
# on the snapshot, and our own journal descriptor is closed around a checkpoint's rename.
_WINDOWS = os.name == "nt"
_FULL_ERRORS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)}
_DENIED_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS}
_RESTAT_EVERY = 1.0  # seconds between safety stats of the journal's path

S = TypeVar("S")


def frame_record(payload: bytes) -> bytes:
    """One journal line: length, CRC-32 of length and payload, the payload, a newline."""
    if len(payload) > _MAX_PAYLOAD:
        raise StorageError(f"a single commit of {len(payload)} bytes is too large for the journal")
    head = b"%08x" % len(payload)
    return b"%s %08x %s\n" % (head, zlib.crc32(payload, zlib.crc32(head)), payload)


def _payload_of(data: bytes, start: int, end: int) -> bytes | None:
    """The payload of the line ``data[start:end]`` (``end`` at its newline), or None if bad."""
    if end - start < _PREFIX or _LINE_HEAD.match(data, start) is None:
        return None
    head = data[start:start + 8]
    if start + _PREFIX + int(head, 16) != end:
        return None
    payload = data[start + _PREFIX:end]
    if zlib.crc32(payload, zlib.crc32(head)) != int(data[start + 9:start + 17], 16):
        return None
    return payload


def _good_line_after(data: bytes, pos: int) -> bool:
    """Whether a good record starts anywhere at or after ``pos``."""
    for match in _LINE_HEAD.finditer(data, pos):
        start = match.start()
        end = data.find(b"\n", start)
        if end < 0:
            return False
        if _payload_of(data, start, end) is not None:
            return True
    return False


def _scan(data: bytes, base: int, path: str) -> tuple[list[tuple[int, bytes]], int]:
    """The good records in ``data`` (read at file offset ``base``) and where they end.

    Payloads hold no raw newline (JSON escapes it), so every record is one line; after the
    last one the file holds zero bytes (space allocated ahead). A bad or unfinished line
    with nothing good after it is a torn tail (a write cut short, or still in progress in
    another process): scanning stops before it. A bad line followed by a good record is
    damage, never skipped: ``CorruptDatabaseError`` names its offset.
    """
    records: list[tuple[int, bytes]] = []
    pos, used = 0, len(data.rstrip(b"\0"))
    while pos < used:
        end = data.find(b"\n", pos)
        payload = None if end < 0 else _payload_of(data, pos, end)
        if payload is None:
            if _good_line_after(data, pos + 1):
                raise CorruptDatabaseError(
                    f"the journal {path!r} is damaged at byte {base + pos}: a record fails its "
                    "length or checksum test and later records follow it (the files were left as they are)",
                    path=path, offset=base + pos,
                )
            break
        records.append((base + pos, payload))
        pos = end + 1
    return records, base + pos


def _storage_error(exc: OSError, what: str, path: str) -> StorageError:
    """A clear MicroDB error for an OS error (kept as the cause by the caller's ``from``)."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL_ERRORS:
        return StorageError(f"cannot {what} {path!r}: the disk is full ({reason}); nothing was changed")
    if exc.errno in _DENIED_ERRORS:
        return ReadOnlyError(f"cannot {what} {path!r}: permission denied ({reason}); nothing was changed")
    return StorageError(f"cannot {what} {path!r}: {reason}; nothing was changed")


def _byte_offset(data: bytes, exc: ValueError, encoding: str) -> int | None:
    if isinstance(exc, UnicodeDecodeError):
        return exc.start
    pos = getattr(exc, "pos", None)
    if pos is None:
        match = re.search(rb"(?<![\"\w])-?(?:NaN|Infinity)\b", data)
        return match.start() if match else None
    text = data.decode(encoding, errors="replace")
    return len(text[:pos].encode(encoding, errors="replace"))


_PLAIN = frozenset((str, int, float, bool, type(None)))


def _is_plain(value: Any) -> bool:
    """Whether a checked value is its own JSON form (no rich value, no ``$`` key to escape)."""
    t = type(value)
    if t is dict:
        if len(value) == 1 and next(iter(value)).startswith("$"):
            return False
        for item in value.values():
            if type(item) not in _PLAIN and not _is_plain(item):
                return False
        return True
    if t is list:
        for item in value:
            if type(item) not in _PLAIN and not _is_plain(item):
                return False
        return True
    return t in _PLAIN


def encode_value(value: Any) -> Any:
    """The JSON form of a checked value: the value itself when it is plain JSON (no copy)."""
    # Checking is about twice as fast as encoding, which copies every container; most
    # documents are plain, and checkpoints encode every document of the database.
    return value if _is_plain(value) else encode(value)


def _is_marker(value: Any) -> bool:
    """Whether a parsed record is a checkpoint marker (commits are lists, markers objects)."""
    return type(value) is dict and "checkpoint" in value


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


class Codec(Protocol[S]):
    """How one kind of file turns its snapshot and records into a state (and back)."""

    kind: str

    def state(self, snapshot: Any, meta: Any, tagged: bool, where: Callable[[str, str], CorruptDatabaseError]) -> S:
        """The state held by a parsed snapshot (``None``: no file) and the header's meta."""

    def replay(self, state: S, payload: Any, offset: int, path: str) -> None:
        """Apply one parsed journal record (found at ``offset`` in ``path``) to ``state``."""

    def snapshot(self, state: S) -> Any:
        """The JSON value of the snapshot for ``state``."""

    def meta(self, state: S) -> Any:
        """What the journal header keeps beside the snapshot."""


class JournaledFile(Generic[S]):
    """A JSON snapshot, a journal of commits beside it and a lock: the machinery of a file.

    It serves :class:`JSONFileStore` (a database) and :class:`~microdb.AutoSavingDict` (one
    JSON object); a :class:`Codec` says what their snapshots and records mean. It is not
    thread-safe by itself: its owners serialise calls.
    """

    #: Called with the name of each checkpoint step (tests inject crashes and faults here).
    fault_hook: ClassVar[Callable[[str], None] | None] = None

    def __init__(
        self,
        path: str | os.PathLike[str],
        codec: Codec[S],
        *,
        durable: bool = True,
        read_only: bool = False,
        lock_timeout: float = 10.0,
        indent: int | None = None,
        sort_keys: bool = False,
        ensure_ascii: bool = False,
        encoding: str = "utf-8",
        create_dirs: bool = True,
        checkpoint_ratio: float = 1.0,
        checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES,
    ):
        if not isinstance(lock_timeout, (int, float)) or lock_timeout < 0:
            raise ValueError(f"lock_timeout must be a number of seconds >= 0, got {lock_timeout!r}")
        if not isinstance(checkpoint_ratio, (int, float)) or checkpoint_ratio <= 0:
            raise ValueError(f"checkpoint_ratio must be > 0, got {checkpoint_ratio!r}")
        if not isinstance(checkpoint_bytes, int) or checkpoint_bytes < 0:
            raise ValueError(f"checkpoint_bytes must be an int >= 0, got {checkpoint_bytes!r}")
        "".encode(encoding)  # an unknown encoding fails here, with Python's own LookupError
        self.path = os.path.abspath(os.fspath(path))
        self.journal_path = self.path + JOURNAL_SUFFIX
        self.lock_path = self.path + LOCK_SUFFIX
        self.folder = os.path.dirname(self.path)
        self.codec = codec
        self.durable = bool(durable)
        self.encoding = encoding
        self.create_dirs = create_dirs
        self.dump_options: dict[str, Any] = {"indent": indent, "sort_keys": sort_keys, "ensure_ascii": ensure_ascii}
        self._utf8 = encoding.replace("-", "").replace("_", "").lower() == "utf8"
        self._compact_utf8 = self._utf8 and indent is None and not sort_keys and not ensure_ascii
        self.checkpoint_ratio = float(checkpoint_ratio)
        self.checkpoint_bytes = checkpoint_bytes
        self.lock_timeout = float(lock_timeout)
        self.read_only = bool(read_only) or not self._writable()
        self.generation = 0
        self._lock: FileLock | None = None
        self._fd: int | None = None  # the journal, while it exists
        self._journal_id: tuple[int, int] | None = None
        self._header_end = 0  # where the journal's first commit starts
        self._offset = 0  # just after the last good record we have read or written
        self._seen_size = 0  # the journal's size (allocated space included) at our last look
        self._tail_end = 0  # the end of a torn record after _offset (== _offset when none)
        self._snapshot_id: tuple[int, int, int, int] | None = None
        self._snap_fd: int | None = None  # the snapshot we read or wrote, kept to notice changes
        self._snapshot_size = 0
        self._stale = False  # the journal on disk belongs to no snapshot (the snapshot was removed)
        self._next_checkpoint = 0
        self._marker_pending = False  # the journal ends with another process's checkpoint marker
        self._checked_at = 0.0  # when we last stat-ed the journal's path
        self._closed = False

    # -- helpers ----------------------------------------------------------------------------
    def _writable(self) -> bool:
        if os.path.exists(self.path):
            if not os.access(self.path, os.W_OK) or not os.access(self.folder, os.W_OK):
                return False
            return not os.path.exists(self.journal_path) or os.access(self.journal_path, os.W_OK)
        folder = self.folder
        while not os.path.isdir(folder):
            if not self.create_dirs:
                return True  # the error comes when the file is created, naming the folder
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        return os.access(folder, os.W_OK)

    def _corrupt(self, what: str, offset: int | None = None, path: str | None = None) -> CorruptDatabaseError:
        where = path or self.path
        at = f" at byte {offset}" if offset is not None else ""
        return CorruptDatabaseError(
            f"{where!r}{at}: {what} (the file was left as it is)", path=where, offset=offset
        )

    def _where(self, what: str, needle: str) -> CorruptDatabaseError:
        """A snapshot error, located by searching for ``needle`` (a JSON key) in the file."""
        offset = None
        try:
            with open(self.path, "rb") as handle:
                found = handle.read().find(needle.encode(self.encoding, errors="replace"))
            offset = found if found >= 0 else None
        except OSError:
            pass
        return self._corrupt(what, offset)

    def _step(self, name: str) -> None:
        hook = type(self).fault_hook
        if hook is not None:
            hook(name)

    def _threshold(self) -> int:
        return max(self.checkpoint_bytes, int(self.checkpoint_ratio * self._snapshot_size))

    # -- reading ------------------------------------------------------------------------------
    def _open_journal(self) -> int | None:
        flags = (os.O_RDONLY if self.read_only else os.O_RDWR) | _BINARY
        try:
            return os.open(self.journal_path, flags)
        except FileNotFoundError:
            return None
        except PermissionError:
            if self.read_only:
                raise
            self.read_only = True
            return os.open(self.journal_path, os.O_RDONLY | _BINARY)

    def _read_header(self, fd: int) -> tuple[dict[str, Any] | None, int]:
        """The journal's header and where it ends (``None, 0`` for an empty journal)."""
        data = pread_all(fd, 1 << 16, 0)
        if not data:
            return None, 0
        end = data.find(b"\n")
        while end < 0:
            more = pread_all(fd, 1 << 20, len(data))
            if not more:
                raise self._corrupt("the journal's header is unfinished", 0, self.journal_path)
            data += more
            end = data.find(b"\n")
        payload = _payload_of(data, 0, end)
        if payload is None:
            raise self._corrupt("the journal's header fails its length or checksum test", 0, self.journal_path)
        try:
            header = loads_strict(payload)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("microdb") != "journal":
            raise self._corrupt("this is not a MicroDB journal", 0, self.journal_path)
        version = header.get("format")
        if not isinstance(version, int):
            raise self._corrupt("the journal's header has no format version", 0, self.journal_path)
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{self.path!r} was written by a newer MicroDB (file format {version}; this version "
                f"reads formats up to {FORMAT_VERSION}): upgrade MicroDB to open it"
            )
        if header.get("kind", self.codec.kind) != self.codec.kind:
            raise self._corrupt(
                f"the journal belongs to a {header.get('kind')!r} file, not a {self.codec.kind!r} one",
                0, self.journal_path,
            )
        return header, end + 1

    def _read_snapshot(self) -> tuple[Any, bool]:
        """The parsed snapshot (``None`` when there is none) and whether it holds ``"$`` tags."""
        try:
            fd = os.open(self.path, os.O_RDONLY | _BINARY)
        except FileNotFoundError:
            self._set_snapshot(None)
            return None, False
        try:
            st = os.fstat(fd)
            data = pread_all(fd, st.st_size, 0)
        except BaseException:
            os.close(fd)
            raise
        self._set_snapshot(fd)
        if not data.strip():
            return None, False  # an empty file, as TinyDB's touch() leaves it: an empty database
        try:
            value = loads_strict(data if self._utf8 else data.decode(self.encoding))
        except ValueError as exc:
            offset = _byte_offset(data, exc, self.encoding)
            raise self._corrupt(f"the file is not valid JSON ({exc})", offset) from exc
        return value, b'"$' in data

    def _set_snapshot(self, fd: int | None) -> None:
        """Remember the snapshot open on ``fd`` (``None``: there is none), closing the last one."""
        if self._snap_fd is not None and self._snap_fd != fd:
            os.close(self._snap_fd)
        self._snap_fd = None
        if fd is None:
            self._snapshot_id = None
            self._snapshot_size = 0
            return
        st = os.fstat(fd)
        self._snapshot_id = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._snapshot_size = st.st_size
        if _WINDOWS:
            os.close(fd)
        else:
            self._snap_fd = fd

    def _load(self) -> S:
        """Snapshot plus journal, consistent even while another process checkpoints.

        The journal is opened first and read after the snapshot: whatever snapshot we read
        then includes only records we also read, and replaying those again changes nothing.
        If the journal was replaced meanwhile (a checkpoint finished), we read again.
        """
        for _ in range(50):
            fd = self._open_journal()
            try:
                header: dict[str, Any] | None = None
                header_end = 0
                if fd is not None:
                    header, header_end = self._read_header(fd)
                snapshot, tagged = self._read_snapshot()
                meta = header.get("meta") if header is not None else None
                state = self.codec.state(snapshot, meta, tagged, self._where)
                size = 0
                records: list[tuple[int, bytes]] = []
                end = tail_end = header_end
                if fd is not None and header is not None:
                    size = os.fstat(fd).st_size
                    data = pread_all(fd, size - header_end, header_end)
                    records, end = _scan(data, header_end, self.journal_path)
                    size = header_end + len(data)
                    tail_end = header_end + len(data.rstrip(b"\0"))
                try:
                    st: os.stat_result | None = os.stat(self.journal_path)
                except FileNotFoundError:
                    st = None
                own = os.fstat(fd) if fd is not None else None
                if (st is None) != (own is None) or (
                    st is not None and own is not None and _identity(st) != _identity(own)
                ):
                    if fd is not None:
                        os.close(fd)
                    continue  # a checkpoint replaced the journal while we read: again
                stale = snapshot is None and fd is not None and self._snapshot_id is None
                marker_last = False
                if not stale:
                    for offset, payload in records:
                        try:
                            value = loads_strict(payload)
                        except ValueError as exc:
                            raise self._corrupt("a journal record is not JSON", offset, self.journal_path) from exc
                        marker_last = _is_marker(value)
                        if not marker_last:
                            self.codec.replay(state, value, offset, self.journal_path)
            except BaseException:
                if fd is not None:
                    os.close(fd)
                raise
            self._adopt(fd, header, header_end, end, size, tail_end)
            self._stale = stale
            # A checkpoint that has announced itself but not yet replaced this journal (or
            # died before it could): watch the path until it does, or a commit follows.
            self._marker_pending = marker_last
            return state
        raise StorageError(f"{self.path!r} kept changing while it was being read; try again")

    def _adopt(
        self, fd: int | None, header: dict[str, Any] | None, header_end: int, end: int, size: int, tail_end: int
    ) -> None:
        """Make ``fd`` our journal (closing the previous one)."""
        if self._fd is not None and self._fd != fd:
            os.close(self._fd)
        self._fd = fd
        self._journal_id = _identity(os.fstat(fd)) if fd is not None else None
        self._header_end = header_end
        self._offset = end
        self._seen_size = size
        self._tail_end = max(tail_end, end)
        self._marker_pending = False
        self._checked_at = time.monotonic()
        generation = header.get("generation", 0) if header is not None else 0
        self.generation = generation if isinstance(generation, int) else 0
        self._next_checkpoint = header_end + self._threshold()

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> S:
        """Load the file (and, when writable, make it ready: journal, upgrade, cleanup)."""
        try:
            state = self._load()
        except MicroDBError:
            raise
        except OSError as exc:  # e.g. a folder where the file should be, or no permission to read
            self._close_fds()
            raise _storage_error(exc, "read", self.path) from exc
        if self.read_only:
            return state
        try:
            if not os.path.isdir(self.folder):
                if not self.create_dirs:
                    raise StorageError(f"cannot create {self.path!r}: the folder {self.folder!r} does not exist")
                os.makedirs(self.folder, exist_ok=True)
            self._lock = FileLock(self.lock_path, timeout=self.lock_timeout)
            with self.lock():
                # Catch up under the lock: another writer may have committed since we read,
                # and what looked like a torn tail then may be its finished record now.
                found = self.poll()
                if isinstance(found, list):
                    for offset, payload in found:
                        self.codec.replay(state, payload, offset, self.journal_path)
                elif found is not None:
                    state = found
                self._prepare(state)
        except MicroDBError:
            self._close_fds()
            raise
        except OSError as exc:
            if exc.errno in _DENIED_ERRORS:
                # A file or folder we may read but not write: serve reads, refuse writes.
                self.read_only = True
                self._drop_lock()
                return state
            self._close_fds()
            raise _storage_error(exc, "open", self.path) from exc
        except BaseException:
            self._close_fds()
            raise
        return state

    def _drop_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _prepare(self, state: S) -> None:
        """Under the lock at open: create, upgrade or tidy the files for writing."""
        self._remove_temps()
        if self._stale:
            # The snapshot was removed by hand: its journal describes nothing any more.
            # Remove it before writing the new snapshot, so no crash pairs the two.
            self._close_journal()
            os.remove(self.journal_path)
            self._stale = False
        if self._fd is None or self._header_end == 0:
            # No journal (a new database, or a TinyDB file): write the snapshot if it is
            # missing, then a journal holding the header. That is the format upgrade too.
            self._checkpoint(state, keep_snapshot=self._snapshot_id is not None)
            return
        assert self._fd is not None
        header, _ = self._read_header(self._fd)
        if header is not None and header["format"] < FORMAT_VERSION:
            self._checkpoint(state)
            return
        if self._tail_end > self._offset:
            self._clear_tail()

    def _remove_temps(self) -> None:
        # Leftovers of a checkpoint that crashed; under the lock, nobody else is writing one.
        for name in (os.path.basename(self.path), os.path.basename(self.journal_path)):
            prefix = f".{name}."
            try:
                entries = os.listdir(self.folder)
            except OSError:
                return
            for entry in entries:
                if entry.startswith(prefix) and entry.endswith(".tmp") and len(entry) == len(prefix) + 16:
                    remove_quietly(os.path.join(self.folder, entry))

    def _clear_tail(self) -> None:
        """Zero a torn record left by a crashed writer (under the lock: nobody is writing)."""
        assert self._fd is not None
        pwrite_all(self._fd, bytes(self._tail_end - self._offset), self._offset)
        if self.durable:
            fsync_fd(self._fd)
        self._tail_end = self._offset

    # -- keeping up with other processes -----------------------------------------------------
    def lock(self) -> contextlib.AbstractContextManager[Any]:
        """The cross-process write lock, as a context manager (a no-op when read-only)."""
        return self._lock if self._lock is not None else contextlib.nullcontext()

    @property
    def locked(self) -> bool:
        """Whether this object holds the write lock."""
        return self._lock is not None and self._lock.held

    def poll(self) -> None | list[tuple[int, Any]] | S:
        """What other processes committed since we last looked: one small read when nothing did.

        Returns ``None``, their new records (offset, parsed payload) in order, or a whole new
        state after another process's checkpoint.

        The check reads the byte at our end of the journal (zero: nothing new). It does not
        stat the journal: on current Linux, asking for an inode's times makes the next write
        record fine-grained ones, and every durable commit then pays for an inode update
        (about half the cost of its fsync). A checkpoint elsewhere instead announces itself
        with a marker record in the old journal before replacing it; a ``stat`` once a
        second (and while a marker is pending) catches anything else that replaced the file.
        """
        if self._closed:
            return None
        lock = self._lock
        locked = lock is not None and lock.held
        try:
            if self._fd is None:
                if not os.access(self.journal_path, os.F_OK):
                    return None
                return self._load()  # a journal appeared: a writer upgraded the file
            if locked and not os.access(self.journal_path, os.F_OK):
                raise StorageError(
                    f"the journal {self.journal_path!r} was removed while the database was open; "
                    "nothing was changed (reopen the database)"
                )
            now = time.monotonic()
            if self._marker_pending or now - self._checked_at > _RESTAT_EVERY:
                self._checked_at = now
                try:
                    st = os.stat(self.journal_path)
                except FileNotFoundError:
                    return None  # removed: keep serving what we have; a write will say so
                if _identity(st) != self._journal_id or st.st_size < self._offset:
                    return self._load()
            if locked and self._snapshot_changed():
                return self._load()
            if self._stale:
                return None
            first = _pread(self._fd, 1, self._offset)
            if not first or first == b"\0":
                if not first:
                    self._seen_size = max(self._seen_size, self._offset)
                self._tail_end = self._offset
                return None
            records, end, self._tail_end = self._read_from(self._offset)
        except MicroDBError:
            raise
        except OSError as exc:
            raise _storage_error(exc, "read", self.journal_path) from exc
        if not records:
            return None
        out = []
        for offset, payload in records:
            try:
                value = loads_strict(payload)
            except ValueError as exc:
                raise self._corrupt("a journal record is not JSON", offset, self.journal_path) from exc
            if _is_marker(value):
                return self._load()  # another process checkpointed: read its snapshot
            out.append((offset, value))
        self._offset = end
        self._marker_pending = False
        return out

    def _read_from(self, start: int) -> tuple[list[tuple[int, bytes]], int, int]:
        """Records from ``start`` up to the first zero byte: records, their end, the data's end."""
        assert self._fd is not None
        chunk = 1 << 12
        while True:
            data = pread_all(self._fd, chunk, start)
            zero = data.find(b"\0")
            if zero >= 0 or len(data) < chunk:
                break
            chunk *= 8  # a long run of new records: read further
        if len(data) < chunk:
            self._seen_size = max(self._seen_size, start + len(data))
        body = data if zero < 0 else data[:zero]
        records, end = _scan(body, start, self.journal_path)
        return records, end, start + len(body)

    def _snapshot_changed(self) -> bool:
        if self._snapshot_id is None:
            return os.path.exists(self.path)  # there was none: one appeared
        if self._snap_fd is not None:
            own = os.fstat(self._snap_fd)
            if own.st_nlink:
                return (own.st_size, own.st_mtime_ns) != self._snapshot_id[2:]
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StorageError(
                f"{self.path!r} was removed while the database was open; nothing was changed "
                "(reopen the database)"
            ) from None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._snapshot_id

    # -- writing --------------------------------------------------------------------------------
    def append(self, payload: Any, state: S) -> None:
        """Commit one record (under the lock); ``state`` is memory after it, for a checkpoint."""
        if self.read_only:
            raise ReadOnlyError(f"{self.path!r} is open read-only")
        if self._fd is None or self._closed:
            raise StorageError(f"{self.path!r} is not open for writing")
        record = frame_record(dumpb(payload))
        fd, offset = self._fd, self._offset
        end = offset + len(record)
        # Zero what is left of a torn record after ours, and allocate space ahead when
        # the file is full: a durable commit then overwrites blocks the file already has,
        # so fdatasync need not also record a new file size (as SQLite's WAL reuse does).
        needed = max(self._tail_end - end, 0)
        pad = needed
        if end + pad > self._seen_size:
            pad = max(pad, min(max(_GROW_MIN, offset // 2), _GROW_MAX))
        try:
            try:
                pwrite_all(fd, record + bytes(pad) if pad else record, offset)
            except OSError as exc:
                if exc.errno not in _FULL_ERRORS or pad == needed:
                    raise
                # No room to allocate ahead; the record alone may still fit.
                pad = needed
                pwrite_all(fd, record + bytes(pad) if pad else record, offset)
            if self.durable:
                fsync_fd(fd)
        except OSError as exc:
            try:
                pwrite_all(fd, bytes(len(record)), offset)  # take back what reached the file
            except OSError:
                self._tail_end = max(self._tail_end, end)
            raise _storage_error(exc, "write to", self.journal_path) from exc
        self._offset = self._tail_end = end
        self._seen_size = max(self._seen_size, end + pad)
        self._marker_pending = False
        if self._offset >= self._next_checkpoint:
            try:
                self._checkpoint(state)
            except (OSError, MicroDBError):
                # The commit itself is durable; a failed checkpoint only means a longer
                # journal. Try again once it has grown by another threshold.
                self._next_checkpoint = self._offset + self._threshold()

    def checkpoint(self, state: S) -> None:
        """Write a new snapshot and a fresh journal now (under the lock)."""
        if self.read_only:
            raise ReadOnlyError(f"{self.path!r} is open read-only")
        if self._closed:
            raise StorageError(f"{self.path!r} is closed")
        try:
            self._checkpoint(state)
        except MicroDBError:
            raise
        except OSError as exc:
            raise _storage_error(exc, "write a checkpoint of", self.path) from exc

    def _snapshot_bytes(self, state: S) -> bytes:
        value = self.codec.snapshot(state)
        if self._compact_utf8:
            return dumpb(value)  # already the bytes: no detour through a str of the whole file
        return dumps(value, **self.dump_options).encode(self.encoding)

    def _checkpoint(self, state: S, *, keep_snapshot: bool = False) -> None:
        """Snapshot and fresh journal, so that a crash at any instant leaves old or new state.

        Order: both temporary files written and fsynced; snapshot renamed into place; journal
        renamed into place; folder fsynced. A crash between the renames pairs the new
        snapshot with the old journal, whose records the new snapshot already holds:
        replaying them again changes nothing.
        """
        header = {
            "microdb": "journal",
            "format": FORMAT_VERSION,
            "kind": self.codec.kind,
            "generation": self.generation + 1,
            "meta": self.codec.meta(state),
        }
        head = frame_record(dumpb(header))
        temps: list[str] = []
        snapshot_fd: int | None = None
        journal_fd: int | None = None
        try:
            self._step("begin")
            if not keep_snapshot:
                snapshot_temp, snapshot_fd = create_temp(self.path, self._snapshot_bytes(state), full=True)
                temps.append(snapshot_temp)
                with contextlib.suppress(OSError):
                    if self._snapshot_id is not None:
                        os.chmod(snapshot_temp, os.stat(self.path).st_mode & 0o7777)
                self._step("snapshot-written")
            journal_temp, journal_fd = create_temp(self.journal_path, head, full=True)
            temps.append(journal_temp)
            self._step("journal-written")
            self._announce(header["generation"])
            if not keep_snapshot:
                if _WINDOWS and snapshot_fd is not None:
                    os.close(snapshot_fd)
                    snapshot_fd = None
                replace(snapshot_temp, self.path)
                temps.remove(snapshot_temp)
                self._set_snapshot(snapshot_fd if snapshot_fd is not None else os.open(self.path, os.O_RDONLY | _BINARY))
                snapshot_fd = None
                self._step("snapshot-replaced")
            if _WINDOWS:
                os.close(journal_fd)
                journal_fd = None
                self._replace_journal_windows(journal_temp)
            else:
                replace(journal_temp, self.journal_path)
            temps.remove(journal_temp)
            # From here the journal at the path is the new one: adopt it before anything
            # else can fail, or later commits would go to the old, unlinked file.
            fd = journal_fd if journal_fd is not None else os.open(self.journal_path, os.O_RDWR | _BINARY)
            journal_fd = None
            self._adopt(fd, header, len(head), len(head), len(head), len(head))
            self._step("journal-replaced")
            fsync_dir(self.folder)
            self._step("done")
        finally:
            for leftover in (snapshot_fd, journal_fd):
                if leftover is not None:
                    os.close(leftover)
            for temp in temps:
                remove_quietly(temp)

    def _announce(self, generation: int) -> None:
        """Append the marker telling other processes that this journal is being replaced."""
        if self._fd is None or not self._header_end:
            return
        marker = frame_record(dumpb({"checkpoint": generation}))
        end = self._offset + len(marker)
        pwrite_all(self._fd, marker + bytes(max(self._tail_end - end, 0)), self._offset)
        self._offset = self._tail_end = end
        self._seen_size = max(self._seen_size, end)

    def _replace_journal_windows(self, temp: str) -> None:
        """Rename over the journal with our own handle closed (Windows needs that)."""
        if self._fd is None:
            replace(temp, self.journal_path)
            return
        kept = (self._header_end, self._offset, self._seen_size, self._tail_end, self._next_checkpoint)
        os.close(self._fd)
        self._fd = None
        try:
            replace(temp, self.journal_path)
        except BaseException:
            # Still the old journal: take it up again where we were.
            self._fd = os.open(self.journal_path, os.O_RDWR | _BINARY)
            self._header_end, self._offset, self._seen_size, self._tail_end, self._next_checkpoint = kept
            raise

    # -- closing --------------------------------------------------------------------------------
    def _close_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._journal_id = None
        self._header_end = self._offset = self._seen_size = self._tail_end = 0

    def _close_fds(self) -> None:
        self._close_journal()
        self._set_snapshot(None)
        self._drop_lock()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pending_bytes(self) -> int:
        """How many bytes of commits the journal holds beyond the snapshot."""
        return max(self._offset - self._header_end, 0)

    def close(self, state: S | None) -> None:
        """Checkpoint (when this process is up to date and there is anything to fold in) and release."""
        if self._closed:
            return
        try:
            if state is not None and not self.read_only and self._fd is not None and self.pending_bytes:
                with contextlib.suppress(OSError, MicroDBError), self.lock():
                    # Only fold in what we know: if others committed since our last look,
                    # the journal keeps everything and the next checkpoint takes it.
                    if self.poll() is None and self.pending_bytes:
                        self._checkpoint(state)
        finally:
            self._closed = True
            self._close_fds()

    def __repr__(self) -> str:
        return f"JournaledFile({self.path!r}, kind={self.codec.kind!r})"
