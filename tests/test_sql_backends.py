"""Opening SQL databases, ids, errors, and what each backend reports about itself."""

from __future__ import annotations

import builtins
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from microdb import (
    DatabaseClosedError,
    DocumentError,
    DuplicateKeyError,
    MicroDB,
    ReadOnlyError,
    StorageError,
    UnsupportedFeature,
    where,
)
from microdb.sql.sqlite import parse_sqlite_url
from sql_backends import SQL_STORAGES, new_schema, require_postgres


@pytest.mark.parametrize("url, path", [
    ("sqlite:///data.db", "data.db"),
    ("sqlite:///sub/dir/data.db", "sub/dir/data.db"),
    ("sqlite:////abs/data.db", "/abs/data.db"),
    ("sqlite://", ":memory:"),
    ("sqlite:///:memory:", ":memory:"),
    ("sqlite:///my%20file.db?x=1", "my file.db"),
])
def test_sqlite_urls(url: str, path: str) -> None:
    """SQLAlchemy's URL forms: three slashes relative, four absolute, none in memory."""
    assert parse_sqlite_url(url) == path


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_ids_are_never_reused_even_after_reopening(kind: str, tmp_path: Path) -> None:
    """Removing the highest id and reopening still gives a new, higher id."""
    opener = SQL_STORAGES[kind](tmp_path)
    db = opener()
    ids = db.insert_many([{"a": 1}, {"a": 2}, {"a": 3}])
    db.remove(doc_ids=[ids[-1]])
    db.truncate()
    db.close()
    db = opener()
    assert db.insert({"a": 4}) == ids[-1] + 1
    with pytest.raises(DuplicateKeyError, match="already exists"):
        db.insert(db.get(doc_id=ids[-1] + 1))
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.all()


def test_relative_sqlite_url_opens_in_the_working_folder(in_tmp: Path) -> None:
    """sqlite:///name.db is a file in the current folder, one file after close."""
    with MicroDB("sqlite:///name.db") as db:
        db.insert({"x": 1})
    assert (in_tmp / "name.db").exists() and not (in_tmp / "name.db-wal").exists()
    conn = sqlite3.connect(in_tmp / "name.db")
    assert conn.execute("SELECT name FROM microdb_tables").fetchall() == [("_default",)]
    conn.close()


def test_read_only_sqlite(tmp_path: Path) -> None:
    """read_only=True reads and refuses writes with ReadOnlyError."""
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    with MicroDB(url) as db:
        db.insert({"a": 1})
    with MicroDB(url, read_only=True) as db:
        assert db.count(where("a") == 1) == 1
        with pytest.raises(ReadOnlyError):
            db.insert({"a": 2})


def test_missing_folder_is_a_storage_error(tmp_path: Path) -> None:
    """A SQLite file in a folder that does not exist: StorageError naming it."""
    with pytest.raises(StorageError, match="does not exist"):
        MicroDB(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_driver_errors_keep_their_cause(tmp_path: Path) -> None:
    """A failure in sqlite3 arrives as StorageError with the driver's exception as cause."""
    db = MicroDB(f"sqlite:///{tmp_path / 'x.db'}")
    db.insert({"a": 1})
    backend: Any = db.backend
    backend._conn.execute("DROP TABLE mdb_1")
    with pytest.raises(StorageError) as info:
        db.all()
    assert isinstance(info.value.__cause__, sqlite3.Error)
    db.close()


def test_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, opening PostgreSQL says: pip install "microdb[postgres]"."""
    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("psycopg"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(UnsupportedFeature, match=r'pip install "microdb\[postgres\]"'):
        MicroDB("postgresql://nobody@127.0.0.1:1/none")


def test_postgres_unreachable_is_a_storage_error() -> None:
    """A server that does not answer: StorageError, not a driver exception."""
    require_postgres()
    with pytest.raises(StorageError):
        MicroDB("postgresql://nobody@127.0.0.1:1/none", timeout=1)


def test_postgres_rejects_nul_in_text_as_document_error() -> None:
    """PostgreSQL text cannot hold NUL: a clear DocumentError, and nothing stored."""
    with MicroDB(require_postgres(), schema=new_schema()) as db:
        db.insert({"ok": 1})
        with pytest.raises(DocumentError):
            db.insert_many([{"a": "fine"}, {"a": "bad\x00"}])
        assert len(db) == 1


def test_postgres_accepts_a_keyword_connection_string() -> None:
    """Any libpq connection string works, not only URLs."""
    from microdb.sql.postgres import PostgresBackend

    url = require_postgres()
    port = url.rsplit(":", 1)[1].split("/")[0]
    backend = PostgresBackend(f"host=127.0.0.1 port={port} user=postgres dbname=postgres "
                              "target_session_attrs=read-write", schema=new_schema())
    with MicroDB(backend) as db:
        db.insert({"a": 1})
        assert db.count(where("a") == 1) == 1


def test_documents_keep_key_order_and_number_forms_on_postgres() -> None:
    """jsonb reorders keys and rewrites 1e20; the stored text keeps them as written."""
    with MicroDB(require_postgres(), schema=new_schema()) as db:
        doc = {"zeta": 1, "alpha": 1e20, "mid": [1.0, 2]}
        doc_id = db.insert(doc)
        got = db.get(doc_id=doc_id)
        assert list(got) == ["zeta", "alpha", "mid"] and type(got["alpha"]) is float
        assert type(got["mid"][0]) is float
