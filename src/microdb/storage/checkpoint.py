"""The pair of files (snapshot and journal) and how a checkpoint replaces both.

A checkpoint writes the new snapshot and a fresh journal (header only) to temporary files,
fsyncs both, appends a marker to the old journal so that other processes know to reload,
renames the snapshot into place, then the journal, then fsyncs the folder. Replaying a
prefix of the journal twice gives the state of replaying it once, which makes every crash
window of a checkpoint safe. ``docs/storage.md`` has the whole story.

:class:`CheckpointedFile` holds the state both files share (descriptors, offsets, the
lock); :class:`~microdb.storage.journal.JournaledFile` adds reading, committing and
catching up with other processes.
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from microdb.durability import (
    WINDOWS,
    create_temp,
    fsync_dir,
    fsync_fd,
    pwrite_all,
    remove_quietly,
    replace,
    storage_error,
)
from microdb.errors import CorruptDatabaseError, MicroDBError, ReadOnlyError, StorageError
from microdb.locking import FileLock
from microdb.serialization import dumpb
from microdb.storage.options import FileOptions
from microdb.storage.records import FORMAT_VERSION, frame_record
from microdb.storage.snapshot import BINARY, SnapshotFile

__all__ = ["JOURNAL_SUFFIX", "LOCK_SUFFIX", "CheckpointedFile", "Codec"]

JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"

S = TypeVar("S")

#: The time rule waits at least this many times as long as the last checkpoint took.
_COST_FACTOR = 10


def identity(st: os.stat_result) -> tuple[int, int]:
    """A file's (device, inode): which file a path or descriptor is."""
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


class CheckpointedFile(Generic[S]):
    """A snapshot and its journal, as one unit a checkpoint replaces; the lock beside them."""

    #: Called with the name of each checkpoint step (tests inject crashes and faults here).
    fault_hook: ClassVar[Callable[[str], None] | None] = None

    def __init__(self, path: str | os.PathLike[str], codec: Codec[S], options: FileOptions):
        self.options = options
        self.path = os.path.abspath(os.fspath(path))
        self.journal_path = self.path + JOURNAL_SUFFIX
        self.lock_path = self.path + LOCK_SUFFIX
        self.folder = os.path.dirname(self.path)
        self.codec = codec
        self.durable = bool(options.durable)
        self.snapshot = SnapshotFile(self.path, options)
        self.read_only = bool(options.read_only) or not self._writable()
        self.generation = 0
        self._lock: FileLock | None = None
        self._fd: int | None = None  # the journal, while it exists
        self._journal_id: tuple[int, int] | None = None
        self._header_end = 0  # where the journal's first commit starts
        self._offset = 0  # just after the last good record we have read or written
        self._seen_size = 0  # the journal's size (allocated space included) at our last look
        self._tail_end = 0  # the end of a torn record after _offset (== _offset when none)
        self._next_checkpoint = 0
        self._checkpoint_due = float("inf")  # monotonic time from which a commit checkpoints
        #: how long the last checkpoint of this process took (before one: the last load)
        self._checkpoint_seconds = 0.0
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
            if not self.options.create_dirs:
                return True  # the error comes when the file is created, naming the folder
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        return os.access(folder, os.W_OK)

    def _corrupt(self, what: str, offset: int | None = None, path: str | None = None) -> CorruptDatabaseError:
        return self.snapshot.corrupt(what, offset, path)

    def _step(self, name: str) -> None:
        hook = type(self).fault_hook
        if hook is not None:
            hook(name)

    def _threshold(self) -> int:
        return max(self.options.checkpoint_bytes, int(self.options.checkpoint_ratio * self.snapshot.size))

    def _adopt(
        self, fd: int | None, header: dict[str, Any] | None, header_end: int, end: int, size: int, tail_end: int
    ) -> None:
        """Make ``fd`` our journal (closing the previous one)."""
        if self._fd is not None and self._fd != fd:
            os.close(self._fd)
        self._fd = fd
        self._journal_id = identity(os.fstat(fd)) if fd is not None else None
        self._header_end = header_end
        self._offset = end
        self._seen_size = size
        self._tail_end = max(tail_end, end)
        self._marker_pending = False
        self._checked_at = time.monotonic()
        generation = header.get("generation", 0) if header is not None else 0
        self.generation = generation if isinstance(generation, int) else 0
        self._next_checkpoint = header_end + self._threshold()
        self._postpone()

    def _postpone(self) -> None:
        """Start the time after which the next commit checkpoints (``checkpoint_interval``).

        Never sooner than ten times the last checkpoint's duration: on a large file (or a
        slow disk) the time rule then costs writers at most about a tenth of their time.
        """
        interval = self.options.checkpoint_interval
        if interval is None:
            self._checkpoint_due = float("inf")
        else:
            # 0 asks for a checkpoint at every commit, whatever it costs.
            wait = max(interval, _COST_FACTOR * self._checkpoint_seconds) if interval else 0.0
            self._checkpoint_due = time.monotonic() + wait

    def _close_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._journal_id = None
        self._header_end = self._offset = self._seen_size = self._tail_end = 0

    def _drop_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _close_fds(self) -> None:
        self._close_journal()
        self.snapshot.close()
        self._drop_lock()

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

    # -- checkpoints -----------------------------------------------------------------------------
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
            raise storage_error(exc, "write a checkpoint of", self.path) from exc

    def _checkpoint(self, state: S, *, keep_snapshot: bool = False) -> None:
        """Snapshot and fresh journal, so that a crash at any instant leaves old or new state.

        Order: both temporary files written and fsynced; snapshot renamed into place; journal
        renamed into place; folder fsynced. A crash between the renames pairs the new
        snapshot with the old journal, whose records the new snapshot already holds:
        replaying them again changes nothing.
        """
        temps: list[str] = []
        snapshot_fd: int | None = None
        journal_fd: int | None = None
        started = time.monotonic()
        try:
            self._step("begin")
            described = self.snapshot.describe()
            if not keep_snapshot:
                data = self.snapshot.to_bytes(self.codec.snapshot(state))
                snapshot_temp, snapshot_fd = create_temp(self.path, data, full=True)
                temps.append(snapshot_temp)
                with contextlib.suppress(OSError):
                    if self.snapshot.id is not None:
                        os.chmod(snapshot_temp, os.stat(self.path).st_mode & 0o7777)
                # What the new journal's header (and the old journal's marker) records of
                # the snapshot, so that an open can tell it from a damaged or edited one.
                crc = zlib.crc32(data)
                described = {"size": len(data), "crc": crc, "mtime_ns": os.fstat(snapshot_fd).st_mtime_ns}
                self._step("snapshot-written")
            header = {
                "microdb": "journal",
                "format": FORMAT_VERSION,
                "kind": self.codec.kind,
                "generation": self.generation + 1,
                "meta": self.codec.meta(state),
            }
            if described is not None:
                header["snapshot"] = described
            head = frame_record(dumpb(header))
            journal_temp, journal_fd = create_temp(self.journal_path, head, full=True)
            temps.append(journal_temp)
            self._step("journal-written")
            self._announce(self.generation + 1, None if keep_snapshot else described)
            if not keep_snapshot:
                if WINDOWS and snapshot_fd is not None:
                    os.close(snapshot_fd)
                    snapshot_fd = None
                replace(snapshot_temp, self.path)
                temps.remove(snapshot_temp)
                self.snapshot.adopt(
                    snapshot_fd if snapshot_fd is not None else os.open(self.path, os.O_RDONLY | BINARY), crc
                )
                snapshot_fd = None
                # The snapshot's new name must be durable before the journal's: a power cut
                # that kept only the journal's rename would pair the old snapshot with a
                # journal that no longer holds the commits since it.
                fsync_dir(self.folder)
                self._step("snapshot-replaced")
            if WINDOWS:
                os.close(journal_fd)
                journal_fd = None
                self._replace_journal_windows(journal_temp)
            else:
                replace(journal_temp, self.journal_path)
            temps.remove(journal_temp)
            # From here the journal at the path is the new one: adopt it before anything
            # else can fail, or later commits would go to the old, unlinked file.
            fd = journal_fd if journal_fd is not None else os.open(self.journal_path, os.O_RDWR | BINARY)
            journal_fd = None
            self._adopt(fd, header, len(head), len(head), len(head), len(head))
            self._step("journal-replaced")
            fsync_dir(self.folder)
            self._step("done")
            self._checkpoint_seconds = time.monotonic() - started
            self._postpone()
        finally:
            for leftover in (snapshot_fd, journal_fd):
                if leftover is not None:
                    os.close(leftover)
            for temp in temps:
                remove_quietly(temp)

    def _announce(self, generation: int, described: dict[str, int] | None) -> None:
        """Append the marker telling other processes that this journal is being replaced.

        It also records the new snapshot: a crash between the two renames leaves the new
        snapshot with this journal, and an open recognises that snapshot from the marker.
        """
        if self._fd is None or not self._header_end:
            return
        value: dict[str, Any] = {"checkpoint": generation}
        if described is not None:
            value["snapshot"] = described
        # Flagged as the commits are: until the sync below it may be lost with them.
        marker = frame_record(dumpb(value), synced=self.durable)
        end = self._offset + len(marker)
        pwrite_all(self._fd, marker + bytes(max(self._tail_end - end, 0)), self._offset)
        # Synced, with every commit before it: the new snapshot holds those commits, and
        # after a power cut the old journal must not lack what the new snapshot has.
        fsync_fd(self._fd)
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
            self._fd = os.open(self.journal_path, os.O_RDWR | BINARY)
            self._header_end, self._offset, self._seen_size, self._tail_end, self._next_checkpoint = kept
            raise
