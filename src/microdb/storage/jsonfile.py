"""The JSON file storage: a TinyDB-shaped snapshot, a journal beside it, and a lock file.

``mydb.json`` (the snapshot) is plain JSON shaped like TinyDB's, ``{"table": {"1": {...}}}``,
and is only ever replaced whole. The journal machinery (``mydb.json.journal``, checkpoints,
recovery, the lock, catching up with other processes) is :mod:`microdb.storage.journal`;
this module says what a database's snapshot and records mean:

- the header's ``"meta"`` holds, per table, what TinyDB's shape cannot: the next id (ids
  are never reused) and the index definitions, as they were at the checkpoint;
- each commit is a list of absolute changes: ``["p", table, id, doc]`` (put),
  ``["f", table, id, fields]`` or ``["f", table, id, fields, removed]`` (an update's
  patch: the new values of the top-level fields it changed, and the names of those it
  removed), ``["d", table, id]`` (delete), ``["m", table, meta]`` (metadata),
  ``["x", table]`` (drop).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import Any

from microdb import process
from microdb.errors import CorruptDatabaseError, DocumentError, MicroDBError, StorageError
from microdb.serialization import MAX_DEPTH, decode, encode, nests_too_deep
from microdb.storage.base import Op, State, Storage, SyncResult, TableState, apply_ops
from microdb.storage.checkpoint import JOURNAL_SUFFIX, LOCK_SUFFIX
from microdb.storage.feed import DEFAULT_KEEP_BYTES, FeedReader, FeedWriter, feed_path
from microdb.storage.journal import JournaledFile, Ticket
from microdb.storage.options import FileOptions
from microdb.storage.records import FORMAT_VERSION, bad_record, encode_value, frame_record, read_header, scan

__all__ = [
    "FORMAT_VERSION",
    "FileCheck",
    "JOURNAL_SUFFIX",
    "LOCK_SUFFIX",
    "JSONFileStorage",
    "JSONFileStore",
    "FileOptions",
    "JournaledFile",
    "check_file",
    "frame_record",
    "ops_from_record",
    "record_of",
]


class _TablesCodec:
    """Snapshot ``{"table": {"1": doc}}``; records are lists of put/delete/meta/drop changes."""

    kind = "tables"

    def state(
        self, snapshot: Any, meta: Any, tagged: bool, where: Callable[[str, str], CorruptDatabaseError]
    ) -> State:
        state: State = {}
        if snapshot is None:
            return state
        if not isinstance(snapshot, dict):
            raise where(
                f"the file holds a JSON {type(snapshot).__name__}, not an object of tables: "
                "it is not a MicroDB or TinyDB database", "",
            )
        metas = meta if isinstance(meta, dict) else {}
        for name, table in snapshot.items():
            if not isinstance(table, dict):
                raise where(f"table {name!r} is not a JSON object of documents", f'"{name}"')
            docs: dict[int, dict[str, Any]] = {}
            for key, doc in table.items():
                try:
                    doc_id = int(key)
                except ValueError:
                    raise where(f"table {name!r} has a document key {key!r} that is not an integer id", f'"{key}"') from None
                if type(doc) is not dict:
                    raise where(f"document {key} of table {name!r} is not a JSON object", f'"{key}"')
                if nests_too_deep(doc):
                    raise where(f"document {key} of table {name!r} nests deeper than {MAX_DEPTH} levels", f'"{key}"')
                if tagged:
                    try:
                        doc = decode(doc)
                    except DocumentError as exc:
                        raise where(f"document {key} of table {name!r} holds a bad tagged value ({exc})", f'"{key}"') from exc
                docs[doc_id] = doc
            if len(docs) != len(table):
                raise where(f"table {name!r} repeats a document id", f'"{name}"')
            ts = TableState(docs)
            saved = metas.get(name)
            if saved is not None:
                try:
                    ts.meta = _meta_from_json(saved)
                except (TypeError, ValueError, MicroDBError) as exc:
                    raise CorruptDatabaseError(
                        f"the journal header's metadata of table {name!r} is malformed ({exc})", offset=0
                    ) from exc
            if docs:
                ts.meta["next_id"] = max(ts.meta["next_id"], max(docs) + 1)
            state[name] = ts
        return state

    def replay(self, state: State, payload: Any, offset: int, path: str) -> None:
        apply_ops(state, ops_from_record(payload, offset, path))

    def snapshot(self, state: State) -> Any:
        return {
            name: {str(doc_id): encode_value(doc) for doc_id, doc in ts.docs.items()}
            for name, ts in state.items()
        }

    def meta(self, state: State) -> Any:
        return {name: encode(ts.meta) for name, ts in state.items()}


def _meta_from_json(value: Any) -> dict[str, Any]:
    meta = decode(value)
    if not isinstance(meta, dict):
        raise TypeError("table metadata is not an object")
    meta.setdefault("indexes", [])
    next_id = meta.get("next_id", 1)
    if not isinstance(next_id, int) or isinstance(next_id, bool):
        raise TypeError("next_id is not an integer")
    meta["next_id"] = next_id
    return meta


#: The fewest bytes one change takes in a journal record (``["d","",1],``).
_LEAST_OP_BYTES = 12


_SCALARS = frozenset((str, int, float, bool, type(None)))


def _patch(op: Op) -> list[Any]:
    """The journal form of an update's put (see :func:`record_of`)."""
    doc, names = op[3], op[5]
    # In the order of the names, which is the order the update added new fields in: a
    # replay appends them where this process did.
    fields = {k: doc[k] for k in names if k in doc}
    removed = [k for k in names if k not in doc]
    patch = ["f", op[1], op[2], encode_value(fields)]
    return [*patch, removed] if removed else patch


def record_of(ops: list[Op]) -> list[list[Any]]:
    """The journal form of a batch of changes.

    A put made by an update (one naming the top-level fields it may have changed) is
    journaled as a patch of those fields only: a few bytes where a whole document was, and
    a journal that fills (and checkpoints) less often.
    """
    out: list[list[Any]] = []
    append = out.append
    names: Any = None
    single: str | None = None  # the one field of the updates of this batch, when plain
    for op in ops:
        kind = op[0]
        if kind == "put":
            if len(op) < 6 or op[5] is None:
                append(["p", op[1], op[2], encode_value(op[3])])
                continue
            if op[5] is not names:
                # The puts of one update share their tuple of names: look at it once.
                names = op[5]
                one = names[0] if len(names) == 1 else None
                single = one if type(one) is str and not one.startswith("$") else None
            doc = op[3]
            if single is not None and single in doc:
                # The common update of one field, without a dict scan or calls per value.
                value = doc[single]
                kind = type(value)
                if kind is list:
                    for item in value:
                        if type(item) not in _SCALARS:
                            value = encode_value(value)
                            break
                elif kind not in _SCALARS:
                    value = encode_value(value)
                append(["f", op[1], op[2], {single: value}])
            else:
                append(_patch(op))
        elif kind == "delete":
            append(["d", op[1], op[2]])
        elif kind == "meta":
            append(["m", op[1], encode(op[2])])
        elif kind == "drop":
            append(["x", op[1]])
        else:
            raise StorageError(f"unknown storage operation {kind!r}")
    return out


def ops_from_record(payload: Any, offset: int, path: str | None = None) -> list[Op]:
    """The changes of one journal record (``CorruptDatabaseError`` if it is malformed)."""
    try:
        ops: list[Op] = []
        for item in payload:
            kind = item[0]
            table = item[1]
            if type(table) is not str:
                raise TypeError("a table name must be a string")
            if kind == "p":
                doc = item[3]
                if type(doc) is not dict or type(item[2]) is not int:
                    raise TypeError("a put needs an integer id and an object")
                if nests_too_deep(doc):
                    raise ValueError(f"the document nests deeper than {MAX_DEPTH} levels")
                ops.append(("put", table, item[2], decode(doc)))
            elif kind == "f":
                fields = item[3]
                removed = item[4] if len(item) > 4 else []
                if type(fields) is not dict or type(item[2]) is not int or type(removed) is not list:
                    raise TypeError("a patch needs an integer id, an object and a list of names")
                if any(type(name) is not str for name in removed):
                    raise TypeError("a patch removes fields by name")
                if nests_too_deep(fields):
                    raise ValueError(f"the document nests deeper than {MAX_DEPTH} levels")
                ops.append(("patch", table, item[2], decode(fields), tuple(removed)))
            elif kind == "d":
                if type(item[2]) is not int:
                    raise TypeError("a delete needs an integer id")
                ops.append(("delete", table, item[2]))
            elif kind == "m":
                ops.append(("meta", table, _meta_from_json(item[2])))
            elif kind == "x":
                ops.append(("drop", table))
            else:
                raise ValueError(f"unknown change {kind!r}")
        return ops
    except (TypeError, ValueError, IndexError, KeyError, MicroDBError) as exc:
        raise bad_record(path, offset, exc) from exc


class JSONFileStorage(Storage):
    """A database in one JSON file, written through a journal: crash-safe and multi-process.

    ``options`` is a :class:`~microdb.storage.options.FileOptions`; keywords (``durable=``,
    ``read_only=``, ``lock_timeout=``...: its fields) override it. The change feed
    (:mod:`microdb.storage.feed`): ``changes`` (``None``: recorded while
    ``mydb.json.changes`` exists, which the first reader creates; ``True``: from now on)
    and its retention, ``changes_keep_bytes``/``changes_keep_count``/``changes_keep_seconds``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: FileOptions | None = None,
        *,
        changes: bool | None = None,
        changes_keep_bytes: int | None = DEFAULT_KEEP_BYTES,
        changes_keep_count: int | None = None,
        changes_keep_seconds: float | None = None,
        **keywords: Any,
    ):
        self.file: JournaledFile[State] = JournaledFile(path, _TablesCodec(), FileOptions.of(options, keywords))
        self.path = self.file.path
        self.read_only = self.file.read_only
        self.feed: FeedWriter | None = FeedWriter(
            feed_path(self.path), enabled=changes, keep_bytes=changes_keep_bytes,
            keep_count=changes_keep_count, keep_seconds=changes_keep_seconds,
        )

    def load(self) -> State:
        """Read the snapshot and replay the journal."""
        state = self.file.open()
        self.read_only = self.file.read_only
        if self.read_only:
            self.feed = None
        elif self.feed is not None and self.feed.enabled:
            with self.lock():
                self.feed.create()
        return state

    def commit(self, ops: list[Op], state: State) -> Ticket | None:
        """Append one journal record holding ``ops``, then its feed line; when durable, a
        ticket to :meth:`settle` (the record is synced after the lock: group commit)."""
        if not ops:
            return None
        feed = self.feed
        before = [self.file.generation, self.file.pending_bytes]
        # A commit that a checkpoint would follow at once (a bulk load, or the first commit a
        # while after the last checkpoint) is written as that checkpoint: once, not twice.
        if self.file.checkpoint_follows(_LEAST_OP_BYTES * len(ops)) and self.file.commit_as_checkpoint(state):
            ticket = None
        else:
            ticket = self.file.append(record_of(ops), state, defer=True)
        if feed is not None:
            feed.record(ops, before, [self.file.generation, self.file.pending_bytes])
        return ticket

    def settle(self, ticket: Any) -> None:
        """Wait until the commit is on disk: one ``fsync`` serves every writer waiting."""
        self.file.settle(ticket)

    def take_back(self, ticket: Any) -> bool:
        """Zero a commit whose ``fsync`` failed, if nothing was written after it."""
        return self.file.take_back(ticket)

    def change_log(self) -> FeedReader:
        """A reader of this file's change feed, creating the feed when it is missing."""
        if self.feed is not None:
            with self.lock():
                self.feed.create()
        return FeedReader(feed_path(self.path))

    def sync(self) -> SyncResult:
        """Other processes' commits since our last look (one ``stat`` when there are none)."""
        found = self.file.poll()
        if found is None or isinstance(found, dict):
            return found
        return [ops_from_record(payload, offset, self.file.journal_path) for offset, payload in found]

    def lock(self) -> contextlib.AbstractContextManager[Any]:  # type: ignore[override]
        """Hold the write lock shared by every process using the file."""
        # The lock object itself, not a generator wrapped around it: this runs on every write.
        return self.file.lock()

    def compact(self, state: State) -> None:
        """Fold the journal into a new snapshot now (at interpreter exit: only if it holds a commit)."""
        if process.exiting() and not self.file.pending_bytes:
            return  # the snapshot already holds everything: nothing to rewrite on the way out
        if self.feed is not None:
            # Before the journal is folded away: a commit it holds that the feed lacks
            # becomes a reported gap (the engine caught up under the lock just before).
            here = [self.file.generation, self.file.pending_bytes]
            self.feed.record([], here, here)
        self.file.checkpoint(state)

    def close(self, state: State) -> None:
        """Checkpoint, then release the files and the lock."""
        try:
            self.file.close(state)
        finally:
            if self.feed is not None:
                self.feed.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else ("durable" if self.file.durable else "fast")
        return f"JSONFileStorage({self.path!r}, {mode})"


#: The name of :class:`JSONFileStorage` before the storage layer's classes all ended in ``Storage``.
JSONFileStore = JSONFileStorage


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """What :func:`check_file` found in a database file: its format, sizes, counts and problems."""

    #: The snapshot's absolute path.
    path: str
    #: The journal's format version (``None``: no journal, as a TinyDB file has none).
    format: int | None
    #: The snapshot's size in bytes (``None``: there is no snapshot).
    snapshot_bytes: int | None
    #: The bytes of records in the journal, header included (allocated zeros not counted).
    journal_bytes: int
    #: Commits in the journal that the snapshot does not hold yet.
    commits: int
    #: Bytes of a torn tail after the last good record (a commit cut short; an open ignores it).
    torn_bytes: int
    #: Documents per table, as an open reads them (empty when the file does not open).
    tables: dict[str, int]
    #: What stops the file from opening, in words (empty: the file is sound).
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether the file opens and holds what its checksums say."""
        return not self.problems


def check_file(path: str | os.PathLike[str]) -> FileCheck:
    """Check a database file without changing it: format, sizes, record counts and problems.

    Reads the snapshot and the journal as a read-only open does (no lock taken, no file
    written): every record's length and checksum, the snapshot against what the last
    checkpoint recorded of it, every document. Damage is reported in ``problems``, never
    raised.
    """
    full = os.path.abspath(os.fspath(path))
    problems: list[str] = []
    snapshot_bytes = os.path.getsize(full) if os.path.isfile(full) else None
    version: int | None = None
    journal_bytes = commits = torn = 0
    journal = full + JOURNAL_SUFFIX
    if os.path.isfile(journal):
        try:
            with open(journal, "rb") as handle:
                data = handle.read()
            fd = os.open(journal, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                header, header_end = read_header(fd, journal, "tables", full)
            finally:
                os.close(fd)
            if header is not None:
                version = header["format"]
                records, end = scan(data[header_end:], header_end, journal)
                commits = sum(1 for _, payload in records if not payload.startswith(b"{"))
                journal_bytes = end
                torn = len(data.rstrip(b"\0")) - end
        except MicroDBError as exc:
            problems.append(str(exc))
    elif snapshot_bytes is None:
        problems.append(f"there is no database at {full!r}")
    tables: dict[str, int] = {}
    if not problems:
        file: JournaledFile[State] = JournaledFile(full, _TablesCodec(), FileOptions(read_only=True))
        try:
            state = file.open()
            tables = {name: len(ts.docs) for name, ts in state.items()}
        except (MicroDBError, OSError) as exc:
            problems.append(str(exc))
        finally:
            file.close(None)
    return FileCheck(full, version, snapshot_bytes, journal_bytes, commits, torn, tables, tuple(problems))
