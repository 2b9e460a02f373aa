"""The journaled file under every JSON file MicroDB writes: snapshot, journal, lock.

A file ``x.json`` (the *snapshot*, replaced whole, never written in place) has beside it
``x.json.journal``, which holds one self-checking line per commit (see
:mod:`microdb.storage.records`), appended and never rewritten, and ``x.json.lock``, the
file the cross-process write lock is held on. :class:`JournaledFile` opens the pair,
replays the journal, commits records, catches up with other processes' commits, and
checkpoints (:mod:`microdb.storage.checkpoint`) when the journal grows. ``docs/storage.md``
has the whole story.

Users of this module: :mod:`microdb.storage.jsonfile` (a database, TinyDB's shape) and
:mod:`microdb.autosave` (one JSON object).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, NamedTuple, TypeVar

from microdb.durability import fsync_fd, is_denied, is_full, pread_all, pwrite_all, storage_error
from microdb.errors import MicroDBError, ReadOnlyError, StorageError
from microdb.locking import FileLock
from microdb.serialization import dumpb, loads_strict
from microdb.storage.checkpoint import JOURNAL_SUFFIX, LOCK_SUFFIX, CheckpointedFile, Codec, identity
from microdb.storage.groupsync import GroupSync
from microdb.storage.options import DEFAULT_CHECKPOINT_BYTES, FileOptions
from microdb.storage.records import (
    FORMAT_VERSION,
    any_unsynced,
    encode_value,
    frame_record,
    is_marker,
    read_header,
    scan,
)
from microdb.storage.snapshot import BINARY

__all__ = [
    "DEFAULT_CHECKPOINT_BYTES",
    "FORMAT_VERSION",
    "JOURNAL_SUFFIX",
    "LOCK_SUFFIX",
    "Codec",
    "FileOptions",
    "JournaledFile",
    "Ticket",
    "encode_value",
    "frame_record",
]

_GROW_MIN = 1 << 16  # zero bytes allocated ahead of the journal's records, at least...
_GROW_MAX = 1 << 22  # ...and at most, half the journal's size in between
_pread = getattr(os, "pread", None) or (lambda fd, n, offset: pread_all(fd, n, offset))
_RESTAT_EVERY = 1.0  # seconds between safety stats of the journal's path

S = TypeVar("S")


class Ticket(NamedTuple):
    """A deferred durable commit: which journal, and where its record lies in it."""

    journal: tuple[int, int]
    start: int
    end: int


class JournaledFile(CheckpointedFile[S]):
    """A JSON snapshot, a journal of commits beside it and a lock: the machinery of a file.

    It serves :class:`~microdb.storage.jsonfile.JSONFileStorage` (a database) and
    :class:`~microdb.AutoSavingDict` (one JSON object); a :class:`Codec` says what their
    snapshots and records mean. It is not thread-safe by itself: its owners serialise calls.
    """

    def __init__(self, path: str | os.PathLike[str], codec: Codec[S], options: FileOptions | None = None):
        super().__init__(path, codec, options if options is not None else FileOptions())
        self._stale = False  # the journal on disk belongs to no snapshot (the snapshot was removed)
        #: durable commits that ask to wait after the write lock (see ``append(defer=True)``)
        self._group: GroupSync | None = None
        self._unsynced = False  # the journal holds records not yet synced
        self._edited = False  # the snapshot was edited by hand; the journal's header describes the old one

    # -- reading ------------------------------------------------------------------------------
    def _open_journal(self) -> int | None:
        flags = (os.O_RDONLY if self.read_only else os.O_RDWR) | BINARY
        try:
            return os.open(self.journal_path, flags)
        except FileNotFoundError:
            return None
        except PermissionError:
            if self.read_only:
                raise
            self.read_only = True
            return os.open(self.journal_path, os.O_RDONLY | BINARY)

    def _read_header(self, fd: int) -> tuple[dict[str, Any] | None, int]:
        """The journal's header and where it ends (``None, 0`` for an empty journal)."""
        return read_header(fd, self.journal_path, self.codec.kind, self.path)

    def _load(self) -> S:
        """Snapshot plus journal, consistent even while another process checkpoints.

        The journal is opened first and read after the snapshot: whatever snapshot we read
        then includes only records we also read, and replaying those again changes nothing.
        If the journal was replaced meanwhile (a checkpoint finished), we read again.
        """
        started = time.monotonic()
        for _ in range(50):
            fd = self._open_journal()
            try:
                header: dict[str, Any] | None = None
                header_end = 0
                if fd is not None:
                    header, header_end = self._read_header(fd)
                snapshot, tagged = self.snapshot.read()
                meta = header.get("meta") if header is not None else None
                state = self.codec.state(snapshot, meta, tagged, self.snapshot.where)
                size = 0
                records: list[tuple[int, bytes]] = []
                end = tail_end = header_end
                unsynced = False
                if fd is not None and header is not None:
                    size = os.fstat(fd).st_size
                    data = pread_all(fd, size - header_end, header_end)
                    records, end = scan(data, header_end, self.journal_path)
                    unsynced = any_unsynced(data, header_end, records)
                    size = header_end + len(data)
                    tail_end = header_end + len(data.rstrip(b"\0"))
                try:
                    st: os.stat_result | None = os.stat(self.journal_path)
                except FileNotFoundError:
                    st = None
                own = os.fstat(fd) if fd is not None else None
                if (st is None) != (own is None) or (
                    st is not None and own is not None and identity(st) != identity(own)
                ):
                    if fd is not None:
                        os.close(fd)
                    continue  # a checkpoint replaced the journal while we read: again
                stale = snapshot is None and fd is not None and self.snapshot.id is None
                marker_last = False
                edited = False
                if not stale:
                    values = []
                    for offset, payload in records:
                        try:
                            values.append((offset, loads_strict(payload)))
                        except (ValueError, RecursionError) as exc:
                            raise self._corrupt("a journal record is not JSON", offset, self.journal_path) from exc
                    edited = self._edited_snapshot(header, values)
                    marker_last = bool(values) and is_marker(values[-1][1])
                    for offset, value in values[self._replay_start(header, values):]:
                        if not is_marker(value):
                            self.codec.replay(state, value, offset, self.journal_path)
            except BaseException:
                if fd is not None:
                    os.close(fd)
                raise
            # Reading the whole file stands for what writing it costs until a checkpoint
            # here times one, so that the time rule waits ten times that before its first
            # checkpoint too: without it, the first commit a second after opening a
            # 200,000-document file rewrote them all (5 to 6.5 s for that one insert).
            self._checkpoint_seconds = time.monotonic() - started
            self._adopt(fd, header, header_end, end, size, tail_end)
            self._unsynced = unsynced
            self._stale = stale
            self._edited = edited
            # A checkpoint that has announced itself but not yet replaced this journal (or
            # died before it could): watch the path until it does, or a commit follows.
            self._marker_pending = marker_last
            return state
        raise StorageError(f"{self.path!r} kept changing while it was being read; try again")

    def _replay_start(self, header: dict[str, Any] | None, values: list[tuple[int, Any]]) -> int:
        """Which of the journal's records to replay onto the snapshot: from the first, or,
        when a checkpoint stopped between its renames (its new snapshot with the old
        journal), from just after its marker.

        The records before that marker are in the new snapshot already, and the commit that
        checkpoint was made for may not be among them (a commit written as a checkpoint has
        no record): replaying them would take its documents back to older versions.
        Records after the marker (another process wrote them before it saw the new files)
        are replayed.
        """
        described = header.get("snapshot") if header is not None else None
        if described is None or self.snapshot.id is None or self.snapshot.matches(described):
            return 0
        for i in range(len(values) - 1, -1, -1):
            value = values[i][1]
            if is_marker(value) and self.snapshot.matches(value.get("snapshot")):
                return i + 1
        return 0

    def _edited_snapshot(self, header: dict[str, Any] | None, values: list[tuple[int, Any]]) -> bool:
        """Whether the snapshot was edited by hand (raises if it was damaged, or edited under commits).

        The journal's header records the size, CRC-32 and modification time of the snapshot
        it was started with, and a checkpoint marker those of the snapshot replacing it. A
        snapshot matching neither, with the recorded modification time, was damaged on
        disk. One whose time moved was edited (by a person or another program): it is
        accepted when the journal holds no commit, which would otherwise be replayed onto
        content it was not written against.
        """
        described = header.get("snapshot") if header is not None else None
        if described is None or self.snapshot.id is None or self.snapshot.matches(described):
            return False
        if any(is_marker(value) and self.snapshot.matches(value.get("snapshot")) for _, value in values):
            return False  # a checkpoint was interrupted between its renames: the new snapshot
        if isinstance(described, dict) and described.get("mtime_ns") == self.snapshot.id[3]:
            raise self._corrupt(
                "the file is not what the last checkpoint wrote (its size or checksum differs while "
                "its modification time is the same): it was damaged"
            )
        commits = sum(1 for _, value in values if not is_marker(value))
        if commits:
            raise self._corrupt(
                f"the file was changed by another program after the last checkpoint, and the journal "
                f"{self.journal_path!r} holds {commits} commit(s) made to its earlier content, which are "
                "not replayed onto the edited file; restore the file, or remove the journal to keep the "
                "edit without those commits"
            )
        return True

    def _reload(self) -> S:
        """Load again (after another process's checkpoint, or a snapshot replaced underneath)."""
        state = self._load()
        if self._edited and self.locked and not self.read_only:
            self._checkpoint(state, keep_snapshot=True)  # the header now describes the edited file
            self._edited = False
        return state

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> S:
        """Load the file (and, when writable, make it ready: journal, upgrade, cleanup)."""
        try:
            state = self._load()
        except MicroDBError:
            raise
        except OSError as exc:  # e.g. a folder where the file should be, or no permission to read
            self._close_fds()
            raise storage_error(exc, "read", self.path) from exc
        if self.read_only:
            return state
        try:
            if not os.path.isdir(self.folder):
                if not self.options.create_dirs:
                    raise StorageError(f"cannot create {self.path!r}: the folder {self.folder!r} does not exist")
                os.makedirs(self.folder, exist_ok=True)
            self._lock = FileLock(self.lock_path, timeout=self.options.lock_timeout)
            if self.durable and self.options.group_commit:
                # fsync_fd looked up at each call, as append's own fsync is.
                self._group = GroupSync(self.lock_path, lambda fd: fsync_fd(fd))
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
            if is_denied(exc):
                # A file or folder we may read but not write: serve reads, refuse writes.
                self.read_only = True
                self._drop_lock()
                return state
            self._close_fds()
            raise storage_error(exc, "open", self.path) from exc
        except BaseException:
            self._close_fds()
            raise
        return state

    def _prepare(self, state: S) -> None:
        """Under the lock at open: create, upgrade or tidy the files for writing."""
        self._remove_temps()
        if self._stale:
            # The snapshot was removed by hand: its journal describes nothing any more.
            # Remove it before writing the new snapshot, so no crash pairs the two.
            self._close_journal()
            os.remove(self.journal_path)
            self._stale = False
        if self._edited:
            self._checkpoint(state, keep_snapshot=True)  # the header now describes the edited file
            self._edited = False
            return
        if self._fd is None or self._header_end == 0:
            # No journal (a new database, or a TinyDB file): write the snapshot if it is
            # missing, then a journal holding the header. That is the format upgrade too.
            self._checkpoint(state, keep_snapshot=self.snapshot.id is not None)
            return
        assert self._fd is not None
        header, _ = self._read_header(self._fd)
        if header is not None and header["format"] < FORMAT_VERSION:
            self._checkpoint(state)
            return
        if self._tail_end > self._offset:
            self._clear_tail()

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
                return self._reload()  # a journal appeared: a writer upgraded the file
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
                if identity(st) != self._journal_id or st.st_size < self._offset:
                    return self._reload()
            if locked and self.snapshot.changed():
                return self._reload()
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
            raise storage_error(exc, "read", self.journal_path) from exc
        if not records:
            return None
        out = []
        for offset, payload in records:
            try:
                value = loads_strict(payload)
            except (ValueError, RecursionError) as exc:
                raise self._corrupt("a journal record is not JSON", offset, self.journal_path) from exc
            if is_marker(value):
                return self._reload()  # another process checkpointed: read its snapshot
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
        records, end = scan(body, start, self.journal_path)
        if not self._unsynced and records:
            self._unsynced = any_unsynced(body, start, records)
        return records, end, start + len(body)

    # -- writing --------------------------------------------------------------------------------
    def append(self, payload: Any, state: S, *, defer: bool = False) -> Ticket | None:
        """Commit one record (under the lock); ``state`` is memory after it, for a checkpoint.

        With ``defer``, a durable commit returns before its ``fsync``, with a ticket for
        :meth:`settle`, which the caller runs after releasing the lock (group commit:
        :mod:`microdb.storage.groupsync`). The commit is not durable until it returns.
        """
        if self.read_only:
            raise ReadOnlyError(f"{self.path!r} is open read-only")
        if self._fd is None or self._closed:
            raise StorageError(f"{self.path!r} is not open for writing")
        group = self._group if defer and self.durable else None
        # A grouped record is not synced before the next is written: flagged unsynced, so
        # a power cut that tears it while keeping a later one leaves a torn tail.
        record = frame_record(dumpb(payload), synced=self.durable and group is None)
        fd, offset = self._fd, self._offset
        if self._unsynced and self.durable and group is None:
            # Records before ours were not synced (a process with durable=False, or a
            # grouped writer, wrote them): sync them first, or a power cut could keep our
            # synced record while losing them, which would read as damage rather than as a
            # lost tail. A grouped record is flagged unsynced itself, so losing what came
            # before it reads as a torn tail, and the fsync that acknowledges it covers
            # them too: no sync here (under the lock, it would serialise every process).
            try:
                fsync_fd(fd)
            except OSError as exc:
                raise storage_error(exc, "write to", self.journal_path) from exc
            self._unsynced = False
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
                if not is_full(exc) or pad == needed:
                    raise
                # No room to allocate ahead; the record alone may still fit.
                pad = needed
                pwrite_all(fd, record + bytes(pad) if pad else record, offset)
            if group is not None:
                assert self._journal_id is not None
                group.written(fd, self._journal_id, end)
            elif self.durable:
                fsync_fd(fd)
        except OSError as exc:
            try:
                pwrite_all(fd, bytes(len(record)), offset)  # take back what reached the file
            except OSError:
                self._tail_end = max(self._tail_end, end)
            raise storage_error(exc, "write to", self.journal_path) from exc
        ticket = None if group is None or self._journal_id is None else Ticket(self._journal_id, offset, end)
        self._offset = self._tail_end = end
        self._seen_size = max(self._seen_size, end + pad)
        if not self.durable:
            self._unsynced = True
        self._marker_pending = False
        if self._offset >= self._next_checkpoint or time.monotonic() >= self._checkpoint_due:
            self._try_checkpoint(state)
        return ticket

    def _try_checkpoint(self, state: S) -> bool:
        """Checkpoint ``state``; false when that failed, leaving the files as they were (a
        longer journal, not a loss): try again once it has grown by another threshold, or
        later."""
        try:
            self._checkpoint(state)
        except (OSError, MicroDBError):
            self._next_checkpoint = self._offset + self._threshold()
            self._postpone()
            return False
        return True

    def checkpoint_follows(self, least_bytes: int) -> bool:
        """Whether :meth:`append` of a record of at least ``least_bytes`` would checkpoint at once
        (the size rule or the time rule)."""
        return self._offset + least_bytes >= self._next_checkpoint or time.monotonic() >= self._checkpoint_due

    def commit_as_checkpoint(self, state: S) -> bool:
        """Commit by checkpointing ``state`` (memory after the commit), with no journal record.

        For a commit :meth:`append` would checkpoint right after (see
        :meth:`checkpoint_follows`): the record would be encoded, written and synced only to
        be folded into the snapshot at once, so a bulk load would be written twice. A
        checkpoint is atomic and durable by itself (under the lock, caught up: ``state`` is
        current). True when done. False when it failed: the caller then appends the record
        as usual; if the failure came after the new snapshot was in place, replaying the
        record onto it changes nothing.
        """
        if self.read_only or self._fd is None or self._closed:
            return False  # append raises the right error
        return self._try_checkpoint(state)

    def _checkpoint(self, state: S, *, keep_snapshot: bool = False) -> None:
        if self._group is not None and self._fd is not None and self._header_end:
            # Grouped records may not be synced yet: sync them before the checkpoint's
            # marker (flagged synced) can reach the disk after them.
            fsync_fd(self._fd)
        super()._checkpoint(state, keep_snapshot=keep_snapshot)

    def settle(self, ticket: Ticket) -> None:
        """Wait (without the lock) until a deferred commit is durable; ``StorageError`` if it
        may not be (then try :meth:`take_back`)."""
        assert self._group is not None
        try:
            self._group.wait(ticket.journal, ticket.end)
        except OSError as exc:
            raise storage_error(exc, "write to", self.journal_path) from exc

    def take_back(self, ticket: Ticket) -> bool:
        """Zero a deferred commit whose ``fsync`` failed, when nothing was written after it
        (by any thread or process); true when done. Call it holding the lock."""
        if self._fd is None or self._journal_id != ticket.journal or self._offset != ticket.end:
            return False
        try:
            if identity(os.stat(self.journal_path)) != ticket.journal:
                return False  # replaced by another process's checkpoint, which holds the commit
            if _pread(self._fd, 1, ticket.end) not in (b"", b"\0"):
                return False  # another process wrote after it
            pwrite_all(self._fd, bytes(ticket.end - ticket.start), ticket.start)
        except OSError:
            return False
        self._offset = ticket.start
        return True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pending_bytes(self) -> int:
        """How many bytes of commits the journal holds beyond the snapshot."""
        return max(self._offset - self._header_end, 0)

    def fold(self, state: S) -> None:
        """Checkpoint if the journal holds any commit (under the lock, caught up: ``state`` is current)."""
        if not self.read_only and not self._closed and self._fd is not None and self.pending_bytes:
            self.checkpoint(state)

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
            if self._group is not None:
                self._group.close()
            self._close_fds()

    def __repr__(self) -> str:
        return f"JournaledFile({self.path!r}, kind={self.codec.kind!r})"
