"""The SQL backends in the shared ``db`` fixture: SQLite files and a throwaway PostgreSQL.

``conftest.py`` merges :data:`SQL_STORAGES` into its ``STORAGES``, so every API test also
runs on SQLite and PostgreSQL. Each PostgreSQL opener gets a schema of its own (a fresh,
empty database as far as MicroDB can tell) on the one server the test session starts.
Outside CI a missing server or psycopg skips these tests with the reason; with
``CI=true`` it fails them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from microdb import MicroDB

__all__ = ["SQL_STORAGES", "kill_connections", "pg_url", "require_postgres"]

_schemas = itertools.count(1)


def require_postgres() -> str:
    """The test server's URL; skips (fails under CI=true) when PostgreSQL cannot run."""
    import pg_server

    reason = pg_server.unavailable()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    return pg_server.server().url


def kill_connections(app: str) -> int:
    """End every test-server connection whose ``application_name`` is ``app``; how many."""
    import psycopg

    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone()
        assert row is not None
        return int(row[0])


def pg_url() -> str:
    """Alias of :func:`require_postgres`."""
    return require_postgres()


def new_schema() -> str:
    """A schema name no other test uses."""
    return f"t{os.getpid()}_{next(_schemas)}"


def _sqlite(tmp: Path) -> Callable[[], MicroDB]:
    path = tmp / "db.sqlite"
    return lambda: MicroDB(f"sqlite:///{path}")


def _postgres(tmp: Path) -> Callable[[], MicroDB]:
    url = require_postgres()
    schema = new_schema()
    return lambda: MicroDB(url, schema=schema, pool_size=2)


#: name -> factory(tmp_path) -> opener, the contract of ``STORAGES`` in conftest.py.
SQL_STORAGES: dict[str, Callable[[Path], Callable[[], MicroDB]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}
