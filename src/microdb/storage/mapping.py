"""Storing a database in any mapping: one key per document, so one call per written document.

The seed's promise: any object with ``__getitem__``, ``__setitem__``, ``__delitem__`` and
``__iter__`` is a storage. :class:`MappingStorage` uses exactly those four methods. Keys are
strings: ``"<table>/<id>"`` holds a document, ``"<table>/#"`` holds the table's metadata
(next id and index definitions), which is written only when it changes in a way the
documents cannot tell (a table created or emptied, an index declared, the highest id
removed). Values are JSON-safe (:func:`microdb.serialization.encode`), so a key-value store
of strings only needs ``json.dumps``; an :class:`InMemoryStorage` keeps the Python objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, Protocol

from microdb.errors import CorruptDatabaseError, StorageError
from microdb.serialization import decode, encode
from microdb.storage.base import Op, State, Storage, TableState

__all__ = ["InMemoryStorage", "MappingStorage", "MappingStore", "SupportsStorage"]

_META = "#"


class SupportsStorage(Protocol):
    """The four methods a user's storage object needs."""

    def __getitem__(self, key: str) -> Any: ...
    def __setitem__(self, key: str, value: Any) -> None: ...
    def __delitem__(self, key: str) -> None: ...
    def __iter__(self) -> Iterator[str]: ...


class InMemoryStorage(MutableMapping[str, Any]):
    """A storage that lives in memory only: gone when the program ends.

    It is a plain mapping from ``"<table>/<id>"`` keys to documents; documents are kept as
    Python objects (no JSON encoding), so it is the fastest storage.
    """

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"InMemoryStorage({len(self._data)} keys)"


class MappingStorage(Storage):
    """A :class:`~microdb.storage.base.Storage` over a user's mapping."""

    def __init__(self, mapping: SupportsStorage):
        for method in ("__getitem__", "__setitem__", "__delitem__", "__iter__"):
            if not callable(getattr(mapping, method, None)):
                raise TypeError(
                    f"{type(mapping).__name__} cannot be a storage: it has no {method}() "
                    "(a storage needs __getitem__, __setitem__, __delitem__ and __iter__)"
                )
        self.mapping = mapping
        # InMemoryStorage holds Python objects directly: nothing outside can see them, and
        # the engine never mutates a stored document in place.
        self._raw = isinstance(mapping, InMemoryStorage)
        self._saved_next: dict[str, int] = {}

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except KeyError:
            raise
        except Exception as exc:
            raise StorageError(f"the storage {type(self.mapping).__name__} failed to {what}: {exc}") from exc

    def load(self) -> State:
        state: State = {}
        keys = list(self._call("list its keys", lambda: list(iter(self.mapping))))
        for key in keys:
            if not isinstance(key, str) or "/" not in key:
                continue  # not ours: a mapping may hold other things too
            table, _, suffix = key.rpartition("/")
            value = self._call(f"read {key!r}", self.mapping.__getitem__, key)
            ts = state.get(table)
            if ts is None:
                ts = state[table] = TableState()
            if suffix == _META:
                if not isinstance(value, dict) or not isinstance(value.get("next_id"), int):
                    raise CorruptDatabaseError(f"bad table metadata under key {key!r}: {value!r:.80}")
                saved_next = max(ts.meta["next_id"], value["next_id"])
                ts.meta = {"next_id": saved_next, "indexes": list(value.get("indexes", []))}
                if value.get("options"):
                    ts.meta["options"] = value["options"]
                self._saved_next[table] = value["next_id"]
            elif suffix.isdigit():
                if not isinstance(value, dict):
                    raise CorruptDatabaseError(f"the value under key {key!r} is not a document: {value!r:.80}")
                doc_id = int(suffix)
                ts.docs[doc_id] = value if self._raw else decode(value)
                if doc_id >= ts.meta["next_id"]:
                    ts.meta["next_id"] = doc_id + 1
        return state

    def commit(self, ops: list[Op], state: State) -> None:
        m = self.mapping
        for op in ops:
            kind = op[0]
            table = op[1]
            if kind == "put":
                value = op[3] if self._raw else encode(op[3])
                self._call("write", m.__setitem__, f"{table}/{op[2]}", value)
            elif kind == "delete":
                try:
                    self._call("delete", m.__delitem__, f"{table}/{op[2]}")
                except KeyError:
                    pass
                # Ids are never reused: once the highest id is gone, only metadata keeps it.
                ts = state.get(table)
                if ts is not None and self._saved_next.get(table, 0) < ts.meta["next_id"]:
                    self._write_meta(table, ts.meta)
            elif kind == "meta":
                self._write_meta(table, op[2])
            elif kind == "drop":
                prefix = table + "/"
                for key in [k for k in self._call("list its keys", lambda: list(iter(m))) if isinstance(k, str) and k.startswith(prefix) and "/" not in k[len(prefix):]]:
                    self._call("delete", m.__delitem__, key)
                self._saved_next.pop(table, None)

    def _write_meta(self, table: str, meta: dict[str, Any]) -> None:
        value = {"next_id": meta["next_id"], "indexes": [dict(i) for i in meta["indexes"]]}
        if meta.get("options"):
            value["options"] = meta["options"]  # JSON already: the table encodes it
        self._call("write", self.mapping.__setitem__, f"{table}/{_META}", value)
        self._saved_next[table] = meta["next_id"]

    @staticmethod
    def keys_of(state: State) -> Iterable[str]:
        """Every key the state would occupy (for tests and tools)."""
        for table, ts in state.items():
            yield f"{table}/{_META}"
            for doc_id in ts.docs:
                yield f"{table}/{doc_id}"


#: The name of :class:`MappingStorage` before the storage layer's classes all ended in ``Storage``.
MappingStore = MappingStorage
