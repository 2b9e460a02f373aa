"""Indexes and the planner: used when they help, never changing an answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microdb import DuplicateKeyError, MicroDB, Query, where
from microdb.engine import MemoryBackend
from microdb.engine.index import Index

PEOPLE: list[dict[str, Any]] = [
    {"name": "Ann", "age": 30, "city": "Oslo", "tags": ["a"], "address": {"zip": "0150"}},
    {"name": "Bob", "age": 25, "city": "Rome", "tags": ["a", "b"], "address": {"zip": "00100"}},
    {"name": "Cid", "age": "unknown", "city": "Oslo"},
    {"name": "Dee", "age": 41.5, "city": None, "tags": []},
    {"name": "Eve", "age": True},
    {"name": "Fay", "age": 30.0, "city": "Bern", "address": {"zip": 3000}},
]


@pytest.fixture
def people(db: MicroDB) -> Any:
    t = db.table("people")
    t.insert_many(PEOPLE)
    return t


QUERIES = [
    where("age") == 30,
    where("age") > 26,
    where("age") <= 30,
    (where("age") >= 25) & (where("age") < 41),
    where("age") == True,  # noqa: E712
    where("age") == "unknown",
    where("age") < "z",
    where("city") == "Oslo",
    where("city") == None,  # noqa: E711
    where("city").one_of(["Oslo", "Bern"]),
    (where("city") == "Oslo") | (where("age") == 25),
    (where("city") == "Oslo") & (where("name") == "Ann"),
    ~(where("city") == "Oslo"),
    where("tags").any(["b"]),
    where("tags") == ["a"],
    Query().address.zip == "0150",
    Query().address.zip > 100,
    {"age": {"$gte": 30}},
    {"tags": "a"},
]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_indexes_never_change_answers(people: Any, query: Any) -> None:
    """Each query returns the same ids with and without indexes on its fields."""
    before = people.query(query).ids()
    count_before = people.count(query)
    for field in ("age", "city", "tags", "address.zip", "name"):
        people.create_index(field)
    assert people.query(query).ids() == before
    assert people.count(query) == count_before == len(before)


def test_explain_reports_index_and_examined(people: Any) -> None:
    """explain() names the index used and how many documents were examined."""
    full = people.query(where("city") == "Oslo").explain()
    assert full["index"] is None and full["examined"] == len(PEOPLE) and full["matched"] == 2
    people.create_index("city")
    plan = people.query(where("city") == "Oslo").explain()
    assert plan["index"] is not None and "city" in plan["index"]
    assert plan["examined"] == 2 and plan["matched"] == 2
    both = people.query((where("city") == "Oslo") & (where("age") == 30)).explain()
    assert both["examined"] == 2 and both["matched"] == 1


def test_planner_picks_the_most_selective_index(people: Any) -> None:
    """With two usable indexes, the one with fewer candidates is used."""
    people.create_index("city")
    people.create_index("name")
    plan = people.query((where("city") == "Oslo") & (where("name") == "Cid")).explain()
    assert "name" in plan["index"] and plan["examined"] == 1


def test_or_of_indexed_branches_unions(people: Any) -> None:
    """An | whose branches are all indexed uses the indexes; one unindexed branch scans."""
    people.create_index("city")
    people.create_index("name")
    plan = people.query((where("city") == "Rome") | (where("name") == "Eve")).explain()
    assert plan["index"] is not None and plan["examined"] == 2
    assert people.query((where("city") == "Rome") | (where("age") == 30)).explain()["index"] is None


def test_sort_limit_reads_index_in_order(people: Any) -> None:
    """sort + limit on an indexed field gives the same documents as a full sort."""
    expected = [d["name"] for d in people.query().sort("city").all()]
    expected_desc = [d["name"] for d in people.query().sort("city", reverse=True).all()]
    people.create_index("city")
    if isinstance(people._backend, MemoryBackend):  # the SQL engines plan this themselves
        assert people.query().sort("city").limit(3).explain()["ordered_by_index"] is True
    assert [d["name"] for d in people.query().sort("city").limit(10)] == expected
    assert [d["name"] for d in people.query().sort("city", reverse=True).limit(10)] == expected_desc
    assert [d["name"] for d in people.query(where("name") != "Ann").sort("city").skip(1).limit(2)] == [
        n for n in expected if n != "Ann"
    ][1:3]


def test_index_follows_every_write(people: Any) -> None:
    """Inserts, updates and removes keep the index exact."""
    people.create_index("city")
    people.update({"city": "Rome"}, where("name") == "Ann")
    assert [d["name"] for d in people.search(where("city") == "Rome")] == ["Ann", "Bob"]
    people.remove(where("name") == "Bob")
    people.insert({"name": "Gus", "city": "Rome"})
    assert [d["name"] for d in people.search(where("city") == "Rome")] == ["Ann", "Gus"]
    people.update({"$unset": {"city": ""}}, where("name") == "Gus")
    assert [d["name"] for d in people.search(where("city") == "Rome")] == ["Ann"]


def test_unique_index_rejects_duplicates_and_changes_nothing(db: MicroDB) -> None:
    """A unique index refuses a duplicate from insert, insert_many and update, atomically."""
    users = db.table("users")
    users.insert_many([{"email": "a@x"}, {"email": "b@x"}, {"nomail": True}])
    users.create_index("email", unique=True)
    before = users.all()
    with pytest.raises(DuplicateKeyError):
        users.insert({"email": "a@x"})
    with pytest.raises(DuplicateKeyError):
        users.insert_many([{"email": "c@x"}, {"email": "c@x"}])
    with pytest.raises(DuplicateKeyError):
        users.insert_many([{"email": "d@x"}, {"email": "b@x"}])
    with pytest.raises(DuplicateKeyError):
        users.update({"email": "same@x"}, {})
    with pytest.raises(DuplicateKeyError):
        users.update({"email": "b@x"}, where("email") == "a@x")
    assert users.all() == before
    assert users.insert({"nomail": 2}) == 4  # missing values do not collide
    users.update({"email": "A@x"}, where("email") == "a@x")  # a changed value is fine
    assert users.count(where("email") == "A@x") == 1


def test_unique_index_on_existing_duplicates_is_refused(db: MicroDB) -> None:
    """Creating a unique index over duplicate values raises and creates nothing."""
    t = db.table("t")
    t.insert_many([{"k": 1}, {"k": 1.0}])
    with pytest.raises(DuplicateKeyError):
        t.create_index("k", unique=True)
    assert t.indexes() == []
    t.create_index("k")
    assert t.indexes() == [{"path": ["k"], "unique": False}]


def test_unique_index_distinguishes_kinds(db: MicroDB) -> None:
    """True and 1 are different values for a unique index; 1 and 1.0 are the same."""
    t = db.table("t")
    t.create_index("k", unique=True)
    t.insert_many([{"k": 1}, {"k": True}, {"k": "1"}])
    with pytest.raises(DuplicateKeyError):
        t.insert({"k": 1.0})


def test_failed_transaction_restores_indexes(db: MicroDB) -> None:
    """A write block that raises leaves indexes as they were."""
    t = db.table("t")
    t.create_index("k")
    t.insert_many([{"k": 1}, {"k": 2}])
    with pytest.raises(RuntimeError):
        with db.transaction():
            t.update({"k": 5}, where("k") == 1)
            t.remove(where("k") == 2)
            t.insert({"k": 5})
            raise RuntimeError("abort")
    assert t.query(where("k") == 5).ids() == []
    assert t.query(where("k") == 1).ids() == [1]
    assert t.query(where("k") == 2).ids() == [2]
    assert [d.doc_id for d in t.all()] == [1, 2]


@pytest.mark.parametrize(
    "query",
    [
        {"address.zip": "0150"},
        {"address.zip": {"$gt": 100}},
        {"address.zip": {"$in": ["0150", 5]}},
        {"tags": "b"},
        {"tags": {"$in": ["b", "z"]}},
        {"age": {"$gte": 30}},
    ],
    ids=repr,
)
def test_dict_filters_through_arrays_use_indexes_correctly(people: Any, query: Any) -> None:
    """Dot paths and array elements: indexed answers equal full scans as arrays come and go."""
    for field in ("age", "tags", "address.zip"):
        people.create_index(field)
    if isinstance(people._backend, MemoryBackend):
        assert people.query(query).explain()["index"] is not None
    expected = [d.doc_id for d in people.all() if people.query(query).ids().count(d.doc_id)]
    people.drop_index("address.zip")
    assert people.query(query).ids() == expected
    people.create_index("address.zip")
    new_id = people.insert({"name": "Arr", "age": [30, 50], "address": [{"zip": "0150"}, {"zip": 500}]})
    indexed = people.query(query).ids()
    for field in ("age", "tags", "address.zip"):
        people.drop_index(field)
    assert people.query(query).ids() == indexed
    for field in ("age", "tags", "address.zip"):
        people.create_index(field)
    people.remove(doc_ids=[new_id])
    assert people.query(query).ids() == expected


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(0, 5), st.just("missing")), max_size=60),
    reverse=st.booleans(),
    need=st.integers(0, 70),
)
def test_index_scan_with_a_hint_equals_the_full_scan(values: list[Any], reverse: bool, need: int) -> None:
    """An ordered scan started with a ``need`` hint yields exactly the ids of the full scan."""
    index = Index(("a",))
    for doc_id, value in enumerate(values, start=1):
        index.add(doc_id, {} if value == "missing" else {"a": value})
    assert list(index.scan(reverse, need)) == list(index.scan(reverse))
