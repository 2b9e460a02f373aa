"""Compound indexes: one index over several paths, ordered by the first, then the next.

``table.create_index('city', 'age')`` files every document under the tuple of its values'
:func:`~microdb.query.values.sort_key` s, in the order of the paths, and keeps the distinct
tuples sorted (:class:`~microdb.engine.sortedkeys.SortedKeys`). So one index answers
equality on a prefix of its paths (``city == X``), a range on the next path after that
prefix (``city == X and age < Y``), and a sort on the paths after the prefix (``city == X``
sorted by ``age``), reading only the matching keys.

A document missing a path is filed with the missing value's key (lowest of all), so a
prefix query still finds it; a unique compound index ignores documents missing any of
its paths (as SQL unique indexes ignore rows with a NULL). Arrays are filed whole: while any document holds an array (or goes through one)
along an indexed path, the planner does not use the index, since MongoDB-style queries
look inside arrays and a whole-array key cannot answer them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from microdb.compile.python import resolve
from microdb.engine.index import (
    EMPTIED,
    NEW,
    claim,
    clash,
    file,
    ids_in_order,
    ids_under,
    other_holder,
    unfile,
)
from microdb.engine.sortedkeys import SortedKeys
from microdb.query.ast import Path, path_repr
from microdb.query.values import MISSING, sort_key

__all__ = ["TOP", "CompoundIndex"]

#: Above every sort key (their first item is a small rank), as the end of a prefix range.
TOP: tuple[int] = (1 << 30,)
_MISSING_KEY = sort_key(MISSING)
_ARRAYS = (list, tuple, set, frozenset)


class CompoundIndex:
    """One index over several paths of one table."""

    __slots__ = ("paths", "unique", "entries", "keys", "arrays", "filed", "_table")

    def __init__(self, paths: tuple[Path, ...], unique: bool = False, table: str = ""):
        self.paths = paths
        self.unique = unique
        self._table = table
        #: key (a tuple of sort keys) -> the id holding it, or the set of ids
        self.entries: dict[tuple[Any, ...], Any] = {}
        self.keys = SortedKeys()
        #: documents holding an array at, or on the way to, an indexed path
        self.arrays = 0
        self.filed = 0

    def describe(self) -> dict[str, Any]:
        """The index definition as stored with the data."""
        return {"paths": [list(p) for p in self.paths], "unique": self.unique}

    def label(self) -> str:
        """How ``explain()`` names this index."""
        return "index (" + ", ".join(path_repr(p) for p in self.paths) + ")"

    def _key(self, doc: dict[str, Any]) -> tuple[tuple[Any, ...], bool]:
        """The key of ``doc`` and whether an array lies along one of the paths."""
        parts = []
        arrays = False
        for path in self.paths:
            value: Any = doc
            for step in path:
                if isinstance(value, _ARRAYS):
                    arrays = True
                value = resolve(value, (step,))
                if value is MISSING:
                    break
            if isinstance(value, _ARRAYS):
                arrays = True
            parts.append(sort_key(value))
        return tuple(parts), arrays

    def check(self, doc_id: int, doc: dict[str, Any], pending: dict[Any, int] | None = None) -> None:
        """Raise ``DuplicateKeyError`` if ``doc`` would break this unique index."""
        if not self.unique:
            return
        key, _ = self._key(doc)
        if _MISSING_KEY in key:
            return
        other = other_holder(self.entries, key, doc_id)
        if other is not None or (pending is not None and not claim(pending, key, doc_id)):
            raise clash(f"unique index on {self.label()[6:]} of table {self._table!r}",
                        "these values" if other is not None else "the same values", other)

    def add(self, doc_id: int, doc: dict[str, Any]) -> None:
        """File a document."""
        key, arrays = self._key(doc)
        self.arrays += arrays
        filed = file(self.entries, key, doc_id)
        if filed:
            self.filed += 1
            if filed == NEW:
                self.keys.add(key)

    def add_new(self, doc_id: int, doc: dict[str, Any]) -> None:
        """File a document not filed yet, checking a unique index first (nothing changed
        when it raises ``DuplicateKeyError``)."""
        if self.unique:
            self.check(doc_id, doc)
        self.add(doc_id, doc)

    def remove(self, doc_id: int, doc: dict[str, Any]) -> None:
        """Unfile a document (exactly as it was filed)."""
        key, arrays = self._key(doc)
        self.arrays -= arrays
        taken = unfile(self.entries, key, doc_id)
        if taken:
            self.filed -= 1
            if taken == EMPTIED:
                self.keys.discard(key)

    def build(self, docs: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """File every document (checking uniqueness), from empty."""
        self.entries.clear()
        self.keys.clear()
        self.arrays = 0
        self.filed = 0
        pending: dict[Any, int] | None = {} if self.unique else None
        for doc_id, doc in docs:
            if pending is not None:
                self.check(doc_id, doc, pending)
            self.add(doc_id, doc)

    # -- lookups ---------------------------------------------------------------------
    @staticmethod
    def bounds(prefix: tuple[Any, ...], low: Any = None, low_inclusive: bool = True,
               high: Any = None, high_inclusive: bool = True) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Key bounds (from inclusive, to exclusive) for ``prefix`` and a range on the next path.

        ``prefix`` holds the sort keys of the values the first paths equal; ``low`` and
        ``high`` are sort keys (``None``: open) bounding the path after them.
        """
        if low is None:
            start = prefix
        else:
            start = prefix + ((low,) if low_inclusive else (low, TOP))
        if high is None:
            stop = prefix + (TOP,)
        else:
            stop = prefix + ((high, TOP) if high_inclusive else (high,))
        return start, stop

    def lookup(self, start: tuple[Any, ...], stop: tuple[Any, ...]) -> set[int]:
        """Ids filed under keys from ``start`` (inclusive) to ``stop`` (exclusive)."""
        return ids_under(self.entries, self.keys.irange(start, True, stop, False))

    def estimate(self, start: tuple[Any, ...], stop: tuple[Any, ...]) -> int:
        """An estimate of :meth:`lookup`'s size, cheap enough for planning."""
        keys = self.keys.count(start, True, stop, False)
        if keys > 64:
            return int(self.filed * keys / max(1, len(self.entries)))
        return len(self.lookup(start, stop))

    def scan(self, start: tuple[Any, ...], stop: tuple[Any, ...], reverse: bool = False,
             need: int | None = None) -> Iterator[int]:
        """Ids in key order between the bounds; ids under one key come in id order."""
        yield from ids_in_order(self.entries, self.keys.irange(start, True, stop, False, reverse), need)
