"""Property: memory, SQLite and PostgreSQL return the same ids, in the same order.

Hypothesis generates documents (missing fields, null, booleans, ints, floats, strings,
arrays, nested objects) and queries (comparisons of every operator against operands of
every kind, exists, one_of, any, regexes, and/or/not nests, sorts with directions, skip,
limit); the three engines must agree exactly.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microdb import MicroDB
from microdb.query import ast
from sql_backends import new_schema, require_postgres

_tables = itertools.count(1)
_dbs: dict[str, MicroDB] = {}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, -2.5, 2.0]),
    st.text(alphabet="abAB é", max_size=3),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
MISSING = object()
documents = st.fixed_dictionaries(
    {},
    optional={
        "a": values,
        "b": scalars,
        "n": st.fixed_dictionaries({}, optional={"c": values}),
    },
)
paths = st.sampled_from([("a",), ("b",), ("n", "c"), ("a", 0), ("n",)])

leaves = st.one_of(
    st.builds(ast.Compare, paths, st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]), values),
    st.builds(ast.Exists, paths),
    st.builds(ast.OneOf, paths, st.lists(scalars, max_size=3).map(tuple)),
    st.builds(ast.AnyOf, paths, st.lists(scalars, min_size=1, max_size=2).map(tuple)),
    st.builds(ast.AllOf, paths, st.lists(scalars, max_size=2).map(tuple)),
    st.builds(ast.Regex, paths, st.sampled_from(["a", "^A", "b$", "[ab]", "a|é", ".", "A.?b"]),
              st.sampled_from([0, 2]), st.sampled_from(["match", "search"])),
    st.builds(ast.Size, paths, st.integers(0, 2)),
)
queries = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(ast.Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.Or(tuple(xs))),
    ),
    max_leaves=5,
)
sorts = st.lists(st.tuples(st.sampled_from(["a", "b", "n.c", "n"]), st.sampled_from([1, -1])), max_size=2)


def _db(kind: str) -> MicroDB:
    db = _dbs.get(kind)
    if db is None or db.closed:
        if kind == "sqlite":
            db = MicroDB("sqlite://")
        else:
            db = MicroDB(require_postgres(), schema=new_schema(), pool_size=1)
        _dbs[kind] = db
    return db


@pytest.fixture(scope="module", autouse=True)
def _close() -> Any:
    yield
    for db in _dbs.values():
        db.close()
    _dbs.clear()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@settings(max_examples=int(os.environ.get("MICRODB_SQL_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents, max_size=12), query=queries, sort=sorts,
       skip=st.integers(0, 3), limit=st.one_of(st.none(), st.integers(0, 4)), indexed=st.booleans())
def test_sql_and_memory_agree(kind: str, docs: list[dict[str, Any]], query: ast.Node,
                              sort: list[tuple[str, int]], skip: int, limit: int | None, indexed: bool) -> None:
    """Same ids in the same order, same counts, with or without indexes."""
    mem = MicroDB().table("t")
    sql = _db(kind).table(f"p{next(_tables)}")
    mem.insert_many(docs)
    sql.insert_many(docs)
    if indexed:
        for field in ("a", "b", "n.c"):
            sql.create_index(field)
    want = mem.query(query)
    got = sql.query(query)
    if sort:
        want, got = want.sort(*sort), got.sort(*sort)
    assert got.ids() == want.ids()
    assert sql.count(query) == mem.count(query)
    if limit is not None:
        assert got.skip(skip).limit(limit).ids() == want.skip(skip).limit(limit).ids()
    sql._backend.drop_table(sql.name)
