"""The planner never changes an answer: indexed plan, full scan and a naive reference agree.

Hypothesis generates documents (fields missing, ``None``, ints, floats, bools, strings,
lists and nested dicts, mixed on the same field) and random queries, then checks that a
table with an index on every queried field, a table without indexes and a reference
evaluator written here from the documented rules (``microdb.query.values`` and the node
docstrings of ``microdb.query.ast``) select the same ids, and that ``sort`` + ``limit``
read from an index give what a full sort gives.

Queries are generated as small tuples, so the reference never uses MicroDB's own code:
``("cmp", path, op, operand)``, ``("one_of", path, values)``, ``("any", path, values)``,
``("any_q", path, subquery)``, ``("exists", path)``, ``("and", a, b)``, ``("or", a, b)``
and ``("not", a)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from microdb import MicroDB, Query, where
from microdb.query.ast import Node
from microdb.storage import InMemoryStorage

Path = tuple[str, ...]
Tree = tuple[Any, ...]

#: Top-level fields, a nested field, the nested object itself and a list position; all indexed.
FIELDS: tuple[Path, ...] = (("a",), ("b",), ("n", "x"), ("n",), ("b", "0"))
INDEXED = ("a", "b", "n.x", "n", "b.0")
OPS = ("eq", "ne", "lt", "le", "gt", "ge")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# -- the reference: the documented rules, written out naively --------------------------------

def kind(value: Any) -> str:
    """The kind of a JSON value, as the values module defines kinds."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: True is a bool, never the number 1
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    raise AssertionError(f"unexpected value {value!r}")


def get(doc: Any, path: Path) -> Any:
    """The value at ``path``: dict keys, or list positions for digit steps; else MISSING."""
    value = doc
    for step in path:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return MISSING
    return value


def equal(a: Any, b: Any) -> bool:
    """Same kind and same value; objects ignore key order; arrays compare element-wise."""
    if a is MISSING or b is MISSING or kind(a) != kind(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def ordered(a: Any, op: str, b: Any) -> bool:
    """``a OP b`` for scalars of one kind other than null; false otherwise."""
    if a is MISSING or kind(a) != kind(b) or kind(a) in ("null", "object", "array"):
        return False
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]  # type: ignore[no-any-return]


def matches(tree: Tree, doc: Any) -> bool:
    """Whether ``doc`` matches the query ``tree`` under the documented rules."""
    tag = tree[0]
    if tag == "and":
        return matches(tree[1], doc) and matches(tree[2], doc)
    if tag == "or":
        return matches(tree[1], doc) or matches(tree[2], doc)
    if tag == "not":
        return not matches(tree[1], doc)
    value = get(doc, tree[1])
    if tag == "exists":
        return value is not MISSING
    if tag == "cmp":
        op, operand = tree[2], tree[3]
        if op == "eq":
            return equal(value, operand)
        if op == "ne":  # a missing field matches no comparison, not even !=
            return value is not MISSING and not equal(value, operand)
        return ordered(value, op, operand)
    if tag == "one_of":
        return value is not MISSING and any(equal(value, v) for v in tree[2])
    if tag == "any":
        return isinstance(value, list) and any(equal(item, v) for item in value for v in tree[2])
    if tag == "any_q":
        return isinstance(value, list) and any(matches(tree[2], item) for item in value)
    raise AssertionError(f"unknown query {tree!r}")


# -- the same queries built with MicroDB's public builders -----------------------------------

def _path(path: Path, fluent: bool) -> Query:
    if len(path) == 1 and not fluent:
        return where(path[0])
    q = Query()
    for step in path:
        q = q[step]
    return q


def build(tree: Tree, fluent: bool = False) -> Node:
    """The MicroDB query for ``tree``."""
    tag = tree[0]
    if tag == "and":
        return build(tree[1], fluent) & build(tree[2], not fluent)
    if tag == "or":
        return build(tree[1], fluent) | build(tree[2], not fluent)
    if tag == "not":
        return ~build(tree[1], fluent)
    p = _path(tree[1], fluent)
    if tag == "exists":
        return p.exists()
    if tag == "cmp":
        op, v = tree[2], tree[3]
        builders: dict[str, Callable[[], Node]] = {
            "eq": lambda: p == v, "ne": lambda: p != v, "lt": lambda: p < v,
            "le": lambda: p <= v, "gt": lambda: p > v, "ge": lambda: p >= v,
        }
        return builders[op]()
    if tag == "one_of":
        return p.one_of(tree[2])
    if tag == "any":
        return p.any(tree[2])
    if tag == "any_q":
        return p.any(build(tree[2], fluent))
    raise AssertionError(f"unknown query {tree!r}")


# -- strategies -------------------------------------------------------------------------------

# A few values per kind, so that generated queries hit stored values often.
ints = st.integers(0, 2)
floats = st.sampled_from([0.0, 1.0, 2.5])
scalars = st.one_of(st.none(), st.booleans(), ints, floats, st.sampled_from(["", "a", "b"]))


def mappings(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Small dicts whose keys come in any order (equality must not depend on it)."""
    pairs = st.lists(st.tuples(st.sampled_from("xy"), inner), max_size=2, unique_by=lambda kv: kv[0])
    return pairs.map(dict)


small_dicts = mappings(scalars)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=2), mappings(inner)),
    max_leaves=5,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "a": values,
        "b": values,
        "n": st.one_of(small_dicts, values),
        "z": scalars,
    },
)
paths = st.sampled_from(FIELDS)


def query_trees(
    operands: st.SearchStrategy[Any] = values, scalar_operands: st.SearchStrategy[Any] = scalars,
) -> st.SearchStrategy[Tree]:
    """Random query trees whose operands come from the given strategies."""
    leaf = st.one_of(
        st.tuples(st.just("cmp"), paths, st.just("eq"), operands),
        st.tuples(st.just("cmp"), paths, st.just("ne"), operands),
        # Orderings against scalars: across kinds they never match, which is the point.
        st.tuples(st.just("cmp"), paths, st.sampled_from(("lt", "le", "gt", "ge")), scalar_operands),
        st.tuples(st.just("one_of"), paths, st.lists(operands, min_size=1, max_size=3)),
        st.tuples(st.just("any"), paths, st.lists(operands, min_size=1, max_size=3)),
        st.tuples(st.just("exists"), paths),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(st.just("and"), inner, inner),
            st.tuples(st.just("or"), inner, inner),
            st.tuples(st.just("not"), inner),
            st.tuples(st.just("any_q"), paths, st.tuples(st.just("cmp"), st.just(("x",)), st.just("eq"), scalar_operands)),
        ),
        max_leaves=4,
    )


def stored_values(docs: list[dict[str, Any]]) -> list[Any]:
    """Every value found at a queried path of ``docs``, and the elements of lists there."""
    found: list[Any] = []
    for doc in docs:
        for path in FIELDS:
            value = get(doc, path)
            if value is not MISSING:
                found.append(value)
                if isinstance(value, list):
                    found.extend(value)
    return found


def query_for(data: st.DataObject, docs: list[dict[str, Any]]) -> Tree:
    """A random query, with operands often taken from the documents so that some match."""
    pool = stored_values(docs)
    if not pool:
        return data.draw(query_trees(), label="query")
    scalar_pool = [v for v in pool if not isinstance(v, (list, dict))]
    operands = st.one_of(st.sampled_from(pool), values)
    scalar_operands = st.one_of(st.sampled_from(scalar_pool), scalars) if scalar_pool else scalars
    return data.draw(query_trees(operands, scalar_operands), label="query")


#: Writes after the first load, so indexes are kept up to date as well as built.
writes = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), documents),
        st.tuples(st.just("replace"), st.integers(0, 30), documents),
        st.tuples(st.just("remove"), st.integers(0, 30)),
    ),
    max_size=4,
)


def _load(
    docs: list[dict[str, Any]], ops: list[Tree], indexed: bool, index_first: bool,
) -> tuple[MicroDB, dict[int, dict[str, Any]]]:
    """A table holding ``docs`` after ``ops``; also the reference copy of its contents."""
    db = MicroDB(InMemoryStorage())
    if indexed and index_first:
        for name in INDEXED:
            db.create_index(name)
    ids = db.insert_many(docs) if docs else []
    reference = dict(zip(ids, docs))
    if indexed and not index_first:
        for name in INDEXED:
            db.create_index(name)
    for op in ops:
        if op[0] == "insert":
            reference[db.insert(op[1])] = op[1]
        elif reference:
            target = sorted(reference)[op[1] % len(reference)]
            if op[0] == "replace":
                db.update(lambda doc, new=op[2]: (doc.clear(), doc.update(new)), doc_ids=[target])
                reference[target] = op[2]
            else:
                db.remove(doc_ids=[target])
                del reference[target]
    return db, reference


#: MICRODB_PROPERTY_EXAMPLES raises the number of examples for a deeper search than CI's.
PROPERTY = settings(
    max_examples=int(os.environ.get("MICRODB_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(
    docs=st.lists(documents, min_size=3, max_size=25),
    ops=writes,
    index_first=st.booleans(),
    data=st.data(),
)
def test_indexed_plan_full_scan_and_reference_agree(
    docs: list[dict[str, Any]], ops: list[Tree], index_first: bool, data: st.DataObject,
) -> None:
    """The indexed table, the unindexed table and the reference select the same ids."""
    tree = query_for(data, docs)
    indexed, reference = _load(docs, ops, indexed=True, index_first=index_first)
    plain, _ = _load(docs, ops, indexed=False, index_first=index_first)
    query = build(tree)
    expected = sorted(i for i, doc in reference.items() if matches(tree, doc))
    assert plain.query(query).ids() == expected
    assert indexed.query(query).ids() == expected
    assert plain.count(query) == indexed.count(query) == len(expected)
    plan = indexed.query(query).explain()
    assert plan["matched"] == len(expected)
    event("index" if plan["index"] else "scan")
    event("some match" if 0 < len(expected) < len(reference) else "all or none match")


@PROPERTY
@given(
    docs=st.lists(documents, min_size=3, max_size=25),
    ops=writes,
    with_query=st.booleans(),
    field=st.sampled_from(INDEXED),
    reverse=st.booleans(),
    skip=st.integers(0, 3),
    limit=st.integers(0, 6),
    data=st.data(),
)
def test_sort_and_limit_through_an_index_equal_a_full_sort(
    docs: list[dict[str, Any]], ops: list[Tree], with_query: bool, field: str, reverse: bool, skip: int,
    limit: int, data: st.DataObject,
) -> None:
    """``sort(field).skip(k).limit(m)`` gives the same ids with and without an index on field."""
    tree = query_for(data, docs) if with_query else None
    indexed, _ = _load(docs, ops, indexed=True, index_first=True)
    plain, _ = _load(docs, ops, indexed=False, index_first=True)
    query = None if tree is None else build(tree)
    expected = plain.query(query).sort(field, reverse=reverse).ids()
    got = indexed.query(query).sort(field, reverse=reverse).skip(skip).limit(limit).ids()
    assert got == expected[skip:skip + limit]
    assert plain.query(query).sort(field, reverse=reverse).skip(skip).limit(limit).ids() == got


def test_ordered_scan_is_used_for_sort_and_limit() -> None:
    """On an index without arrays, sort + limit is read from the index (so the test above covers it)."""
    db, _ = _load([{"a": i % 3, "b": str(i)} for i in range(10)], [], indexed=True, index_first=True)
    assert db.query().sort("a").limit(3).explain()["ordered_by_index"] is True
    assert db.query(where("b") != "1").sort("a", reverse=True).limit(3).explain()["ordered_by_index"] is True


@pytest.mark.parametrize(
    ("tree", "expected_indexes"),
    [
        (("cmp", ("a",), "eq", 1), {"Query().a"}),
        (("cmp", ("n", "x"), "lt", 2), {"Query().n.x"}),
        (("one_of", ("b",), [1, "a"]), {"Query().b"}),
        (("and", ("cmp", ("a",), "eq", 1), ("cmp", ("z",), "eq", 1)), {"Query().a"}),
        (("or", ("cmp", ("a",), "eq", 1), ("cmp", ("b",), "ge", 2)), {"Query().a", "Query().b"}),
    ],
)
def test_generated_shapes_do_use_indexes(tree: Tree, expected_indexes: set[str]) -> None:
    """The shapes the property test generates are answered by the right indexes, not by a scan."""
    docs = [{"a": i % 4, "b": i, "n": {"x": i}, "z": 1} for i in range(20)]
    db, reference = _load(docs, [], indexed=True, index_first=False)
    plan = db.query(build(tree)).explain()
    # The plan names each index it reads as "index <path> <how>" (an `or` joins several).
    assert plan["index"] is not None
    assert set(re.findall(r"index (Query\(\)\S*) ", plan["index"])) == expected_indexes, plan["index"]
    assert db.query(build(tree)).ids() == sorted(i for i, d in reference.items() if matches(tree, d))


@pytest.mark.parametrize(
    "tree",
    [
        ("cmp", ("a",), "eq", {"y": 2, "x": 1}),
        ("one_of", ("a",), [{"y": 2, "x": 1}]),
        ("any", ("b",), [{"y": 2, "x": 1}]),
    ],
    ids=["eq", "one_of", "any"],
)
def test_index_equality_ignores_key_order(tree: Tree) -> None:
    """An indexed equality on a mapping finds it whatever the order of its keys."""
    docs = [{"a": {"x": 1, "y": 2}, "b": [{"x": 1, "y": 2}]}]
    indexed, reference = _load(docs, [], indexed=True, index_first=True)
    plain, _ = _load(docs, [], indexed=False, index_first=True)
    expected = [i for i, d in reference.items() if matches(tree, d)]
    assert expected == [1]
    assert plain.query(build(tree)).ids() == expected
    assert indexed.query(build(tree)).ids() == expected


def test_limit_zero_through_an_index_returns_nothing() -> None:
    """``sort(...).limit(0)`` returns no document, whether or not the sort field is indexed."""
    indexed, _ = _load([{"a": 2}, {"a": 1}], [], indexed=True, index_first=True)
    assert indexed.query().sort("a").limit(0).ids() == []
    assert indexed.query().sort("a").limit(0).count() == 0
