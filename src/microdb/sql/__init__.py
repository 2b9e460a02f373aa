"""The SQL engine: SQLite and PostgreSQL backends.

:class:`~microdb.sql.backend.SQLBackend` is shared by both: sessions and transactions
(:mod:`.session`), the table registry (:mod:`.registry`, :mod:`.schema`), writes
(:mod:`.writes`), reads (:mod:`.reads`, :mod:`.distinct`, :mod:`.rows`). Each engine
adds its driver: :mod:`.sqlite` (the standard library's ``sqlite3``) and :mod:`.postgres`
(``psycopg``, imported only when a PostgreSQL database is opened). Queries compile with
:mod:`microdb.compile.sql`.

The engine modules are imported on demand (``MicroDB('sqlite:///x.db')``), so importing
this package costs nothing.
"""

from __future__ import annotations

__all__: list[str] = []
