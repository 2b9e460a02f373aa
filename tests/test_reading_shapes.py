"""Reading shapes on the lazy result: projection, sort, skip, limit, distinct and count, on every storage."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microdb import MicroDB, Query, QueryError, where
from microdb.storage import InMemoryStorage

PEOPLE: list[dict[str, Any]] = [
    {"name": "ann", "age": 31, "city": "Oslo", "address": {"city": "Oslo", "zip": "0150"},
     "tags": ["a", "b"], "items": [{"sku": "x1", "qty": 2}, {"sku": "x2", "qty": 1}]},
    {"name": "bob", "age": 25, "city": "Rome", "address": {"city": "Rome"}, "tags": ["b"]},
    {"name": "cid", "age": 31, "city": "Bern", "tags": [], "items": [{"sku": "x1", "qty": 5}]},
    {"name": "dan", "city": "Oslo", "address": "unknown", "tags": "c"},
    {"name": "eve", "age": 25.0, "city": "Bern", "address": {"zip": "3000"}},
]


@pytest.fixture
def people(db: MicroDB) -> MicroDB:
    """The database with PEOPLE in its default table (ids 1 to 5)."""
    db.insert_many(PEOPLE)
    return db


INCLUDE: list[tuple[Any, list[dict[str, Any]]]] = [
    ("name", [{"name": n} for n in ("ann", "bob", "cid", "dan", "eve")]),
    (["name", "age"], [{"name": "ann", "age": 31}, {"name": "bob", "age": 25}, {"name": "cid", "age": 31},
                       {"name": "dan"}, {"name": "eve", "age": 25.0}]),
    ("address.city", [{"address": {"city": "Oslo"}}, {"address": {"city": "Rome"}}, {}, {}, {"address": {}}]),
    ({"address.city": 1, "name": True}, [{"name": "ann", "address": {"city": "Oslo"}},
                                         {"name": "bob", "address": {"city": "Rome"}},
                                         {"name": "cid"}, {"name": "dan"}, {"name": "eve", "address": {}}]),
    ("items.sku", [{"items": [{"sku": "x1"}, {"sku": "x2"}]}, {}, {"items": [{"sku": "x1"}]}, {}, {}]),
    (("address", "address.zip"), [{"address": PEOPLE[0]["address"]}, {"address": {"city": "Rome"}}, {},
                                  {"address": "unknown"}, {"address": {"zip": "3000"}}]),
    ("missing", [{}, {}, {}, {}, {}]),
]


@pytest.mark.parametrize("fields, expected", INCLUDE, ids=[repr(c[0]) for c in INCLUDE])
def test_project_includes(people: MicroDB, fields: Any, expected: list[dict[str, Any]]) -> None:
    """An inclusion keeps only the named fields, nested ones inside their parents and array elements."""
    docs = people.query().project(fields).all()
    assert docs == expected
    assert [d.doc_id for d in docs] == [1, 2, 3, 4, 5]


def test_project_as_separate_arguments(people: MicroDB) -> None:
    """``project('a', 'b')`` and ``project(['a', 'b'])`` are the same projection."""
    assert people.query().project("name", "city").all() == people.query().project(["name", "city"]).all()
    assert people.query().project(where("address").city).first() == {"address": {"city": "Oslo"}}


EXCLUDE: list[tuple[Any, int, dict[str, Any]]] = [
    ({"tags": 0, "items": 0, "address": 0}, 1, {"name": "ann", "age": 31, "city": "Oslo"}),
    ({"address.zip": 0}, 1, {**PEOPLE[0], "address": {"city": "Oslo"}}),
    ({"items.qty": False}, 1, {**PEOPLE[0], "items": [{"sku": "x1"}, {"sku": "x2"}]}),
    ({"address.zip": 0}, 4, PEOPLE[3]),
    ({"nothing": 0}, 2, PEOPLE[1]),
]


@pytest.mark.parametrize("fields, doc_id, expected", EXCLUDE, ids=[repr(c[0]) for c in EXCLUDE])
def test_project_excludes(people: MicroDB, fields: dict[str, Any], doc_id: int, expected: dict[str, Any]) -> None:
    """An exclusion drops the named fields, nested ones and those inside array elements."""
    doc = people.query(doc_id_is(doc_id)).project(fields).first()
    assert doc == expected


def doc_id_is(doc_id: int) -> Any:
    """A query selecting PEOPLE[doc_id - 1] by name."""
    return where("name") == PEOPLE[doc_id - 1]["name"]


def test_project_exclude_keyword(people: MicroDB) -> None:
    """``exclude=True`` is the keyword form of ``{'f': 0}``."""
    assert people.query().project("tags", "items", "address", exclude=True).first() == {
        "name": "ann", "age": 31, "city": "Oslo"}


def test_empty_mongo_projection_keeps_whole_documents(people: MicroDB) -> None:
    """``project({})`` is no projection at all, as in MongoDB."""
    assert people.query().project({}).all() == PEOPLE


def test_projection_cannot_mix_include_and_exclude(people: MicroDB) -> None:
    """A MongoDB projection with both 1 and 0 raises QueryError."""
    with pytest.raises(QueryError, match="includes or excludes"):
        people.query().project({"name": 1, "age": 0})


def test_projected_documents_are_copies(people: MicroDB) -> None:
    """Changing a projected document changes nothing stored."""
    doc = people.query(where("name") == "ann").project("address", "items").first()
    assert doc is not None
    doc["address"]["city"] = "changed"
    doc["items"][0]["sku"] = "changed"
    assert people.get(doc_id=1) == PEOPLE[0]


SORTS: list[tuple[tuple[Any, ...], dict[str, Any], list[str]]] = [
    (("name",), {}, ["ann", "bob", "cid", "dan", "eve"]),
    (("name",), {"reverse": True}, ["eve", "dan", "cid", "bob", "ann"]),
    ((("name", -1),), {}, ["eve", "dan", "cid", "bob", "ann"]),
    (("age", "name"), {}, ["dan", "bob", "eve", "ann", "cid"]),
    ((("age", -1), "name"), {}, ["ann", "cid", "bob", "eve", "dan"]),
    ((("age", -1), ("name", -1)), {}, ["cid", "ann", "eve", "bob", "dan"]),
    (("city", ("age", 1)), {}, ["eve", "cid", "dan", "ann", "bob"]),
    ((["city", ("name", -1)],), {}, ["eve", "cid", "dan", "ann", "bob"]),
    (("address.city", "name"), {}, ["cid", "dan", "eve", "ann", "bob"]),
    ((Query().address.city, "name"), {}, ["cid", "dan", "eve", "ann", "bob"]),
    ((lambda d: len(d["name"]) + d.get("age", 0), ("name", -1)), {}, ["dan", "eve", "bob", "cid", "ann"]),
]


@pytest.mark.parametrize("keys, options, expected", SORTS, ids=[repr(c[0])[:60] for c in SORTS])
def test_sort(people: MicroDB, keys: tuple[Any, ...], options: dict[str, Any], expected: list[str]) -> None:
    """Several keys, each with its own direction; missing fields sort first ascending; ties keep id order."""
    assert [d["name"] for d in people.query().sort(*keys, **options)] == expected


def test_sort_orders_kinds_as_documented(db: MicroDB) -> None:
    """Mixed kinds sort missing, null, numbers, strings, objects, arrays, bytes, UUIDs, bools, datetimes."""
    values: list[Any] = [
        dt.datetime(2024, 1, 1), True, uuid.UUID(int=1), b"\x01", [1], {"a": 1}, "b", "a", 2.5, 1, None,
    ]
    db.insert_many([{"v": v, "i": i} for i, v in enumerate(values)] + [{"i": 99}])
    order = [d.get("v", "missing") for d in db.query().sort("v")]
    assert order == ["missing", None, 1, 2.5, "a", "b", {"a": 1}, [1], b"\x01", uuid.UUID(int=1), True,
                     dt.datetime(2024, 1, 1)]
    assert [d.get("v", "missing") for d in db.query().sort(("v", -1))] == order[::-1]


def test_sort_reads_an_index_in_order(db: MicroDB) -> None:
    """With an index on the sort key, sort + limit gives what a full sort gives."""
    db.insert_many([{"n": n} if n % 7 else {"m": n} for n in (5, 3, 9, 1, 14, 7, 2, 8, 21, 4)])
    expected = db.query().sort(("n", -1)).limit(4).all()
    first = db.query().sort("n").skip(1).limit(3).all()
    db.create_index("n")
    assert db.query().sort(("n", -1)).limit(4).all() == expected
    assert db.query().sort("n").skip(1).limit(3).all() == first
    assert [d.get("n") for d in first] == [None, None, 1]


@pytest.mark.parametrize(
    "chain, expected",
    [
        (lambda r: r.skip(1), [2, 3, 4, 5]),
        (lambda r: r.limit(2), [1, 2]),
        (lambda r: r.skip(1).limit(2), [2, 3]),
        (lambda r: r.limit(3).skip(1), [2, 3]),
        (lambda r: r.skip(1).skip(2), [4, 5]),
        (lambda r: r.limit(4).limit(2), [1, 2]),
        (lambda r: r.limit(2).limit(4), [1, 2]),
        (lambda r: r.skip(9), []),
        (lambda r: r.limit(0), []),
        (lambda r: r.sort(("age", -1)).skip(1).limit(2), [3, 2]),
    ],
    ids=["skip", "limit", "skip-limit", "limit-skip", "skip-skip", "limit-limit", "limit-grow", "skip-all",
         "limit-0", "sort-skip-limit"],
)
def test_skip_and_limit(people: MicroDB, chain: Any, expected: list[int]) -> None:
    """skip and limit apply in the order they are chained, and count agrees with what is read."""
    result = chain(people.query())
    assert result.ids() == expected
    assert chain(people.query()).count() == len(expected) == len(chain(people.query()))
    assert bool(chain(people.query())) is bool(expected)


def test_skip_and_limit_refuse_bad_numbers(people: MicroDB) -> None:
    """Negative or non-int skip/limit, and sort() without keys, raise QueryError."""
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(QueryError):
            people.query().skip(bad)
        with pytest.raises(QueryError):
            people.query().limit(bad)
    with pytest.raises(QueryError):
        people.query().sort()


@pytest.mark.parametrize(
    "field, cond, expected",
    [
        ("city", None, ["Bern", "Oslo", "Rome"]),
        ("age", None, [25, 31]),
        ("tags", None, ["a", "b", "c"]),
        ("items.sku", None, ["x1", "x2"]),
        ("address.city", None, ["Oslo", "Rome"]),
        ("address", {"name": {"$in": ["dan", "bob"]}}, ["unknown", {"city": "Rome"}]),
        ("city", where("age") == 31, ["Bern", "Oslo"]),
        ("nothing", None, []),
    ],
)
def test_distinct(people: MicroDB, field: str, cond: Any, expected: list[Any]) -> None:
    """distinct lists each value once in sort order; arrays give their elements; 25 and 25.0 are one."""
    assert people.query(cond).distinct(field) == expected


def test_distinct_keeps_kinds_apart(db: MicroDB) -> None:
    """``True`` and ``1`` are two values; ``1`` and ``1.0`` one; nested arrays stay whole."""
    db.insert_many([{"v": 1}, {"v": True}, {"v": 1.0}, {"v": [[1], 2]}, {"v": None}, {}])
    assert db.query().distinct("v") == [None, 1, 2, [1], True]


def test_count_len_and_truthiness(people: MicroDB) -> None:
    """count(), len() and bool() agree with what a read returns."""
    assert people.count() == len(people.query()) == 5
    assert people.count(where("city") == "Oslo") == 2
    assert people.query({"age": {"$gt": 100}}).count() == 0
    assert not people.query({"age": {"$gt": 100}})
    assert people.query({"age": 25})


def test_first_and_last(people: MicroDB) -> None:
    """first() and last() follow the sort; on no match they are None."""
    result = people.query(where("age") == 31).sort(("name", -1))
    first, last = result.first(), result.last()
    assert first is not None and last is not None
    assert (first["name"], last["name"]) == ("cid", "ann")
    assert people.query(where("age") == 99).first() is None
    assert people.query(where("age") == 99).last() is None


def test_results_are_lazy_and_chaining_builds_new_results(people: MicroDB) -> None:
    """A result runs when first read, sees writes made before that, and chaining never changes it."""
    base = people.query(where("city") == "Oslo")
    sorted_result = base.sort("name", reverse=True)
    people.insert({"name": "fay", "city": "Oslo"})
    assert [d["name"] for d in base] == ["ann", "dan", "fay"]
    assert [d["name"] for d in sorted_result] == ["fay", "dan", "ann"]
    people.insert({"name": "gus", "city": "Oslo"})
    assert [d["name"] for d in base.all()] == ["ann", "dan", "fay"]
    assert base.count() == 3


st_docs = st.lists(
    st.fixed_dictionaries({}, optional={"k": st.one_of(st.integers(0, 4), st.sampled_from(["x", "y"]), st.none()),
                                        "j": st.integers(0, 2)}),
    max_size=15,
)


@settings(max_examples=80, deadline=None)
@given(docs=st_docs, descending=st.booleans(), skip=st.integers(0, 6), limit=st.one_of(st.none(), st.integers(0, 6)),
       indexed=st.booleans())
def test_sort_skip_limit_match_a_plain_python_reference(
    docs: list[dict[str, Any]], descending: bool, skip: int, limit: int | None, indexed: bool
) -> None:
    """sort by two keys, skip and limit return the slice a plain Python sort gives."""
    from microdb.query.values import sort_key

    db = MicroDB(InMemoryStorage())
    ids = db.insert_many(docs)
    if indexed:
        db.create_index("k")
    pairs = list(zip(ids, docs))
    pairs.sort(key=lambda p: sort_key(p[1].get("j", _MISSING())))
    pairs.sort(key=lambda p: sort_key(p[1].get("k", _MISSING())), reverse=descending)
    stop = None if limit is None else skip + limit
    expected = [i for i, _ in pairs][skip:stop]
    result = db.query().sort(("k", -1 if descending else 1), "j").skip(skip)
    if limit is not None:
        result = result.limit(limit)
    assert result.ids() == expected
    single = db.query().sort(("k", -1 if descending else 1)).skip(skip)
    if limit is not None:
        single = single.limit(limit)
    plain = sorted(zip(ids, docs), key=lambda p: sort_key(p[1].get("k", _MISSING())), reverse=descending)
    assert single.ids() == [i for i, _ in plain][skip:stop]


def _MISSING() -> Any:
    from microdb.query.values import MISSING

    return MISSING


@pytest.mark.parametrize("indexed", [False, True])
def test_ids_read_the_table_until_a_full_read_fixes_the_documents(people: MicroDB, indexed: bool) -> None:
    if indexed:
        people.create_index("city")
    result = people.query(where("city") == "Oslo")
    assert result.ids() == [1, 4]
    assert [d.doc_id for d in result.all()] == result.ids()
    people.insert({"name": "fay", "city": "Oslo"})
    # all() fixed the documents: ids() agrees with them, a new query sees the insert.
    assert result.ids() == [1, 4]
    assert people.query(where("city") == "Oslo").ids() == [1, 4, 6]
    fresh = people.query(where("city") == "Oslo")
    assert fresh.ids() == [1, 4, 6]
    people.remove(doc_ids=[1])
    assert fresh.ids() == [4, 6]
    assert [d["name"] for d in fresh.all()] == ["dan", "fay"]


def test_memory_reads_keep_no_tuple_per_row() -> None:
    """The in-memory engine hands a result two lists (Rows), which read like pairs.

    A tuple per row, kept for the result's life, made every large read set off a full
    run of the cyclic collector (see microdb.backend.Rows).
    """
    from microdb.backend import Rows

    db = MicroDB()
    db.insert_many([{"i": i} for i in range(10)])
    result = db.query(where("i") >= 3).sort("i", reverse=True)
    rows = result._run()
    assert isinstance(rows, Rows) and len(rows) == 7
    assert rows[0] == (10, {"i": 9}) and rows[-1] == (4, {"i": 3})
    assert isinstance(rows[1:3], Rows) and list(rows[1:3]) == [(9, {"i": 8}), (8, {"i": 7})]
    assert [i for i, _ in rows] == [10, 9, 8, 7, 6, 5, 4]
    assert [len(b) for b in result.batches(3)] == [3, 3, 1]
    assert result.first() == {"i": 9} and result.last() == {"i": 3} and result.ids()[:2] == [10, 9]
    assert len(db.query().limit(0)._run()) == 0 and not db.query(where("i") > 99).all()
