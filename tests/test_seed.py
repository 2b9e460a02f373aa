"""The seed's README is the contract: every code block in it runs exactly as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, Query, where
from microdb.storage import InMemoryStorage

HERE = Path(__file__).parent
SEED = HERE / "data" / "seed.md"
SHARED_SEED = HERE.parent.parent / "shared" / "seed"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return [m.group(1) for m in re.finditer(r"```python[^\n]*\n(.*?)```", text, re.S)]


def test_repo_copy_of_seed_matches_shared_seed() -> None:
    """The copy under tests/data is the seed itself, byte for byte, where the seed is at hand."""
    originals = sorted(SHARED_SEED.glob("*.txt")) if SHARED_SEED.is_dir() else []
    if not originals:
        pytest.skip("the shared seed folder is not beside this checkout")
    assert SEED.read_text() == originals[0].read_text()


def test_seed_has_the_blocks_we_run() -> None:
    """The seed holds three Python blocks (example, fluent query, in-memory storage)."""
    assert len(python_blocks(SEED.read_text())) == 3


def test_seed_blocks_run_verbatim(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each block runs as written, in order, in one namespace, and does what its comments say."""
    blocks = python_blocks(SEED.read_text())
    ns: dict[str, Any] = {}
    exec(compile(blocks[0], "seed-block-1", "exec"), ns)
    printed = capsys.readouterr().out
    # "Find all users with age less than 30": only Bob, printed as a dict.
    assert printed.strip().splitlines() == ["{'name': 'Bob', 'age': 25}"]
    users = ns["users"]
    # "Remove the records": Bob is gone, Alice and Charlie remain.
    assert sorted(u["name"] for u in users.all()) == ["Alice", "Charlie"]
    assert (in_tmp / "mydb.json").exists()

    exec(compile(blocks[1], "seed-block-2", "exec"), ns)
    found = ns["results"].all()
    assert [(u["name"], u["age"]) for u in found] == [("Alice", 30)]

    exec(compile(blocks[2], "seed-block-3", "exec"), ns)
    mem = ns["db"]
    assert isinstance(mem, MicroDB)
    mem.insert({"x": 1})
    assert mem.all() == [{"x": 1}]
    # Block 3 rebound ``db``; the file database of block 1 is still open through ``users``.
    users.insert({"name": "Dora", "age": 1})
    users._backend.close()
    with MicroDB("mydb.json") as reopened:
        assert sorted(u["name"] for u in reopened.table("users").all()) == ["Alice", "Charlie", "Dora"]


def test_seed_file_database_persists(in_tmp: Path) -> None:
    """The seed's file database keeps its data across close and reopen."""
    db = MicroDB("mydb.json")
    users = db.table("users")
    users.insert({"name": "Alice", "age": 30})
    users.insert({"name": "Bob", "age": 25})
    users.remove(where("age") < 30)
    db.close()
    again = MicroDB("mydb.json")
    assert [u["name"] for u in again.table("users").all()] == ["Alice"]
    again.close()


class FourMethodStore:
    """The seed's custom storage: exactly four methods, not a dict subclass."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.writes = 0

    def __getitem__(self, key: str) -> Any:
        return self.items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        self.items[key] = value

    def __delitem__(self, key: str) -> None:
        self.writes += 1
        del self.items[key]

    def __iter__(self) -> Any:
        return iter(list(self.items))


def test_custom_storage_with_four_methods() -> None:
    """A class with only the four methods is a storage, with one write per written document."""
    store = FourMethodStore()
    db = MicroDB(store)
    users = db.table("users")
    users.insert({"name": "Alice", "age": 30})
    before = store.writes
    users.insert_many([{"name": "Bob", "age": 25}, {"name": "Eve", "age": 41}])
    assert store.writes - before == 2
    before = store.writes
    users.update({"age": 31}, where("name") == "Alice")
    assert store.writes - before == 1
    db.close()
    again = MicroDB(store)
    assert again.table("users").count(where("age") > 30) == 2
    assert again.table("users").query(Query().exists("name").value("name", "Eve")).first() == {
        "name": "Eve",
        "age": 41,
    }


def test_in_memory_storage_is_a_storage() -> None:
    """``MicroDB(InMemoryStorage())`` keeps data in memory, visible to a second handle on it."""
    storage = InMemoryStorage()
    db = MicroDB(storage)
    db.insert({"a": 1})
    assert MicroDB(storage).all() == [{"a": 1}]
