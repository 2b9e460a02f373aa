"""Queries, sorting and paging run in the database: the SQL and the engine's plan show it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, Query, where
from microdb.compile.sql import POSTGRES, SQLITE, Dialect, compile_filter
from sql_backends import SQL_STORAGES


@pytest.fixture(params=["sqlite", "postgres"])
def sql_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MicroDB]:
    """An empty database on each SQL backend."""
    db = SQL_STORAGES[request.param](tmp_path)()
    yield db
    db.close()


@pytest.fixture
def people(sql_db: MicroDB) -> Any:
    """A table of 300 people, enough for the engines to prefer their indexes."""
    t = sql_db.table("people")
    t.insert_many({"name": f"n{i}", "age": i % 90, "city": f"c{i % 30}", "tags": [f"t{i % 7}"]} for i in range(300))
    return t


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=lambda d: d.name)
@pytest.mark.parametrize(
    "query",
    [
        where("age") == 30,
        where("name") < "m",
        where("age").exists(),
        ~(where("city") == "c1"),
        (where("age") > 3) & (where("city") == "c2"),
        (where("age") > 3) | where("name").one_of(["a", "b"]),
        where("tags").any(["t1"]),
        Query().address.city == "Oslo",
        where("flag") == True,  # noqa: E712
        where("x") == None,  # noqa: E711
        {"age": {"$gte": 30, "$lt": 40}},
    ],
    ids=repr,
)
def test_filters_compile_to_parameterised_sql(dialect: Dialect, query: Any) -> None:
    """Filters become SQL with the values as parameters, never inlined into the text."""
    from microdb.query.builders import to_node

    f = compile_filter(to_node(query), dialect)
    assert f.pushed
    for value in ("Oslo", "c2", "t1"):
        assert value not in f.where.sql
    assert f.where.sql.count(dialect.param) == len(f.where.params)


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=lambda d: d.name)
def test_negation_never_leaks_null(dialect: Dialect) -> None:
    """Under NOT every operand is COALESCEd, so a missing field reads as false, not NULL."""
    f = compile_filter(~(where("a") == "x"), dialect)
    assert f.exact and "NOT COALESCE(" in f.where.sql


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=lambda d: d.name)
def test_python_only_parts_are_residual(dialect: Dialect) -> None:
    """test(), map() and lambdas run in Python; the rest still narrows the rows in SQL."""
    query = (where("age") == "30") & where("name").test(lambda v: v.startswith("n"))
    f = compile_filter(query, dialect)
    assert not f.exact and f.residual is query and f.pushed
    assert "30" in f.where.params
    lam = compile_filter(Query().age.map(str) == "3", dialect)
    assert not lam.pushed and lam.residual is not None


def test_pushdown_of_filter_sort_and_limit(people: Any) -> None:
    """The WHERE, ORDER BY and LIMIT are in the SQL; Python has nothing left to check."""
    result = people.query(where("city") == "c3").sort(("age", -1)).skip(2).limit(3)
    plan = result.explain()
    sql = plan["sql"]
    assert "WHERE" in sql and "ORDER BY" in sql and "LIMIT" in sql and "OFFSET" in sql
    assert plan["residual"] is None
    assert plan["pushed"] == {"filter": True, "sort": "sql", "limit": "sql"}
    expected = sorted((d for d in people.all() if d["city"] == "c3"), key=lambda d: (-d["age"], d.doc_id))
    assert [d.doc_id for d in result] == [d.doc_id for d in expected[2:5]]


def _record_statements(table: Any) -> list[str]:
    """The SQL text of every statement ``table``'s backend runs from now on (a live list)."""
    backend = table._backend
    seen: list[str] = []
    for name in ("_execute", "_execute_many", "_stream"):
        run = getattr(backend, name)

        def recording(s: Any, sql: str, *args: Any, _run: Any = run) -> Any:
            seen.append(sql)
            return _run(s, sql, *args)

        setattr(backend, name, recording)
    return seen


def _document_statements(seen: list[str]) -> list[str]:
    """The statements that read or write documents (not transactions, not the registry)."""
    return [sql for sql in seen if "mdb_" in sql and "microdb_tables" not in sql]


@pytest.mark.parametrize("count", [
    lambda t: t.count(where("city") == "c3"),
    lambda t: t.query(where("city") == "c3").count(),
], ids=["table.count", "result.count"])
def test_count_runs_in_sql(people: Any, count: Any) -> None:
    """count() of an exact query is one SELECT count(*) and reads no document."""
    seen = _record_statements(people)
    assert count(people) == 10
    statements = _document_statements(seen)
    assert len(statements) == 1, statements
    assert statements[0].startswith("SELECT count(*) FROM ") and " WHERE " in statements[0]


def test_count_with_a_python_residual_is_not_one_count(people: Any) -> None:
    """A query SQL cannot decide alone is not counted by SELECT count(*) (the check above can fail)."""
    seen = _record_statements(people)
    assert people.count((where("city") == "c3") & where("name").test(lambda v: v.endswith("3"))) == 10
    assert not any(sql.startswith("SELECT count(*)") for sql in _document_statements(seen))


@pytest.mark.parametrize("field, query", [
    ("age", where("age") == 30),
    ("age", where("age") > 85),
    ("name", where("name") == "n7"),
    ("name", where("name") < "n10"),
    ("city", where("city").one_of(["c1", "c2"])),
    ("tags", where("tags").any(["t3"])),
])
def test_indexes_are_used(people: Any, field: str, query: Any) -> None:
    """After create_index, the engine's own plan reads the index."""
    before = people.query(query).ids()
    assert people.query(query).explain()["index"] is None
    people.create_index(field)
    plan = people.query(query).explain()
    if field == "tags" and people._backend.name == "sqlite":
        # SQLite indexes hold whole values, not array elements: "contains" scans (documented).
        assert plan["index"] is None and people.query(query).ids() == before
        return
    assert plan["index"] is not None and field in plan["index"], plan["plan"]
    assert any("mdb_" in line and ("INDEX" in line.upper()) for line in plan["plan"])
    assert people.query(query).ids() == before


def test_index_definitions_persist(tmp_path: Path) -> None:
    """Index definitions survive closing and reopening the database."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with MicroDB(url) as db:
        db.create_index("a", unique=True)
        db.create_index("b.c")
    with MicroDB(url) as db:
        assert db.indexes() == [{"path": ["a"], "unique": True}, {"path": ["b", "c"], "unique": False}]
        assert db.drop_index("b.c") and db.indexes() == [{"path": ["a"], "unique": True}]


def test_an_index_never_rejects_an_unexpected_type(people: Any) -> None:
    """Documents holding any type at an indexed path insert fine and are found."""
    people.create_index("age")
    odd = [{"age": "old"}, {"age": [1, 2]}, {"age": {"x": 1}}, {"age": None}, {"age": True}, {"age": 1e300},
           {"age": "x" * 2000}]
    ids = people.insert_many(odd)
    assert people.query(where("age") == "old").ids() == [ids[0]]
    assert people.query(where("age") > 1e299).ids() == [ids[5]]


def test_unique_index_rejects_duplicates_and_changes_nothing(people: Any) -> None:
    """A duplicate in insert_many or update raises DuplicateKeyError; nothing is written."""
    from microdb import DuplicateKeyError

    people.create_index("name", unique=True)
    n = len(people)
    with pytest.raises(DuplicateKeyError):
        people.insert_many([{"name": "new"}, {"name": "n5"}])
    assert len(people) == n and not people.search(where("name") == "new")
    with pytest.raises(DuplicateKeyError):
        people.update({"name": "n6"}, where("name") == "n7")
    assert people.count(where("name") == "n7") == 1
    with pytest.raises(DuplicateKeyError):
        people.create_index("city", unique=True)
    assert people.indexes() == [{"path": ["name"], "unique": True}]
    # null is a value: two documents holding null clash, two missing the field do not
    people.insert_many([{"name": None}, {"other": 1}, {"other": 2}])
    with pytest.raises(DuplicateKeyError):
        people.insert({"name": None})
    # True is not 1
    people.insert_many([{"name": 1}, {"name": True}])


def test_limit_is_pushed_down_when_python_has_nothing_to_reject(people: Any) -> None:
    """A numeric filter (inexact only for tagged Decimals) still pages with LIMIT in SQL."""
    from decimal import Decimal

    query = people.query(where("age") > 80).sort("name").limit(4)
    plan = query.explain()
    assert "LIMIT" in plan["sql"] and plan["pushed"]["limit"] == "sql"
    expected = sorted((d for d in people.all() if d["age"] > 80), key=lambda d: (d["name"], d.doc_id))[:4]
    assert query.ids() == [d.doc_id for d in expected]
    # A Decimal in the page makes Python decide: the page is read on without LIMIT, still exact.
    people.update({"age": Decimal("85.5"), "name": "a"}, doc_ids=[expected[1].doc_id])
    plan = people.query(where("age") > 80).sort("name").limit(4).explain()
    assert plan["pushed"]["limit"] == "python"
    assert people.query(where("age") > 80).sort("name").limit(4).ids()[0] == expected[1].doc_id


def test_a_dialect_must_build_every_engine_specific_piece() -> None:
    """Dialect is an ABC: a dialect that leaves out a builder cannot be created at all."""

    class Partial(Dialect):
        name = "partial"

        def type_of(self, t: Any) -> str:
            return f"json_type({t.base})"

    with pytest.raises(TypeError, match="abstract"):
        Partial()
    assert {"term", "type_of", "rank", "json_text"} <= Dialect.__abstractmethods__
    assert not type(SQLITE).__abstractmethods__ and not type(POSTGRES).__abstractmethods__
