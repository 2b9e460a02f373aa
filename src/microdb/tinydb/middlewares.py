"""TinyDB's middlewares: wrappers around a storage, such as ``CachingMiddleware``.

A middleware is built around a storage *class* and called like one:
``TinyDB('db.json', storage=CachingMiddleware(JSONStorage))``. Subclass
:class:`Middleware` and redefine ``read()``/``write(data)`` to change the data on its way
to and from the storage; MicroDB then calls them exactly as TinyDB does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from microdb.tinydb._engine import Engine, native_engine
from microdb.tinydb.storages import JSONStorage

__all__ = ["CachingMiddleware", "Middleware"]


class Middleware:
    """The base class of middlewares; ``self.storage`` is the storage it wraps.

    ``read()``, ``write(data)`` and ``close()`` pass straight through to the storage
    unless redefined, and so does any other attribute. A subclass's ``__init__`` must
    call ``super().__init__(storage_cls)``.
    """

    def __init__(self, storage_cls: Callable[..., Any]) -> None:
        self._storage_cls = storage_cls
        self.storage: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Create the wrapped storage with the arguments the database was given; returns self."""
        self.storage = self._storage_cls(*args, **kwargs)
        return self

    def read(self) -> Any:
        """Read the whole database from the wrapped storage."""
        return self.storage.read()

    def write(self, data: Any) -> None:
        """Write the whole database to the wrapped storage."""
        self.storage.write(data)

    def close(self) -> None:
        """Close the wrapped storage."""
        self.storage.close()

    def __getattr__(self, name: str) -> Any:
        # TinyDB's middlewares are transparent: whatever the storage offers, they offer.
        storage = self.__dict__.get("storage")
        if storage is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(storage, name)

    def _microdb_native_engine(self) -> Engine | None:
        cls = type(self)
        if cls.read is Middleware.read and cls.write is Middleware.write:
            # Nothing to intercept: the engine of the storage underneath serves directly.
            return native_engine(self.storage)
        return None


class CachingMiddleware(Middleware):
    """Fewer disk writes: TinyDB's write cache, flushed by ``flush()`` and ``close()``.

    Over MicroDB's own storages the cache is not needed and not used: each write is
    appended to the file's journal at once but without waiting for the disk (MicroDB's
    ``durable=False``), which is as fast and loses nothing when the program dies;
    ``flush()`` and ``close()`` then make everything durable. Over any other storage it
    behaves as TinyDB's: reads come from memory, and the storage is written every
    :attr:`WRITE_CACHE_SIZE` writes, on ``flush()`` and on ``close()``.
    """

    #: How many writes are held back before the storage is written (other storages).
    WRITE_CACHE_SIZE = 1000

    def __init__(self, storage_cls: Callable[..., Any]) -> None:
        super().__init__(storage_cls)
        self.cache: Any = None
        self._cache_modified_count = 0
        self._engine: Engine | None = None
        self._flushed = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Create the wrapped storage (unsynced commits for MicroDB's JSON file); returns self."""
        cls = self._storage_cls
        if (
            isinstance(cls, type)
            and issubclass(cls, JSONStorage)
            and cls.read is JSONStorage.read
            and cls.write is JSONStorage.write
        ):
            kwargs.setdefault("durable", False)
        super().__call__(*args, **kwargs)
        self._engine = native_engine(self.storage)
        if self._engine is not None:
            self._flushed = self._engine.generation
        return self

    def read(self) -> Any:
        """The whole database: from the cache (read from the storage the first time)."""
        if self._engine is not None:
            return self.storage.read()
        if self.cache is None:
            self.cache = self.storage.read()
        return self.cache

    def write(self, data: Any) -> None:
        """Keep ``data`` in the cache; write it to the storage every ``WRITE_CACHE_SIZE`` writes."""
        if self._engine is not None:
            self.storage.write(data)
            return
        self.cache = data
        self._cache_modified_count += 1
        if self._cache_modified_count >= self.WRITE_CACHE_SIZE:
            self.flush()

    def flush(self) -> None:
        """Write everything held back to the storage (and, for MicroDB's file, to the disk)."""
        engine = self._engine
        if engine is not None:
            backend = engine.backend
            if not backend.closed and not engine.store.read_only and engine.generation != self._flushed:
                # A checkpoint writes and fsyncs a fresh snapshot: every earlier
                # unsynced commit is then on the disk.
                backend.compact()
                self._flushed = engine.generation
            return
        if self._cache_modified_count > 0:
            self.storage.write(self.cache)
            self._cache_modified_count = 0

    def close(self) -> None:
        """Flush, then close the wrapped storage."""
        self.flush()
        self.storage.close()

    def _microdb_native_engine(self) -> Engine | None:
        return self._engine
