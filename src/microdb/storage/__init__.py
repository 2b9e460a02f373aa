"""Where a database keeps its data: memory, any mapping, a JSON file, or a SQL engine."""

from __future__ import annotations

from microdb.storage.base import Store
from microdb.storage.mapping import InMemoryStorage, MappingStore

__all__ = ["InMemoryStorage", "MappingStore", "Store"]
