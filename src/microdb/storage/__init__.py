"""Storages under the in-memory engine: memory, any mapping, the journaled JSON file.

A storage keeps the data of :class:`~microdb.engine.MemoryBackend` between runs; it knows
documents, ids and batches of changes, never tables' queries or results. The SQL engine
is a separate backend (:mod:`microdb.sql`).

Every class here ends in ``Storage``. ``Store`` and ``MappingStore`` are the former names
of :class:`Storage` and :class:`MappingStorage`, kept as aliases.
"""

from __future__ import annotations

from microdb.storage.base import Storage, Store
from microdb.storage.mapping import InMemoryStorage, MappingStorage, MappingStore

__all__ = ["InMemoryStorage", "MappingStorage", "MappingStore", "Storage", "Store"]
