"""TinyDB's query language and the seed's fluent form: one immutable, hashable AST."""

from __future__ import annotations

import re
from typing import Any

import pytest

from microdb import Query, QueryError, where
from microdb.compile.python import compile_query
from microdb.query.ast import And, Compare, Const, Exists, Node, Not, Or

DOC: dict[str, Any] = {
    "name": "John",
    "age": 30,
    "zero": 0,
    "off": False,
    "empty": "",
    "none": None,
    "score": 2.5,
    "tags": ["a", "b", "c"],
    "groups": [{"name": "admin", "level": 3}, {"name": "user", "level": 1}],
    "address": {"city": "Oslo", "geo": {"lat": 59.9, "lon": 10.7}},
    "matrix": [[1, 2], [3, 4]],
}

Q = Query()


@pytest.mark.parametrize(
    "query, expected",
    [
        (where("name") == "John", True),
        (where("name") == "Jane", False),
        (where("name") != "Jane", True),
        (where("name") != "John", False),
        (where("missing") != "x", False),
        (where("age") < 31, True),
        (where("age") <= 30, True),
        (where("age") > 30, False),
        (where("age") >= 30, True),
        (where("age") == 30.0, True),
        (where("score") > 2, True),
        (where("zero") == 0, True),
        (where("zero") == False, False),  # noqa: E712 - True/False are not 1/0
        (where("off") == False, True),  # noqa: E712
        (where("off") == 0, False),
        (where("empty") == "", True),
        (where("none") == None, True),  # noqa: E711
        (where("missing") == None, False),  # noqa: E711
        (where("name") < 5, False),
        (where("age") < "z", False),
        (Q.address.city == "Oslo", True),
        (Q["address"]["city"] == "Oslo", True),
        (Q.address.geo.lat > 59, True),
        (Q.address.geo.missing == 1, False),
        (Q.tags[0] == "a", True),
        (Q.tags[5] == "a", False),
        (Q.matrix[1][0] == 3, True),
        (Q.name.exists(), True),
        (Q.none.exists(), True),
        (Q.nope.exists(), False),
        (Q.address.geo.lon.exists(), True),
        (Q.name.matches("Jo"), True),
        (Q.name.matches("ohn"), False),
        (Q.name.matches("jo", flags=re.IGNORECASE), True),
        (Q.name.search("oh"), True),
        (Q.name.search(r"^oh"), False),
        (Q.age.matches("3"), False),
        (Q.age.test(lambda v: v % 2 == 0), True),
        (Q.age.test(lambda v, lo, hi: lo <= v <= hi, 20, 40), True),
        (Q.nope.test(lambda v: True), False),
        (Q.tags.any(["c", "z"]), True),
        (Q.tags.any(["z"]), False),
        (Q.tags.all(["a", "b"]), True),
        (Q.tags.all(["a", "z"]), False),
        (Q.groups.any(Q.name == "admin"), True),
        (Q.groups.any(Q.level > 5), False),
        (Q.groups.all(Q.level >= 1), True),
        (Q.groups.all(Q.name == "admin"), False),
        (Q.name.any(["J"]), False),
        (Q.age.one_of([10, 30]), True),
        (Q.age.one_of([10, 20]), False),
        (Q.name.one_of(["Jane", "John"]), True),
        (Q.fragment({"name": "John", "age": 30}), True),
        (Q.fragment({"name": "John", "age": 31}), False),
        (Q.address.fragment({"city": "Oslo"}), True),
        (Q.noop(), True),
        (Q.name.map(str.lower) == "john", True),
        (Q.tags.map(len) == 3, True),
        ((where("name") == "John") & (where("age") == 30), True),
        ((where("name") == "John") & (where("age") == 31), False),
        ((where("name") == "Jane") | (where("age") == 30), True),
        (~(where("name") == "Jane"), True),
        (~(where("missing") == 1), True),
        (Query().exists("age").value(Query.lte("age", 30)).exists("name").value("name", "John"), True),
        (Query().exists("age").value("age", 31), False),
        (Query().value("zero", 0), True),
        (Query().value("off", False), True),
        (Query().value("empty", ""), True),
        (Query().value("none", None), True),
        (Query.lt("age", 31), True),
        (Query.lte("age", 30), True),
        (Query.gt("age", 30), False),
        (Query.gte("age", 30), True),
        (Query.eq("name", "John"), True),
        (Query.ne("name", "John"), False),
        (Query.ne("name", "Jane"), True),
    ],
)
def test_query_against_document(query: Node, expected: bool) -> None:
    """Each TinyDB-style and fluent condition gives the expected answer on one document."""
    assert query(DOC) is expected
    compiled = compile_query(query)
    assert compiled.predicate(DOC) is expected
    assert compiled.count([DOC, DOC]) == 2 * int(expected)
    assert compiled.select([(7, DOC)]) == ([7] if expected else [])


def test_queries_are_structurally_equal_and_hashable() -> None:
    """Equal queries built twice are equal and hash equal; different ones differ."""
    pairs = [
        (where("a") == 1, Query().a == 1),
        (Q.a.b < 3, Query()["a"]["b"] < 3),
        ((where("a") == 1) & (where("b") == [1, 2]), (where("a") == 1) & (where("b") == [1, 2])),
        (Query().exists("x").value("y", 2), Query().exists("x").value("y", 2)),
        (Q.tags.any(["a"]), Q.tags.any(["a"])),
        (Q.f.fragment({"a": {"b": 1}}), Q.f.fragment({"a": {"b": 1}})),
        (Query.lte("age", 30), where("age") <= 30),
    ]
    for left, right in pairs:
        assert left == right
        assert hash(left) == hash(right)
    assert (where("a") == 1) != (where("a") == 2)
    assert (where("a") == 1) != (where("a") == True)  # noqa: E712
    assert (where("a") == 1) != (where("b") == 1)
    assert len({where("a") == 1, Query().a == 1, where("a") == 2}) == 2


def test_queries_are_immutable() -> None:
    """A query node cannot be changed after it is built."""
    q = where("a") == 1
    with pytest.raises(AttributeError):
        q.op = "ne"  # type: ignore[attr-defined]


def test_query_repr_is_readable() -> None:
    """The repr reads like the Python that built the query."""
    assert repr(where("age") < 30) == "Query().age < 30"
    assert repr(Q.address.city == "Oslo") == "Query().address.city == 'Oslo'"
    assert repr(Q["first name"] == "A") == "Query()['first name'] == 'A'"
    assert repr((where("a") == 1) & ~(where("b") >= 2)) == "(Query().a == 1 & ~Query().b >= 2)"
    assert repr(Q.tags.any(["a"])) == "Query().tags.any(('a',))"
    assert repr(Q.name.matches("J.*")) == "Query().name.matches('J.*')"


def test_combinators_flatten() -> None:
    """& and | build flat And/Or nodes; ~ builds Not."""
    a, b, c = where("a") == 1, where("b") == 2, where("c") == 3
    assert (a & b & c) == And((a, b, c))
    assert (a | b | c) == Or((a, b, c))
    assert ~a == Not(a)
    assert Query().exists("a") == Exists(("a",))
    assert Q.noop() == Const(True)
    assert isinstance(where("a") == 1, Compare)


def test_query_used_as_bool_is_an_error() -> None:
    """Chained comparisons and `and` would silently drop a condition, so they raise."""
    with pytest.raises(QueryError):
        bool(where("a") == 1)
    with pytest.raises(QueryError):
        if where("a"):
            pass


@pytest.mark.parametrize(
    "build",
    [
        lambda: Query() == 1,
        lambda: Query().exists(),
        lambda: Q.a.matches(123),
        lambda: Q.a.matches("(unclosed"),
        lambda: Q.a.test("not callable"),
        lambda: Q.a.one_of("abc"),
        lambda: Q.a.any(5),
        lambda: Q.a.map(3),
        lambda: Q.a.fragment([1]),
        lambda: where(5),
        lambda: Query()[1.5],
        lambda: Query().value("a", 1, 2),
        lambda: Query.lt(None, 1),
    ],
)
def test_malformed_queries_raise_query_error(build: Any) -> None:
    """Malformed queries raise QueryError when built, never at match time."""
    with pytest.raises(QueryError):
        build()


def test_compiled_queries_are_cached() -> None:
    """The same query built twice compiles once."""
    assert compile_query(where("zz") == 1) is compile_query(Query().zz == 1)


def test_user_function_errors_propagate() -> None:
    """An exception raised by a user's test() function reaches the caller."""

    def boom(value: Any) -> bool:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Q.age.test(boom)(DOC)
