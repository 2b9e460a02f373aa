"""``TinyDB``: the database object of TinyDB's API, on MicroDB's engine.

``TinyDB('db.json')`` opens the file with :class:`~microdb.tinydb.storages.JSONStorage`;
``TinyDB(storage=MemoryStorage)`` keeps data in memory; every other argument goes to the
storage class, as in TinyDB. The database hands out tables (``db.table(name)``) and is
itself the default table: ``db.insert(...)`` acts on ``db.table(db.default_table_name)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from microdb.document import Document
from microdb.results import Result
from microdb.tinydb._engine import Engine, engine_for
from microdb.tinydb.storages import JSONStorage
from microdb.tinydb.table import Table

__all__ = ["TinyDB"]


class TinyDB:
    """A database: ``TinyDB(*args, storage=JSONStorage, **kwargs)``.

    ``storage`` is a storage class (or a middleware around one); it is created with the
    other arguments. Class attributes to override, as in TinyDB: ``table_class``,
    ``default_table_name`` and ``default_storage_class``. Any method of the default
    table can be called on the database itself.
    """

    #: The class of the tables :meth:`table` hands out.
    table_class: type[Table] = Table
    #: The table that ``db.insert(...)`` and friends act on.
    default_table_name = "_default"
    #: The storage used when no ``storage=`` is given.
    default_storage_class: Callable[..., Any] = JSONStorage

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        storage = kwargs.pop("storage", self.default_storage_class)
        self._storage: Any = storage(*args, **kwargs)
        self._engine: Engine = engine_for(self._storage)
        self._opened = True
        self._tables: dict[str, Table] = {}
        self._tables_lock = threading.Lock()

    def __repr__(self) -> str:
        if self._engine.backend.closed:
            return f"<{type(self).__name__} closed>"
        names = sorted(self.tables())
        parts = [
            f"tables={names}",
            f"tables_count={len(names)}",
            f"default_table_documents_count={len(self)}",
            f"all_tables_documents_count={[f'{name}={len(self.table(name))}' for name in names]}",
        ]
        return f"<{type(self).__name__} {', '.join(parts)}>"

    # -- tables ------------------------------------------------------------------------
    def table(self, name: str, **kwargs: Any) -> Table:
        """The table called ``name``; ``kwargs`` (``cache_size``...) apply when first opened."""
        with self._tables_lock:
            table = self._tables.get(name)
            if table is None:
                table = self._tables[name] = self.table_class(self._storage, name, **kwargs)
            return table

    def tables(self) -> set[str]:
        """The names of the stored tables."""
        backend = self._engine.backend
        with backend.read():
            return set(backend.tables())

    def drop_table(self, name: str) -> None:
        """Remove a table and its documents (cannot be undone)."""
        with self._tables_lock:
            self._tables.pop(name, None)
        backend = self._engine.backend
        with backend.write():
            backend.drop_table(name)

    def drop_tables(self) -> None:
        """Remove every table (cannot be undone)."""
        backend = self._engine.backend
        with backend.write():
            for name in backend.tables():
                backend.drop_table(name)
        with self._tables_lock:
            self._tables.clear()

    @property
    def storage(self) -> Any:
        """The storage object (or middleware) this database uses."""
        return self._storage

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose writes, across tables, commit together or not at all (MicroDB's)."""
        return self._engine.backend.write()

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the storage (the JSON file: later calls raise ``DatabaseClosedError``).

        As in TinyDB, what happens next is the storage's business: memory stays readable,
        and a storage of your own decides for itself.
        """
        self._opened = False
        self._storage.close()

    def __enter__(self) -> TinyDB:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._opened:
            self.close()

    # -- the default table -------------------------------------------------------------
    @property
    def _default(self) -> Table:
        return self.table(self.default_table_name)

    def __getattr__(self, name: str) -> Any:
        # The rest of the default table's interface (a custom table_class's methods too).
        if name.startswith("__") or name in ("_tables", "_tables_lock", "_storage", "_engine", "_opened"):
            raise AttributeError(name)
        return getattr(self._default, name)

    def __len__(self) -> int:
        return len(self._default)

    def __iter__(self) -> Iterator[Document]:
        return iter(self._default)

    def insert(self, document: Mapping[str, Any]) -> int:
        """Insert into the default table; returns the new id."""
        return self._default.insert(document)

    def insert_multiple(self, documents: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert several documents into the default table; returns their ids."""
        return self._default.insert_multiple(documents)

    def all(self) -> list[Document]:
        """Every document of the default table."""
        return self._default.all()

    def search(self, cond: Any) -> list[Document]:
        """The documents of the default table matching ``cond``."""
        return self._default.search(cond)

    def get(self, cond: Any = None, doc_id: int | None = None, doc_ids: Iterable[int] | None = None) -> Any:
        """One document of the default table, by query or id (a list, with ``doc_ids``)."""
        return self._default.get(cond, doc_id, doc_ids)

    def contains(self, cond: Any = None, doc_id: int | None = None) -> bool:
        """Whether the default table has a document matching ``cond`` or with ``doc_id``."""
        return self._default.contains(cond, doc_id)

    def count(self, cond: Any = None) -> int:
        """How many documents of the default table match ``cond``."""
        return self._default.count(cond)

    def update(self, fields: Any, cond: Any = None, doc_ids: Iterable[int] | None = None) -> list[Any]:
        """Update documents of the default table; returns their ids."""
        return self._default.update(fields, cond, doc_ids)

    def update_multiple(self, updates: Iterable[tuple[Any, Any]]) -> list[Any]:
        """Apply several ``(fields, cond)`` updates to the default table in one commit."""
        return self._default.update_multiple(updates)

    def upsert(self, document: Any, cond: Any = None) -> list[Any]:
        """Update matching documents of the default table, or insert ``document``."""
        return self._default.upsert(document, cond)

    def remove(self, cond: Any = None, doc_ids: Iterable[int] | None = None) -> list[Any]:
        """Remove documents of the default table; returns their ids."""
        return self._default.remove(cond, doc_ids)

    def truncate(self) -> None:
        """Remove every document of the default table."""
        self._default.truncate()

    def clear_cache(self) -> None:
        """Forget the default table's cached query results."""
        self._default.clear_cache()

    def query(self, cond: Any = None) -> Result:
        """MicroDB's lazy query on the default table (sort, skip, limit, project)."""
        return self._default.query(cond)
