"""``MicroDB``: opens a storage, hands out tables, runs transactions."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import Any

from microdb.backend import Backend
from microdb.changes import ChangeStream, open_change_log
from microdb.engine import MemoryBackend
from microdb.errors import DatabaseClosedError, QueryError, SchemaError
from microdb.storage.base import Storage
from microdb.table import Table
from microdb.transfer import copy_database

__all__ = ["MicroDB", "open_backend"]


def open_backend(storage: Any, **options: Any) -> Backend:
    """The backend for what was passed to ``MicroDB(...)``.

    A ``str`` or path opens the JSON file storage, unless it is a URL (``sqlite:///x.db``,
    ``postgresql://...``), which opens a SQL backend. A ``Storage`` or ``Backend`` is used as
    it is; any other object with ``__getitem__``, ``__setitem__``, ``__delitem__`` and
    ``__iter__`` (a ``dict``, ``InMemoryStorage()``, your own class) is a mapping storage.
    """
    if isinstance(storage, Backend):
        return storage
    if isinstance(storage, Storage):
        return MemoryBackend(storage, name=type(storage).__name__)
    if isinstance(storage, (str, os.PathLike)):
        text = os.fspath(storage)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        scheme = text.split("://", 1)[0].lower() if "://" in text else ""
        if scheme in ("sqlite",):
            from microdb.sql.sqlite import SQLiteBackend

            return SQLiteBackend(text, **options)
        if scheme in ("postgresql", "postgres"):
            from microdb.sql.postgres import PostgresBackend

            return PostgresBackend(text, **options)
        if scheme:
            raise QueryError(f"unknown database URL scheme {scheme!r} (use sqlite:// or postgresql://)")
        from microdb.storage.jsonfile import JSONFileStorage

        return MemoryBackend(JSONFileStorage(text, **options), name="json")
    if options:
        raise TypeError(f"options {sorted(options)} apply to file and URL storages only")
    from microdb.storage.mapping import MappingStorage

    return MemoryBackend(MappingStorage(storage), name=type(storage).__name__)


class MicroDB(Table):
    """A MicroDB database; it is also its own default table, ``_default``.

    ``MicroDB('mydb.json')`` opens (or creates) a JSON file; ``MicroDB(InMemoryStorage())``
    or ``MicroDB({})`` keeps data in memory; ``MicroDB(my_mapping)`` stores one key per
    document in any mapping; ``MicroDB('sqlite:///x.db')`` and
    ``MicroDB('postgresql://...')`` use a SQL engine. Options (``durable=``,
    ``read_only=``, ``lock_timeout=``...) are passed to the storage.
    """

    default_table_name = "_default"

    def __init__(self, storage: Any = None, **options: Any):
        if storage is None:
            from microdb.storage.mapping import InMemoryStorage

            storage = InMemoryStorage()
        backend = open_backend(storage, **options)
        super().__init__(backend, self.default_table_name)
        self._table_cache: dict[str, Table] = {}
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._backend.closed else f"tables={sorted(self.tables())!r}"
        return f"<MicroDB backend={self._backend.name!r}, {state}>"

    @property
    def backend(self) -> Backend:
        """The engine behind this database."""
        return self._backend

    def _check_open(self) -> None:
        if self._backend.closed:
            raise DatabaseClosedError("the database is closed")

    def table(self, name: str, *, schema: Any = None, validation: str = "error", models: bool = False) -> Table:
        """The table called ``name`` (created on its first write).

        ``schema`` (a JSON Schema, a dataclass, a ``TypedDict`` or a pydantic model) is stored
        with the table, and every write is checked against it (``validation='warn'`` logs
        instead of refusing); see docs/schemas.md. ``models=True`` returns documents as
        instances of the model class given as ``schema``.
        """
        self._check_open()
        if models and schema is not None and isinstance(schema, dict):
            raise SchemaError("models=True needs a model class as schema= (a dataclass, TypedDict or pydantic model)")
        if name == self.default_table_name:
            table: Table = self
        else:
            with self._cache_lock:
                found = self._table_cache.get(name)
                if found is None:
                    found = self._table_cache[name] = Table(self._backend, name)
                table = found
        if schema is not None:
            table.set_schema(schema, validation=validation)
        if models:
            if table._schema_model is None:
                raise SchemaError("models=True needs a model class as schema= (a dataclass, TypedDict or pydantic model)")
            table._model = table._schema_model
        return table

    def tables(self) -> set[str]:
        """The names of the tables that hold data or were created."""
        with self._read():
            return set(self._backend.tables())

    def drop_table(self, name: str) -> bool:
        """Remove a table and its documents; true when it existed."""
        with self._write():
            return self._backend.drop_table(name)

    def drop_tables(self) -> None:
        """Remove every table."""
        with self._write():
            for name in list(self._backend.tables()):
                self._backend.drop_table(name)

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose writes, across tables, commit together or not at all.

        Inside, reads see the block's own writes; other threads of this process wait, and
        other processes see nothing until the block commits (one journal record, one sync).
        An exception inside rolls everything back and propagates.
        """
        self._check_open()
        return self._backend.write()

    def changes(
        self,
        since: int | None = None,
        tables: str | Collection[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> ChangeStream:
        """The committed changes of every process, in commit order, as they come.

        ``since``: a sequence number to resume after (``None``: from now on); ``tables``:
        only these tables; ``timeout``: stop iterating after that many seconds without a
        change (``None``: wait for ever). Raises ``ChangesExpiredError`` when the history
        kept no longer reaches back to ``since``. See docs/changes.md.
        """
        self._check_open()
        return ChangeStream(open_change_log(self._backend), since=since, tables=tables, timeout=timeout)

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest committed change (0 when there is none yet)."""
        self._check_open()
        log = open_change_log(self._backend)
        try:
            return log.last_seq()
        finally:
            log.close()

    def copy_to(
        self,
        other: MicroDB,
        *,
        progress: Callable[[str, int, int], None] | None = None,
        batch_size: int = 1000,
    ) -> dict[str, int]:
        """Copy every table and index into ``other`` (any backend), streaming in batches.

        ``progress(table, done, total)`` is called after each batch. Returns the number of
        documents copied per table.
        """
        self._check_open()
        other._check_open()
        return copy_database(self._backend, other._backend, progress=progress, batch_size=batch_size)

    def compact(self) -> None:
        """Write a fresh checkpoint of the data (JSON file: new snapshot, empty journal)."""
        self._check_open()
        self._backend.compact()

    def close(self) -> None:
        """Flush and close the storage; any later call raises ``DatabaseClosedError``."""
        self._backend.close()

    @property
    def closed(self) -> bool:
        """Whether the database was closed."""
        return self._backend.closed

    def __enter__(self) -> MicroDB:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
