"""One nesting limit for documents on every backend, and crafted files refused cleanly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microdb import AutoSavingDict, CorruptDatabaseError, DocumentError, MicroDB
from microdb.operations import set as set_field
from microdb.serialization import MAX_DEPTH


def nested(levels: int, leaf: Any = 1) -> dict[str, Any]:
    """A document nesting ``levels`` objects (itself included)."""
    doc: dict[str, Any] = {"x": leaf}
    for _ in range(levels - 1):
        doc = {"a": doc}
    return doc


def nested_list(levels: int) -> dict[str, Any]:
    """A document whose field holds lists nested so the document has ``levels`` levels."""
    value: Any = 1
    for _ in range(levels - 1):
        value = [value]
    return {"a": value}


@pytest.mark.parametrize("make", [nested, nested_list])
def test_the_deepest_allowed_document_round_trips(db: MicroDB, make: Callable[[int], dict[str, Any]]) -> None:
    """A document exactly MAX_DEPTH levels deep is stored, read, updated and reopened on every backend."""
    doc = make(MAX_DEPTH)
    doc_id = db.insert(doc)
    assert db.get(doc_id=doc_id) == doc
    db.update({"y": 2}, doc_ids=[doc_id])
    assert db.get(doc_id=doc_id) == {**doc, "y": 2}


@pytest.mark.parametrize("make", [nested, nested_list])
def test_one_level_deeper_is_refused_on_insert_and_update(db: MicroDB, make: Callable[[int], dict[str, Any]]) -> None:
    """MAX_DEPTH + 1 levels raise DocumentError on insert, insert_many and update, changing nothing."""
    deep = make(MAX_DEPTH + 1)
    with pytest.raises(DocumentError, match=f"more than {MAX_DEPTH} levels"):
        db.insert(deep)
    with pytest.raises(DocumentError):
        db.insert_many([{"ok": 1}, deep])
    doc_id = db.insert({"n": 1})
    with pytest.raises(DocumentError):
        db.update({"n": deep}, doc_ids=[doc_id])
    with pytest.raises(DocumentError):
        db.update(set_field("n", deep), doc_ids=[doc_id])
    assert db.all() == [{"n": 1}]


def test_far_too_deep_is_a_document_error_not_a_recursion_error(db: MicroDB) -> None:
    """10,000 levels raise DocumentError, never RecursionError."""
    with pytest.raises(DocumentError):
        db.insert(nested(10_000))


def test_autosaving_dict_uses_the_same_limit(tmp_path: Path) -> None:
    """An AutoSavingDict value may nest to the same total depth (the dict being level 1)."""
    with AutoSavingDict(tmp_path / "d.json") as d:
        d["ok"] = nested(MAX_DEPTH - 1)
        with pytest.raises(DocumentError):
            d["deep"] = nested(MAX_DEPTH)
        assert list(d) == ["ok"]


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"t": {"1": ' + "[" * 10_000 + "]" * 10_000 + "}}", 11 + MAX_DEPTH),
        ('{"t": {"1": ' + '{"a":' * 2_000 + "1" + "}" * 2_000 + "}}", None),
        ('{"t": {"1": {"v": {"$escape": 5}}}}', None),
        ('{"t": {"1": {"v": {"$bytes": 5}}}}', None),
        ('{"t": {"1": {"v": {"$set": 5}}}}', None),
    ],
)
def test_crafted_snapshots_are_corrupt_database_errors(tmp_path: Path, content: str, where: int | None) -> None:
    """Deep or badly tagged snapshots raise CorruptDatabaseError naming the file and the place, and stay untouched."""
    path = tmp_path / "db.json"
    path.write_text(content)
    with pytest.raises(CorruptDatabaseError) as info:
        MicroDB(str(path))
    assert info.value.path == str(path)
    assert info.value.offset is not None
    if where is not None:
        assert info.value.offset == where
    assert str(path) in str(info.value)
    assert path.read_text() == content


@pytest.mark.parametrize("value", ['{"$escape": 5}', '{"$bytes": 5}', "[" * 150 + "]" * 150])
def test_crafted_journal_records_are_corrupt_database_errors(tmp_path: Path, value: str) -> None:
    """A journal record with a bad tag or too deep a document is refused with its offset."""
    from microdb.storage.records import frame_record

    path = tmp_path / "db.json"
    with MicroDB(str(path), checkpoint_interval=None) as db:
        db.insert({"n": 1})
    journal = Path(str(path) + ".journal")
    data = journal.read_bytes().rstrip(b"\0")
    offset = len(data)
    journal.write_bytes(data + frame_record(f'[["p","_default",2,{{"v":{value}}}]]'.encode()))
    with pytest.raises(CorruptDatabaseError) as info:
        MicroDB(str(path))
    assert info.value.offset == offset


def test_crafted_autosaving_dict_file(tmp_path: Path) -> None:
    """An AutoSavingDict file with a bad tag is a CorruptDatabaseError, not an AttributeError."""
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"k": {"$escape": 5}}))
    with pytest.raises(CorruptDatabaseError, match="'k'"):
        AutoSavingDict(f)
