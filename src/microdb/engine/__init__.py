"""The in-memory engine: every table in memory, its indexes and planner, over a storage.

:class:`~microdb.engine.memory.MemoryBackend` runs queries and transactions in memory and
hands each commit to a :class:`~microdb.storage.base.Storage` (memory, a mapping, the JSON
file). Its indexes are in :mod:`microdb.engine.index`, its planner in
:mod:`microdb.engine.planner`.
"""

from __future__ import annotations

from microdb.engine.memory import MemoryBackend

__all__ = ["MemoryBackend"]
