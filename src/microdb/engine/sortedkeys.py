"""A sorted set of distinct keys kept as a list of sorted chunks, placed when first read.

An index needs its distinct values in order (for ranges and ordered scans) and must take
one new value at a time. A single sorted list with ``bisect.insort`` moves half the list
on every insert, so inserting a million keys one by one costs more per key the bigger the
index grows. Chunks of at most :data:`CHUNK` keys bound that move; a second list holding
each chunk's largest key finds the chunk with one ``bisect``. Splitting a full chunk moves
only the (short) list of chunks. This is the layout the ``sortedcontainers`` package made
well known; the handful of operations an index needs fit in this module, so the core
keeps needing only the standard library.

Even so, placing one key at a million keys costs about twenty comparisons with keys
scattered through memory, each a cache miss, and the time per insert grew severalfold
from ten thousand keys to a million. So :meth:`SortedKeys.add` only notes the key (an
append), and the first read that needs the order places every noted key at once: one by
one when they are few against the keys in place, else by one ``list.sort`` of both (two
sorted runs merged in C, which reads memory in order). A burst of inserts then costs the
same per key at any size, and the work moves to the next range or ordered scan, which
costs less in all than placing each key as it came. Equality lookups and unique checks
never wait for it: the index answers them from its hash.

Keys of one structure must be comparable with each other (the index keeps numbers,
strings and other kinds apart for that reason).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

__all__ = ["CHUNK", "REBUILD", "SortedKeys"]

#: Largest chunk; a full one is split in two halves. Around a thousand keeps both the move
#: inside a chunk and the number of chunks small up to tens of millions of keys.
CHUNK = 1024
#: Noted keys are placed one by one (sorted first) while they number less than the placed
#: keys over this, else by sorting everything once. Measured at a million placed keys: one
#: by one cost 3.5 to 4 µs a key, sorting everything 0.7 to 0.9 µs per key of the total.
REBUILD = 2


class SortedKeys:
    """Distinct, mutually comparable keys in ascending order."""

    __slots__ = ("_chunks", "_maxes", "_placed", "_noted")

    def __init__(self) -> None:
        self._chunks: list[list[Any]] = []
        #: the last (largest) key of each chunk
        self._maxes: list[Any] = []
        #: how many keys the chunks hold
        self._placed = 0
        #: keys added since the last read, in no order (see the module's docstring)
        self._noted: list[Any] = []

    def __len__(self) -> int:
        return self._placed + len(self._noted)

    def __iter__(self) -> Iterator[Any]:
        if self._noted:
            self._place()
        return chain.from_iterable(self._chunks)

    def __reversed__(self) -> Iterator[Any]:
        if self._noted:
            self._place()
        return chain.from_iterable(reversed(c) for c in reversed(self._chunks))

    def clear(self) -> None:
        """Forget every key."""
        self._chunks = []
        self._maxes = []
        self._placed = 0
        self._noted = []

    def add(self, key: Any) -> None:
        """Insert ``key``, which must not be present (it is placed at the next read)."""
        self._noted.append(key)

    def _place(self) -> None:
        """Put the noted keys into the chunks."""
        noted = self._noted
        self._noted = []
        if len(noted) * REBUILD < self._placed:
            noted.sort()  # neighbours go to the same chunk, which is then still in the cache
            for key in noted:
                self._insert(key)
            return
        # Many keys: one sort of everything. The keys in place are one sorted run, so
        # sorting them with the noted ones (sorted first: a second run) is one merge.
        noted.sort()
        keys = list(chain.from_iterable(self._chunks))
        keys += noted
        keys.sort()
        # New lists (iterators already handed out keep reading the old ones), half full
        # so that the next keys placed one by one do not split every chunk at once.
        half = CHUNK >> 1
        self._chunks = [keys[i:i + half] for i in range(0, len(keys), half)]
        self._maxes = [chunk[-1] for chunk in self._chunks]
        self._placed = len(keys)

    def _insert(self, key: Any) -> None:
        """Place one key in its chunk (splitting a full one)."""
        maxes = self._maxes
        if not maxes:
            self._chunks.append([key])
            maxes.append(key)
            self._placed = 1
            return
        i = bisect.bisect_left(maxes, key)
        if i == len(maxes):
            # Past the largest key (ascending ids, timestamps): append to the last chunk.
            i -= 1
            chunk = self._chunks[i]
            chunk.append(key)
            maxes[i] = key
        else:
            chunk = self._chunks[i]
            bisect.insort(chunk, key)
        self._placed += 1
        if len(chunk) > CHUNK:
            half = len(chunk) >> 1
            self._chunks.insert(i + 1, chunk[half:])
            del chunk[half:]
            maxes.insert(i, chunk[-1])

    def discard(self, key: Any) -> None:
        """Remove ``key`` if present."""
        if self._noted:
            self._place()
        maxes = self._maxes
        i = bisect.bisect_left(maxes, key)
        if i == len(maxes):
            return
        chunk = self._chunks[i]
        j = bisect.bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            return
        del chunk[j]
        self._placed -= 1
        if not chunk:
            del self._chunks[i]
            del maxes[i]
        elif j == len(chunk):
            maxes[i] = chunk[-1]

    # -- ranges ------------------------------------------------------------------------
    def _position(self, key: Any, right: bool) -> tuple[int, int]:
        """(chunk, offset) of the first key above ``key`` (right) or not below it (left)."""
        maxes = self._maxes
        i = bisect.bisect_right(maxes, key) if right else bisect.bisect_left(maxes, key)
        if i == len(maxes):
            return i, 0
        chunk = self._chunks[i]
        return i, (bisect.bisect_right(chunk, key) if right else bisect.bisect_left(chunk, key))

    def _bounds(self, low: Any, low_inclusive: bool, high: Any, high_inclusive: bool) -> tuple[int, int, int, int]:
        if self._noted:
            self._place()
        start = (0, 0) if low is None else self._position(low, not low_inclusive)
        stop = (len(self._chunks), 0) if high is None else self._position(high, high_inclusive)
        return start[0], start[1], stop[0], stop[1]

    def irange(
        self, low: Any = None, low_inclusive: bool = True, high: Any = None, high_inclusive: bool = True,
        reverse: bool = False,
    ) -> Iterator[Any]:
        """The keys between ``low`` and ``high`` (``None``: unbounded), ascending or not."""
        ci, co, si, so = self._bounds(low, low_inclusive, high, high_inclusive)
        if (ci, co) >= (si, so):
            return iter(())
        chunks = self._chunks
        if ci == si:
            part = chunks[ci][co:so]
            return reversed(part) if reverse else iter(part)
        pieces = [chunks[ci][co:] if co else chunks[ci], *chunks[ci + 1:si]]
        if si < len(chunks) and so:
            pieces.append(chunks[si][:so])
        if reverse:
            return chain.from_iterable(reversed(p) for p in reversed(pieces))
        return chain.from_iterable(pieces)

    def count(self, low: Any = None, low_inclusive: bool = True, high: Any = None, high_inclusive: bool = True) -> int:
        """How many keys :meth:`irange` would yield (one pass over the chunk lengths)."""
        ci, co, si, so = self._bounds(low, low_inclusive, high, high_inclusive)
        if (ci, co) >= (si, so):
            return 0
        chunks = self._chunks
        if ci == si:
            return so - co
        total = len(chunks[ci]) - co + so
        for chunk in islice(chunks, ci + 1, si):
            total += len(chunk)
        return total
