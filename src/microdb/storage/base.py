"""The persistence interface under the in-memory engine.

The engine (:mod:`microdb.engine`) keeps every table in memory and hands each committed
change to a :class:`Storage` as a batch of *absolute* operations, one per document, never a
whole table. A batch is one commit: the store makes it durable as a unit (all of it or none
of it) before ``commit`` returns. Stores that other processes may change too (the JSON
file) report those changes through :meth:`Storage.sync`, which the engine calls before every
operation.

Operations (tuples, first item the kind):

``("put", table, doc_id, doc)``
    store ``doc`` (a checked Python document, see :mod:`microdb.serialization`) under
    ``doc_id``, replacing what was there. The engine never mutates ``doc`` afterwards.
    A put made by an insert carries a fifth item, ``True`` (the change feed reports it as
    an insert rather than an update); stores that do not care ignore it. A put made by an
    update may carry a sixth, the top-level fields it may have changed (a tuple): the
    stored document differs from ``doc`` at most in those, so a store may record just
    them (the JSON file's journal does, as a patch).
``("patch", table, doc_id, fields, removed)``
    what a store reads back of such a put: set ``fields`` (a dict) on the stored document
    and remove the fields named in ``removed``, in a new document (a no-op when the
    document is absent). The engine never hands one to a store.
``("delete", table, doc_id)``
    remove that document (a no-op when it is absent).
``("meta", table, meta)``
    create ``table`` if needed and set its metadata: ``{"next_id": int, "indexes": [...]}``
    where each index is ``{"path": [...], "unique": bool}``; a table with options (its
    schema...) also has ``"options"``, a JSON object.
``("drop", table)``
    remove the table, its documents and its metadata.

Replaying a batch twice gives the same state as replaying it once.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Op", "State", "Storage", "Store", "SyncResult", "TableState", "apply_ops", "new_meta", "patched"]

Op = tuple[Any, ...]


def new_meta() -> dict[str, Any]:
    """The metadata of a new table."""
    return {"next_id": 1, "indexes": []}


@dataclass
class TableState:
    """One table as a store loads it: documents by id, and the table's metadata."""

    docs: dict[int, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=new_meta)


State = dict[str, TableState]

#: What :meth:`Storage.sync` returns: ``None`` (nothing changed), a list of batches that
#: other processes committed, in order, or a whole new :data:`State` to replace memory with.
SyncResult = list[list[Op]] | State | None


def patched(doc: dict[str, Any], fields: dict[str, Any], removed: tuple[str, ...]) -> dict[str, Any]:
    """A new document: ``doc`` with ``fields`` set and the fields named in ``removed`` gone."""
    new = doc.copy()
    new.update(fields)
    for name in removed:
        new.pop(name, None)
    return new


def apply_ops(state: State, ops: list[Op]) -> None:
    """Apply a batch to a bare state (used by stores when loading or replaying)."""
    for op in ops:
        kind = op[0]
        if kind == "put":
            table = state.get(op[1])
            if table is None:
                table = state[op[1]] = TableState()
            table.docs[op[2]] = op[3]
            if op[2] >= table.meta["next_id"]:
                table.meta["next_id"] = op[2] + 1
        elif kind == "patch":
            table = state.get(op[1])
            doc = None if table is None else table.docs.get(op[2])
            if table is not None and doc is not None:
                table.docs[op[2]] = patched(doc, op[3], op[4])
        elif kind == "delete":
            table = state.get(op[1])
            if table is not None:
                table.docs.pop(op[2], None)
        elif kind == "meta":
            table = state.get(op[1])
            if table is None:
                table = state[op[1]] = TableState()
            table.meta = dict(op[2])
        elif kind == "drop":
            state.pop(op[1], None)
        else:
            raise ValueError(f"unknown storage operation {kind!r}")


class Storage(ABC):
    """Where the in-memory engine keeps its data between runs.

    Implementations: :class:`~microdb.storage.mapping.MappingStorage` (any mapping, one key
    per document) and :class:`~microdb.storage.jsonfile.JSONFileStorage` (the journaled file).
    """

    #: True when the store refuses writes; the engine raises ``ReadOnlyError`` up front.
    read_only: bool = False

    @abstractmethod
    def load(self) -> State:
        """Read everything stored; called once, when the database opens."""

    @abstractmethod
    def commit(self, ops: list[Op], state: State) -> Any:
        """Make ``ops`` durable as one unit; ``state`` is memory *after* the batch.

        Raise :class:`~microdb.errors.StorageError` (and store nothing) on failure: the
        engine then rolls its memory back. A store may instead return a *ticket*: the
        commit is then stored but durable only once :meth:`settle` returns, which the
        engine calls after releasing the locks (so other writers can commit meanwhile and
        share one ``fsync``: group commit). Returning ``None`` means done.
        """

    def settle(self, ticket: Any) -> None:  # noqa: B027 - optional hook
        """Wait until the commit that returned ``ticket`` is durable (``StorageError`` if not)."""

    def take_back(self, ticket: Any) -> bool:
        """Undo a commit whose :meth:`settle` failed, if nothing came after it (under the lock)."""
        return False

    def sync(self) -> SyncResult:
        """Changes that other processes committed since the last load, commit or sync."""
        return None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the cross-process write lock (a no-op for stores only this process sees)."""
        yield

    def compact(self, state: State) -> None:  # noqa: B027 - optional hook
        """Rewrite the stored form compactly (a checkpoint), where that means anything."""

    def close(self, state: State) -> None:  # noqa: B027 - optional hook
        """Release files and locks; ``state`` is the final memory, for a last checkpoint."""


#: The name of :class:`Storage` before the storage layer's classes all ended in ``Storage``.
Store = Storage
