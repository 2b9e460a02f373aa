"""Updates change copies of the stored documents along the paths they touch, keep only the
indexes on those paths, and journal only the fields they change: each step must answer
exactly as rewriting whole documents and rebuilding every index would."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from microdb import DocumentError, MicroDB, MicroDBError, UpdateError, where
from microdb.compile.update_ops import compile_operators
from microdb.engine.compound import CompoundIndex
from microdb.engine.index import Index
from microdb.storage.mapping import InMemoryStorage

#: create_index arguments: plain, nested, multikey, an array position, compound, unique
INDEXES: list[tuple[tuple[str, ...], bool]] = [
    (("a",), False), (("b.c",), False), (("arr",), False), (("arr.1",), False),
    (("a", "b.c"), False), (("u",), True),
]


def _open(kind: str, folder: Path) -> MicroDB:
    return MicroDB(InMemoryStorage()) if kind == "memory" else MicroDB(str(folder / "db.json"))


def _docs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    return [
        {"g": i % 3, "u": i, "a": rng.randint(0, 4), "b": {"c": rng.randint(0, 4), "d": "x"},
         "arr": [rng.randint(0, 3) for _ in range(rng.randint(0, 3))], "n": i}
        for i in range(n)
    ]


def _update(rng: random.Random, step: int) -> Any:
    """A random update: plain fields, or operators at top-level, nested and array paths."""
    v = rng.randint(0, 4)
    return rng.choice([
        {"a": v}, {"b": {"c": v}}, {"new": [v]}, {"$set": {"b.c": v}}, {"$inc": {"b.c": 1}},
        {"$unset": {"b.c": ""}}, {"$unset": {"a": ""}}, {"$push": {"arr": v}}, {"$pop": {"arr": 1}},
        {"$set": {"arr.1": v}}, {"$set": {"arr.4": v}}, {"$rename": {"a": "z"}}, {"$rename": {"z": "a"}},
        {"$inc": {"n": 1}, "$set": {"b.e": step}}, {"$set": {"b": v}}, {"$pull": {"arr": v}},
        {"$addToSet": {"arr": v}}, {"$set": {"u": step * 100}}, {"$set": {"u": 0}},
        {"$max": {"a": v}}, {"$mul": {"b.c": 2}}, {"$set": {"deep.x.y": v}},
    ])


def _expected(model: dict[int, dict[str, Any]], spec: Any, g: int) -> dict[int, dict[str, Any]] | None:
    """The model after the update, or None when the update must fail and change nothing."""
    out = copy.deepcopy(model)
    try:
        for doc in out.values():
            if doc["g"] == g:
                if any(k.startswith("$") for k in spec):
                    compile_operators(spec)(doc)
                else:
                    doc.update(copy.deepcopy(spec))
    except UpdateError:
        return None
    us = [d["u"] for d in out.values() if "u" in d]
    return None if len(us) != len(set(us)) else out


def _same_index(live: Any, fresh: Any) -> None:
    """``live`` holds exactly what an index built from scratch over the same documents holds."""
    assert type(live) is type(fresh)
    assert live.entries == fresh.entries
    if isinstance(live, Index):
        for name in ("missing", "multikey", "through_arrays", "filed", "scalars"):
            assert getattr(live, name) == getattr(fresh, name), name
        for lane in ("numbers", "strings", "others"):
            assert list(getattr(live, lane)) == list(getattr(fresh, lane)), lane
    else:
        assert isinstance(live, CompoundIndex)
        assert (live.arrays, live.filed, list(live.keys)) == (fresh.arrays, fresh.filed, list(fresh.keys))


def _check(db: MicroDB, model: dict[int, dict[str, Any]]) -> None:
    assert {d.doc_id: dict(d) for d in db.all()} == model
    table = db._backend._tables["_default"]  # type: ignore[attr-defined]
    for index in table.indexes.every:
        fresh = table.indexes.new(index.paths if isinstance(index, CompoundIndex) else index.path, index.unique)
        fresh.build(table.docs.items())
        _same_index(index, fresh)


@pytest.mark.parametrize("kind", ["memory", "file"])
@pytest.mark.parametrize("seed", range(4))
def test_updates_answer_as_whole_rewrites(tmp_path: Path, kind: str, seed: int) -> None:
    """Random updates on indexed and unindexed paths: documents, every index, a second
    handle following the journal, and a reopened file all match the model."""
    rng = random.Random(seed)
    db = _open(kind, tmp_path)
    for fields, unique in INDEXES:
        db.create_index(*fields, unique=unique)
    db.insert_many(_docs(rng, 24))
    model = {d.doc_id: dict(d) for d in db.all()}
    other = MicroDB(str(tmp_path / "db.json")) if kind == "file" else None
    for step in range(60):
        spec, g = _update(rng, step), rng.randint(0, 2)
        want = _expected(model, spec, g)
        if want is None:
            with pytest.raises(MicroDBError):
                db.update(spec, where("g") == g)
        else:
            changed = db.update(spec, where("g") == g)
            assert changed == [i for i, d in model.items() if d["g"] == g]
            model = want
        _check(db, model)
        if other is not None:
            _check(other, model)
    if other is not None:
        # Replayed from the journal (this open) and followed through it (other): the
        # fields in the writer's order too.
        again = MicroDB(str(tmp_path / "db.json"))
        _check(again, model)
        order = [list(d) for d in db.all()]
        assert [list(d) for d in again.all()] == order
        assert [list(d) for d in other.all()] == order
        for handle in (db, other, again):
            handle.close()
    else:
        db.close()


@pytest.mark.parametrize("kind", ["memory", "file"])
@pytest.mark.parametrize("indexed", [False, True])
def test_a_rolled_back_transaction_restores_documents_and_indexes(tmp_path: Path, kind: str, indexed: bool) -> None:
    db = _open(kind, tmp_path)
    if indexed:
        for fields, unique in INDEXES:
            db.create_index(*fields, unique=unique)
    db.insert_many(_docs(random.Random(1), 12))
    model = {d.doc_id: dict(d) for d in db.all()}
    with pytest.raises(RuntimeError), db.transaction():
        db.update({"a": 99, "b": {"c": 99}}, where("g") == 0)
        db.update({"$inc": {"b.c": 1}, "$push": {"arr": 7}, "$unset": {"u": ""}}, where("g") <= 1)
        db.update({"$set": {"arr.1": 5}}, where("g") == 2)
        db.remove(where("g") == 1)
        db.update({"$rename": {"a": "z"}}, where("g") == 2)
        assert db.count(where("a") == 99) == 4 and db.count(where("z").exists()) == 4  # seen inside
        raise RuntimeError("roll back")
    _check(db, model)
    assert db.count(where("b.c") == 99) == 0
    db.close()
    if kind == "file":
        again = MicroDB(str(tmp_path / "db.json"))
        _check(again, model)
        again.close()


BAD: list[tuple[Any, type[MicroDBError]]] = [
    ({"$inc": {"n": 1}}, UpdateError),  # n holds a string in one document
    ({"$push": {"tags": "x"}}, UpdateError),  # tags holds a number in one document
    ({"$inc": {"big": 2**63 - 1}}, DocumentError),  # beyond 64 bits in one document
    ({"$set": {"f": float("nan")}}, DocumentError),
    ({"f": float("inf")}, DocumentError),
    ({"$set": {"n.x": 1}}, UpdateError),  # inside a number
]


@pytest.mark.parametrize("kind", ["memory", "file"])
@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize("spec, error", BAD, ids=[repr(b[0])[:40] for b in BAD])
def test_an_update_that_fails_on_one_document_changes_none(
    tmp_path: Path, kind: str, indexed: bool, spec: Any, error: type[MicroDBError]
) -> None:
    db = _open(kind, tmp_path)
    if indexed:
        for field in ("n", "tags", "big", "f"):
            db.create_index(field)
    db.insert_many([{"n": 1, "tags": [], "big": 1}, {"n": 2, "tags": ["a"]}, {"n": "x", "tags": 5, "big": 2}])
    before = {d.doc_id: dict(d) for d in db.all()}
    with pytest.raises(error):
        db.update(spec, where("n").exists())
    _check(db, before)
    if kind == "file":
        db.close()
        again = MicroDB(str(tmp_path / "db.json"))
        _check(again, before)
        again.close()


@pytest.mark.parametrize("indexed", [False, True])
def test_inc_and_push_on_missing_fields(tmp_path: Path, indexed: bool) -> None:
    db = _open("file", tmp_path)
    if indexed:
        db.create_index("n")
        db.create_index("tags")
    db.insert_many([{"k": 1}, {"k": 2, "n": 5, "tags": ["a"]}])
    db.update({"$inc": {"n": 1}, "$push": {"tags": "x"}}, where("k").exists())
    assert [dict(d) for d in db.all()] == [{"k": 1, "n": 1, "tags": ["x"]}, {"k": 2, "n": 6, "tags": ["a", "x"]}]
    assert [d["k"] for d in db.search(where("tags").any(["x"]))] == [1, 2]
    assert [d["k"] for d in db.search(where("n") == 1)] == [1]
    db.close()


def test_an_update_journals_only_the_fields_it_changes(tmp_path: Path) -> None:
    """A patch per document: the new values of the top-level fields changed, the names of those removed."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path))
    db.insert_many([{"a": 1, "b": {"c": 1, "d": "long" * 20}, "old": 0}, {"a": 2, "b": {"c": 2}}])
    db.update({"$inc": {"b.c": 1}, "$unset": {"old": ""}}, where("a") >= 1)
    db.update({"a": 5}, doc_ids=[2])
    lines = Path(str(path) + ".journal").read_bytes().rstrip(b"\0").split(b"\n")[:-1]
    records = [json.loads(line[18:]) for line in lines[-2:]]
    assert records == [
        [["f", "_default", 1, {"b": {"c": 2, "d": "long" * 20}}, ["old"]], ["f", "_default", 2, {"b": {"c": 3}}, ["old"]]],
        [["f", "_default", 2, {"a": 5}]],
    ]
    db.close()
    again = MicroDB(str(path))
    assert [dict(d) for d in again.all()] == [{"a": 1, "b": {"c": 2, "d": "long" * 20}}, {"a": 5, "b": {"c": 3}}]
    again.close()


def test_stored_documents_are_never_changed_in_place(tmp_path: Path) -> None:
    """The new document shares unchanged values with the old one; the old one stays as it was."""
    db = _open("memory", tmp_path)
    db.insert({"keep": {"x": [1, 2]}, "b": {"c": [1], "d": {"e": 1}}, "arr": [[1], [2]]})
    table = db._backend._tables["_default"]  # type: ignore[attr-defined]
    old = table.docs[1]
    snapshot = copy.deepcopy(old)
    db.update({"$push": {"b.c": 2, "arr.0": 3}, "$set": {"b.d.e": 2}}, doc_ids=[1])
    new = table.docs[1]
    assert old == snapshot
    assert new == {"keep": {"x": [1, 2]}, "b": {"c": [1, 2], "d": {"e": 2}}, "arr": [[1, 3], [2]]}
    assert new["keep"] is old["keep"] and new["arr"][1] is old["arr"][1]
