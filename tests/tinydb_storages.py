"""Storages for the TinyDB compatibility tests: every kind a TinyDB program may pass.

``KINDS`` maps a name to a function ``(folder) -> opener``; the opener makes a
``microdb.tinydb.TinyDB`` on the same data each time it is called (for reopening).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microdb.tinydb import TinyDB
from microdb.tinydb.middlewares import CachingMiddleware, Middleware
from microdb.tinydb.storages import JSONStorage, MemoryStorage, Storage


class FileStorage(Storage):
    """A user's storage written as TinyDB's docs show one: the whole database in a file."""

    instances: list[FileStorage] = []

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.reads = 0
        self.writes = 0
        self.closed = 0
        FileStorage.instances.append(self)

    def read(self) -> Any:
        self.reads += 1
        if not self.path.exists():
            return None
        text = self.path.read_text(encoding="utf-8")
        return json.loads(text) if text else None

    def write(self, data: Any) -> None:
        self.writes += 1
        self.path.write_text(json.dumps(data), encoding="utf-8")

    def close(self) -> None:
        self.closed += 1


class CountingMiddleware(Middleware):
    """A user's middleware that sees every read and write on its way (and counts them)."""

    def __init__(self, storage_cls: Callable[..., Any]):
        super().__init__(storage_cls)
        self.reads = 0
        self.writes = 0

    def read(self) -> Any:
        self.reads += 1
        return self.storage.read()

    def write(self, data: Any) -> None:
        self.writes += 1
        self.storage.write(data)


def _json(folder: Path) -> Callable[..., TinyDB]:
    return lambda **kw: TinyDB(str(folder / "db.json"), **kw)


def _memory(folder: Path) -> Callable[..., TinyDB]:
    storage = MemoryStorage()
    # One storage object, like a program that keeps its MemoryStorage around.
    return lambda **kw: TinyDB(storage=lambda: storage, **kw)


def _user(folder: Path) -> Callable[..., TinyDB]:
    return lambda **kw: TinyDB(folder / "db.user.json", storage=FileStorage, **kw)


def _caching_json(folder: Path) -> Callable[..., TinyDB]:
    return lambda **kw: TinyDB(str(folder / "db.json"), storage=CachingMiddleware(JSONStorage), **kw)


def _caching_user(folder: Path) -> Callable[..., TinyDB]:
    return lambda **kw: TinyDB(folder / "db.user.json", storage=CachingMiddleware(FileStorage), **kw)


def _middleware_json(folder: Path) -> Callable[..., TinyDB]:
    return lambda **kw: TinyDB(str(folder / "db.json"), storage=CountingMiddleware(JSONStorage), **kw)


KINDS: dict[str, Callable[[Path], Callable[..., TinyDB]]] = {
    "json": _json,
    "memory": _memory,
    "user-storage": _user,
    "caching-json": _caching_json,
    "caching-user-storage": _caching_user,
    "middleware-json": _middleware_json,
}

#: Kinds whose data outlives the database object (reopening finds it).
PERSISTENT = {"json", "user-storage", "caching-json", "caching-user-storage", "middleware-json"}
