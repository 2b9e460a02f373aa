"""A sorted set of distinct keys kept as a list of sorted chunks.

An index needs its distinct values in order (for ranges and ordered scans) and must take
one new value at a time. A single sorted list with ``bisect.insort`` moves half the list
on every insert, so inserting a million keys one by one costs more per key the bigger the
index grows. Chunks of at most :data:`CHUNK` keys bound that move; a second list holding
each chunk's largest key finds the chunk with one ``bisect``. Splitting a full chunk moves
only the (short) list of chunks. This is the layout the ``sortedcontainers`` package made
well known; the handful of operations an index needs fit in this module, so the core
keeps needing only the standard library.

Keys of one structure must be comparable with each other (the index keeps numbers,
strings and other kinds apart for that reason).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

__all__ = ["CHUNK", "SortedKeys"]

#: Largest chunk; a full one is split in two halves. Around a thousand keeps both the move
#: inside a chunk and the number of chunks small up to tens of millions of keys.
CHUNK = 1024


class SortedKeys:
    """Distinct, mutually comparable keys in ascending order."""

    __slots__ = ("_chunks", "_maxes", "_size")

    def __init__(self) -> None:
        self._chunks: list[list[Any]] = []
        #: the last (largest) key of each chunk
        self._maxes: list[Any] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        return chain.from_iterable(self._chunks)

    def __reversed__(self) -> Iterator[Any]:
        return chain.from_iterable(reversed(c) for c in reversed(self._chunks))

    def clear(self) -> None:
        """Forget every key."""
        self._chunks.clear()
        self._maxes.clear()
        self._size = 0

    def add(self, key: Any) -> None:
        """Insert ``key``, which must not be present."""
        maxes = self._maxes
        if not maxes:
            self._chunks.append([key])
            maxes.append(key)
            self._size = 1
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
        self._size += 1
        if len(chunk) > CHUNK:
            half = len(chunk) >> 1
            self._chunks.insert(i + 1, chunk[half:])
            del chunk[half:]
            maxes.insert(i, chunk[-1])

    def discard(self, key: Any) -> None:
        """Remove ``key`` if present."""
        maxes = self._maxes
        i = bisect.bisect_left(maxes, key)
        if i == len(maxes):
            return
        chunk = self._chunks[i]
        j = bisect.bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            return
        del chunk[j]
        self._size -= 1
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
