"""``AutoSavingDict``: a dictionary that saves itself to a file whenever it is modified.

Its file is one plain JSON object (``{"key": value, ...}``), kept exactly as a database file
is (:mod:`microdb.storage.jsonfile`): every change is one journal record, durable before the
call returns; checkpoints replace the file atomically; a crash never leaves a half-written
file; and several processes may share the file, each seeing the others' changes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from microdb import process
from microdb.errors import CorruptDatabaseError, DatabaseClosedError, DocumentError, ReadOnlyError
from microdb.serialization import MAX_DEPTH, check_document, copy_value, decode, nests_too_deep
from microdb.storage.journal import JournaledFile
from microdb.storage.options import FileOptions
from microdb.storage.records import bad_record, encode_value

__all__ = ["AutoSavingDict"]

_MISSING: Any = object()


def _check_key(key: Any) -> str:
    if type(key) is not str:
        if not isinstance(key, str):
            raise DocumentError(f"AutoSavingDict keys are strings (JSON object keys), got {key!r:.60}")
        return str(key)
    return key


def _check_value(key: str, value: Any) -> Any:
    """A private, checked copy of ``value`` (the same rules as a document's values)."""
    return check_document({key: value})[key]


class _DictCodec:
    """Snapshot: one JSON object. Records: ``["s", key, value]``, ``["d", key]``, ``["c"]``."""

    kind = "dict"

    def state(
        self, snapshot: Any, meta: Any, tagged: bool, where: Callable[[str, str], CorruptDatabaseError]
    ) -> dict[str, Any]:
        if snapshot is None:
            return {}
        if not isinstance(snapshot, dict):
            raise where(f"the file holds a JSON {type(snapshot).__name__}, not an object", "")
        for key, value in snapshot.items():
            if nests_too_deep(value, 2):
                raise where(f"the value of {key!r} nests deeper than {MAX_DEPTH} levels", f'"{key}"')
        if not tagged:
            return snapshot
        out = {}
        for key, value in snapshot.items():
            try:
                out[key] = decode(value)
            except DocumentError as exc:
                raise where(f"the value of {key!r} holds a bad tagged value ({exc})", f'"{key}"') from exc
        return out

    def replay(self, state: dict[str, Any], payload: Any, offset: int, path: str) -> None:
        _apply(state, _changes(payload, offset, path))

    def snapshot(self, state: dict[str, Any]) -> Any:
        return {key: encode_value(value) for key, value in state.items()}

    def meta(self, state: dict[str, Any]) -> Any:
        return {}


def _changes(payload: Any, offset: int, path: str) -> list[tuple[Any, ...]]:
    """The decoded changes of one record (``CorruptDatabaseError`` if malformed)."""
    try:
        out: list[tuple[Any, ...]] = []
        for item in payload:
            kind = item[0]
            if kind == "s" and type(item[1]) is str:
                if nests_too_deep(item[2], 2):
                    raise ValueError(f"the value nests deeper than {MAX_DEPTH} levels")
                out.append(("s", item[1], decode(item[2])))
            elif kind == "d" and type(item[1]) is str:
                out.append(("d", item[1]))
            elif kind == "c":
                out.append(("c",))
            else:
                raise ValueError(f"unknown change {item!r:.60}")
        return out
    except (TypeError, ValueError, IndexError, KeyError, DocumentError) as exc:
        raise bad_record(path, offset, exc) from exc


def _apply(state: dict[str, Any], changes: Iterable[tuple[Any, ...]]) -> None:
    for change in changes:
        if change[0] == "s":
            state[change[1]] = change[2]
        elif change[0] == "d":
            state.pop(change[1], None)
        else:
            state.clear()


class AutoSavingDict(MutableMapping[str, Any]):
    """A dictionary that automatically saves itself to a file whenever it is modified.

    Keys are strings; values are anything a document may hold (JSON values, datetimes,
    UUIDs, sets...). Each change (``d[k] = v``, ``del d[k]``, ``update()``, ``clear()``...)
    is on disk before the call returns, as one atomic commit; values read back are copies,
    so change a value by assigning it again. Options are those of ``MicroDB('file.json')``
    (the fields of :class:`~microdb.storage.options.FileOptions`, as keywords or as one
    ``options`` object). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], options: FileOptions | None = None, **keywords: Any):
        self._file: JournaledFile[dict[str, Any]] = JournaledFile(path, _DictCodec(), FileOptions.of(options, keywords))
        self._lock = threading.RLock()
        self._data: dict[str, Any] = self._file.open()
        process.at_exit(self.at_exit)

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The file's absolute path."""
        return self._file.path

    @property
    def read_only(self) -> bool:
        """Whether changes are refused (``read_only=True``, or a file we may not write)."""
        return self._file.read_only

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file.closed

    def _check_open(self) -> None:
        if self._file.closed:
            raise DatabaseClosedError(f"the AutoSavingDict {self._file.path!r} is closed")

    def _sync(self) -> None:
        found = self._file.poll()
        if found is None:
            return
        if isinstance(found, dict):
            self._data = found
            return
        for offset, payload in found:
            _apply(self._data, _changes(payload, offset, self._file.journal_path))

    def _fresh(self) -> dict[str, Any]:
        """The data, up to date with other processes (call with ``self._lock`` held)."""
        self._check_open()
        self._sync()
        return self._data

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this object's lock and the file's write lock, caught up with other processes."""
        with self._lock:
            self._check_open()
            if self._file.read_only:
                raise ReadOnlyError(f"the AutoSavingDict {self._file.path!r} is open read-only")
            with self._file.lock():
                self._sync()
                yield

    def _change(self, plan: Callable[[dict[str, Any]], list[tuple[Any, ...]]]) -> None:
        """Commit the changes ``plan`` chooses on the latest data, under the write lock.

        ``plan`` only reads the data and returns changes (``("s", key, value)``,
        ``("d", key)``, ``("c",)``); they are applied with an undo log, so a failed commit
        leaves memory as it was, and a write costs the same however large the dict is.
        """
        with self._writing():
            changes = plan(self._data)
            if not changes:
                return
            record: list[list[Any]] = []
            undo: list[tuple[str, Any]] = []
            cleared: dict[str, Any] | None = None
            data = self._data
            try:
                for change in changes:
                    if change[0] == "s":
                        undo.append((change[1], data.get(change[1], _MISSING)))
                        data[change[1]] = change[2]
                        record.append(["s", change[1], encode_value(change[2])])
                    elif change[0] == "d":
                        undo.append((change[1], data.pop(change[1], _MISSING)))
                        record.append(["d", change[1]])
                    else:
                        cleared, data = data, {}
                        self._data = data
                        undo.clear()
                        record.append(["c"])
                self._file.append(record, data)
            except BaseException:
                if cleared is not None:
                    self._data = data = cleared
                for key, old in reversed(undo):
                    if old is _MISSING:
                        data.pop(key, None)
                    else:
                        data[key] = old
                raise

    # -- reading -----------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return copy_value(self._fresh()[key])

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._fresh()

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._fresh()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._fresh())

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` copy of the whole content, read at one instant."""
        with self._lock:
            return {key: copy_value(value) for key, value in self._fresh().items()}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AutoSavingDict):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        if self._file.closed:
            return f"AutoSavingDict({self._file.path!r}, closed)"
        return f"AutoSavingDict({self._file.path!r}, {self.to_dict()!r:.200})"

    # -- writing -----------------------------------------------------------------------------
    def __setitem__(self, key: str, value: Any) -> None:
        key = _check_key(key)
        value = _check_value(key, value)

        self._change(lambda data: [("s", key, value)])

    def __delitem__(self, key: str) -> None:
        def plan(data: dict[str, Any]) -> list[tuple[Any, ...]]:
            if key not in data:
                raise KeyError(key)
            return [("d", key)]

        self._change(plan)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set several keys in one commit (all are saved, or none)."""
        items: list[tuple[str, Any]] = []
        source = other.items() if isinstance(other, Mapping) else (
            ((k, other[k]) for k in other.keys()) if hasattr(other, "keys") else other
        )
        for pair in source:
            key, value = pair
            items.append((_check_key(key), value))
        items.extend(kwargs.items())
        checked = [(key, _check_value(key, value)) for key, value in items]
        if not checked:
            return

        self._change(lambda data: [("s", key, value) for key, value in checked])

    def clear(self) -> None:
        """Remove every key, in one commit."""

        self._change(lambda data: [("c",)] if data else [])

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``), atomically across processes."""
        found: list[Any] = []

        def plan(data: dict[str, Any]) -> list[tuple[Any, ...]]:
            if key not in data:
                if default is _MISSING:
                    raise KeyError(key)
                found.append(default)
                return []
            found.append(copy_value(data[key]))
            return [("d", key)]

        self._change(plan)
        return found[0]

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last inserted ``(key, value)`` pair."""
        found: list[tuple[str, Any]] = []

        def plan(data: dict[str, Any]) -> list[tuple[Any, ...]]:
            if not data:
                raise KeyError("popitem(): the AutoSavingDict is empty")
            key = next(reversed(data))
            found.append((key, copy_value(data[key])))
            return [("d", key)]

        self._change(plan)
        return found[0]

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``d[key]`` if present, else store and return ``default``, atomically."""
        key = _check_key(key)
        value = _check_value(key, default)
        found: list[Any] = []

        def plan(data: dict[str, Any]) -> list[tuple[Any, ...]]:
            found.append(copy_value(data[key] if key in data else value))
            return [] if key in data else [("s", key, value)]

        self._change(plan)
        return found[0]

    def compact(self) -> None:
        """Fold the journal into the file now (a checkpoint)."""
        with self._writing():
            self._file.checkpoint(self._data)

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Write a last checkpoint and release the file; later use raises ``DatabaseClosedError``."""
        with self._lock:
            self._file.close(self._data)

    def at_exit(self) -> None:
        """At interpreter exit: fold the journal into the file, so the file alone holds everything."""
        if not self._lock.acquire(timeout=1.0):
            return  # another thread is stuck mid-change: the journal stays the truth
        try:
            if not self._file.closed and not self._file.read_only:
                with self._file.lock():
                    self._sync()
                    self._file.fold(self._data)
        finally:
            self._lock.release()

    def __enter__(self) -> AutoSavingDict:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
