"""Shared fixtures: ``db`` runs a test once on every storage MicroDB offers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB
from microdb.storage import InMemoryStorage
from sql_backends import SQL_STORAGES


class KeyValueStore:
    """A user's own storage: only the four methods the seed names, and a call log."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.calls: list[tuple[str, str]] = []

    def __getitem__(self, key: str) -> Any:
        self.calls.append(("get", key))
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.calls.append(("set", key))
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        self.calls.append(("del", key))
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))


def _memory(tmp: Path) -> Callable[[], MicroDB]:
    storage = InMemoryStorage()
    return lambda: MicroDB(storage)


def _dict(tmp: Path) -> Callable[[], MicroDB]:
    storage: dict[str, Any] = {}
    return lambda: MicroDB(storage)


def _mapping(tmp: Path) -> Callable[[], MicroDB]:
    storage = KeyValueStore()
    return lambda: MicroDB(storage)


def _json(tmp: Path) -> Callable[[], MicroDB]:
    path = tmp / "db.json"
    return lambda: MicroDB(str(path))


#: Every storage the API tests run on: name -> factory(tmp_path) -> opener().
#: The opener opens the *same* database each time it is called (to test reopening).
STORAGES: dict[str, Callable[[Path], Callable[[], MicroDB]]] = {
    "memory": _memory,
    "dict": _dict,
    "mapping": _mapping,
    "json": _json,
}

# Every API test runs on SQLite and PostgreSQL too. No try/except around the import: a
# broken import of the SQL backends must fail the run, not quietly drop them from it.
STORAGES.update(SQL_STORAGES)


@pytest.fixture(params=sorted(STORAGES))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], MicroDB]]:
    """A function opening one database on the parametrised storage (same data each call)."""
    opened: list[MicroDB] = []
    make = STORAGES[request.param](tmp_path)

    def open_db() -> MicroDB:
        db = make()
        opened.append(db)
        return db

    open_db.storage = request.param  # type: ignore[attr-defined]
    yield open_db
    for db in opened:
        if not db.closed:
            db.close()


@pytest.fixture
def db(opener: Callable[[], MicroDB]) -> MicroDB:
    """A fresh, empty database on each storage in turn."""
    return opener()


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run the test with the temporary folder as the working directory."""
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)
