"""In-memory indexes: a hash from value to document ids, plus the distinct values in order.

One :class:`Index` answers equality and ``one_of`` through its hash, and ranges and ordered
scans through its sorted keys (:class:`~microdb.engine.sortedkeys.SortedKeys`, a list of
sorted chunks, so inserting stays as cheap at a million keys as at ten thousand). Values
are filed under one *key* per value such that ``1`` and ``1.0`` share an entry while
``True`` does not, and values of different kinds never collide: a string or a number is
its own key (they compare and hash fastest as they are, and need no wrapping tuple), any
other value is filed under its :func:`~microdb.query.values.sort_key`. Numbers, strings
and the other keys live in three sorted structures, read in MicroDB's order of kinds.

An array value is filed under the whole array and under each of its elements (a
*multikey* index), so MongoDB-style "array contains" filters can use it; the planner
always re-checks candidates with the full predicate, so an index only has to return a
superset. Indexes hold ids, never documents: one id alone as an ``int`` (most keys of a
big index hold one document, and a set per key would triple its memory), several as a set.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Iterable, Iterator
from itertools import chain
from typing import Any

from microdb.compile.python import resolve
from microdb.engine.sortedkeys import SortedKeys
from microdb.errors import DuplicateKeyError
from microdb.handover import pacer
from microdb.query.ast import Path, path_repr
from microdb.query.values import KIND_RANK, MISSING, sort_key

__all__ = ["Index", "file_key", "ids_of"]

_NUMBER, _STRING = KIND_RANK["number"], KIND_RANK["string"]
#: The sort-key prefix shared by every finite number, and by every string.
_NUMBER_PREFIX, _STRING_PREFIX = (_NUMBER, 1), (_STRING,)
_ARRAYS = (list, tuple, set, frozenset)


def file_key(value: Any) -> Any:
    """The key an index files ``value`` under: the value itself for strings and finite numbers."""
    t = type(value)
    if t is str:
        return value
    if (t is int or t is float) and value == value:
        return value
    sk = sort_key(value)
    if sk[0] == _NUMBER and sk[1] == 1:
        return sk[2]
    if sk[0] == _STRING:
        return sk[1]
    return sk


def ids_of(held: int | set[int] | None) -> set[int]:
    """The ids an entry holds as a set (a new one when the entry holds one id or none)."""
    if held is None:
        return set()
    if type(held) is int:
        return {held}
    return held  # type: ignore[return-value]


def ids_under(entries: dict[Any, Any], keys: Iterable[Any]) -> set[int]:
    """The ids filed under ``keys`` in an index's ``entries`` (one id, or a set of them, a key)."""
    out: set[int] = set()
    pace = pacer()  # a read for the event loop: a tick after each key (microdb.handover)
    for key in keys:
        held = entries[key]
        if type(held) is int:
            out.add(held)
        else:
            out |= held
            if pace is not None:
                pace.tick()
    return out


def ids_in_order(entries: dict[Any, Any], keys: Iterable[Any], need: int | None,
                 taken: int = 0) -> Generator[int, None, int]:
    """The ids filed under ``keys``, key by key, ids under one key in id order; returns how
    many ids were yielded after ``taken`` earlier ones. With ``need`` (how many the caller
    may take at most), a large set's ``need - taken`` smallest ids come first."""
    for key in keys:
        held = entries[key]
        if type(held) is int:
            yield held
            taken += 1
            continue
        yield from _in_order(held, None if need is None else max(need - taken, 0))
        taken += len(held)
    return taken


def _lane_bounds(
    prefix: tuple[Any, ...], low: Any, low_inc: bool, high: Any, high_inc: bool,
) -> tuple[Any, bool, Any, bool] | None:
    """Translate sort-key bounds into bounds on the raw values of one lane (``None``: empty).

    Every key of the lane is ``prefix + (raw,)`` in sort-key terms.
    """
    n = len(prefix)
    lo: Any = None
    if low is not None:
        head = low[:n]
        if head > prefix:
            return None
        if head == prefix and len(low) > n:
            lo = low[n]
    hi: Any = None
    if high is not None:
        head = high[:n]
        if head < prefix or (head == prefix and len(high) == n):
            return None
        if head == prefix:
            hi = high[n]
    return lo, low_inc, hi, high_inc


def _in_order(ids: Iterable[int], need: int | None) -> Iterator[int]:
    # A large group the caller may take only a few ids of: its ``need`` smallest first.
    group = ids if isinstance(ids, (set, frozenset)) else set(ids)
    if need is not None and len(group) > 4 * max(need, 1):
        first = heapq.nsmallest(need, group)
        yield from first
        yield from sorted(group.difference(first))
        return
    yield from sorted(group)


class Index:
    """One index over one path of one table."""

    __slots__ = ("path", "unique", "entries", "numbers", "strings", "others", "missing", "multikey",
                 "through_arrays", "filed", "scalars", "_table", "_step")

    def __init__(self, path: Path, unique: bool = False, table: str = ""):
        self.path = path
        self.unique = unique
        self._table = table
        #: key (see :func:`file_key`) -> the id holding it, or the set of ids
        self.entries: dict[Any, Any] = {}
        #: the distinct keys in order: finite numbers, strings, and every other kind
        self.numbers = SortedKeys()
        self.strings = SortedKeys()
        self.others = SortedKeys()
        #: ids of documents without a value at the path
        self.missing: set[int] = set()
        #: how many documents hold an array at the path (then ordered scans are off)
        self.multikey = 0
        #: how many documents hold an array part of the way along the path (at a proper
        #: prefix of it); while none do, MongoDB-style "through an array" branches of a
        #: query on this path cannot match, and the planner drops them
        self.through_arrays = 0
        #: how many (id, key) pairs are filed, for estimates
        self.filed = 0
        #: how many documents hold a value that is not an array (while none do, "array
        #: holds x" answers from the index are exact)
        self.scalars = 0
        #: the key of a one-step path (most indexes), read with one ``dict.get``
        self._step = path[0] if len(path) == 1 and type(path[0]) is str else None

    def value_of(self, doc: dict[str, Any]) -> Any:
        """The value the index files ``doc`` by (``MISSING`` when there is none)."""
        step = self._step
        if step is not None and type(doc) is dict:
            return doc.get(step, MISSING)
        return resolve(doc, self.path)

    def describe(self) -> dict[str, Any]:
        """The index definition as stored with the data."""
        return {"path": list(self.path), "unique": self.unique}

    def _lane(self, key: Any) -> SortedKeys:
        t = type(key)
        if t is str:
            return self.strings
        if t is tuple:
            return self.others
        return self.numbers

    def keys_of(self, doc: dict[str, Any]) -> list[Any]:
        """The keys a document is filed under (empty when the path is missing)."""
        value = self.value_of(doc)
        if value is MISSING:
            return []
        whole = file_key(value)
        if isinstance(value, _ARRAYS):
            keys = {whole}
            for item in value:
                keys.add(file_key(item))
            return list(keys)
        return [whole]

    def check(self, doc_id: int, doc: dict[str, Any], pending: dict[Any, int] | None = None) -> None:
        """Raise ``DuplicateKeyError`` if ``doc`` would break this unique index."""
        if not self.unique:
            return
        value = self.value_of(doc)
        if value is MISSING:
            return
        key = file_key(value)
        other = other_holder(self.entries, key, doc_id)
        if other is not None or (pending is not None and not claim(pending, key, doc_id)):
            raise clash(f"unique index on {path_repr(self.path)} of table {self._table!r}", repr(value), other)

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

    def _file(self, key: Any, doc_id: int) -> None:
        filed = file(self.entries, key, doc_id)
        if filed:
            self.filed += 1
            if filed == NEW:
                self._lane(key).add(key)

    def _unfile(self, key: Any, doc_id: int) -> None:
        taken = unfile(self.entries, key, doc_id)
        if taken:
            self.filed -= 1
            if taken == EMPTIED:
                self._lane(key).discard(key)

    def add(self, doc_id: int, doc: dict[str, Any]) -> None:
        """File a document."""
        if len(self.path) > 1 and self._crosses_array(doc):
            self.through_arrays += 1
        value = self.value_of(doc)
        if value is MISSING:
            self.missing.add(doc_id)
            return
        if isinstance(value, _ARRAYS):
            self.multikey += 1
            for key in self.keys_of(doc):
                self._file(key, doc_id)
        else:
            self.scalars += 1
            self._file(file_key(value), doc_id)

    def add_new(self, doc_id: int, doc: dict[str, Any]) -> None:
        """File a document not filed yet, checking a unique index first (``DuplicateKeyError``
        then, with nothing changed): :meth:`check` and :meth:`add` in one.

        A single insert runs this for every index; the usual value (a string or a finite
        number at a one-step path) is looked up once, where the two steps looked it up and
        classified it twice.
        """
        step = self._step
        if step is not None and type(doc) is dict:
            value = doc.get(step, MISSING)
            t = type(value)
            if t is str or ((t is int or t is float) and value == value):
                entries = self.entries
                # One hash lookup that also files a new value: the document is not filed
                # yet, so the value holds ``doc_id`` only if this call just put it there.
                held = entries.setdefault(value, doc_id)
                if held is doc_id:
                    (self.strings if t is str else self.numbers).add(value)
                elif self.unique:
                    self._taken(value, held)
                elif type(held) is int:
                    entries[value] = {held, doc_id}
                else:
                    held.add(doc_id)
                self.filed += 1
                self.scalars += 1
                return
        if self.unique:
            self.check(doc_id, doc)
        self.add(doc_id, doc)

    def _taken(self, value: Any, held: int | set[int]) -> None:
        raise clash(f"unique index on {path_repr(self.path)} of table {self._table!r}", repr(value), min(ids_of(held)))

    def remove(self, doc_id: int, doc: dict[str, Any]) -> None:
        """Unfile a document (exactly as it was filed)."""
        if len(self.path) > 1 and self._crosses_array(doc):
            self.through_arrays -= 1
        value = self.value_of(doc)
        if value is MISSING:
            self.missing.discard(doc_id)
            return
        if isinstance(value, _ARRAYS):
            self.multikey -= 1
            for key in self.keys_of(doc):
                self._unfile(key, doc_id)
        else:
            self.scalars -= 1
            self._unfile(file_key(value), doc_id)

    def build(self, docs: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """File every document (checking uniqueness), from empty."""
        self.entries.clear()
        self.numbers.clear()
        self.strings.clear()
        self.others.clear()
        self.missing.clear()
        self.multikey = 0
        self.through_arrays = 0
        self.filed = 0
        self.scalars = 0
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
        return ids_of(self.entries.get(file_key(value)))

    def size_of(self, value: Any) -> int:
        """How many documents :meth:`equal` would return."""
        held = self.entries.get(file_key(value))
        return 0 if held is None else 1 if type(held) is int else len(held)

    def _keys_between(self, low: Any, low_inclusive: bool, high: Any, high_inclusive: bool) -> list[Iterator[Any]]:
        """The keys in a range given as sort keys (``None``: open), as iterators per lane."""
        out = [self.others.irange(low, low_inclusive, high, high_inclusive)]
        for prefix, lane in ((_NUMBER_PREFIX, self.numbers), (_STRING_PREFIX, self.strings)):
            bounds = _lane_bounds(prefix, low, low_inclusive, high, high_inclusive)
            if bounds is not None and len(lane):
                out.append(lane.irange(*bounds))
        return out

    def between(self, low: Any, low_inclusive: bool, high: Any, high_inclusive: bool) -> set[int]:
        """Ids whose value lies in the range, bounds given as sort keys (``None`` = open)."""
        return ids_under(self.entries, chain.from_iterable(self._keys_between(low, low_inclusive, high, high_inclusive)))

    def count_between(self, low: Any, low_inclusive: bool, high: Any, high_inclusive: bool) -> int:
        """An estimate of :meth:`between`'s size, cheap enough for planning."""
        keys = self.others.count(low, low_inclusive, high, high_inclusive)
        for prefix, lane in ((_NUMBER_PREFIX, self.numbers), (_STRING_PREFIX, self.strings)):
            bounds = _lane_bounds(prefix, low, low_inclusive, high, high_inclusive)
            if bounds is not None and len(lane):
                keys += lane.count(*bounds)
        if keys > 64:
            # Many distinct keys: assume an even spread rather than summing them all.
            return int(self.filed * keys / max(1, len(self.entries)))
        return sum(self.size_of_key(k) for ks in self._keys_between(low, low_inclusive, high, high_inclusive)
                   for k in ks)

    def size_of_key(self, key: Any) -> int:
        """How many ids are filed under ``key``."""
        held = self.entries.get(key)
        return 0 if held is None else 1 if type(held) is int else len(held)

    def ordered_keys(self, reverse: bool = False) -> Iterator[Any]:
        """Every key in MicroDB's order of values (kind first: see ``sort_key``)."""
        # Other kinds rank below numbers (null, NaN) or above strings; ranks between them
        # (numbers past NaN, strings) are never in ``others``.
        below = self.others.irange(None, True, _NUMBER_PREFIX, False, reverse)
        above = self.others.irange(_NUMBER_PREFIX, True, None, True, reverse)
        if reverse:
            parts = (above, reversed(self.strings), reversed(self.numbers), below)
        else:
            parts = (below, iter(self.numbers), iter(self.strings), above)
        for part in parts:
            yield from part

    def scan(self, reverse: bool = False, need: int | None = None) -> Iterator[int]:
        """Ids in the order of their values (missing first ascending, last descending).

        Ids under one value come in id order. ``need`` hints how many ids the caller
        expects to take: a large group is then started with its ``need`` smallest ids
        instead of being sorted whole.
        """
        taken = 0
        if not reverse and self.missing:
            for doc_id in _in_order(self.missing, need):
                yield doc_id
                taken += 1
        taken = yield from ids_in_order(self.entries, self.ordered_keys(reverse), need, taken)
        if reverse and self.missing:
            yield from _in_order(self.missing, None if need is None else max(need - taken, 0))


def claim(pending: dict[Any, int], key: Any, doc_id: int) -> bool:
    """Record that ``doc_id`` takes ``key`` in one write's ``pending`` keys of a unique index;
    false (nothing recorded) if another document of the same write took it first. The caller
    words the error: building its message for every document cost more than the check."""
    other_id = pending.setdefault(key, doc_id)
    return other_id == doc_id


def other_holder(entries: dict[Any, Any], key: Any, doc_id: int) -> int | None:
    """The smallest id other than ``doc_id`` filed under ``key`` in an index's ``entries``."""
    held = entries.get(key)
    if held is None or held == doc_id:
        return None
    if type(held) is int:
        return held
    return min((i for i in held if i != doc_id), default=None)


def clash(index: str, values: str, other: int | None) -> DuplicateKeyError:
    """The error of a unique ``index`` (named) refusing ``values``, held by document ``other``
    or (``None``) by two documents of one write."""
    if other is None:
        return DuplicateKeyError(f"{index}: {values} in two documents of one write; nothing was changed")
    return DuplicateKeyError(f"{index} already holds {values} (document {other}); nothing was changed")


FILED, NEW = 1, 2


def file(entries: dict[Any, Any], key: Any, doc_id: int) -> int:
    """Add ``doc_id`` to the holders of ``key`` in an index's ``entries`` (one id, or a set of
    two or more): 0 when it was there already, ``FILED``, or ``NEW`` when ``key`` had no
    holder (the caller then adds ``key`` to its sorted keys)."""
    held = entries.get(key)
    if held is None:
        entries[key] = doc_id
        return NEW
    if type(held) is int:
        if held == doc_id:
            return 0
        entries[key] = {held, doc_id}
        return FILED
    if doc_id in held:
        return 0
    held.add(doc_id)
    return FILED


TAKEN, EMPTIED = 1, 2


def unfile(entries: dict[Any, Any], key: Any, doc_id: int) -> int:
    """Take ``doc_id`` off the holders of ``key`` in an index's ``entries`` (one id, or a set
    of two or more): 0 when it was not there, ``TAKEN``, or ``EMPTIED`` when no holder is
    left (the caller then drops ``key`` from its sorted keys)."""
    held = entries.get(key)
    if held is None:
        return 0
    if type(held) is int:
        if held != doc_id:
            return 0
        del entries[key]
        return EMPTIED
    if doc_id not in held:
        return 0
    held.discard(doc_id)
    if len(held) == 1:
        entries[key] = next(iter(held))
    return TAKEN
