"""Compound indexes: one index over several paths, on every storage, never changing an answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microdb import DuplicateKeyError, MicroDB, Query, where
from microdb.engine.sortedkeys import SortedKeys

CITIES = ("Oslo", "Rome", "Bern")

#: Values the property test mixes on the indexed fields: kinds side by side, and missing.
_value = st.one_of(
    st.sampled_from(CITIES), st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.none(), st.booleans(),
)
_doc = st.fixed_dictionaries(
    {},
    optional={
        "city": st.one_of(st.sampled_from(CITIES), _value),
        "age": st.one_of(st.integers(18, 25), _value),
        "name": st.sampled_from(("a", "b", "c")),
    },
)
_operand = st.one_of(st.sampled_from(CITIES), st.integers(16, 27), st.floats(-4, 4, allow_nan=False), st.none())


@st.composite
def _query(draw: Any) -> Any:
    """A conjunction the compound index (city, age, name) can serve: equalities, then a range."""
    parts = [where("city") == draw(st.sampled_from((*CITIES, 1, None)))]
    shape = draw(st.sampled_from(("eq", "lt", "ge", "between", "none", "mongo")))
    if shape == "eq":
        parts.append(where("age") == draw(_operand))
        if draw(st.booleans()):
            parts.append(where("name") == draw(st.sampled_from(("a", "b"))))
    elif shape == "lt":
        parts.append(where("age") < draw(_operand))
    elif shape == "ge":
        parts.append(where("age") >= draw(_operand))
    elif shape == "between":
        low = draw(st.integers(16, 27))
        parts += [where("age") > low, where("age") <= low + draw(st.integers(0, 5))]
    elif shape == "mongo":
        return {"city": draw(st.sampled_from(CITIES)), "age": {"$lt": draw(st.integers(16, 27))}}
    query = parts[0]
    for part in parts[1:]:
        query = query & part
    return query


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(_doc, max_size=30), queries=st.lists(_query(), min_size=1, max_size=4),
       reverse=st.booleans(), limit=st.integers(1, 5))
def test_compound_index_answers_equal_a_full_scan(
    db: MicroDB, docs: list[dict[str, Any]], queries: list[Any], reverse: bool, limit: int,
) -> None:
    """Ids, counts and sorted pages through compound indexes equal those of a table without indexes."""
    plain, indexed = db.table("plain"), db.table("indexed")
    for table in (plain, indexed):
        table.truncate()
        table.insert_many(docs)
    indexed.create_index("city", "age")
    indexed.create_index("city", "age", "name")
    for query in queries:
        assert indexed.query(query).ids() == plain.query(query).ids(), query
        assert indexed.count(query) == plain.count(query), query
        page = indexed.query(query).sort("age", reverse=reverse).limit(limit)
        expected = plain.query(query).sort("age", reverse=reverse).limit(limit)
        assert page.ids() == expected.ids(), query
        ordered = indexed.query(query).sort("age", reverse=reverse)
        assert ordered.ids() == plain.query(query).sort("age", reverse=reverse).ids(), query
    indexed.drop_index("city", "age")
    indexed.drop_index("city", "age", "name")


def _people(db: MicroDB) -> Any:
    t = db.table("people")
    t.insert_many([{"city": CITIES[i % 3], "age": 18 + i % 40, "name": f"p{i}"} for i in range(300)])
    return t


def test_explain_names_the_compound_index(db: MicroDB) -> None:
    """``explain()`` shows the compound index serving equality plus a range, on every storage."""
    people = _people(db)
    people.create_index("city")
    people.create_index("city", "age")
    plan = people.query((where("city") == "Oslo") & (where("age") < 25)).explain()
    assert plan["matched"] == len(people.search((where("city") == "Oslo") & (where("age") < 25)))
    if plan["backend"] in ("sqlite", "postgresql"):
        # The server's planner picks; the compound index is a candidate it may use.
        assert isinstance(plan["index"], (str, type(None)))
    else:
        assert plan["index"] == "index (Query().city, Query().age) == and range"
        assert plan["examined"] == plan["matched"]


def test_compound_index_is_listed_kept_and_dropped(opener: Callable[[], MicroDB]) -> None:
    """A compound index is listed with its paths, survives reopening, and can be dropped."""
    db = opener()
    people = _people(db)
    people.create_index("city", "age", unique=False)
    people.create_index(["address", "city"])  # a list is one nested path, as before
    listed = people.indexes()
    assert {"paths": [["city"], ["age"]], "unique": False} in listed
    assert {"path": ["address", "city"], "unique": False} in listed
    db.close()
    db = opener()
    people = db.table("people")
    assert {"paths": [["city"], ["age"]], "unique": False} in people.indexes()
    assert people.count((where("city") == "Rome") & (where("age") >= 50)) == sum(
        1 for d in people.all() if d["city"] == "Rome" and d["age"] >= 50
    )
    assert people.drop_index("city", "age") is True
    assert people.drop_index("city", "age") is False
    assert all("paths" not in spec for spec in people.indexes())


def test_unique_compound_index_rejects_a_repeated_pair(db: MicroDB) -> None:
    """A unique compound index refuses a second document with the same values, and stores nothing."""
    people = db.table("people")
    people.insert_many([{"city": "Oslo", "age": 30}, {"city": "Oslo", "age": 31}, {"city": "Rome"}])
    people.create_index("city", "age", unique=True)
    with pytest.raises(DuplicateKeyError):
        people.insert({"city": "Oslo", "age": 30, "name": "again"})
    # A document missing one of the paths never conflicts.
    people.insert({"city": "Rome"})
    assert len(people) == 4
    people.insert({"city": "Rome", "age": 30})
    with pytest.raises(DuplicateKeyError):
        people.update({"age": 31}, doc_ids=[1])
    assert people.get(doc_id=1)["age"] == 30


def test_unique_compound_index_is_not_created_over_duplicates(db: MicroDB) -> None:
    """Creating a unique compound index over stored duplicates raises and creates nothing."""
    people = db.table("people")
    people.insert_many([{"city": "Oslo", "age": 30}, {"city": "Oslo", "age": 30.0}])
    with pytest.raises(DuplicateKeyError):
        people.create_index("city", "age", unique=True)
    assert people.indexes() == []


def test_sort_within_a_prefix_reads_the_compound_index(db: MicroDB) -> None:
    """``city == X`` sorted by ``age`` comes straight from the (city, age) index, in order."""
    people = _people(db)
    people.create_index(Query().city, Query().age)
    result = people.query(where("city") == "Bern").sort("age", reverse=True)
    ages = [d["age"] for d in result]
    assert ages == sorted(ages, reverse=True) and len(ages) == 100
    if db.table("people").query(where("city") == "Bern").explain()["backend"] not in ("sqlite", "postgresql"):
        assert result.explain()["ordered_by_index"] is True


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 3000)), max_size=400),
       low=st.integers(-10, 3010), span=st.integers(0, 800), reverse=st.booleans())
def test_sorted_keys_behave_like_a_sorted_set(ops: list[tuple[bool, int]], low: int, span: int, reverse: bool) -> None:
    """Adds and discards keep the chunks in order; ranges and counts equal a sorted list's."""
    keys, model = SortedKeys(), set()
    for add, key in ops:
        if add and key not in model:
            keys.add(key)
            model.add(key)
        elif not add:
            keys.discard(key)
            model.discard(key)
    assert list(keys) == sorted(model) and len(keys) == len(model)
    assert list(reversed(keys)) == sorted(model, reverse=True)
    for low_inc in (True, False):
        for high_inc in (True, False):
            want = [k for k in sorted(model) if (k >= low if low_inc else k > low)
                    and (k <= low + span if high_inc else k < low + span)]
            got = list(keys.irange(low, low_inc, low + span, high_inc, reverse))
            assert got == (want[::-1] if reverse else want)
            assert keys.count(low, low_inc, low + span, high_inc) == len(want)


def test_copy_to_keeps_compound_indexes(tmp_path: Any) -> None:
    """``copy_to`` recreates a compound index on the target, as it does single ones."""
    source = MicroDB()
    people = _people(source)
    people.create_index("city", "age", unique=False)
    target = MicroDB(str(tmp_path / "copy.json"))
    source.copy_to(target)
    assert {"paths": [["city"], ["age"]], "unique": False} in target.table("people").indexes()
    target.close()
_element = st.one_of(st.sampled_from(("a", "b", "c")), st.integers(0, 2), st.just(1.0), st.booleans(), st.none(),
                     st.just(["a"]), st.just({"x": 1}))


@settings(max_examples=60, deadline=None)
@given(arrays=st.lists(st.lists(_element, max_size=4), max_size=25),
       values=st.lists(st.one_of(st.sampled_from(("a", "b", "c")), st.integers(0, 2), st.just(1.0), st.booleans()),
                       min_size=1, max_size=3))
def test_multikey_answers_equal_a_scan_when_every_value_is_an_array(arrays: list[list[Any]], values: list[Any]) -> None:
    """``any``, ``all`` and ``$elemMatch`` answered from a multikey index holding only arrays equal a scan."""
    plain, indexed = MicroDB().table("plain"), MicroDB().table("indexed")
    for table in (plain, indexed):
        table.insert_many([{"tags": a} for a in arrays])
    indexed.create_index("tags")
    for query in (where("tags").any(values), where("tags").all(values),
                  {"tags": {"$elemMatch": {"$eq": values[0]}}}, {"tags": {"$all": values}}):
        assert indexed.query(query).ids() == plain.query(query).ids(), query
        assert indexed.count(query) == plain.count(query), query
