"""TinyDB's storages: the ``Storage`` base class, the JSON file and memory.

``JSONStorage`` keeps TinyDB's constructor and file format, but the file underneath is
MicroDB's journaled one (:class:`microdb.storage.jsonfile.JSONFileStorage`): a write appends
one checked record instead of rewriting the file, a crash never leaves it half-written,
and several processes may share it. ``MemoryStorage`` keeps the data in memory only.

Both still answer TinyDB's ``read()`` and ``write(data)`` (the whole database, as a
dict of tables), so middlewares and code that talk to a storage directly keep working.
A storage of your own (any class with ``read()`` and ``write(data)``) works too; see
:class:`Storage`.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from typing import Any

from microdb.errors import UnsupportedFeature
from microdb.tinydb._engine import Engine, StateStorage, make_engine, replace_all, snapshot
from microdb.tinydb._errors import StorageFileNotFound

__all__ = ["JSONStorage", "MemoryStorage", "Storage", "touch"]

#: ``json.dumps`` options TinyDB passes through that change nothing but whitespace, or
#: what MicroDB does anyway: accepted and ignored.
_IGNORED_JSON_OPTIONS = frozenset({"separators", "check_circular", "allow_nan"})
#: Options that would let ``json`` store objects MicroDB cannot read back.
_REFUSED_JSON_OPTIONS = frozenset({"cls", "default", "skipkeys"})
_TINYDB_MODES = ("r", "rb", "r+", "rb+")


def touch(path: str | os.PathLike[str], create_dirs: bool) -> None:
    """Create the file at ``path`` if it is missing (and its folders, with ``create_dirs``)."""
    path = os.fspath(path)
    if create_dirs:
        folder = os.path.dirname(path)
        if folder and not os.path.exists(folder):
            os.makedirs(folder)
    # Append mode creates a missing file and never changes an existing one.
    with open(path, "a"):
        pass


class Storage(ABC):
    """The base class of TinyDB storages: ``read()`` and ``write(data)`` the whole database.

    ``data`` is a dict of tables, each a dict from document ids (strings) to documents.
    ``read()`` returns ``None`` when nothing was stored yet. MicroDB calls ``read()`` once
    per operation and ``write(data)`` once per committed change, as TinyDB does; values
    MicroDB stores beyond JSON (dates, UUIDs, ...) reach your storage in MicroDB's tagged
    JSON form (``{"$datetime": "..."}``), so a JSON-based storage round-trips them.
    """

    @abstractmethod
    def read(self) -> dict[str, dict[str, Any]] | None:
        """The whole database, or ``None`` when the storage is empty."""

    @abstractmethod
    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Replace the whole database with ``data``."""

    def close(self) -> None:  # noqa: B027 - optional, as in TinyDB
        """Release files and connections (optional)."""


class _NativeStorage(Storage):
    """A storage that owns a MicroDB engine; ``read``/``write`` are views of it."""

    _engine: Engine

    def _microdb_native_engine(self) -> Engine | None:
        cls = type(self)
        # A subclass that redefines read() or write() wants them called on every
        # operation: it then gets TinyDB's whole-database contract, like any storage.
        if cls.read is not _NativeStorage.read or cls.write is not _NativeStorage.write:
            return None
        return self._engine

    def read(self) -> dict[str, dict[str, Any]] | None:
        """The whole database as TinyDB sees it (``None`` when there is no table)."""
        return snapshot(self._engine)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Make the database equal to ``data``, in one commit that changes only what differs."""
        replace_all(self._engine, data)

    def close(self) -> None:
        """Write a final checkpoint and release the file."""
        self._engine.backend.close()


class JSONStorage(_NativeStorage):
    """The database in a JSON file, shaped as TinyDB's and kept crash-safe by MicroDB.

    Accepts TinyDB's arguments: ``create_dirs`` (make missing folders), ``encoding``,
    ``access_mode`` (``'r'`` opens read-only; ``'r+'``, the default, reads and writes),
    and the ``json`` options ``indent``, ``sort_keys`` and ``ensure_ascii``
    (``separators`` is accepted and ignored). MicroDB's own options: ``durable``
    (``False`` hands each commit to the OS without waiting for the disk: survives a
    crash of the program, not a power cut) and ``lock_timeout`` (seconds to wait for
    another process's write).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        create_dirs: bool = False,
        encoding: str | None = None,
        access_mode: str = "r+",
        *,
        durable: bool = True,
        lock_timeout: float = 10.0,
        **kwargs: Any,
    ):
        refused = sorted(_REFUSED_JSON_OPTIONS.intersection(kwargs))
        if refused:
            raise UnsupportedFeature(
                f"JSONStorage option {refused[0]!r} is not supported: MicroDB writes the JSON "
                "itself; store your own types with microdb.register_type()"
            )
        unknown = sorted(set(kwargs) - _IGNORED_JSON_OPTIONS - {"indent", "sort_keys", "ensure_ascii"})
        if unknown:
            raise TypeError(f"JSONStorage() got an unexpected keyword argument {unknown[0]!r}")
        if access_mode not in _TINYDB_MODES:
            warnings.warn(
                f"access_mode {access_mode!r} is not one of 'r', 'rb', 'r+', 'rb+'; MicroDB "
                "opens the file as 'r+' (it never truncates a database)",
                UserWarning,
                stacklevel=2,
            )
        self._mode = access_mode
        self.kwargs = dict(kwargs)
        self.path = os.fspath(path)
        read_only = access_mode in ("r", "rb")
        folder = os.path.dirname(os.path.abspath(self.path))
        if read_only and not os.path.exists(self.path):
            raise StorageFileNotFound(f"no database file at {self.path!r} (opened read-only)")
        if not read_only and not create_dirs and not os.path.isdir(folder):
            raise StorageFileNotFound(
                f"the folder of {self.path!r} does not exist (pass create_dirs=True to create it)"
            )
        from microdb.storage.jsonfile import JSONFileStorage

        store = JSONFileStorage(
            self.path,
            durable=durable,
            read_only=read_only,
            lock_timeout=lock_timeout,
            indent=kwargs.get("indent"),
            sort_keys=bool(kwargs.get("sort_keys", False)),
            # json.dumps escapes non-ASCII text unless told otherwise; TinyDB files do too.
            ensure_ascii=bool(kwargs.get("ensure_ascii", True)),
            encoding=encoding or "utf-8",
            create_dirs=bool(create_dirs),
        )
        self._engine = make_engine(store, "json")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}, access_mode={self._mode!r}>"


class MemoryStorage(_NativeStorage):
    """The database in memory only: gone when the program ends."""

    def __init__(self) -> None:
        self._engine = make_engine(StateStorage(), "memory")

    @property
    def memory(self) -> dict[str, dict[str, Any]] | None:
        """The whole database, as TinyDB's ``MemoryStorage.memory`` holds it."""
        return self.read()

    def close(self) -> None:
        """Nothing to release: the data stays readable after ``db.close()``, as in TinyDB."""
