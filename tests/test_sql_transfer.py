"""copy_database / db.copy_to: every table, id and index between any two backends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from microdb import DuplicateKeyError, MicroDB, QueryError, where
from microdb.transfer import copy_database
from sql_backends import SQL_STORAGES

KINDS = ["memory", "json", "sqlite", "postgres"]


def _open(kind: str, folder: Path) -> MicroDB:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "memory":
        return MicroDB()
    if kind == "json":
        return MicroDB(str(folder / "db.json"))
    return SQL_STORAGES[kind](folder)()


def _fill(db: MicroDB) -> None:
    users = db.table("users")
    users.insert_many({"name": f"u{i}", "age": i, "when": dt.date(2024, 1, 1 + i % 28), "cash": Decimal(i) / 4}
                      for i in range(250))
    users.create_index("name", unique=True)
    users.create_index("age")
    users.remove(doc_ids=[250])  # the highest id is gone: the target must not reuse it
    db.table("empty").truncate()
    db.insert({"default": True})


@pytest.mark.parametrize("dst", KINDS)
@pytest.mark.parametrize("src", KINDS)
def test_copy_between_any_two_backends(src: str, dst: str, tmp_path: Path) -> None:
    """Documents (with ids and rich types), tables and indexes arrive intact, in batches."""
    source = _open(src, tmp_path / "a")
    target = _open(dst, tmp_path / "b")
    _fill(source)
    calls: list[tuple[str, int, int]] = []
    copied = source.copy_to(target, progress=lambda *a: calls.append(a), batch_size=100)
    assert copied["users"] == 249 and copied["_default"] == 1
    assert ("users", 100, 249) in calls and ("users", 249, 249) in calls
    assert set(target.tables()) >= {"users", "_default"}
    for name in ("users", "_default"):
        want = {d.doc_id: d for d in source.table(name).all()}
        got = {d.doc_id: d for d in target.table(name).all()}
        assert got == want
    assert target.table("users").indexes() == source.table("users").indexes()
    with pytest.raises(DuplicateKeyError):
        target.table("users").insert({"name": "u3"})
    new_id = target.table("users").insert({"name": "new"})
    # Every target keeps the source's next id: id 250, removed on the source, is not reused.
    assert new_id == 251
    assert target.table("users").count(where("age") >= 100) == 149
    source.close()
    target.close()


def test_copy_refuses_bad_arguments(tmp_path: Path) -> None:
    """A database cannot be copied into itself; batch_size must be positive."""
    db = MicroDB()
    with pytest.raises(QueryError):
        copy_database(db.backend, db.backend)
    with pytest.raises(QueryError):
        copy_database(db.backend, MicroDB().backend, batch_size=0)


def test_copy_into_a_table_holding_the_same_ids_raises(tmp_path: Path) -> None:
    """An id already on the target raises DuplicateKeyError."""
    a, b = MicroDB(), _open("sqlite", tmp_path)
    a.insert({"x": 1})
    b.insert({"y": 1})
    with pytest.raises(DuplicateKeyError):
        a.copy_to(b)
    assert [dict(d) for d in b.all()] == [{"y": 1}]

