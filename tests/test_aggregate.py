"""Aggregation pipelines: MongoDB's semantics, the same results on every backend, SQL GROUP BY."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, QueryError
from microdb.backend import Plan
from sql_backends import SQL_STORAGES

PEOPLE = [
    {"name": "Ada", "city": "London", "age": 36, "tags": ["math", "code"], "score": 9.5},
    {"name": "Bob", "city": "Paris", "age": 25, "tags": ["art"], "score": 7},
    {"name": "Cy", "city": "London", "age": 41, "tags": [], "score": 8.25},
    {"name": "Di", "city": "Rome", "age": 25, "score": None},
    {"name": "Ed", "age": 52, "tags": ["code"]},
    {"name": "Flo", "city": None, "age": "unknown", "tags": "solo"},
]


@pytest.fixture
def people(db: MicroDB) -> Any:
    table = db.table("people")
    table.insert_many(PEOPLE)
    return table


def test_group_accumulators(people: Any) -> None:
    """$group with every accumulator, groups in order of first appearance; missing and null group together."""
    out = people.aggregate([{"$group": {
        "_id": "$city",
        "n": {"$count": {}},
        "ones": {"$sum": 1},
        "total": {"$sum": "$age"},
        "avg": {"$avg": "$age"},
        "min": {"$min": "$age"},
        "max": {"$max": "$age"},
        "names": {"$push": "$name"},
        "tags": {"$addToSet": "$tags"},
        "first": {"$first": "$name"},
        "last": {"$last": "$score"},
    }}])
    assert out == [
        {"_id": "London", "n": 2, "ones": 2, "total": 77, "avg": 38.5, "min": 36, "max": 41, "names": ["Ada", "Cy"],
         "tags": [["math", "code"], []], "first": "Ada", "last": 8.25},
        {"_id": "Paris", "n": 1, "ones": 1, "total": 25, "avg": 25.0, "min": 25, "max": 25, "names": ["Bob"],
         "tags": [["art"]], "first": "Bob", "last": 7},
        {"_id": "Rome", "n": 1, "ones": 1, "total": 25, "avg": 25.0, "min": 25, "max": 25, "names": ["Di"],
         "tags": [], "first": "Di", "last": None},
        # "unknown" is not a number: $sum and $avg skip it; $max orders strings after numbers.
        {"_id": None, "n": 2, "ones": 2, "total": 52, "avg": 52.0, "min": 52, "max": "unknown", "names": ["Ed", "Flo"],
         "tags": [["code"], "solo"], "first": "Ed", "last": None},
    ]


def test_match_sort_skip_limit_project(people: Any) -> None:
    """The head stages filter, sort and page; $project includes, excludes and computes fields."""
    out = people.aggregate([
        {"$match": {"age": {"$type": "number"}}},
        {"$sort": {"age": -1, "name": 1}},
        {"$skip": 1},
        {"$limit": 3},
        {"$project": {"_id": 0, "name": 1, "where": "$city", "fixed": {"$literal": 1}}},
    ])
    assert out == [{"name": "Cy", "where": "London", "fixed": 1}, {"name": "Ada", "where": "London", "fixed": 1},
                   {"name": "Bob", "where": "Paris", "fixed": 1}]
    assert people.aggregate([{"$match": {"name": "Ed"}}, {"$project": {"tags": 0, "age": 0}}]) == [{"name": "Ed"}]


def test_unwind_count_and_lookup(db: MicroDB, people: Any) -> None:
    """$unwind (with its options), $count, and $lookup from another table."""
    assert [d["tags"] for d in people.aggregate([{"$unwind": "$tags"}])] == ["math", "code", "art", "code", "solo"]
    kept = people.aggregate([{"$unwind": {"path": "$tags", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": True}},
                             {"$project": {"name": 1, "i": 1}}])
    assert [(d["name"], d["i"]) for d in kept] == [
        ("Ada", 0), ("Ada", 1), ("Bob", 0), ("Cy", None), ("Di", None), ("Ed", 0), ("Flo", None)]
    assert people.aggregate([{"$match": {"age": 25}}, {"$count": "n"}]) == [{"n": 2}]
    assert people.aggregate([{"$match": {"age": 99}}, {"$count": "n"}]) == []
    db.table("cities").insert_many([{"city": "London", "country": "UK"}, {"city": "Paris", "country": "FR"},
                                    {"city": "London", "country": "CA"}])
    out = people.aggregate([
        {"$match": {"name": {"$in": ["Ada", "Di"]}}},
        {"$lookup": {"from": "cities", "localField": "city", "foreignField": "city", "as": "places"}},
        {"$project": {"_id": 0, "name": 1, "places.country": 1}},
    ])
    assert out == [{"name": "Ada", "places": [{"country": "UK"}, {"country": "CA"}]}, {"name": "Di", "places": []}]


def test_group_then_sort_and_results_are_copies(people: Any) -> None:
    """Stages after $group run on its output; output documents are fresh copies."""
    out = people.aggregate([{"$match": {"age": {"$gte": 0}}}, {"$group": {"_id": "$age", "n": {"$sum": 1}}},
                            {"$sort": {"n": -1, "_id": 1}}, {"$limit": 2}])
    assert out == [{"_id": 25, "n": 2}, {"_id": 36, "n": 1}]
    first = people.aggregate([{"$match": {"name": "Ada"}}])[0]
    first["tags"].append("changed")
    assert people.get(doc_id=1)["tags"] == ["math", "code"]


@pytest.mark.parametrize(
    "pipeline, words",
    [
        ({"$match": {}}, "needs a list of stages"),
        ([{"$frobnicate": {}}], "unknown stage '$frobnicate'"),
        ([{"$match": {}, "$sort": {"a": 1}}], "a stage is a dict with one key"),
        ([{"$group": {"n": {"$sum": 1}}}], "needs a dict with an _id"),
        ([{"$group": {"_id": None, "n": {"$median": "$a"}}}], "unknown accumulator '$median'"),
        ([{"$sort": {"a": 2}}], "must be 1 or -1"),
        ([{"$limit": 0}], "positive integer"),
        ([{"$project": {"a": 1, "b": 0}}], "cannot both include and exclude"),
        ([{"$lookup": {"from": "x", "pipeline": []}}], "'pipeline' is not supported"),
        ([{"$project": {"a": {"$add": [1, 2]}}}], "unknown expression operator '$add'"),
        ([{"$match": {"a": {"$bogus": 1}}}], "$bogus"),
    ],
)
def test_bad_pipelines_are_refused(people: Any, pipeline: Any, words: str) -> None:
    """A malformed pipeline raises QueryError naming the problem, before reading anything."""
    with pytest.raises(QueryError) as info:
        people.aggregate(pipeline)
    assert words in str(info.value)


def test_expired_documents_are_left_out(db: MicroDB) -> None:
    """Aggregation (also a $group run in SQL) never sees expired documents."""
    t = db.table("s")
    now = dt.datetime.now(dt.timezone.utc)
    t.insert_many([{"k": "a", "at": now - dt.timedelta(seconds=5)}, {"k": "a", "at": now + dt.timedelta(hours=1)},
                   {"k": "b"}])
    t.create_index("at", expire_after=0)
    assert t.aggregate([{"$group": {"_id": "$k", "n": {"$count": {}}}}]) == [{"_id": "a", "n": 1}, {"_id": "b", "n": 1}]
    assert t.aggregate([{"$count": "n"}]) == [{"n": 2}]


def test_head_runs_as_one_plan(people: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The leading $match/$sort/$skip/$limit reach the backend as one plan (so indexes serve them)."""
    backend = people._backend
    seen: list[Plan] = []
    original = backend.aggregate

    def spy(table: str, plan: Plan, stages: Any) -> Any:
        seen.append(plan)
        return original(table, plan, stages)

    monkeypatch.setattr(backend, "aggregate", spy)
    people.create_index("age")
    people.aggregate([{"$match": {"age": {"$gt": 30}}}, {"$match": {"name": {"$ne": "x"}}}, {"$sort": {"age": 1}},
                      {"$limit": 5}, {"$skip": 1}, {"$project": {"name": 1}}])
    plan = seen[0]
    assert plan.node is not None and [k.path for k in plan.sort] == [("age",)]
    assert (plan.skip, plan.limit) == (1, 4)


# -- the same results on every backend -------------------------------------------------------------
def _dataset(n: int = 300) -> list[dict[str, Any]]:
    rng = random.Random(17)
    values: list[Any] = [1, 2, 2.5, -3, "x", "y", None, True, [1, 2], {"a": 1}, 0, 10**12]
    docs = []
    for i in range(n):
        doc: dict[str, Any] = {"i": i, "city": rng.choice(["Oslo", "Rome", "Lima", None, 7, "Oslo"]),
                               "age": rng.choice([18, 25, 33.5, 40, 61, "old", None, 25]),
                               "qty": rng.randint(-5, 50), "tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 3))}
        if rng.random() < 0.2:
            del doc["city"]
        if rng.random() < 0.3:
            doc["v"] = rng.choice(values)
        if rng.random() < 0.3:
            doc["sub"] = {"k": rng.choice(["p", "q"]), "n": rng.randint(0, 3)}
        docs.append(doc)
    return docs


PIPELINES: list[list[dict[str, Any]]] = [
    [{"$group": {"_id": "$city", "avg": {"$avg": "$age"}, "n": {"$count": {}}}}],
    [{"$group": {"_id": "$city", "s": {"$sum": "$qty"}, "mn": {"$min": "$qty"}, "mx": {"$max": "$qty"}}}],
    [{"$group": {"_id": None, "s": {"$sum": "$age"}, "one": {"$sum": 1}, "half": {"$sum": 0.5}}}],
    [{"$group": {"_id": "$v", "n": {"$sum": 1}}}],  # keys of every kind: SQL's guard sends this to Python
    [{"$group": {"_id": "$sub.k", "n": {"$sum": "$sub.n"}, "mx": {"$max": "$age"}}}],
    [{"$match": {"qty": {"$gte": 10}}}, {"$group": {"_id": "$city", "a": {"$avg": "$qty"}}}],
    [{"$match": {"city": "Oslo"}}, {"$match": {"age": {"$type": "number"}}}, {"$group": {"_id": "$age", "n": {"$count": {}}}}],
    [{"$match": {"tags": "a"}}, {"$group": {"_id": "$city", "names": {"$push": "$i"}, "set": {"$addToSet": "$age"}}}],
    [{"$group": {"_id": "$city", "f": {"$first": "$i"}, "l": {"$last": "$i"}}}],
    [{"$sort": {"age": 1, "i": -1}}, {"$limit": 20}, {"$project": {"i": 1, "age": 1}}],
    [{"$match": {"qty": {"$lt": 5}}}, {"$sort": {"qty": -1, "i": 1}}, {"$skip": 3}, {"$limit": 7}],
    [{"$unwind": "$tags"}, {"$group": {"_id": "$tags", "n": {"$sum": 1}, "q": {"$sum": "$qty"}}}, {"$sort": {"_id": 1}}],
    [{"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": True}}, {"$count": "n"}],
    [{"$match": {"v": {"$exists": True}}}, {"$project": {"_id": 0, "v": 1, "c": "$city"}}],
    [{"$group": {"_id": "$city", "n": {"$sum": 1}}}, {"$match": {"n": {"$gt": 40}}}, {"$sort": {"n": -1}}],
    [{"$match": {"age": {"$gt": 100}}}, {"$group": {"_id": "$city", "n": {"$sum": 1}}}],
    [{"$project": {"tags": 0, "sub": 0}}, {"$skip": 290}],
    [{"$group": {"_id": "$city", "mn": {"$min": "$age"}, "mx": {"$max": "$v"}}}],
]


@pytest.fixture(scope="module")
def reference() -> list[list[dict[str, Any]]]:
    db = MicroDB()
    t = db.table("d")
    t.insert_many(_dataset())
    return [t.aggregate(p) for p in PIPELINES]


def test_every_backend_gives_the_same_results(db: MicroDB, reference: list[list[dict[str, Any]]]) -> None:
    """Each pipeline gives, on every backend, exactly what the pure-Python run gives."""
    t = db.table("d")
    t.insert_many(_dataset())
    t.create_index("qty")
    for pipeline, expected in zip(PIPELINES, reference):
        got = t.aggregate(pipeline)
        assert got == expected, pipeline
        assert [type(v) for d in got for v in d.values()] == [type(v) for d in expected for v in d.values()], pipeline


@pytest.mark.parametrize("backend", sorted(SQL_STORAGES))
def test_sql_runs_group_by(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite and PostgreSQL, $group after a $match runs as one GROUP BY; a guard falls back to Python."""
    db = SQL_STORAGES[backend](tmp_path)()
    t = db.table("d")
    t.insert_many(_dataset())
    statements: list[str] = []
    original = type(db.backend)._execute

    def spy(self: Any, s: Any, sql: str, params: Any = ()) -> Any:
        statements.append(sql)
        return original(self, s, sql, params)

    monkeypatch.setattr(type(db.backend), "_execute", spy)
    t.aggregate([{"$match": {"qty": {"$gt": 3}}}, {"$group": {"_id": "$city", "a": {"$avg": "$qty"}}}])
    grouped = [s for s in statements if "GROUP BY" in s]
    assert len(grouped) == 1 and "SELECT doc" not in " ".join(statements) and "SELECT id, body" not in " ".join(statements)
    statements.clear()
    t.aggregate([{"$group": {"_id": "$v", "n": {"$sum": 1}}}])  # guarded: keys SQL cannot group like MongoDB
    assert any("GROUP BY" in s for s in statements) and len(statements) >= 2
    db.close()
