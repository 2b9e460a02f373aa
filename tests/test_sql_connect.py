"""PostgreSQL connections: a dead server fails fast with its own error; JIT never runs."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from microdb import MicroDB
from microdb.errors import StorageError
from sql_backends import new_schema, require_postgres

pytest.importorskip("psycopg")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_a_silent_server_fails_within_the_url_connect_timeout(silent_port: int) -> None:
    """``connect_timeout`` in the URL bounds the wait, and the error says what happened."""
    with pytest.raises(StorageError, match="timeout expired"):
        MicroDB(f"postgresql://u@127.0.0.1:{silent_port}/db?connect_timeout=1")


def test_a_silent_server_fails_within_the_default_connect_timeout(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``connect_timeout`` in the URL, the default applies (not the pool's 30 s)."""
    from microdb.sql import postgres

    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT", 1)
    with pytest.raises(StorageError, match="timeout expired"):
        MicroDB(f"postgresql://u@127.0.0.1:{silent_port}/db")


def test_a_refused_connection_carries_the_servers_message() -> None:
    """The cause is in the exception itself, not only in log warnings."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(StorageError, match="Connection refused") as info:
            MicroDB(f"postgresql://u@127.0.0.1:{port}/db")
    assert "pool initialization incomplete" not in str(info.value)


def test_a_wrong_database_name_is_reported_by_the_server() -> None:
    """An error from a live server (no such database) reaches the user as the server said it."""
    url = require_postgres()
    bad = url.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(StorageError, match="no_such_database_here"):
        MicroDB(bad)


def test_queries_run_with_jit_off() -> None:
    """Every pooled connection has JIT off, so no query pays for compiling its plan."""
    db = MicroDB(require_postgres(), schema=new_schema(), pool_size=2)
    try:
        backend = db.table("t")._backend
        with backend._op() as s:  # type: ignore[attr-defined]
            assert backend._execute(s, "SHOW jit") == [("off",)]  # type: ignore[attr-defined]
    finally:
        db.close()
