"""The indexes of one in-memory table, single-path and compound, kept and changed together.

Index definitions are stored with the table's metadata: ``{"path": [...], "unique": b}``
for an index on one path, ``{"paths": [[...], [...]], "unique": b}`` for a compound one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from microdb.engine.compound import CompoundIndex
from microdb.engine.index import Index
from microdb.query.ast import Path

__all__ = ["IndexSet", "spec_key"]

#: A path (single-path index) or a tuple of paths (compound index).
Key = tuple[Any, ...]
AnyIndex = Index | CompoundIndex


def spec_key(spec: dict[str, Any]) -> Key:
    """What identifies an index definition: its path, or the tuple of its paths."""
    if "paths" in spec:
        return tuple(tuple(p) for p in spec["paths"])
    return tuple(spec["path"])


def _paths_of(index: AnyIndex) -> tuple[Path, ...]:
    return index.paths if isinstance(index, CompoundIndex) else (index.path,)


def _position(step: Any) -> bool:
    return (type(step) is int) or (type(step) is str and step.isdigit() and step.isascii())


def _may_meet(path: Path, steps: tuple[str, ...]) -> bool:
    """Whether changing a document at ``steps`` may change its value at an index's ``path``.

    Only when neither path branches off the other at a field name: a change inside
    ``a.b`` leaves ``a.c`` alone. Array positions never count as branching off (setting
    ``a.3`` pads ``a.1`` with null, and ``1`` and ``01`` are the same position), nor does
    a step that is not a name (a function step).
    """
    for mine, theirs in zip(path, steps):
        if _position(mine) and _position(theirs):
            continue
        if type(mine) is not str and type(mine) is not int:
            return True
        if mine != theirs:
            return False
    return True


class IndexSet:
    """A table's live indexes: ``single`` by path, ``compound`` by tuple of paths."""

    __slots__ = ("single", "compound", "every", "_table")

    def __init__(self, table: str, specs: Iterable[dict[str, Any]] = (),
                 docs: dict[int, dict[str, Any]] | None = None):
        self._table = table
        self.single: dict[Path, Index] = {}
        self.compound: dict[tuple[Path, ...], CompoundIndex] = {}
        #: every index, for the write paths that keep them all
        self.every: tuple[AnyIndex, ...] = ()
        if docs is not None:
            self.sync(list(specs), docs)

    def __len__(self) -> int:
        return len(self.every)

    def copy(self) -> IndexSet:
        """A new set holding the same index objects (for undo)."""
        other = IndexSet(self._table)
        other.single = dict(self.single)
        other.compound = dict(self.compound)
        other.every = self.every
        return other

    def get(self, key: Key) -> AnyIndex | None:
        """The index identified by ``key``, if any."""
        if key and isinstance(key[0], tuple):
            return self.compound.get(key)
        return self.single.get(key)

    def new(self, key: Key, unique: bool) -> AnyIndex:
        """An empty index of the right kind for ``key`` (not added to the set)."""
        if key and isinstance(key[0], tuple):
            return CompoundIndex(key, unique, self._table)
        return Index(key, unique, self._table)

    def sync(self, specs: Sequence[dict[str, Any]], docs: dict[int, dict[str, Any]]) -> None:
        """Make the live indexes match ``specs``: drop the others, build the new ones."""
        wanted = {spec_key(spec): bool(spec.get("unique")) for spec in specs}
        for path, index in list(self.single.items()):
            if wanted.get(path) != index.unique:
                del self.single[path]
        for paths, compound in list(self.compound.items()):
            if wanted.get(paths) != compound.unique:
                del self.compound[paths]
        for key, unique in wanted.items():
            if self.get(key) is None:
                made = self.new(key, unique)
                made.build(docs.items())
                if isinstance(made, CompoundIndex):
                    self.compound[made.paths] = made
                else:
                    self.single[made.path] = made
        self.every = (*self.single.values(), *self.compound.values())

    def affected(self, touched: Sequence[tuple[str, ...]] | None) -> tuple[AnyIndex, ...]:
        """The indexes a change at the ``touched`` paths may move (``None``: any path, every index)."""
        if touched is None:
            return self.every
        return tuple(
            index for index in self.every
            if any(_may_meet(path, steps) for path in _paths_of(index) for steps in touched)
        )

    def check(self, docs: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Raise ``DuplicateKeyError`` if ``docs`` would break a unique index."""
        for index in self.every:
            if index.unique:
                pending: dict[Any, int] = {}
                for doc_id, doc in docs:
                    index.check(doc_id, doc, pending)

    def add_new(self, doc_id: int, doc: dict[str, Any]) -> None:
        """File a new document in every index, checking the unique ones as it goes; if one
        raises ``DuplicateKeyError``, the indexes already done are taken back first."""
        every = self.every
        done = 0
        try:
            for index in every:
                index.add_new(doc_id, doc)
                done += 1
        except BaseException:
            for index in every[:done]:
                index.remove(doc_id, doc)
            raise

    def describe(self) -> list[dict[str, Any]]:
        """The definitions, as stored with the data."""
        return [index.describe() for index in self.every]
