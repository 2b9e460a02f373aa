"""TinyDB's documented utility: :class:`LRUCache`, the query cache of a table."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar, overload

__all__ = ["LRUCache"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class LRUCache(MutableMapping[K, V], Generic[K, V]):
    """A mapping that keeps at most ``capacity`` entries, dropping the least recently used.

    ``capacity=None`` keeps everything; ``capacity=0`` keeps nothing.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.cache: OrderedDict[K, V] = OrderedDict()

    @property
    def lru(self) -> list[K]:
        """The keys, least recently used first."""
        return list(self.cache)

    @property
    def length(self) -> int:
        """How many entries are kept."""
        return len(self.cache)

    def clear(self) -> None:
        """Drop every entry."""
        self.cache.clear()

    def __len__(self) -> int:
        return len(self.cache)

    def __contains__(self, key: object) -> bool:
        return key in self.cache

    def __iter__(self) -> Iterator[K]:
        return iter(self.cache)

    def __getitem__(self, key: K) -> V:
        value = self.cache[key]
        self.cache.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self.set(key, value)

    def __delitem__(self, key: K) -> None:
        del self.cache[key]

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The value under ``key`` (now the most recently used), or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def set(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``, dropping the oldest entry when over capacity."""
        self.cache[key] = value
        self.cache.move_to_end(key)
        if self.capacity is not None:
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
