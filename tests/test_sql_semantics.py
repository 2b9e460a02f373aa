"""The SQL backends answer every query exactly as the in-memory engine does.

Documents hold every kind of value (missing, null, numbers, true/false, strings, arrays,
objects, tuples, sets, Decimals, datetimes...); each query runs on memory, SQLite and
PostgreSQL, with and without indexes, and must return the same ids in the same order.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, Query, where
from microdb.query import ast
from sql_backends import SQL_STORAGES

DOCS: list[dict[str, Any]] = [
    {"a": 1, "s": "apple", "t": ["x", "y"], "n": {"b": 2}},
    {"a": 1.0, "s": "Apple", "t": ["y"], "n": {"b": "2"}},
    {"a": True, "s": "banana", "t": []},
    {"a": "1", "s": "cherry\nberry", "t": "x"},
    {"a": None, "s": None, "t": [["x"]]},
    {"s": "", "t": ("x", "z"), "n": {"b": [1, 2]}},
    {"a": 2.5, "s": "apricot", "t": {"x"}, "n": {}},
    {"a": Decimal("1"), "s": "date", "t": ["x", 1], "n": {"b": None}},
    {"a": Decimal("0.5"), "s": "éclair"},
    {"a": [1, 2], "s": "fig", "n": {"b": {"c": 1}}},
    {"a": {"b": 1}, "s": "grape", "t": [True, 1, "1"]},
    {"a": dt.datetime(2024, 5, 1, 12), "s": "kiwi", "d": dt.date(2024, 1, 2)},
    {"a": 0, "s": "lemon", "u": uuid.UUID(int=5), "b": b"\x00\x01"},
    {"a": False, "s": "mango", "t": [2, 3]},
    {"a": -3, "s": "Zebra", "n": {"b": 2.0}},
    {"a": 2**62, "s": "big"},
    {"$x": 1, "s": "dollar"},
]

QUERIES: list[Any] = [
    where("a") == 1,
    where("a") != 1,
    ~(where("a") == 1),
    where("a") < 2,
    where("a") >= 1,
    where("a") > Decimal("0.7"),
    where("a") == True,  # noqa: E712
    where("a") == False,  # noqa: E712
    where("a") < True,
    where("a") == None,  # noqa: E711
    where("a") != None,  # noqa: E711
    where("a") < None,
    where("a") == "1",
    where("a") > "0",
    where("a") == [1, 2],
    where("a") == {"b": 1},
    where("a") > dt.datetime(2024, 1, 1),
    where("a") == 2**62,
    where("a") < 2**70,
    where("a") < float("inf"),
    where("a") == float("nan"),
    where("a").exists(),
    ~where("a").exists(),
    where("s") < "b",
    where("s") >= "a",
    where("s").matches("a"),
    where("s").matches("[a-c].*"),
    where("s").search("an"),
    where("s").search("^A"),
    where("s").search("berry$"),
    where("s").matches("a", flags=re.IGNORECASE),
    where("s").matches(r"\w+"),
    ast.Regex(("s",), "a.*e", 0, "fullmatch"),
    where("s").search("cherry.berry"),
    where("s").one_of(["apple", "fig", "nope"]),
    where("a").one_of([1, "1", None]),
    ~where("a").one_of([1, True]),
    where("t").any(["x"]),
    where("t").any([1, "z"]),
    where("t").all(["x", "y"]),
    where("t").all([]),
    where("t").any(where("b") == 1),
    ast.AllOf(("t",), ast.Test((), lambda v: isinstance(v, str))),
    ast.AnyOf(("t",), ast.OneOf((), ("x", 2))),
    ast.AnyOf(("t",), ast.Compare((), "gt", 1)),
    where("n").b == 2,
    Query().n.b != 2,
    ~(Query().n.b == 2),
    Query().n.b.c == 1,
    Query().n.fragment({"b": 2}),
    Query().fragment({"a": 1}),
    where("t")[0] == "x",
    where("t")[-1] == "y",
    Query().t["0"] == "x",
    Query().n.b[1] == 2,
    where("a").test(lambda v: v == 1),
    Query().a.map(str) == "1",
    (where("a") == 1) | (where("s") == "fig"),
    (where("a") == 1) & ~(where("s") == "apple"),
    ~((where("a") > 0) & (where("a") < 2)),
    ~(where("a") > 0) | (where("s") < "b"),
    where("d") < dt.date(2025, 1, 1),
    where("u") == uuid.UUID(int=5),
    where("b") == b"\x00\x01",
    where("$x") == 1,
    Query().noop(),
    lambda doc: doc.get("a") == 1,
    {"a": 1},
    {"a": {"$gt": 0, "$lt": 3}},
    {"t": "x"},
    {"t": {"$size": 2}},
    {"t": {"$elemMatch": {"$gt": 1}}},
    {"n.b": 2},
    {"t.0": "x"},
    {"a": {"$type": "number"}},
    {"a": {"$mod": [2, 0]}},
    {"a": {"$nin": [1, None]}},
    {"$or": [{"a": {"$exists": False}}, {"s": {"$regex": "^a", "$options": "i"}}]},
]

SORTS: list[tuple[Any, ...]] = [("a",), (("a", -1),), ("s",), (("s", -1), "a"), ("n.b",), ("t",), ("missing",)]


def _open(kind: str, tmp: Path) -> MicroDB:
    if kind == "memory":
        return MicroDB()
    return SQL_STORAGES[kind](tmp)()


@pytest.fixture(params=["sqlite", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The same documents in memory and in a SQL backend."""
    mem = MicroDB()
    sql = _open(request.param, tmp_path)
    docs = DOCS if request.param == "sqlite" else [d for d in DOCS if d.get("b") is None]
    mem.table("t").insert_many(docs)
    sql.table("t").insert_many(docs)
    yield mem.table("t"), sql.table("t")
    sql.close()


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_same_ids_as_memory(pair: tuple[Any, Any], query: Any) -> None:
    """Each query selects the same ids, counts the same, with and without indexes."""
    mem, sql = pair
    expected = mem.query(query).ids()
    assert sql.query(query).ids() == expected
    assert sql.count(query) == len(expected)
    for field in ("a", "s", "t", "n.b"):
        sql.create_index(field)
    assert sql.query(query).ids() == expected
    assert sql.count(query) == len(expected)
    assert sql.query(query).limit(2).ids() == expected[:2]
    assert sql.query(query).skip(1).limit(2).ids() == expected[1:3]


@pytest.mark.parametrize("keys", SORTS, ids=repr)
def test_sort_order_of_mixed_kinds_matches_memory(pair: tuple[Any, Any], keys: tuple[Any, ...]) -> None:
    """Sorting mixed kinds (kind order, then value) gives memory's order, pages included."""
    mem, sql = pair
    expected = mem.query().sort(*keys).ids()
    assert sql.query().sort(*keys).ids() == expected
    for skip, limit in ((0, 3), (2, 4), (5, 100), (0, 0)):
        assert sql.query().sort(*keys).skip(skip).limit(limit).ids() == expected[skip:skip + limit]
    assert sql.query().sort(*keys, reverse=True).ids() == mem.query().sort(*keys, reverse=True).ids()


def test_sort_by_key_function_runs_in_python(pair: tuple[Any, Any]) -> None:
    """A key function sorts in Python after SQL filtered."""
    mem, sql = pair
    key: Callable[[Any], Any] = lambda d: str(d.get("s"))  # noqa: E731
    assert sql.query(where("a").exists()).sort(key).limit(5).ids() == mem.query(where("a").exists()).sort(key).limit(5).ids()


def test_documents_round_trip_every_kind(pair: tuple[Any, Any]) -> None:
    """Every stored value comes back with its type and value."""
    mem, sql = pair
    for doc in mem.all():
        got = sql.get(doc_id=doc.doc_id)
        assert got == doc
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in doc.items()}
