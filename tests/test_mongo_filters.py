"""MongoDB-style dict filters: every operator, MongoDB's edge cases, errors, and agreement with ``where``."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microdb import MicroDB, QueryError, where
from microdb.query.ast import AnyOf, Compare, ElemMatch, Node, OneOf, Or
from microdb.query.mongo import parse_filter
from microdb.storage import InMemoryStorage

Case = tuple[dict[str, Any], dict[str, Any], bool]


def _id(value: Any) -> str:
    return repr(value)[:70]


def check(cases: list[Case]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Parametrize a test over (filter, document, expected) triples."""
    return pytest.mark.parametrize("filter, doc, expected", cases, ids=[_id(c[:2]) for c in cases])


def matches(filter: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``doc`` matches the dict filter (through the compiled predicate)."""
    return parse_filter(filter)(doc)


EQUALITY: list[Case] = [
    ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": 1}, {"a": Decimal("1")}, True),
    ({"a": 1}, {"a": True}, False),
    ({"a": True}, {"a": 1}, False),
    ({"a": True}, {"a": True}, True),
    ({"a": 0}, {"a": False}, False),
    ({"a": 1}, {"a": "1"}, False),
    ({"a": 1}, {}, False),
    ({"a": 1}, {"a": None}, False),
    ({"a": 1}, {"a": [1, 2]}, True),
    ({"a": 1}, {"a": [2, 3]}, False),
    ({"a": 1}, {"a": [[1], 2]}, False),
    ({"a": [1]}, {"a": [[1], 2]}, True),
    ({"a": [1, 2]}, {"a": [1, 2]}, True),
    ({"a": [1, 2]}, {"a": [2, 1]}, False),
    ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
    ({"a": [1, 2]}, {"a": [[1, 2], 3]}, True),
    ({"a": []}, {"a": []}, True),
    ({"a": []}, {"a": [[]]}, True),
    ({"a": {"b": 1}}, {"a": {"b": 1}}, True),
    ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, False),
    ({"a": {"b": 1}}, {"a": [{"b": 1}, 5]}, True),
    ({"a": {}}, {"a": {}}, True),
    ({"a": "x"}, {"a": ("x", "y")}, True),
    ({"a": "x"}, {"a": {"x", "y"}}, True),
    ({"a": "x"}, {"a": "xy"}, False),
    ({"a": {"$eq": 1}}, {"a": [1]}, True),
    ({"a": {"$eq": [1]}}, {"a": [1]}, True),
    ({"a": dt.datetime(2024, 1, 1)}, {"a": dt.datetime(2024, 1, 1)}, True),
    ({"a": dt.date(2024, 1, 1)}, {"a": dt.datetime(2024, 1, 1)}, False),
    ({"a": uuid.UUID(int=7)}, {"a": [uuid.UUID(int=7)]}, True),
    ({"a": 1, "b": 2}, {"a": 1, "b": 2}, True),
    ({"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ({}, {"anything": 1}, True),
]


@check(EQUALITY)
def test_equality(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """Equality matches the value or an element of an array, kinds apart, one array level only."""
    assert matches(filter, doc) is expected


NULL_AND_MISSING: list[Case] = [
    ({"a": None}, {}, True),
    ({"a": None}, {"a": None}, True),
    ({"a": None}, {"a": 0}, False),
    ({"a": None}, {"a": False}, False),
    ({"a": None}, {"a": ""}, False),
    ({"a": None}, {"a": [1, None]}, True),
    ({"a": None}, {"a": [1]}, False),
    ({"a": None}, {"a": []}, False),
    ({"a": {"$eq": None}}, {}, True),
    ({"a.b": None}, {"a": {"b": None}}, True),
    ({"a.b": None}, {"a": {}}, True),
    ({"a.b": None}, {"a": 5}, True),
    ({"a.b": None}, {}, True),
    ({"a.b": None}, {"a": {"b": 1}}, False),
    ({"a.b": None}, {"a": [{"b": 1}]}, False),
    ({"a.b": None}, {"a": [{"b": None}]}, True),
    ({"a.b": None}, {"a": []}, True),
    ({"a": {"$ne": None}}, {}, False),
    ({"a": {"$ne": None}}, {"a": None}, False),
    ({"a": {"$ne": None}}, {"a": 0}, True),
    ({"a": {"$gte": None}}, {}, True),
    ({"a": {"$gte": None}}, {"a": None}, True),
    ({"a": {"$lte": None}}, {"a": 1}, False),
    ({"a": {"$gt": None}}, {"a": None}, False),
    ({"a": {"$lt": None}}, {}, False),
    ({"a": {"$in": [None, 1]}}, {}, True),
    ({"a": {"$in": [None, 1]}}, {"a": 1}, True),
    ({"a": {"$in": [None, 1]}}, {"a": 2}, False),
    ({"a": {"$nin": [None]}}, {}, False),
    ({"a": {"$nin": [None]}}, {"a": 2}, True),
]


@check(NULL_AND_MISSING)
def test_null_and_missing(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``None`` matches null, an array holding null, or a path that reaches no value."""
    assert matches(filter, doc) is expected


NEGATIONS: list[Case] = [
    ({"a": {"$ne": 1}}, {}, True),
    ({"a": {"$ne": 1}}, {"a": 2}, True),
    ({"a": {"$ne": 1}}, {"a": 1}, False),
    ({"a": {"$ne": 1}}, {"a": 1.0}, False),
    ({"a": {"$ne": 1}}, {"a": "1"}, True),
    ({"a": {"$ne": 1}}, {"a": True}, True),
    ({"a": {"$ne": 1}}, {"a": [1, 2]}, False),
    ({"a": {"$ne": 1}}, {"a": [2, 3]}, True),
    ({"a.b": {"$ne": 1}}, {"a": [{"b": 2}, {"b": 1}]}, False),
    ({"a.b": {"$ne": 1}}, {"a": 7}, True),
    ({"a": {"$nin": [1, 2]}}, {}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": 3}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": 2}, False),
    ({"a": {"$nin": [1, 2]}}, {"a": [3, 1]}, False),
    ({"a": {"$nin": []}}, {"a": 1}, True),
]


@check(NEGATIONS)
def test_ne_and_nin(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$ne`` and ``$nin`` match documents without the field and arrays with no such element."""
    assert matches(filter, doc) is expected


COMPARISONS: list[Case] = [
    ({"a": {"$gt": 1}}, {"a": 2}, True),
    ({"a": {"$gt": 1}}, {"a": 1}, False),
    ({"a": {"$gt": 1}}, {"a": 1.5}, True),
    ({"a": {"$gt": 1}}, {"a": Decimal("1.1")}, True),
    ({"a": {"$gt": 1}}, {"a": "2"}, False),
    ({"a": {"$gt": 1}}, {"a": True}, False),
    ({"a": {"$gt": 1}}, {}, False),
    ({"a": {"$gt": 1}}, {"a": None}, False),
    ({"a": {"$gt": 1}}, {"a": [0, 5]}, True),
    ({"a": {"$gt": 1}}, {"a": [0, 1]}, False),
    ({"a": {"$gt": 1}}, {"a": [[5]]}, False),
    ({"a": {"$gte": 1}}, {"a": 1}, True),
    ({"a": {"$lt": 1}}, {"a": 0.5}, True),
    ({"a": {"$lte": 1}}, {"a": 1.0}, True),
    ({"a": {"$lte": 1}}, {"a": 1.5}, False),
    ({"a": {"$gt": 1, "$lt": 3}}, {"a": 2}, True),
    ({"a": {"$gt": 1, "$lt": 3}}, {"a": [0, 5]}, True),
    ({"a": {"$gt": 1, "$lt": 3}}, {"a": [4]}, False),
    ({"a": {"$lt": "b"}}, {"a": "a"}, True),
    ({"a": {"$lt": "b"}}, {"a": "B"}, True),
    ({"a": {"$lt": "b"}}, {"a": 1}, False),
    ({"a": {"$gt": False}}, {"a": True}, True),
    ({"a": {"$gt": False}}, {"a": 1}, False),
    ({"a": {"$gte": dt.datetime(2024, 1, 1)}}, {"a": dt.datetime(2024, 6, 1)}, True),
    ({"a": {"$gte": dt.datetime(2024, 1, 1)}}, {"a": "2024-06-01"}, False),
    ({"a": {"$gte": dt.datetime(2024, 1, 1)}}, {"a": dt.date(2024, 6, 1)}, False),
    ({"a": {"$gt": [1]}}, {"a": [2]}, True),
    ({"a": {"$gt": float("nan")}}, {"a": 1}, False),
]


@check(COMPARISONS)
def test_comparisons(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """Ranges compare values of one kind; an array matches when some element does."""
    assert matches(filter, doc) is expected


IN: list[Case] = [
    ({"a": {"$in": [1, "x"]}}, {"a": 1}, True),
    ({"a": {"$in": [1, "x"]}}, {"a": "x"}, True),
    ({"a": {"$in": [1, "x"]}}, {"a": [5, "x"]}, True),
    ({"a": {"$in": [1, "x"]}}, {"a": 2}, False),
    ({"a": {"$in": [1, "x"]}}, {}, False),
    ({"a": {"$in": [1, "x"]}}, {"a": True}, False),
    ({"a": {"$in": []}}, {"a": 1}, False),
    ({"a": {"$in": [re.compile("^ab")]}}, {"a": "abc"}, True),
    ({"a": {"$in": [re.compile("^ab")]}}, {"a": "cab"}, False),
    ({"a": {"$in": [re.compile("^ab"), 3]}}, {"a": 3}, True),
    ({"a": {"$in": [[1, 2]]}}, {"a": [1, 2]}, True),
    ({"a": {"$in": [[1, 2]]}}, {"a": [[1, 2]]}, True),
    ({"a": {"$in": ("x",)}}, {"a": "x"}, True),
]


@check(IN)
def test_in(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$in`` matches a value (or element) equal to one listed, or matching a listed regex."""
    assert matches(filter, doc) is expected


EXISTS: list[Case] = [
    ({"a": {"$exists": True}}, {"a": None}, True),
    ({"a": {"$exists": True}}, {}, False),
    ({"a": {"$exists": False}}, {}, True),
    ({"a": {"$exists": False}}, {"a": None}, False),
    ({"a": {"$exists": 1}}, {"a": 0}, True),
    ({"a.b": {"$exists": True}}, {"a": {"b": None}}, True),
    ({"a.b": {"$exists": True}}, {"a": [{"b": 1}]}, True),
    ({"a.b": {"$exists": True}}, {"a": [{"c": 1}]}, False),
    ({"a.b": {"$exists": True}}, {"a": 5}, False),
    ({"a.b": {"$exists": False}}, {"a": []}, True),
    ({"a.0": {"$exists": True}}, {"a": [1]}, True),
    ({"a.0": {"$exists": True}}, {"a": []}, False),
]


@check(EXISTS)
def test_exists(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$exists`` asks whether the path reaches a value (``None`` counts), through arrays too."""
    assert matches(filter, doc) is expected


REGEX: list[Case] = [
    ({"a": {"$regex": "^al"}}, {"a": "alice"}, True),
    ({"a": {"$regex": "^al"}}, {"a": "Alice"}, False),
    ({"a": {"$regex": "ice$"}}, {"a": "alice"}, True),
    ({"a": {"$regex": "^al"}}, {"a": 5}, False),
    ({"a": {"$regex": "^al"}}, {}, False),
    ({"a": {"$regex": "^al"}}, {"a": ["bob", "alba"]}, True),
    ({"a": {"$regex": "^al", "$options": "i"}}, {"a": "Alice"}, True),
    ({"a": {"$regex": re.compile("^al")}}, {"a": "alice"}, True),
    ({"a": {"$regex": re.compile("^al"), "$options": "i"}}, {"a": "ALICE"}, True),
    ({"a": re.compile("^A", re.I)}, {"a": "alice"}, True),
    ({"a": re.compile("^A")}, {"a": "alice"}, False),
    ({"a": {"$regex": "^b.c$", "$options": "s"}}, {"a": "b\nc"}, True),
    ({"a": {"$regex": "^b.c$"}}, {"a": "b\nc"}, False),
    ({"a": {"$regex": "^c", "$options": "m"}}, {"a": "ab\ncd"}, True),
    ({"a": {"$regex": "^c"}}, {"a": "ab\ncd"}, False),
    ({"a": {"$regex": "a b  # a comment", "$options": "x"}}, {"a": "ab"}, True),
]


@check(REGEX)
def test_regex(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$regex`` searches strings (or string elements), with MongoDB's ``$options`` letters."""
    assert matches(filter, doc) is expected


LOGICAL: list[Case] = [
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 3}}]}, {"a": 2}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {}, False),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {}, True),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"b": 3}, True),
    ({"$or": [{"a": 1}], "b": 2}, {"a": 1, "b": 2}, True),
    ({"$or": [{"a": 1}], "b": 2}, {"a": 1}, False),
    ({"$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"a": 1, "b": 1}, True),
    ({"$comment": "why", "a": 1}, {"a": 1}, True),
    ({"a": {"$not": {"$gt": 1}}}, {"a": 0}, True),
    ({"a": {"$not": {"$gt": 1}}}, {"a": 2}, False),
    ({"a": {"$not": {"$gt": 1}}}, {}, True),
    ({"a": {"$not": {"$gt": 1}}}, {"a": "x"}, True),
    ({"a": {"$not": {"$gt": 1}}}, {"a": [0, 5]}, False),
    ({"a": {"$not": re.compile("^x")}}, {"a": "xy"}, False),
    ({"a": {"$not": re.compile("^x")}}, {"a": "yx"}, True),
    ({"a": {"$not": {"$regex": "^x"}}}, {}, True),
    ({"a": {"$not": {"$gt": 1, "$lt": 3}}}, {"a": 2}, False),
    ({"a": {"$not": {"$gt": 1, "$lt": 3}}}, {"a": 5}, True),
]


@check(LOGICAL)
def test_logical(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$and``, ``$or``, ``$nor`` and ``$not`` combine conditions; ``$not`` matches a missing field."""
    assert matches(filter, doc) is expected


ARRAYS: list[Case] = [
    ({"a": {"$all": ["x", "y"]}}, {"a": ["y", "z", "x"]}, True),
    ({"a": {"$all": ["x", "y"]}}, {"a": ["x"]}, False),
    ({"a": {"$all": ["x", "y"]}}, {"a": "x"}, False),
    ({"a": {"$all": ["x"]}}, {"a": "x"}, True),
    ({"a": {"$all": []}}, {"a": []}, False),
    ({"a": {"$all": [[1, 2]]}}, {"a": [1, 2]}, True),
    ({"a": {"$all": [[1, 2]]}}, {"a": [[1, 2], 3]}, True),
    ({"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"c": 2}}]}}, {"a": [{"b": 1}, {"c": 2}]}, True),
    ({"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"c": 2}}]}}, {"a": [{"b": 1}]}, False),
    ({"a": {"$elemMatch": {"$gte": 80, "$lt": 85}}}, {"a": [82, 90]}, True),
    ({"a": {"$elemMatch": {"$gte": 80, "$lt": 85}}}, {"a": [79, 90]}, False),
    ({"a": {"$gte": 80, "$lt": 85}}, {"a": [79, 90]}, True),
    ({"a": {"$elemMatch": {"b": 1, "c": {"$gt": 1}}}}, {"a": [{"b": 1, "c": 2}]}, True),
    ({"a": {"$elemMatch": {"b": 1, "c": {"$gt": 1}}}}, {"a": [{"b": 1, "c": 0}, {"b": 2, "c": 5}]}, False),
    ({"a.b": 1, "a.c": {"$gt": 1}}, {"a": [{"b": 1, "c": 0}, {"b": 2, "c": 5}]}, True),
    ({"a": {"$elemMatch": {"b": 1, "c": {"$gt": 1}}}}, {"a": {"b": 1, "c": 2}}, False),
    ({"a": {"$elemMatch": {"b": {"$ne": 1}}}}, {"a": [5]}, False),
    ({"a": {"$elemMatch": {"b": {"$ne": 1}}}}, {"a": [{"c": 1}]}, True),
    ({"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 1}]}}}, {"a": [{"c": 1}]}, True),
    ({"a": {"$elemMatch": {"$eq": 5}}}, {"a": [[5]]}, False),
    ({"a": {"$elemMatch": {"$elemMatch": {"$eq": 5}}}}, {"a": [[5]]}, True),
    ({"a": {"$elemMatch": {"$gt": 1}}}, {"a": 5}, False),
    ({"a": {"$elemMatch": {"$gt": 1}}}, {"a": (0, 5)}, True),
    ({"a": {"$size": 2}}, {"a": [1, 2]}, True),
    ({"a": {"$size": 2}}, {"a": (1, 2)}, True),
    ({"a": {"$size": 2}}, {"a": [1]}, False),
    ({"a": {"$size": 2}}, {"a": "ab"}, False),
    ({"a": {"$size": 2}}, {}, False),
    ({"a": {"$size": 2}}, {"a": [[1, 2]]}, False),
    ({"a": {"$size": 0}}, {"a": []}, True),
    ({"a": {"$size": 2.0}}, {"a": [1, 2]}, True),
    ({"a.b": {"$size": 1}}, {"a": [{"b": [1]}, {"b": 2}]}, True),
]


@check(ARRAYS)
def test_array_operators(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$all``, ``$elemMatch`` (one element for all conditions) and ``$size`` as MongoDB defines them."""
    assert matches(filter, doc) is expected


TYPES: list[Case] = [
    ({"a": {"$type": "string"}}, {"a": "x"}, True),
    ({"a": {"$type": "string"}}, {"a": 1}, False),
    ({"a": {"$type": "string"}}, {"a": ["x", 1]}, True),
    ({"a": {"$type": "string"}}, {}, False),
    ({"a": {"$type": 2}}, {"a": "x"}, True),
    ({"a": {"$type": "number"}}, {"a": 1}, True),
    ({"a": {"$type": "number"}}, {"a": 1.5}, True),
    ({"a": {"$type": "number"}}, {"a": Decimal("1")}, True),
    ({"a": {"$type": "number"}}, {"a": True}, False),
    ({"a": {"$type": "int"}}, {"a": 1}, True),
    ({"a": {"$type": "int"}}, {"a": 1.0}, False),
    ({"a": {"$type": "long"}}, {"a": 2**40}, True),
    ({"a": {"$type": "double"}}, {"a": 1.0}, True),
    ({"a": {"$type": 1}}, {"a": 1}, False),
    ({"a": {"$type": "decimal"}}, {"a": Decimal("1")}, True),
    ({"a": {"$type": "bool"}}, {"a": True}, True),
    ({"a": {"$type": "bool"}}, {"a": 1}, False),
    ({"a": {"$type": "null"}}, {"a": None}, True),
    ({"a": {"$type": "null"}}, {}, False),
    ({"a": {"$type": "array"}}, {"a": []}, True),
    ({"a": {"$type": 4}}, {"a": ["x"]}, True),
    ({"a": {"$type": "array"}}, {"a": "x"}, False),
    ({"a": {"$type": "object"}}, {"a": {"b": 1}}, True),
    ({"a": {"$type": "object"}}, {"a": [{"b": 1}]}, True),
    ({"a": {"$type": ["string", "null"]}}, {"a": None}, True),
    ({"a": {"$type": ["string", "null"]}}, {"a": 3}, False),
    ({"a": {"$type": "date"}}, {"a": dt.datetime(2024, 1, 1)}, True),
    ({"a": {"$type": "date"}}, {"a": dt.date(2024, 1, 1)}, False),
    ({"a": {"$type": "uuid"}}, {"a": uuid.UUID(int=1)}, True),
    ({"a": {"$type": "binData"}}, {"a": b"x"}, True),
    ({"a": {"$type": "timedelta"}}, {"a": dt.timedelta(1)}, True),
    ({"a": {"$type": "time"}}, {"a": dt.time(1)}, True),
]


@check(TYPES)
def test_type(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$type`` takes MongoDB's names and numbers (and MicroDB's rich kinds); ``True`` is no number."""
    assert matches(filter, doc) is expected


MOD: list[Case] = [
    ({"a": {"$mod": [4, 0]}}, {"a": 8}, True),
    ({"a": {"$mod": [4, 0]}}, {"a": 7}, False),
    ({"a": {"$mod": [4, 0]}}, {"a": 8.5}, True),
    ({"a": {"$mod": [4, 0]}}, {"a": Decimal("8")}, True),
    ({"a": {"$mod": [4, 0]}}, {"a": "8"}, False),
    ({"a": {"$mod": [4, 0]}}, {"a": True}, False),
    ({"a": {"$mod": [4, 0]}}, {}, False),
    ({"a": {"$mod": [4, 0]}}, {"a": [3, 8]}, True),
    ({"a": {"$mod": [3, -2]}}, {"a": -5}, True),
    ({"a": {"$mod": [3, 1]}}, {"a": -5}, False),
    ({"a": {"$mod": [4.5, 0]}}, {"a": 8}, True),
]


@check(MOD)
def test_mod(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """``$mod`` truncates toward zero and keeps the dividend's sign, as MongoDB does."""
    assert matches(filter, doc) is expected


PATHS: list[Case] = [
    ({"a.b": 1}, {"a": {"b": 1}}, True),
    ({"a.b": 1}, {"a": {"b": [0, 1]}}, True),
    ({"a.b": 1}, {"a": [{"b": 1}, {"b": 2}]}, True),
    ({"a.b": 1}, {"a": [{"b": [0, 1]}]}, True),
    ({"a.b": 1}, {"a": [[{"b": 1}]]}, False),
    ({"a.b": 1}, {"a": {"c": 1}}, False),
    ({"a.b": 1}, {"a": 1}, False),
    ({"a.b.c": 1}, {"a": [{"b": [{"c": 1}]}]}, True),
    ({"a.b.c": 1}, {"a": {"b": {"c": 1}}}, True),
    ({"a.b": {"$gt": 1}}, {"a": [{"b": 0}, {"b": 2}]}, True),
    ({"a.0": "x"}, {"a": ["x", "y"]}, True),
    ({"a.0": "x"}, {"a": ["y", "x"]}, False),
    ({"a.0": "x"}, {"a": {"0": "x"}}, True),
    ({"a.0": "x"}, {"a": [{"0": "x"}]}, True),
    ({"a.0": "x"}, {"a": [["x"]]}, True),
    ({"a.1.b": 2}, {"a": [{"b": 1}, {"b": 2}]}, True),
    ({"a.1.b": 2}, {"a": [{"b": 2}, {"b": 1}]}, False),
    ({"a.5": None}, {"a": [1]}, True),
]


@check(PATHS)
def test_dot_paths(filter: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    """Dot paths walk sub-documents, index arrays by position, and fan out over arrays of documents."""
    assert matches(filter, doc) is expected


ERRORS: list[tuple[Any, list[str]]] = [
    ({"a": {"$foo": 1}}, ["'$foo'", "'a'"]),
    ({"a.b": {"$gt": 1, "$bar": 2}}, ["'$bar'", "'a.b'"]),
    ({"$foo": 1}, ["'$foo'", "top level"]),
    ({"$where": "this.a == 1"}, ["'$where'"]),
    ({"$gt": 1}, ["$gt", "wrong place"]),
    ({"$not": {"a": 1}}, ["$not", "wrong place"]),
    ({"a": {"$and": [{"b": 1}]}}, ["$and", "'a'", "top level"]),
    ({"a": {"$gt": 1, "b": 2}}, ["mixes", "'a'"]),
    ({"a": {"b": {"$gt": 1}}}, ["'$gt'", "'a'", "wrong place"]),
    ({"a": [{"$gt": 1}]}, ["'$gt'", "wrong place"]),
    ({"$and": []}, ["$and"]),
    ({"$or": {"a": 1}}, ["$or"]),
    ({"$nor": [1]}, ["$nor"]),
    ({"a": {"$in": 5}}, ["$in", "'a'"]),
    ({"a": {"$nin": "abc"}}, ["$nin", "'a'"]),
    ({"a": {"$in": [{"$gt": 1}]}}, ["'$gt'", "$in"]),
    ({"a": {"$not": 5}}, ["$not", "'a'"]),
    ({"a": {"$not": {}}}, ["$not", "'a'"]),
    ({"a": {"$size": -1}}, ["$size", "'a'"]),
    ({"a": {"$size": "2"}}, ["$size"]),
    ({"a": {"$size": True}}, ["$size"]),
    ({"a": {"$size": 1.5}}, ["$size"]),
    ({"a": {"$type": "foo"}}, ["$type", "'foo'"]),
    ({"a": {"$type": 7}}, ["$type", "7"]),
    ({"a": {"$type": []}}, ["$type"]),
    ({"a": {"$type": True}}, ["$type"]),
    ({"a": {"$mod": [0, 1]}}, ["$mod", "divisor"]),
    ({"a": {"$mod": [1]}}, ["$mod"]),
    ({"a": {"$mod": ["a", 1]}}, ["$mod"]),
    ({"a": {"$mod": [float("inf"), 1]}}, ["$mod"]),
    ({"a": {"$regex": 5}}, ["$regex", "'a'"]),
    ({"a": {"$regex": "("}}, ["$regex", "'a'"]),
    ({"a": {"$options": "i"}}, ["$options", "$regex"]),
    ({"a": {"$regex": "x", "$options": "q"}}, ["$options", "'q'"]),
    ({"a": {"$regex": "x", "$options": 1}}, ["$options"]),
    ({"a": {"$elemMatch": 5}}, ["$elemMatch", "'a'"]),
    ({"a": {"$elemMatch": {}}}, ["$elemMatch"]),
    ({"a": {"$elemMatch": {"$gt": 1, "b": 2}}}, ["$elemMatch", "mixes"]),
    ({"a": {"$elemMatch": {"b": {"$foo": 1}}}}, ["'$foo'", "a.$elemMatch.b"]),
    ({"a": {"$all": 5}}, ["$all"]),
    ({"a": {"$all": [{"$gt": 1}]}}, ["$all", "$elemMatch"]),
    ({"a": {"$exists": "yes"}}, ["$exists"]),
    ({"a": {"$eq": re.compile("x")}}, ["$eq", "$regex"]),
    ({"a": {"$gt": re.compile("x")}}, ["$gt", "$regex"]),
    ({"": 1}, ["empty"]),
    ({"a..b": 1}, ["'a..b'", "empty"]),
    ({"a.$": 1}, ["'$'"]),
    ({1: 2}, ["field name"]),
]


@pytest.mark.parametrize("filter, fragments", ERRORS, ids=[_id(e[0]) for e in ERRORS])
def test_malformed_filters_raise(filter: Any, fragments: list[str]) -> None:
    """A bad operator, operand or placement raises QueryError naming it and where it was."""
    with pytest.raises(QueryError) as info:
        parse_filter(filter)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message


def test_a_filter_must_be_a_mapping() -> None:
    """A list is not a filter."""
    with pytest.raises(QueryError, match="mapping"):
        parse_filter([{"a": 1}])  # type: ignore[arg-type]


def test_tables_refuse_malformed_filters(db: MicroDB) -> None:
    """A table raises for a bad filter instead of quietly matching nothing."""
    db.insert({"a": 1})
    for call in (db.search, db.count, db.remove, db.get):
        with pytest.raises(QueryError, match=r"\$foo"):
            call({"a": {"$foo": 1}})
    assert len(db) == 1


# ---------------------------------------------------------------------------------------
# The shape of the AST (what the planner and the SQL compilers see)
# ---------------------------------------------------------------------------------------


def test_equality_is_written_with_indexable_nodes() -> None:
    """``{'f': v}`` is a Compare or an AnyOf of values: both have an index plan."""
    assert parse_filter({"age": 30}) == Or((Compare(("age",), "eq", 30), AnyOf(("age",), (30,))))


def test_ranges_and_in_are_written_with_indexable_nodes() -> None:
    """Ranges become Compare plus an ElemMatch of a Compare on the element; ``$in`` a OneOf plus an AnyOf."""
    assert parse_filter({"age": {"$gt": 3}}) == Or(
        (Compare(("age",), "gt", 3), ElemMatch(("age",), Compare((), "gt", 3)))
    )
    assert parse_filter({"age": {"$in": [1, 2]}}) == Or((OneOf(("age",), (1, 2)), AnyOf(("age",), (1, 2))))


def test_equal_filters_build_equal_hashable_nodes() -> None:
    """Parsing the same filter twice gives equal nodes with equal hashes (the compile cache relies on it)."""
    f = {"a.b": {"$in": [1, [2, 3], {"c": 4}]}, "$or": [{"d": None}, {"e": {"$regex": "x", "$options": "i"}}]}
    first, second = parse_filter(f), parse_filter(dict(f))
    assert isinstance(first, Node)
    assert first == second and hash(first) == hash(second)
    assert parse_filter({"a": 1}) != parse_filter({"a": True})


DOCS: list[dict[str, Any]] = [
    {"a": 1, "b": "x", "t": ["red", "blue"], "n": {"c": 1}},
    {"a": 2, "b": "y", "t": ["blue"], "n": [{"c": 2}, {"c": 3}]},
    {"a": 2.0, "b": None, "t": [], "n": {"c": None}},
    {"a": "2", "t": "red", "n": 5},
    {"a": True, "b": "x", "t": [["red"]], "n": [{"d": 1}]},
    {"b": "z", "t": ["green", "red"]},
    {"a": [1, 3], "b": ["x", "q"], "n": {"c": [1, 4]}},
    {"a": None, "t": None},
    {"a": Decimal("2.5"), "b": "xx", "t": ["RED"], "n": {"c": 2.0}},
]

TABLE_FILTERS: list[dict[str, Any]] = [
    {"a": 2},
    {"a": 1},
    {"a": {"$gt": 1}},
    {"a": {"$gte": 1, "$lt": 2.5}},
    {"a": {"$in": [1, "2", True]}},
    {"a": {"$nin": [2]}},
    {"a": {"$ne": 2}},
    {"a": None},
    {"a": {"$exists": False}},
    {"b": "x"},
    {"b": {"$regex": "^x"}},
    {"t": "red"},
    {"t": {"$all": ["red", "blue"]}},
    {"t": {"$size": 1}},
    {"t": ["red"]},
    {"n.c": 2},
    {"n.c": {"$gt": 1}},
    {"n.c": None},
    {"n.0.c": 2},
    {"$or": [{"a": 1}, {"b": "z"}]},
    {"$nor": [{"a": 2}, {"t": "red"}]},
    {"a": {"$type": "number"}, "b": {"$exists": True}},
    {"a": {"$mod": [2, 0]}},
    {"n": {"$elemMatch": {"c": {"$gte": 3}}}},
]


@pytest.mark.parametrize("filter", TABLE_FILTERS, ids=_id)
def test_tables_answer_filters_alike_with_and_without_indexes(db: MicroDB, filter: dict[str, Any]) -> None:
    """Every storage, with or without indexes on the fields, returns exactly the matching documents."""
    ids = db.insert_many(DOCS)
    expected = [i for i, doc in zip(ids, DOCS) if matches(filter, doc)]
    assert [d.doc_id for d in db.search(filter)] == expected
    assert db.count(filter) == len(expected)
    for field in ("a", "b", "t", "n.c", "n.0.c"):
        db.create_index(field)
    assert [d.doc_id for d in db.search(filter)] == expected
    assert db.query(filter).count() == len(expected)


@pytest.mark.parametrize(
    "filter",
    [{"a": 2}, {"a": {"$gt": 1}}, {"a": {"$in": [1, 2]}}, {"a": {"$lte": 2}, "b": "x"}, {"$or": [{"a": 1}, {"a": 2}]}],
    ids=_id,
)
def test_the_planner_uses_an_index_for_dict_filters(filter: dict[str, Any]) -> None:
    """Equality, ranges, ``$in`` and ``$or`` of them on an indexed field read the index, not every document."""
    db = MicroDB(InMemoryStorage())
    db.insert_many({"a": i % 10, "b": "x" if i % 3 else "y"} for i in range(200))
    db.create_index("a")
    plan = db.query(filter).explain()
    assert plan["index"] is not None
    assert plan["examined"] < 200
    assert plan["matched"] == sum(1 for d in db.all() if matches(filter, d))


# ---------------------------------------------------------------------------------------
# Dict filters and where() agree wherever their semantics do (scalar fields)
# ---------------------------------------------------------------------------------------

FIELDS = ("a", "b")
scalars = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.sampled_from(["", "x", "xy", "y", "Z"]),
    st.booleans(),
    st.none(),
)
documents = st.lists(
    st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=2),
    min_size=1,
    max_size=12,
)

Pair = tuple[dict[str, Any], Node]


def _is_null(field: str) -> Node:
    return (where(field) == None) | ~where(field).exists()  # noqa: E711 - a query, not a test


@st.composite
def leaves(draw: st.DrawFn) -> Pair:
    """One condition on one scalar field, as a dict filter and as its where() twin."""
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists", "regex", "not"]))
    value = draw(scalars)
    w = where(field)
    if op == "eq":
        return {field: value}, (_is_null(field) if value is None else w == value)
    if op == "ne":
        return {field: {"$ne": value}}, ~(_is_null(field) if value is None else w == value)
    if op in ("gt", "gte", "lt", "lte", "not"):
        value = draw(scalars.filter(lambda v: v is not None))
        inner = draw(st.sampled_from(["gt", "gte", "lt", "lte"])) if op == "not" else op
        node = {"gt": w > value, "gte": w >= value, "lt": w < value, "lte": w <= value}[inner]
        if op == "not":
            return {field: {"$not": {f"${inner}": value}}}, ~node
        return {field: {f"${op}": value}}, node
    if op in ("in", "nin"):
        values = draw(st.lists(scalars.filter(lambda v: v is not None), max_size=3))
        node = w.one_of(values)
        return {field: {f"${op}": values}}, (node if op == "in" else ~node)
    if op == "exists":
        flag = draw(st.booleans())
        return {field: {"$exists": flag}}, (w.exists() if flag else ~w.exists())
    pattern = draw(st.sampled_from(["x", "^x", "y$", "^$", "[xy]+"]))
    return {field: {"$regex": pattern}}, w.search(pattern)


def _combine(children: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    def build(args: tuple[str, list[Pair]]) -> Pair:
        how, parts = args
        filters, nodes = [p[0] for p in parts], [p[1] for p in parts]
        if how == "$and":
            node = nodes[0]
            for n in nodes[1:]:
                node = node & n
            return {"$and": filters}, node
        joined = nodes[0]
        for n in nodes[1:]:
            joined = joined | n
        return {how: filters}, (joined if how == "$or" else ~joined)

    return st.tuples(st.sampled_from(["$and", "$or", "$nor"]), st.lists(children, min_size=1, max_size=3)).map(build)


filters = st.recursive(leaves(), _combine, max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(docs=documents, pair=filters)
def test_dict_filters_agree_with_where(docs: list[dict[str, Any]], pair: Pair) -> None:
    """On scalar fields a random dict filter and its where() twin select the same documents."""
    filter, node = pair
    parsed = parse_filter(filter)
    for doc in docs:
        assert parsed(doc) == node(doc), (filter, node, doc)
    db = MicroDB(InMemoryStorage())
    db.insert_many(docs)
    db.create_index("a")
    assert [d.doc_id for d in db.search(filter)] == [d.doc_id for d in db.search(node)]
