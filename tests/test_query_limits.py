"""Hostile and heavy queries: deep nesting answers up to the limit, then ``QueryError``; paths are linear."""

from __future__ import annotations

from typing import Any

import pytest

from microdb import MicroDB, Query, where
from microdb.errors import QueryError
from microdb.query.ast import MAX_DEPTH, Node
from microdb.query.mongo import parse_filter


def _nested_not(depth: int) -> Node:
    q: Node = where("a") == 1
    for _ in range(depth - 1):
        q = ~q
    return q


def _nested(op: str, depth: int) -> dict[str, Any]:
    f: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        f = {op: [f]}
    return f


def _size(node: Any, seen: set[int] | None = None) -> int:
    """Distinct nodes in a query."""
    seen = set() if seen is None else seen
    if id(node) in seen or not isinstance(node, Node):
        return 0
    seen.add(id(node))
    return 1 + sum(_size(child, seen) for child in node.children())


def test_queries_up_to_the_nesting_limit_answer_on_every_backend(db: MicroDB) -> None:
    """``~`` nested MAX_DEPTH deep, and long &/| chains, run on every storage (SQL included)."""
    t = db.table("t")
    t.insert_many([{"a": 1}, {"a": 2, "b": 1}, {"c": 5}])
    deepest = _nested_not(MAX_DEPTH)
    assert deepest.depth == MAX_DEPTH
    negated = (MAX_DEPTH - 1) % 2 == 1
    assert t.count(deepest) == (2 if negated else 1)
    mixed: Node = Query()["b"].exists()
    for _ in range((MAX_DEPTH - 1) // 2):
        mixed = (mixed | (where("c") == 2)) & (where("a") == 2)
    assert t.count(mixed) == 1
    assert t.count(_nested("$and", MAX_DEPTH // 2)) == 1
    assert t.count({"$nor": [_nested("$or", 60)]}) == 2


@pytest.mark.parametrize("make", [
    lambda n: _nested_not(n),
    lambda n: _nested("$and", n),
    lambda n: _nested("$or", n),
    lambda n: {"a": _nested_not_filter(n)},
    lambda n: {"a": _nested_elem_match(n)},
], ids=["~", "$and", "$or", "$not", "$elemMatch"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000])
def test_past_the_nesting_limit_a_query_error(make: Any, depth: int) -> None:
    """Deeper than the limit (10,000 levels included) is a QueryError, never RecursionError."""
    t = MicroDB().table("t")
    t.insert({"a": 1})
    with pytest.raises(QueryError, match="nest"):
        t.count(make(depth))


def _nested_not_filter(depth: int) -> dict[str, Any]:
    f: dict[str, Any] = {"$gt": 0}
    for _ in range(depth):
        f = {"$not": f}
    return f


def _nested_elem_match(depth: int) -> dict[str, Any]:
    f: dict[str, Any] = {"$gt": 0}
    for _ in range(depth):
        f = {"$elemMatch": f}
    return f


@pytest.mark.parametrize("query, matches", [
    ({"a.b.c.d.e": 0}, [1, 2]),
    ({"a.b.c": {"$elemMatch": {"d.e": 0}}}, [2]),
    ({"a": {"$elemMatch": {"b": {"$elemMatch": {"c": {"$elemMatch": {"d.e.f": 1}}}}}}}, [3]),
])
def test_valid_queries_that_overflowed_sqlites_parser_answer(db: MicroDB, query: Any, matches: list[int]) -> None:
    """Queries SQLite once refused with 'parser stack overflow' answer on every storage."""
    t = db.table("t")
    t.insert_many([
        {"a": {"b": [{"c": {"d": {"e": 0}}}]}},
        {"a": [{"b": {"c": [{"d": [{"e": 0}]}]}}]},
        {"a": [{"b": [{"c": [{"d": {"e": {"f": 1}}}]}]}]},
    ])
    assert sorted(d.doc_id for d in t.search(query)) == matches


def test_a_dot_path_query_grows_linearly_with_the_path() -> None:
    """A dot path of any length is a handful of nodes (it once built 2**(n-1) branches)."""
    sizes = {n: _size(parse_filter({".".join(["a"] * n): 1})) for n in (2, 10, 40)}
    assert sizes[2] == sizes[10] == sizes[40] < 10


def test_long_dot_paths_answer_through_arrays_on_every_backend(db: MicroDB) -> None:
    """A 40-step path reaches a value through arrays of sub-documents at several steps."""
    steps = [f"k{i}" for i in range(40)]
    inner: Any = 7
    for i, step in enumerate(reversed(steps)):
        inner = {step: [inner, {"x": 1}] if i % 9 == 4 else inner}
    t = db.table("t")
    t.insert_many([inner, {"k0": 7}])
    path = ".".join(steps)
    assert [d.doc_id for d in t.search({path: 7})] == [1]
    assert t.count({path: {"$gte": 8}}) == 0
    assert [d.doc_id for d in t.search({path: {"$exists": False}})] == [2]


@pytest.mark.parametrize("doc, query, found", [
    ({"a": [1, ["x"]]}, {"a.0": "x"}, False),        # a[1][0] is inside an array in the array
    ({"a": [[[3]]]}, {"a.0": 3}, False),
    ({"a": [[3]]}, {"a.0": 3}, True),                 # a[0] holds 3 as an element
    ({"a": [{"0": "x"}]}, {"a.0": "x"}, True),        # key '0' of a sub-document element
    ({"a": {"0": 3}}, {"a.0": 3}, True),
    ({"a": [5, 6]}, {"a.1": 6}, True),
    ({"a": [{"b": [[{"c": 1}]]}]}, {"a.b.c": 1}, False),
])
def test_a_numeric_step_never_reaches_into_nested_arrays(db: MicroDB, doc: Any, query: Any, found: bool) -> None:
    """MongoDB's rule, on every storage: ``'a.0'`` indexes ``a`` and keys of its sub-documents only."""
    t = db.table("t")
    t.insert(doc)
    assert t.count(query) == int(found)
