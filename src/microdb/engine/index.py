"""In-memory indexes: a hash from value to document ids, plus the sorted list of distinct values.

One :class:`Index` answers equality and ``one_of`` through its hash, and ranges and ordered
scans through the sorted keys (``bisect``). Values are filed under
:func:`~microdb.query.values.sort_key`, so ``1`` and ``1.0`` share an entry while ``True``
does not, and values of different kinds never collide. An array value is filed under the
whole array and under each of its elements (a *multikey* index), so MongoDB-style
"array contains" filters can use it; the planner always re-checks candidates with the full
predicate, so an index only has to return a superset. Indexes hold ids, never documents.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator
from typing import Any

from microdb.compile.python import resolve
from microdb.errors import DuplicateKeyError
from microdb.query.ast import Path, path_repr
from microdb.query.values import MISSING, sort_key

__all__ = ["Index"]


class Index:
    """One index over one path of one table."""

    __slots__ = ("path", "unique", "entries", "order", "missing", "multikey", "through_arrays", "_table")

    def __init__(self, path: Path, unique: bool = False, table: str = ""):
        self.path = path
        self.unique = unique
        self._table = table
        #: sort key -> ids (a set) holding that value
        self.entries: dict[Any, set[int]] = {}
        #: distinct sort keys, ascending
        self.order: list[Any] = []
        #: ids of documents without a value at the path
        self.missing: set[int] = set()
        #: how many documents hold an array at the path (then ordered scans are off)
        self.multikey = 0
        #: how many documents hold an array part of the way along the path (at a proper
        #: prefix of it); while none do, MongoDB-style "through an array" branches of a
        #: query on this path cannot match, and the planner drops them
        self.through_arrays = 0

    def describe(self) -> dict[str, Any]:
        """The index definition as stored with the data."""
        return {"path": list(self.path), "unique": self.unique}

    def keys_of(self, doc: dict[str, Any]) -> list[Any]:
        """The sort keys a document is filed under (empty when the path is missing)."""
        value = resolve(doc, self.path)
        if value is MISSING:
            return []
        whole = sort_key(value)
        if isinstance(value, (list, tuple, set, frozenset)):
            keys = {whole}
            for item in value:
                keys.add(sort_key(item))
            return list(keys)
        return [whole]

    def check(self, doc_id: int, doc: dict[str, Any], pending: dict[Any, int] | None = None) -> None:
        """Raise ``DuplicateKeyError`` if ``doc`` would break this unique index."""
        if not self.unique:
            return
        value = resolve(doc, self.path)
        if value is MISSING:
            return
        key = sort_key(value)
        holders = self.entries.get(key)
        if holders and (len(holders) > 1 or doc_id not in holders):
            other = next(i for i in holders if i != doc_id)
            raise DuplicateKeyError(
                f"unique index on {path_repr(self.path)} of table {self._table!r} already holds "
                f"{value!r} (document {other}); nothing was changed"
            )
        if pending is not None:
            other_id = pending.get(key)
            if other_id is not None and other_id != doc_id:
                raise DuplicateKeyError(
                    f"unique index on {path_repr(self.path)} of table {self._table!r}: "
                    f"{value!r} appears twice in one write; nothing was changed"
                )
            pending[key] = doc_id

    def _crosses_array(self, doc: dict[str, Any]) -> bool:
        value: Any = doc
        for step in self.path[:-1]:
            if isinstance(value, dict):
                value = value.get(step, MISSING)
            elif isinstance(value, (list, tuple)):
                return True
            else:
                return False
        return isinstance(value, (list, tuple))

    def add(self, doc_id: int, doc: dict[str, Any]) -> None:
        """File a document."""
        if len(self.path) > 1 and self._crosses_array(doc):
            self.through_arrays += 1
        value = resolve(doc, self.path)
        if value is MISSING:
            self.missing.add(doc_id)
            return
        if isinstance(value, (list, tuple, set, frozenset)):
            self.multikey += 1
            keys = self.keys_of(doc)
        else:
            keys = [sort_key(value)]
        for key in keys:
            ids = self.entries.get(key)
            if ids is None:
                self.entries[key] = {doc_id}
                bisect.insort(self.order, key)
            else:
                ids.add(doc_id)

    def remove(self, doc_id: int, doc: dict[str, Any]) -> None:
        """Unfile a document (exactly as it was filed)."""
        if len(self.path) > 1 and self._crosses_array(doc):
            self.through_arrays -= 1
        value = resolve(doc, self.path)
        if value is MISSING:
            self.missing.discard(doc_id)
            return
        is_array = isinstance(value, (list, tuple, set, frozenset))
        for key in self.keys_of(doc):
            ids = self.entries.get(key)
            if ids is None:
                continue
            ids.discard(doc_id)
            if not ids:
                del self.entries[key]
                pos = bisect.bisect_left(self.order, key)
                if pos < len(self.order) and self.order[pos] == key:
                    del self.order[pos]
        if is_array:
            self.multikey -= 1

    def build(self, docs: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """File every document (checking uniqueness), from empty."""
        self.entries.clear()
        self.order.clear()
        self.missing.clear()
        self.multikey = 0
        self.through_arrays = 0
        if self.unique:
            pending: dict[Any, int] = {}
            for doc_id, doc in docs:
                self.check(doc_id, doc, pending)
                self.add(doc_id, doc)
            return
        for doc_id, doc in docs:
            self.add(doc_id, doc)

    # -- lookups ---------------------------------------------------------------------
    def equal(self, value: Any) -> set[int]:
        """Ids of documents whose value (or an element of it) equals ``value``."""
        return self.entries.get(sort_key(value), set())

    def between(self, low: Any, low_inclusive: bool, high: Any, high_inclusive: bool) -> set[int]:
        """Ids whose value lies in the range, bounds given as sort keys (``None`` = open)."""
        order = self.order
        start = 0 if low is None else (
            bisect.bisect_left(order, low) if low_inclusive else bisect.bisect_right(order, low)
        )
        stop = len(order) if high is None else (
            bisect.bisect_right(order, high) if high_inclusive else bisect.bisect_left(order, high)
        )
        out: set[int] = set()
        entries = self.entries
        for key in order[start:stop]:
            out |= entries[key]
        return out

    def count_between(self, low: Any, low_inclusive: bool, high: Any, high_inclusive: bool) -> int:
        """An upper bound of :meth:`between`'s size, cheap enough for planning."""
        order = self.order
        start = 0 if low is None else (
            bisect.bisect_left(order, low) if low_inclusive else bisect.bisect_right(order, low)
        )
        stop = len(order) if high is None else (
            bisect.bisect_right(order, high) if high_inclusive else bisect.bisect_left(order, high)
        )
        if stop - start > 64:
            # Many distinct keys: assume an even spread rather than summing them all.
            total = sum(len(v) for v in self.entries.values()) if len(self.entries) < 4096 else len(self.entries) * 2
            return int(total * (stop - start) / max(1, len(order)))
        return sum(len(self.entries[k]) for k in order[start:stop])

    def scan(self, reverse: bool = False, need: int | None = None) -> Iterator[int]:
        """Ids in the order of their values (missing first ascending, last descending).

        Ids under one value come in id order. ``need`` hints how many ids the caller
        expects to take: a large group is then started with its ``need`` smallest ids
        instead of being sorted whole.
        """
        groups: list[set[int]] = []
        if not reverse:
            groups.append(self.missing)
        entries = self.entries
        for key in (reversed(self.order) if reverse else self.order):
            groups.append(entries[key])
            if need is not None and sum(len(g) for g in groups) > need:
                break
        else:
            need = None
        for group in groups[:-1] if need is not None else groups:
            yield from sorted(group)
        if need is not None:
            yield from self._scan_rest(groups[-1], len(groups) - 1, reverse, need)
            return
        if reverse:
            yield from sorted(self.missing)

    def _scan_rest(self, group: set[int], position: int, reverse: bool, need: int) -> Iterator[int]:
        # The group where ``need`` runs out: its smallest ids first, then the rest of the
        # scan if the caller still wants more (its filter may reject some ids).
        first = heapq.nsmallest(need, group) if len(group) > 4 * need else sorted(group)
        yield from first
        if len(first) < len(group):
            yield from sorted(group.difference(first))
        # ``position`` counts the group of missing ids, which comes first when ascending.
        keys = self.order[::-1] if reverse else self.order
        done = position + 1 if reverse else position
        for key in keys[done:]:
            yield from sorted(self.entries[key])
        if reverse:
            yield from sorted(self.missing)
