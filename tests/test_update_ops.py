"""Update operators (MongoDB's and TinyDB's), upserts, and all-or-nothing updates on every storage."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from microdb import DocumentError, MicroDB, UpdateError, where
from microdb.compile.update_ops import compile_operators, upsert_seed
from microdb.operations import add, decrement, delete, increment, set, subtract

Case = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


def _id(value: Any) -> str:
    return repr(value)[:70]


def applied(spec: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with the update applied."""
    out = copy.deepcopy(doc)
    compile_operators(spec)(out)
    return out


CASES: list[Case] = [
    # $set
    ({"$set": {"a": 2}}, {"a": 1}, {"a": 2}),
    ({"$set": {"b": [1, {"c": 2}]}}, {"a": 1}, {"a": 1, "b": [1, {"c": 2}]}),
    ({"$set": {"x.y.z": 1}}, {}, {"x": {"y": {"z": 1}}}),
    ({"$set": {"x.y": 1}}, {"x": {"k": 0}}, {"x": {"k": 0, "y": 1}}),
    ({"$set": {"a.1": "b"}}, {"a": ["x", "y"]}, {"a": ["x", "b"]}),
    ({"$set": {"a.3": "d"}}, {"a": ["x"]}, {"a": ["x", None, None, "d"]}),
    ({"$set": {"a.0.b": 5}}, {"a": [{"b": 1}, {"b": 2}]}, {"a": [{"b": 5}, {"b": 2}]}),
    ({"$set": {"a.1.b": 5}}, {"a": []}, {"a": [None, {"b": 5}]}),
    ({"$set": {"a.0": 1}}, {"a": {}}, {"a": {"0": 1}}),
    ({"$set": {"when": dt.date(2024, 1, 2)}}, {}, {"when": dt.date(2024, 1, 2)}),
    ({"$set": {}}, {"a": 1}, {"a": 1}),
    # $unset
    ({"$unset": {"a": ""}}, {"a": 1, "b": 2}, {"b": 2}),
    ({"$unset": {"zz": ""}}, {"a": 1}, {"a": 1}),
    ({"$unset": {"a.b": True}}, {"a": {"b": 1, "c": 2}}, {"a": {"c": 2}}),
    ({"$unset": {"a.b.c": 1}}, {"a": 5}, {"a": 5}),
    ({"$unset": {"a.1": ""}}, {"a": [1, 2, 3]}, {"a": [1, None, 3]}),
    ({"$unset": {"a.9": ""}}, {"a": [1]}, {"a": [1]}),
    # $inc and $mul
    ({"$inc": {"n": 2}}, {"n": 1}, {"n": 3}),
    ({"$inc": {"n": -1.5}}, {"n": 1}, {"n": -0.5}),
    ({"$inc": {"n": 1}}, {}, {"n": 1}),
    ({"$inc": {"a.b": 1}}, {"a": {}}, {"a": {"b": 1}}),
    ({"$inc": {"n": Decimal("0.1")}}, {"n": Decimal("1.2")}, {"n": Decimal("1.3")}),
    ({"$inc": {"n": 0.5}}, {"n": Decimal("1")}, {"n": Decimal("1.5")}),
    ({"$inc": {"a.0": 1}}, {"a": [1, 2]}, {"a": [2, 2]}),
    ({"$mul": {"n": 3}}, {"n": 2}, {"n": 6}),
    ({"$mul": {"n": 0.5}}, {"n": 3}, {"n": 1.5}),
    ({"$mul": {"n": 5}}, {}, {"n": 0}),
    ({"$mul": {"n": 2.5}}, {}, {"n": 0.0}),
    # $min and $max
    ({"$min": {"n": 3}}, {"n": 5}, {"n": 3}),
    ({"$min": {"n": 7}}, {"n": 5}, {"n": 5}),
    ({"$min": {"n": 7}}, {}, {"n": 7}),
    ({"$max": {"n": 7}}, {"n": 5}, {"n": 7}),
    ({"$max": {"n": 3}}, {"n": 5}, {"n": 5}),
    ({"$max": {"n": "a"}}, {"n": 5}, {"n": "a"}),
    ({"$min": {"n": None}}, {"n": 5}, {"n": None}),
    ({"$max": {"d": dt.datetime(2025, 1, 1)}}, {"d": dt.datetime(2024, 1, 1)}, {"d": dt.datetime(2025, 1, 1)}),
    # $rename
    ({"$rename": {"a": "b"}}, {"a": 1}, {"b": 1}),
    ({"$rename": {"a": "b"}}, {"a": 1, "b": 2}, {"b": 1}),
    ({"$rename": {"a": "b"}}, {"c": 1}, {"c": 1}),
    ({"$rename": {"a.x": "b.y"}}, {"a": {"x": 1, "z": 2}}, {"a": {"z": 2}, "b": {"y": 1}}),
    # $push
    ({"$push": {"t": "c"}}, {"t": ["a", "b"]}, {"t": ["a", "b", "c"]}),
    ({"$push": {"t": "a"}}, {}, {"t": ["a"]}),
    ({"$push": {"t": ["x", "y"]}}, {"t": []}, {"t": [["x", "y"]]}),
    ({"$push": {"t": {"$each": ["x", "y"]}}}, {"t": ["a"]}, {"t": ["a", "x", "y"]}),
    ({"$push": {"t": {"$each": ["x"], "$position": 0}}}, {"t": ["a", "b"]}, {"t": ["x", "a", "b"]}),
    ({"$push": {"t": {"$each": ["x"], "$position": -1}}}, {"t": ["a", "b"]}, {"t": ["a", "x", "b"]}),
    ({"$push": {"t": {"$each": ["x"], "$position": 9}}}, {"t": ["a"]}, {"t": ["a", "x"]}),
    ({"$push": {"t": {"$each": [4, 5], "$slice": -3}}}, {"t": [1, 2, 3]}, {"t": [3, 4, 5]}),
    ({"$push": {"t": {"$each": [4, 5], "$slice": 2}}}, {"t": [1, 2, 3]}, {"t": [1, 2]}),
    ({"$push": {"t": {"$each": [], "$slice": 0}}}, {"t": [1, 2]}, {"t": []}),
    ({"$push": {"t": {"$each": [2, 9], "$sort": -1}}}, {"t": [5, 1]}, {"t": [9, 5, 2, 1]}),
    (
        {"$push": {"t": {"$each": [{"s": 2}], "$sort": {"s": 1}, "$slice": 2}}},
        {"t": [{"s": 3}, {"s": 1}]},
        {"t": [{"s": 1}, {"s": 2}]},
    ),
    ({"$push": {"a.b": 1}}, {}, {"a": {"b": [1]}}),
    # $addToSet
    ({"$addToSet": {"t": "b"}}, {"t": ["a", "b"]}, {"t": ["a", "b"]}),
    ({"$addToSet": {"t": "c"}}, {"t": ["a"]}, {"t": ["a", "c"]}),
    ({"$addToSet": {"t": 1}}, {"t": [True]}, {"t": [True, 1]}),
    ({"$addToSet": {"t": 1.0}}, {"t": [1]}, {"t": [1]}),
    ({"$addToSet": {"t": {"$each": ["a", "d", "d"]}}}, {"t": ["a"]}, {"t": ["a", "d"]}),
    ({"$addToSet": {"t": {"k": 1}}}, {"t": [{"k": 1}]}, {"t": [{"k": 1}]}),
    ({"$addToSet": {"t": "x"}}, {}, {"t": ["x"]}),
    # $pop
    ({"$pop": {"t": 1}}, {"t": [1, 2, 3]}, {"t": [1, 2]}),
    ({"$pop": {"t": -1}}, {"t": [1, 2, 3]}, {"t": [2, 3]}),
    ({"$pop": {"t": 1}}, {"t": []}, {"t": []}),
    ({"$pop": {"t": 1}}, {}, {}),
    # $pull and $pullAll
    ({"$pull": {"t": "a"}}, {"t": ["a", "b", "a"]}, {"t": ["b"]}),
    ({"$pull": {"t": 1}}, {"t": [1, 1.0, True, "1"]}, {"t": [True, "1"]}),
    ({"$pull": {"t": {"$gte": 6}}}, {"t": [3, 6, 9, "z"]}, {"t": [3, "z"]}),
    ({"$pull": {"t": {"$in": ["a", "c"]}}}, {"t": ["a", "b", "c"]}, {"t": ["b"]}),
    ({"$pull": {"t": {"k": 2}}}, {"t": [{"k": 1}, {"k": 2, "z": 0}, 2]}, {"t": [{"k": 1}, 2]}),
    ({"$pull": {"t": {"k": {"$gt": 1}}}}, {"t": [{"k": 1}, {"k": 5}]}, {"t": [{"k": 1}]}),
    ({"$pull": {"t": [1, 2]}}, {"t": [[1, 2], [2, 1]]}, {"t": [[2, 1]]}),
    ({"$pull": {"t": "a"}}, {}, {}),
    ({"$pullAll": {"t": ["a", "c"]}}, {"t": ["a", "b", "c", "a"]}, {"t": ["b"]}),
    # $currentDate is tested below; several operators at once
    (
        {"$set": {"a.x": 1}, "$inc": {"n": 1}, "$unset": {"old": ""}, "$push": {"t": 0}},
        {"a": {}, "n": 1, "old": 1, "t": []},
        {"a": {"x": 1}, "n": 2, "t": [0]},
    ),
]


@pytest.mark.parametrize("spec, before, after", CASES, ids=[_id(c[:2]) for c in CASES])
def test_operator(spec: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    """Each operator changes a document as MongoDB would."""
    result = applied(spec, before)
    assert result == after
    assert [type(v) for v in result.values()] == [type(v) for v in after.values()]


def test_current_date_sets_an_aware_utc_datetime() -> None:
    """``$currentDate`` sets the current time as an aware UTC datetime."""
    before = dt.datetime.now(dt.timezone.utc)
    doc = applied({"$currentDate": {"seen": True, "a.at": {"$type": "date"}}}, {})
    after = dt.datetime.now(dt.timezone.utc)
    for value in (doc["seen"], doc["a"]["at"]):
        assert isinstance(value, dt.datetime) and value.tzinfo is not None
        assert before <= value <= after


def test_values_are_copied_into_each_document() -> None:
    """One update applied to two documents gives each its own copy of the values it sets."""
    update = compile_operators({"$set": {"l": [1]}, "$push": {"t": {"$each": [{"k": 1}]}}})
    one: dict[str, Any] = {}
    two: dict[str, Any] = {}
    update(one)
    update(two)
    one["l"].append(2)
    one["t"][0]["k"] = 9
    assert two == {"l": [1], "t": [{"k": 1}]}


INVALID: list[tuple[Any, list[str]]] = [
    ({"$foo": {"a": 1}}, ["'$foo'"]),
    ({}, ["non-empty"]),
    ({"$set": 5}, ["$set", "mapping"]),
    ({"$set": {"": 1}}, ["$set"]),
    ({"$set": {"a..b": 1}}, ["'a..b'"]),
    ({"$set": {"a.$": 1}}, ["'$'"]),
    ({"$set": {"a.$[]": 1}}, ["not supported"]),
    ({"$set": {"a": 1}, "$inc": {"a": 1}}, ["conflict", "'a'"]),
    ({"$set": {"a": 1}, "$unset": {"a.b": ""}}, ["conflict", "'a'"]),
    ({"$set": {"a.b": 1, "a": 2}}, ["conflict"]),
    ({"$rename": {"a": "a"}}, ["conflict"]),
    ({"$rename": {"a": "b"}, "$set": {"b.c": 1}}, ["conflict", "'b'"]),
    ({"$rename": {"a": 5}}, ["$rename"]),
    ({"$inc": {"n": "1"}}, ["$inc", "'n'", "number"]),
    ({"$inc": {"n": True}}, ["$inc", "number"]),
    ({"$mul": {"n": None}}, ["$mul"]),
    ({"$push": {"t": {"$each": 5}}}, ["$each"]),
    ({"$push": {"t": {"$slice": 1}}}, ["$each"]),
    ({"$push": {"t": {"$each": [1], "$slice": "x"}}}, ["$slice"]),
    ({"$push": {"t": {"$each": [1], "$position": 1.5}}}, ["$position"]),
    ({"$push": {"t": {"$each": [1], "$sort": 2}}}, ["$sort"]),
    ({"$push": {"t": {"$each": [1], "$sort": {"k": 0}}}}, ["$sort"]),
    ({"$push": {"t": {"$each": [1], "$bogus": 1}}}, ["'$bogus'"]),
    ({"$addToSet": {"t": {"$each": [1], "$slice": 1}}}, ["'$slice'"]),
    ({"$pop": {"t": 2}}, ["$pop", "1 or -1"]),
    ({"$pop": {"t": True}}, ["$pop"]),
    ({"$pull": {"t": {"$foo": 1}}}, ["$pull", "'$foo'"]),
    ({"$pullAll": {"t": 1}}, ["$pullAll"]),
    ({"$currentDate": {"d": False}}, ["$currentDate"]),
    ({"$currentDate": {"d": {"$type": "timestamp"}}}, ["timestamp"]),
    ({"$currentDate": {"d": {"$type": "x"}}}, ["$currentDate"]),
]


@pytest.mark.parametrize("spec, fragments", INVALID, ids=[_id(c[0]) for c in INVALID])
def test_malformed_updates_are_refused_up_front(spec: Any, fragments: list[str]) -> None:
    """An unknown operator, a bad operand or two conflicting paths raise UpdateError before any change."""
    with pytest.raises(UpdateError) as info:
        compile_operators(spec)
    for fragment in fragments:
        assert fragment in str(info.value)


IMPOSSIBLE: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = [
    ({"$inc": {"n": 1}}, {"n": "x"}, ["$inc", "'n'", "str"]),
    ({"$inc": {"n": 1}}, {"n": True}, ["$inc", "bool"]),
    ({"$inc": {"n": 1}}, {"n": None}, ["$inc"]),
    ({"$mul": {"n": 2}}, {"n": [1]}, ["$mul"]),
    ({"$set": {"a.b": 1}}, {"a": 5}, ["'a.b'", "'a'", "int"]),
    ({"$set": {"a.b.c": 1}}, {"a": {"b": "s"}}, ["'a.b'", "str"]),
    ({"$set": {"a.b": 1}}, {"a": None}, ["NoneType"]),
    ({"$set": {"a.b": 1}}, {"a": [1]}, ["array"]),
    ({"$push": {"t": 1}}, {"t": "x"}, ["$push", "array"]),
    ({"$push": {"t": 1}}, {"t": (1, 2)}, ["$push", "array"]),
    ({"$addToSet": {"t": 1}}, {"t": {"a": 1}}, ["$addToSet", "array"]),
    ({"$pop": {"t": 1}}, {"t": 5}, ["$pop"]),
    ({"$pull": {"t": 1}}, {"t": "abc"}, ["$pull"]),
    ({"$pullAll": {"t": [1]}}, {"t": 1}, ["$pullAll"]),
    ({"$rename": {"a.0": "b"}}, {"a": [1]}, ["$rename", "array"]),
]


@pytest.mark.parametrize("spec, doc, fragments", IMPOSSIBLE, ids=[_id(c[:2]) for c in IMPOSSIBLE])
def test_an_update_that_cannot_apply_raises(spec: dict[str, Any], doc: dict[str, Any], fragments: list[str]) -> None:
    """Applying an operator to a value of the wrong kind raises UpdateError naming the field."""
    with pytest.raises(UpdateError) as info:
        applied(spec, doc)
    for fragment in fragments:
        assert fragment in str(info.value)


SEEDS: list[tuple[Any, dict[str, Any]]] = [
    ({"name": "x"}, {"name": "x"}),
    ({"name": "x", "age": {"$gt": 3}}, {"name": "x"}),
    ({"a.b": 1, "a.c": 2, "d": {"$eq": 3}}, {"a": {"b": 1, "c": 2}, "d": 3}),
    ({"$and": [{"a": 1}, {"$and": [{"b": 2}]}], "$or": [{"c": 1}]}, {"a": 1, "b": 2}),
    ({"a": {"k": [1]}}, {"a": {"k": [1]}}),
    ({"a": None}, {"a": None}),
    ({"a": {"$in": [1, 2]}}, {}),
    ({}, {}),
    (where("a") == 1, {}),
    (lambda doc: True, {}),
]


@pytest.mark.parametrize("cond, seed", SEEDS, ids=[_id(s[0]) for s in SEEDS])
def test_upsert_seed(cond: Any, seed: dict[str, Any]) -> None:
    """An upsert starts from the equality fields of a dict filter, and from nothing otherwise."""
    assert upsert_seed(cond) == seed


def test_upsert_seed_refuses_a_field_set_twice() -> None:
    """A filter fixing a field and a field inside it cannot seed a document."""
    with pytest.raises(UpdateError):
        upsert_seed({"a": 1, "a.b": 2})
    with pytest.raises(UpdateError):
        upsert_seed({"a": 1, "$and": [{"a": 2}]})


# ---------------------------------------------------------------------------------------
# Through tables, on every storage
# ---------------------------------------------------------------------------------------


def test_update_with_operators_persists(opener: Callable[[], MicroDB]) -> None:
    """Operators update the matching documents, and the change is there after reopening."""
    db = opener()
    users = db.table("users")
    users.insert_many([{"name": "a", "visits": 1, "tags": []}, {"name": "b", "visits": 5, "tags": ["x"]}])
    changed = users.update({"$inc": {"visits": 1}, "$addToSet": {"tags": "x"}, "$set": {"seen.at": "now"}},
                           {"visits": {"$lt": 3}})
    assert changed == [1]
    db.close()
    users = opener().table("users")
    assert users.get(doc_id=1) == {"name": "a", "visits": 2, "tags": ["x"], "seen": {"at": "now"}}
    assert users.get(doc_id=2) == {"name": "b", "visits": 5, "tags": ["x"]}


def test_a_failing_update_changes_no_document(opener: Callable[[], MicroDB]) -> None:
    """When one document cannot take the update, no document changes, in memory or on reopening."""
    db = opener()
    db.insert_many([{"n": 1}, {"n": 2}, {"n": "three"}, {"n": 4}])
    before = db.all()
    with pytest.raises(UpdateError, match="'n'"):
        db.update({"$inc": {"n": 10}}, {})
    with pytest.raises(UpdateError):
        db.update({"$inc": {"n": 10}}, {"n": {"$exists": True}})
    with pytest.raises(UpdateError, match="conflict"):
        db.update({"$set": {"n": 1}, "$inc": {"n": 1}}, doc_ids=[1])
    with pytest.raises(DocumentError):
        db.update({"$set": {"bad": float("nan")}}, {})
    assert db.all() == before
    db.close()
    assert opener().all() == before


def test_update_multiple_is_all_or_nothing(db: MicroDB) -> None:
    """update_multiple applies every pair or, when one fails, none."""
    db.insert_many([{"k": 1, "n": 0}, {"k": 2, "n": "x"}])
    with pytest.raises(UpdateError):
        db.update_multiple([({"$inc": {"n": 1}}, {"k": 1}), ({"$inc": {"n": 1}}, {"k": 2})])
    assert [d["n"] for d in db.all()] == [0, "x"]
    assert db.update_multiple([({"$inc": {"n": 1}}, {"k": 1}), ({"$set": {"n": "y"}}, {"k": 2})]) == [1, 2]
    assert [d["n"] for d in db.all()] == [1, "y"]


def test_upsert_inserts_the_filter_fields_plus_the_update(opener: Callable[[], MicroDB]) -> None:
    """With nothing matching, upsert inserts the filter's equality fields with the update applied."""
    db = opener()
    ids = db.upsert({"$inc": {"count": 1}, "$set": {"meta.tag": "new"}},
                    {"user": "ann", "page.path": "/", "count": {"$gte": 0}})
    assert db.get(doc_id=ids[0]) == {"user": "ann", "page": {"path": "/"}, "count": 1, "meta": {"tag": "new"}}
    again = db.upsert({"$inc": {"count": 1}}, {"user": "ann", "page.path": "/"})
    assert again == ids
    db.close()
    db = opener()
    assert db.all() == [{"user": "ann", "page": {"path": "/"}, "count": 2, "meta": {"tag": "new"}}]


def test_upsert_with_fields_and_a_where_query(db: MicroDB) -> None:
    """Upsert with plain fields inserts them; with a where() query and operators, only the update's fields."""
    assert db.upsert({"name": "x", "n": 1}, where("name") == "x") == [1]
    assert db.upsert({"n": 2}, where("name") == "x") == [1]
    assert db.get(doc_id=1) == {"name": "x", "n": 2}
    new = db.upsert({"$set": {"k": 1}}, where("name") == "nobody")
    assert db.get(doc_id=new[0]) == {"k": 1}


def test_an_upsert_that_fails_inserts_nothing(db: MicroDB) -> None:
    """An impossible upsert raises and leaves the table empty."""
    with pytest.raises(UpdateError):
        db.upsert({"$push": {"name": "x"}}, {"name": "ann"})
    with pytest.raises(UpdateError):
        db.upsert({"$bogus": {"a": 1}}, {"name": "ann"})
    assert len(db) == 0


OPERATIONS: list[tuple[Callable[[dict[str, Any]], None], dict[str, Any], dict[str, Any]]] = [
    (delete("a"), {"a": 1, "b": 2}, {"b": 2}),
    (increment("n"), {"n": 1}, {"n": 2}),
    (decrement("n"), {"n": 1}, {"n": 0}),
    (add("n", 2.5), {"n": 1}, {"n": 3.5}),
    (add("s", "!"), {"s": "hi"}, {"s": "hi!"}),
    (add("l", [2]), {"l": [1]}, {"l": [1, 2]}),
    (subtract("n", 3), {"n": 1}, {"n": -2}),
    (set("a", {"b": 1}), {}, {"a": {"b": 1}}),
    (set("a", None), {"a": 1}, {"a": None}),
]


@pytest.mark.parametrize("operation, before, after", OPERATIONS, ids=[_id(o[1:]) for o in OPERATIONS])
def test_tinydb_operations(db: MicroDB, operation: Callable[[dict[str, Any]], None], before: dict[str, Any],
                           after: dict[str, Any]) -> None:
    """TinyDB's operations update documents through ``table.update``."""
    doc_id = db.insert(before)
    assert db.update(operation, doc_ids=[doc_id]) == [doc_id]
    assert db.get(doc_id=doc_id) == after


@pytest.mark.parametrize(
    "operation",
    [delete("missing"), increment("missing"), increment("s"), subtract("s", 1), add("n", "x")],
    ids=["delete-missing", "increment-missing", "increment-str", "subtract-str", "add-str-to-int"],
)
def test_a_failing_tinydb_operation_changes_nothing(db: MicroDB, operation: Callable[[dict[str, Any]], None]) -> None:
    """A TinyDB operation that fails on one document raises UpdateError and changes none."""
    db.insert_many([{"n": 1, "s": "a"}, {"n": 2}])
    before = db.all()
    with pytest.raises(UpdateError):
        db.update(operation, {})
    assert db.all() == before
