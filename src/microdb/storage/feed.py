"""The change feed of a JSON file: ``mydb.json.changes``, a numbered history of commits.

The journal (``mydb.json.journal``) is folded into the snapshot at every checkpoint, so it
cannot hold history. The feed is a side file that outlives checkpoints; it holds one line
per commit, framed like a journal record (length, CRC-32, payload)::

    {"microdb": "changes", "format": 1, "first": 1}                  the header
    {"s": 7, "t": 1764633600.5, "j": [3, 812], "e": [["i", "users", 4, {...}], ...]}
    {"s": 8, "t": ..., "gap": true}                                  commits that were lost
    {"moved": 1}                                                     the file was trimmed

``s`` is the commit's sequence number (one per commit, in commit order, across processes),
``t`` its time, ``e`` its events (``i`` insert, ``u`` update, ``r`` remove, ``x`` drop, each
with the table, the id and the document after). ``j`` is where the journal stood after the
commit (its generation and the bytes of commits it held): the next writer compares it
with where the journal stands before its own commit, and when a commit is missing (its
writer died between the journal and the feed, or the feed could not be written) records a
``gap`` instead of skipping it silently.

Writers append under the database's write lock, right after the journal record. When the
file outgrows its retention (bytes, count of commits, age) by a quarter, a writer rewrites
it keeping the newest commits within the limits, appends the ``moved`` marker to the old
file and renames the new one over it; readers that meet the marker reopen the path.
Readers take no lock: they read complete lines from where they stopped.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Collection
from typing import Any

from microdb.durability import create_temp, fsync_dir, pread_all, pwrite_all, remove_quietly, replace
from microdb.errors import ChangesExpiredError, CorruptDatabaseError
from microdb.feed import Change, ChangeLog
from microdb.serialization import decode, dumpb, loads_strict
from microdb.storage.base import Op
from microdb.storage.records import encode_value, frame_record

__all__ = ["CHANGES_SUFFIX", "DEFAULT_KEEP_BYTES", "FeedReader", "FeedWriter", "events_of", "feed_path"]

CHANGES_SUFFIX = ".changes"
#: The history kept by default: the newest 16 MiB of commits.
DEFAULT_KEEP_BYTES = 16 << 20
FORMAT = 1

_BINARY = getattr(os, "O_BINARY", 0)
_HEAD = re.compile(rb"[0-9a-f]{8} [0-9a-f]{8} ")
_OPS = {"i": "insert", "u": "update", "r": "remove", "x": "drop"}
_SLACK = 1.25  # trim once a limit is exceeded by a quarter: a rewrite per many commits
_CHUNK = 1 << 20  # bytes a reader reads at a time
_MOVED = b'{"moved"'
_SEQ = re.compile(rb'\{"s":(\d+)[,}]')


def _seq_of(payload: bytes) -> int | None:
    """The sequence number of a commit or gap record, read without parsing the whole record."""
    match = _SEQ.match(payload)
    return int(match.group(1)) if match else None


def _frames(data: bytes, base: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """The complete, good records (start, end, payload) in ``data`` read at ``base``, and their end.

    Scanning stops at the first line that is unfinished or fails its checksum: a record
    still being written, or the torn tail of a writer that died (the next writer removes it).
    """
    out: list[tuple[int, int, bytes]] = []
    pos, size = 0, len(data)
    while pos + 18 <= size:
        if _HEAD.match(data, pos) is None:
            break
        length = int(data[pos:pos + 8], 16)
        end = pos + 18 + length
        if end >= size or data[end:end + 1] != b"\n":
            break
        payload = data[pos + 18:end]
        if zlib.crc32(payload, zlib.crc32(data[pos:pos + 8])) != int(data[pos + 9:pos + 17], 16):
            break
        out.append((base + pos, base + end + 1, payload))
        pos = end + 1
    return out, base + pos


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        value = loads_strict(payload)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {}


def _scan(data: bytes, base: int) -> tuple[list[tuple[int, int, dict[str, Any]]], int]:
    """:func:`_frames`, each payload parsed (a record that is not a JSON object parses as ``{}``)."""
    frames, end = _frames(data, base)
    return [(start, stop, _parse(payload)) for start, stop, payload in frames], end


def _header(first: int) -> bytes:
    return frame_record(dumpb({"microdb": "changes", "format": FORMAT, "first": first}))


def _check_header(value: dict[str, Any], path: str) -> int:
    if value.get("microdb") != "changes" or not isinstance(value.get("first"), int):
        raise CorruptDatabaseError(f"{path!r} is not a MicroDB change feed", path=path, offset=0)
    return int(value["first"])


def events_of(ops: list[Op]) -> list[list[Any]]:
    """The feed's events for a batch of storage operations (metadata changes make none).

    A put made by an insert carries a fifth item, true; any other put is an update.
    """
    out: list[list[Any]] = []
    for op in ops:
        kind = op[0]
        if kind == "put":
            out.append(["i" if len(op) > 4 and op[4] else "u", op[1], op[2], encode_value(op[3])])
        elif kind == "delete":
            out.append(["r", op[1], op[2], None])
        elif kind == "drop":
            out.append(["x", op[1], None, None])
    return out


class FeedWriter:
    """Appends each commit of one process to the feed (called under the database's lock).

    ``enabled``: ``True`` creates the feed at once; ``None`` (the default) writes it while
    the file exists (the first reader creates it). Every writer records while the feed
    exists, so that the history has no holes.
    """

    def __init__(
        self,
        path: str,
        *,
        enabled: bool | None = None,
        keep_bytes: int | None = DEFAULT_KEEP_BYTES,
        keep_count: int | None = None,
        keep_seconds: float | None = None,
    ):
        for name, value in (("changes_keep_bytes", keep_bytes), ("changes_keep_count", keep_count)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
        if keep_seconds is not None and (not isinstance(keep_seconds, (int, float)) or keep_seconds <= 0):
            raise ValueError(f"changes_keep_seconds must be a number of seconds > 0 or None, got {keep_seconds!r}")
        if enabled not in (None, True):
            raise ValueError(f"changes must be True or None, got {enabled!r}")
        self.path = path
        self.enabled = enabled
        self.keep_bytes = keep_bytes
        self.keep_count = keep_count
        self.keep_seconds = keep_seconds
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._end = 0  # after the last good record
        self._first = 1
        self._last = 0  # the newest sequence number in the file
        self._first_time: float | None = None  # the time of the oldest record kept
        self._last_position: list[Any] | None = None  # the journal after the newest record
        self._lost = False  # a commit could not be recorded: the next record is a gap

    # -- the file ---------------------------------------------------------------------------
    def create(self) -> None:
        """Make sure the feed exists (under the database's lock); history starts now."""
        if os.path.exists(self.path):
            return
        temp, fd = create_temp(self.path, _header(1))
        os.close(fd)
        try:
            replace(temp, self.path)
        except BaseException:
            remove_quietly(temp)
            raise
        fsync_dir(os.path.dirname(self.path))

    def _open(self) -> bool:
        """Open (or reopen) the file and read where it ends; false when it does not exist."""
        self._close()
        try:
            fd = os.open(self.path, os.O_RDWR | _BINARY)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        data = pread_all(fd, st.st_size, 0)
        frames, end = _frames(data, 0)
        if not frames:
            os.close(fd)
            return False  # an unfinished header: a file being created by hand; wait
        self._fd, self._identity = fd, (st.st_dev, st.st_ino)
        self._first = _check_header(_parse(frames[0][2]), self.path)
        self._last = self._first - 1
        self._first_time = None
        self._last_position = None
        self._take(frames[1:])
        self._end = end
        if end < st.st_size:
            self._truncate()
        return True

    def _take(self, frames: list[tuple[int, int, bytes]]) -> None:
        """Note the newest record of ``frames`` (only it and, once, the oldest are parsed)."""
        if not frames:
            return
        if self._first_time is None:
            self._first_time = float(_parse(frames[0][2]).get("t", 0.0))
        last = _parse(frames[-1][2])
        if isinstance(last.get("s"), int):
            self._last = last["s"]
            self._last_position = last.get("j")

    def _truncate(self) -> None:
        """Remove a torn tail left by a writer that died mid-record (we hold the lock)."""
        assert self._fd is not None
        os.ftruncate(self._fd, self._end)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._identity = None

    def _catch_up(self) -> bool:
        """Read what other processes appended (under the lock); false when there is no feed."""
        if self._fd is not None:
            # One fstat: a trim by another writer ends our file with a marker (read below)
            # and a removed file has no link left.
            st = os.fstat(self._fd)
            if st.st_nlink and st.st_size == self._end:
                return True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if not self.enabled:
                self._close()
                return False
            self.create()
            return self._open()
        if self._fd is None or (st.st_dev, st.st_ino) != self._identity:
            return self._open()
        if st.st_size > self._end:
            data = pread_all(self._fd, st.st_size - self._end, self._end)
            frames, end = _frames(data, self._end)
            self._take(frames)
            self._end = end
            if end < st.st_size:
                self._truncate()
        return True

    # -- writing -------------------------------------------------------------------------------
    def record(self, ops: list[Op], before: list[Any], after: list[Any]) -> None:
        """Append the commit just made (the journal stood at ``before``, then at ``after``).

        Never raises for an OS error: the commit is already durable in the journal, so a
        failure here is recorded as a gap at the next commit instead.
        """
        try:
            if not self._catch_up():
                return  # no feed file: nobody follows this database, so no events are built
            events = events_of(ops)
            if self._lost or (
                self._last_position is not None
                and self._last_position[0] == before[0]
                and self._last_position != before
            ):
                # Commits reached the journal without reaching the feed: say so.
                self._append({"s": self._last + 1, "t": time.time(), "gap": True})
                self._lost = False
            if events:
                self._append({"s": self._last + 1, "t": time.time(), "j": after, "e": events})
            self._last_position = after
            self._trim_if_due()
        except OSError:
            self._lost = True
            self._close()

    def _append(self, value: dict[str, Any]) -> None:
        assert self._fd is not None
        record = frame_record(dumpb(value))
        try:
            pwrite_all(self._fd, record, self._end)
        except OSError:
            os.ftruncate(self._fd, self._end)
            raise
        self._end += len(record)
        self._last = value["s"]
        if self._first_time is None:
            self._first_time = value["t"]

    # -- retention ------------------------------------------------------------------------------
    def _trim_if_due(self) -> None:
        due = (self.keep_bytes is not None and self._end > self.keep_bytes * _SLACK) or (
            self.keep_count is not None and self._last - self._first + 1 > self.keep_count * _SLACK
        )
        if not due and self.keep_seconds is not None and self._first_time is not None:
            due = self._first_time < time.time() - self.keep_seconds * _SLACK
        if due:
            self.trim()

    def trim(self) -> None:
        """Rewrite the file with the newest commits within the retention (under the lock)."""
        assert self._fd is not None
        data = pread_all(self._fd, self._end, 0)
        records, _ = _scan(data, 0)
        body = records[1:]
        keep_from = len(body)
        size = 0
        oldest = time.time() - self.keep_seconds if self.keep_seconds is not None else None
        for i in range(len(body) - 1, -1, -1):
            start, end, value = body[i]
            if self.keep_bytes is not None and size + (end - start) > self.keep_bytes:
                break
            if self.keep_count is not None and len(body) - i > self.keep_count:
                break
            if oldest is not None and float(value.get("t", 0.0)) < oldest:
                break
            size += end - start
            keep_from = i
        first = body[keep_from][2]["s"] if keep_from < len(body) else self._last + 1
        kept = data[body[keep_from][0]:self._end] if keep_from < len(body) else b""
        temp, fd = create_temp(self.path, _header(first) + kept)
        os.close(fd)
        try:
            marker = frame_record(dumpb({"moved": 1}))
            pwrite_all(self._fd, marker, self._end)
            replace(temp, self.path)
        except BaseException:
            remove_quietly(temp)
            raise
        fsync_dir(os.path.dirname(self.path))
        self._open()

    def close(self) -> None:
        """Release the file."""
        self._close()


class FeedReader(ChangeLog):
    """Reads a JSON file's feed from where it stopped; no lock, one ``fstat`` per look."""

    def __init__(self, path: str, *, interval: float = 0.005):
        self.path = path
        self.interval = interval
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._first = 1
        self._offset = 0  # where the next record starts
        self._seq = 0  # the sequence number of the record before _offset

    def _open(self) -> bool:
        """Open the path and stand after its header; false while there is no feed."""
        self.close()
        try:
            fd = os.open(self.path, os.O_RDONLY | _BINARY)
        except FileNotFoundError:
            return False
        records, _ = _scan(pread_all(fd, 1 << 12, 0), 0)
        if not records:
            os.close(fd)
            return False
        st = os.fstat(fd)
        self._fd, self._identity = fd, (st.st_dev, st.st_ino)
        self._first = _check_header(records[0][2], self.path)
        self._offset, self._seq = records[0][1], self._first - 1
        return True

    def _fresh(self) -> bool:
        """Whether the path still names our file (it changes when a writer trims it)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True  # removed by hand: keep what we have
        return (st.st_dev, st.st_ino) == self._identity

    def _frames_after(self) -> list[tuple[int, int, bytes]]:
        """Complete records after our place (about 1 MiB at a time), following trims."""
        for _ in range(10):
            if self._fd is None and not self._open():
                return []
            assert self._fd is not None
            size = os.fstat(self._fd).st_size
            if size > self._offset:
                chunk = _CHUNK
                while True:
                    data = pread_all(self._fd, min(chunk, size - self._offset), self._offset)
                    frames, _ = _frames(data, self._offset)
                    if frames or self._offset + len(data) >= size:
                        break
                    chunk *= 8  # one record larger than the chunk
                if frames and frames[-1][2].startswith(_MOVED):
                    frames.pop()
                    if frames:
                        return frames
                elif frames or self._fresh():
                    return frames
            elif self._fresh():
                return []
            # The file was trimmed (a new one holds the newest commits): find our place in it.
            seq = self._seq
            if not self._open():
                return []
            self._seek(seq)
        return []

    def _seek(self, after: int) -> None:
        """Stand before the first commit above ``after`` (reading sequence numbers only)."""
        if self._fd is None and not self._open():
            return
        if after < self._first - 1:
            raise ChangesExpiredError(
                f"the change feed of {self.path!r} keeps commits from {self._first} on, so it cannot "
                f"resume after commit {after} (raise the retention, or reload the data and resume "
                "from last_seq)", seq=after,
            )
        if after < self._seq:
            self._open()
        if after > self._seq:
            tail = self._tail()
            if tail is not None and tail[0] <= after:
                self._offset, self._seq = tail[1], tail[0]  # at (or past) the end: jump there
                return
        while self._seq < after:
            frames = self._frames_after()
            if not frames:
                return
            for _, end, payload in frames:
                seq = _seq_of(payload)
                if seq is None or seq > after:
                    return
                self._offset, self._seq = end, seq

    def _tail(self) -> tuple[int, int] | None:
        """The newest record's sequence number and end, read from the end of the file."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        start = max(self._offset, size - _CHUNK)
        data = pread_all(self._fd, size - start, start)
        # Records are lines: try each line start in the chunk, from the first one on.
        pos = 0 if start == self._offset else data.find(b"\n") + 1
        while 0 < pos or start == self._offset:
            frames, _ = _frames(data[pos:], start + pos)
            numbered = [(seq, end) for _, end, payload in frames if (seq := _seq_of(payload)) is not None]
            if numbered:
                return numbered[-1]
            if frames or pos == 0:
                break
            pos = data.find(b"\n", pos) + 1
        if start == self._offset:
            return None
        # A record longer than the chunk: read sequence numbers from our place instead.
        last = None
        offset = self._offset
        while offset < size:
            frames, end = _frames(pread_all(self._fd, size - offset, offset), offset)
            if not frames:
                break
            for _, stop, payload in frames:
                seq = _seq_of(payload)
                if seq is not None:
                    last = (seq, stop)
            offset = end
        return last

    def last_seq(self) -> int:
        """The newest commit's sequence number (0 when the feed is empty or absent)."""
        if self._fd is None and not self._open():
            return 0
        if not self._fresh():
            self._open()
        tail = self._tail()
        return self._seq if tail is None else max(tail[0], self._seq)

    def read(
        self, after: int, tables: Collection[str] | None = None, limit: int = 1000
    ) -> tuple[list[Change], int]:
        """Changes above ``after`` (whole commits, about ``limit`` at most), and the last seq read."""
        self._seek(after)
        if self._fd is None:
            if after > 0:
                raise ChangesExpiredError(f"{self.path!r} has no change feed to resume from", seq=after)
            return [], after
        out: list[Change] = []
        wanted = None if tables is None else set(tables)
        for _, end, payload in self._frames_after():
            value = _parse(payload)
            seq = value.get("s")
            if not isinstance(seq, int):
                self._offset = end
                continue
            if value.get("gap"):
                if out:
                    return out, self._seq  # deliver what came before; the next read raises
                self._offset, self._seq = end, seq
                raise ChangesExpiredError(
                    f"commit {seq} of {self.path!r} is missing from its change feed (its writer stopped "
                    f"between the journal and the feed): reload the data, then resume after {seq}", seq=seq,
                )
            stamp = float(value.get("t", 0.0))
            for kind, table, doc_id, doc in value.get("e", ()):
                if wanted is None or table in wanted:
                    out.append(Change(seq, table, _OPS[kind], doc_id, None if doc is None else decode(doc), stamp))
            self._offset, self._seq = end, seq
            if len(out) >= limit:
                return out, seq
        if after > self._seq:
            raise ChangesExpiredError(
                f"commit {after} is after the newest commit of {self.path!r} ({self._seq}): was the "
                "feed removed and started again?", seq=after,
            )
        return out, self._seq

    def close(self) -> None:
        """Release the file."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._identity = None


def feed_path(database_path: str) -> str:
    """The feed beside a database file."""
    return database_path + CHANGES_SUFFIX
