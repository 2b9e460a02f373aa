"""How a TinyDB storage object becomes a MicroDB engine.

TinyDB hands its storage the *whole* database on every write (``write(data)``) and asks
for the whole of it on every operation (``read()``). MicroDB's engine keeps the data in
memory and hands a :class:`~microdb.storage.base.Storage` one small batch of per-document
changes per commit. Two kinds of storage objects meet here:

* **native** storages (:class:`~microdb.tinydb.storages.JSONStorage`,
  :class:`~microdb.tinydb.storages.MemoryStorage`, and middlewares that leave ``read`` and
  ``write`` alone) own an engine over a real MicroDB store: the journaled JSON file, or
  memory. Their ``read()``/``write(data)`` still work, as views of that engine.
* any **other** object with ``read()`` and ``write(data)`` (a user's own storage, a
  middleware that changes the data) is wrapped in :class:`ReadWriteStorage`, which keeps
  TinyDB's whole-database contract with it.

Every engine also counts changes (:class:`TrackedStorage`), which is what lets the query
cache of :class:`~microdb.tinydb.table.Table` notice writes made by anyone, including
other processes sharing a file.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from microdb.backend import Plan
from microdb.engine import MemoryBackend
from microdb.errors import CorruptDatabaseError, DocumentError, MicroDBError, StorageError
from microdb.serialization import check_document, decode, encode
from microdb.storage.base import Op, State, Storage, SyncResult, TableState

__all__ = [
    "Engine",
    "StateStorage",
    "ReadWriteStorage",
    "TrackedStorage",
    "engine_for",
    "make_engine",
    "native_engine",
    "replace_all",
    "snapshot",
]

#: The whole database in TinyDB's shape: table name -> document id (a string) -> document.
Data = dict[str, dict[str, Any]]

_HOOK = "_microdb_native_engine"
_ATTR = "_microdb_engine"


class TrackedStorage(Storage):
    """A store that counts every change it commits or hears about from other processes.

    ``generation`` changes whenever the data may have changed; a cached query result
    taken at one generation is valid exactly as long as the generation stays the same.
    """

    def __init__(self, inner: Storage):
        self.inner = inner
        self.generation = 0

    @property
    def read_only(self) -> bool:
        """Whether the wrapped store refuses writes."""
        return self.inner.read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self.inner.read_only = value

    def load(self) -> State:
        self.generation += 1
        return self.inner.load()

    def commit(self, ops: list[Op], state: State) -> None:
        # Counted even when the commit fails: memory is then rolled back, and a spare
        # invalidation costs one re-run of a query, never a wrong answer.
        self.generation += 1
        self.inner.commit(ops, state)

    def sync(self) -> SyncResult:
        changes = self.inner.sync()
        if changes is not None:
            self.generation += 1
        return changes

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self.inner.lock():
            yield

    def compact(self, state: State) -> None:
        self.inner.compact(state)

    def close(self, state: State) -> None:
        self.inner.close(state)

    def __repr__(self) -> str:
        return repr(self.inner)


@dataclass(frozen=True)
class Engine:
    """A MicroDB engine serving one TinyDB storage object, and its change counter."""

    backend: MemoryBackend
    store: TrackedStorage

    @property
    def generation(self) -> int:
        """Changes whenever the data may have changed (see :class:`TrackedStorage`)."""
        return self.store.generation


def make_engine(store: Storage, name: str) -> Engine:
    """An engine over ``store``, with its change counter."""
    tracked = TrackedStorage(store)
    return Engine(MemoryBackend(tracked, name=name), tracked)


class StateStorage(Storage):
    """Keeps nothing anywhere: the engine's memory is the whole database."""

    def load(self) -> State:
        return {}

    def commit(self, ops: list[Op], state: State) -> None:
        pass

    def __repr__(self) -> str:
        return "StateStorage()"


# ---------------------------------------------------------------------------------------
# Converting between TinyDB's whole-database data and MicroDB's state
# ---------------------------------------------------------------------------------------

def _doc_id(table: str, key: Any) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.isdigit():
        return int(key)
    raise CorruptDatabaseError(f"table {table!r}: document id {key!r} is not an integer")


def parse_data(data: Any, source: str) -> dict[str, dict[int, dict[str, Any]]]:
    """Checked documents by table and id from TinyDB-shaped ``data`` (``None`` is empty)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise CorruptDatabaseError(f"{source} returned {type(data).__name__}, not a mapping of tables")
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for table, docs in data.items():
        if not isinstance(table, str):
            raise CorruptDatabaseError(f"{source}: table name {table!r} is not a string")
        if not isinstance(docs, Mapping):
            raise CorruptDatabaseError(f"{source}: table {table!r} is {type(docs).__name__}, not a mapping")
        checked: dict[int, dict[str, Any]] = {}
        for key, doc in docs.items():
            doc_id = _doc_id(table, key)
            if not isinstance(doc, Mapping):
                raise CorruptDatabaseError(f"{source}: table {table!r}, document {key!r} is not a mapping")
            try:
                checked[doc_id] = check_document(decode(dict(doc)))
            except DocumentError as exc:
                raise CorruptDatabaseError(f"{source}: table {table!r}, document {key!r}: {exc}") from exc
        out[table] = dict(sorted(checked.items()))
    return out


def _same(a: Any, b: Any) -> bool:
    """Equality that also tells ``True`` from ``1`` and ``1.0`` from ``1``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def snapshot(engine: Engine) -> Data | None:
    """The whole database as TinyDB's ``read()`` returns it (``None`` when it has no table)."""
    backend = engine.backend
    with backend.read():
        names = backend.tables()
        if not names:
            return None
        return {
            name: {str(doc_id): encode(doc) for doc_id, doc in backend.run(name, Plan())}
            for name in names
        }


def replace_all(engine: Engine, data: Any) -> None:
    """Make the database equal to ``data`` (TinyDB's ``write``), changing only what differs.

    One commit: tables missing from ``data`` are dropped, documents missing are removed,
    changed ones replaced and new ones inserted under their own ids.
    """
    wanted = parse_data(data, "write()")
    backend = engine.backend
    with backend.write():
        for name in backend.tables():
            if name not in wanted:
                backend.drop_table(name)
        for name, docs in wanted.items():
            existing = dict(backend.run(name, Plan()))
            gone = [doc_id for doc_id in existing if doc_id not in docs]
            if gone:
                backend.delete(name, gone)
            changed = {i: d for i, d in docs.items() if i in existing and not _same(existing[i], d)}
            if changed:
                backend.replace(name, changed)
            # Also creates the table when it is new and empty.
            backend.insert(name, [(i, d) for i, d in docs.items() if i not in existing])


# ---------------------------------------------------------------------------------------
# A user's storage: whole-database read() and write(data)
# ---------------------------------------------------------------------------------------

class ReadWriteStorage(Storage):
    """A :class:`~microdb.storage.base.Storage` over an object with TinyDB's ``read``/``write``.

    The storage receives the whole database on each commit, as TinyDB gives it: a dict of
    tables, each a dict from document ids (strings) to JSON-safe documents (MicroDB's
    tagged form for dates, UUIDs and other rich values). Before each operation the
    storage is read again, as TinyDB does, so changes made behind the engine's back (by
    another program sharing the storage, or a middleware filtering what it writes) are
    seen; an unchanged answer costs one comparison.
    """

    def __init__(self, storage: Any):
        for method in ("read", "write"):
            if not callable(getattr(storage, method, None)):
                raise TypeError(
                    f"{type(storage).__name__} cannot be a TinyDB storage: it has no {method}() "
                    "(a storage needs read() and write(data))"
                )
        self.storage = storage
        self._name = type(storage).__name__
        self._data: Data = {}
        # The next id of each table as this engine knew it: a table re-read from the
        # storage never hands out an id this process already used.
        self._next: dict[str, int] = {}

    def _read(self) -> Any:
        try:
            return self.storage.read()
        except MicroDBError:
            raise
        except Exception as exc:
            raise StorageError(f"the storage {self._name} failed to read: {exc!r}") from exc

    def _state(self, raw: Any) -> State:
        parsed = parse_data(raw, f"{self._name}.read()")
        self._data = {
            name: {str(doc_id): encode(doc) for doc_id, doc in docs.items()} for name, docs in parsed.items()
        }
        state: State = {}
        for name, docs in parsed.items():
            top = max(docs, default=0) + 1
            next_id = max(top, self._next.get(name, 1))
            state[name] = TableState(docs, {"next_id": next_id, "indexes": []})
        return state

    def load(self) -> State:
        return self._state(self._read())

    def sync(self) -> SyncResult:
        raw = self._read()
        if (raw is None and not self._data) or raw == self._data:
            return None
        return self._state(raw)

    def commit(self, ops: list[Op], state: State) -> None:
        new: Data = dict(self._data)
        copied: set[str] = set()

        def table(name: str) -> dict[str, Any]:
            # Copy a table on its first change, so a failed write leaves _data intact.
            if name not in copied:
                new[name] = dict(new.get(name, {}))
                copied.add(name)
            return new[name]

        for op in ops:
            kind, name = op[0], op[1]
            if kind == "put":
                table(name)[str(op[2])] = encode(op[3])
            elif kind == "delete":
                table(name).pop(str(op[2]), None)
            elif kind == "meta":
                table(name)
            elif kind == "drop":
                new.pop(name, None)
                copied.discard(name)
        # The storage gets its own dicts: one that edits what it is given (TinyDB's own
        # middleware example deletes entries) must not edit our record of what was written.
        handed = {name: dict(docs) for name, docs in new.items()}
        try:
            self.storage.write(handed)
        except MicroDBError:
            raise
        except Exception as exc:
            raise StorageError(f"the storage {self._name} failed to write: {exc!r}") from exc
        self._data = new
        for name, ts in state.items():
            self._next[name] = max(self._next.get(name, 1), int(ts.meta["next_id"]))

    def __repr__(self) -> str:
        return f"ReadWriteStorage({self.storage!r})"


# ---------------------------------------------------------------------------------------
# Which engine serves a storage object
# ---------------------------------------------------------------------------------------

_lock = threading.Lock()
_no_dict: weakref.WeakKeyDictionary[Any, Engine] = weakref.WeakKeyDictionary()


def native_engine(storage: Any) -> Engine | None:
    """The engine a native storage (or a transparent middleware over one) owns, if any."""
    # Looked up on the type: a middleware forwards unknown *instance* attributes to the
    # storage it wraps, which would answer for the wrong object.
    hook = getattr(type(storage), _HOOK, None)
    if hook is None:
        return None
    engine = hook(storage)
    return engine if isinstance(engine, Engine) else None


def _remembered(storage: Any) -> Engine | None:
    try:
        found = vars(storage).get(_ATTR)
    except TypeError:
        found = _no_dict.get(storage)
    return found if isinstance(found, Engine) else None


def engine_for(storage: Any) -> Engine:
    """The one engine behind ``storage``: its own if native, else a read/write adapter.

    Every table and database object opened on the same storage object shares it.
    """
    with _lock:
        engine = _remembered(storage)
        if engine is not None:
            return engine
        engine = native_engine(storage)
        if engine is None:
            engine = make_engine(ReadWriteStorage(storage), type(storage).__name__)
        try:
            vars(storage)[_ATTR] = engine
        except TypeError:
            _no_dict[storage] = engine
        return engine
