"""TinyDB's API on MicroDB: change ``tinydb`` to ``microdb.tinydb`` in your imports.

``from microdb.tinydb import TinyDB, Query`` gives a TinyDB 4 program the same classes,
methods, arguments and file format, with MicroDB underneath: a JSON file that survives
crashes and is shared safely by several processes, compiled queries, indexes, and a
query cache that is never stale. The submodules mirror TinyDB's: ``.table``,
``.storages``, ``.middlewares``, ``.queries``, ``.operations`` and ``.utils``. The
differences that remain are listed in ``docs/migrating-from-tinydb.md``.
"""

from __future__ import annotations

from microdb.tinydb.database import TinyDB
from microdb.tinydb.queries import Query, where
from microdb.tinydb.storages import JSONStorage, Storage

__all__ = ["JSONStorage", "Query", "Storage", "TinyDB", "where"]
