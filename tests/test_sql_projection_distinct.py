"""Projection and distinct pushed down to SQL: same answers as memory, fewer bytes read.

Every comparison is strict: values, their Python types (``1`` is not ``1.0``, a tuple is
not a list), key order and document order must match the in-memory engine exactly.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import os
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microdb import MicroDB, register_type, serialization, where
from sql_backends import SQL_STORAGES, new_schema, require_postgres

KINDS = ["sqlite", "postgres"]
UTC = dt.timezone.utc
PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


def typed(value: Any) -> Any:
    """``value`` as nested tuples naming each type, so ``==`` also compares types and order."""
    if isinstance(value, dict):
        return ("dict", tuple((k, typed(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(typed(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, tuple(sorted(repr(typed(v)) for v in value)))
    return (type(value).__name__, repr(value))


def read(result: Any) -> list[Any]:
    """The documents of a result, with their ids, in strictly comparable form."""
    return [(doc.doc_id, typed(dict(doc))) for doc in result.all()]


@pytest.fixture(params=KINDS)
def sql_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MicroDB]:
    """An empty database on each SQL backend."""
    db = SQL_STORAGES[request.param](tmp_path)()
    yield db
    db.close()


def twins(sql_db: MicroDB, docs: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The same documents in a memory table and a SQL table."""
    mem = MicroDB().table("t")
    sql = sql_db.table("t")
    mem.insert_many(docs)
    sql.insert_many(docs)
    return mem, sql


# -- projection: edge cases --------------------------------------------------------------------

ODD: list[dict[str, Any]] = [
    {"a": None, "b": {"c": None}, "n": 1},
    {"b": {}, "n": 1.0},
    {"a": 0, "b": [{"c": 1}, {"d": 2}, 3, [{"c": 4}]], "n": 1e16},
    {"a": [1, 1.0, True, None, [2]], "b": {"c": {"d": "é\n\"q\""}}},
    {"a": (1, "x"), "b": {"c": {1, 2}}, "n": Decimal("1.50")},
    {"a": {"$x": 1}, "b": {"c": dt.datetime(2024, 5, 1, 12, tzinfo=PLUS_ONE)}, "n": dt.date(2024, 5, 1)},
    {"a": b"\x00\xff", "b": {"c": uuid.UUID(int=7)}, "n": dt.timedelta(seconds=3), "x.y": 1},
    {"a": 2**62, "b": "flat", "n": -0.0, "": "empty key"},
]

PROJECTIONS: list[Any] = [
    ["a"],
    ["a", "n"],
    ["b.c"],
    ["b.c.d"],
    ["b.d", "a"],
    ["b", "b.c"],
    ["missing"],
    [["x.y"]],
    [[""]],
    ["a.0"],
    ["b.0.c"],
    {"n": 1, "b.c": True},
]


@pytest.mark.parametrize("fields", PROJECTIONS, ids=repr)
def test_projection_matches_memory_on_odd_documents(sql_db: MicroDB, fields: Any) -> None:
    """Missing stays apart from null, nested paths reach through arrays, rich values decode as stored."""
    mem, sql = twins(sql_db, ODD)
    assert read(sql.query().project(fields)) == read(mem.query().project(fields))


def test_projection_keeps_missing_apart_from_null(sql_db: MicroDB) -> None:
    """A field that is null is kept as None; a missing field stays missing."""
    t = sql_db.table("t")
    t.insert_many([{"a": None, "b": 1}, {"b": 2}, {"a": 0}])
    assert [dict(d) for d in t.query().project("a").all()] == [{"a": None}, {}, {"a": 0}]
    assert t.query().project("a").explain()["projection"] == ["a"]


def test_projection_keeps_number_forms(sql_db: MicroDB) -> None:
    """1.0 stays a float, 1e16 a float, big ints ints: the JSON text is read as written."""
    t = sql_db.table("t")
    t.insert_many([{"v": 1.0, "w": [1e16, 2**53 + 1, 0.1 + 0.2]}])
    doc = t.query().project("v", "w").first()
    assert doc is not None and typed(dict(doc)) == typed({"v": 1.0, "w": [1e16, 2**53 + 1, 0.1 + 0.2]})


PAGES: list[tuple[Any, Any, int, int | None]] = [
    (None, ["g"], 0, None),
    (None, ["g", ("n", -1)], 3, 5),
    (where("g") == "x", [("n", -1)], 0, 4),
    (where("n") > 10, ["o"], 2, 3),
    (where("n").test(lambda v: v % 3 == 0), ["g"], 1, 4),
    (where("n") < Decimal("30"), ["a"], 0, 6),
    (None, ["a", "n"], 5, 10),
    (None, [], 7, 3),
]


@pytest.mark.parametrize("query, sort, skip, limit", PAGES)
@pytest.mark.parametrize("fields", [["n"], ["o.p"], ["a"], ["g", "o"]], ids=repr)
def test_projection_with_sort_skip_limit(
    sql_db: MicroDB, query: Any, sort: list[Any], skip: int, limit: int | None, fields: list[str]
) -> None:
    """Projection combined with filters, sorts (also on fields not projected), skip and limit."""
    docs = [
        {"n": i, "g": "xyz"[i % 3], "o": {"p": i % 4, "q": "z"}, "a": [i % 2, {"k": i % 5}] if i % 4 else {"k": i}}
        for i in range(40)
    ]
    docs[5]["n"] = Decimal("5.5")  # type: ignore[assignment]
    mem, sql = twins(sql_db, docs)
    want, got = mem.query(query), sql.query(query)
    if sort:
        want, got = want.sort(*sort), got.sort(*sort)
    want, got = want.skip(skip).project(fields), got.skip(skip).project(fields)
    if limit is not None:
        want, got = want.limit(limit), got.limit(limit)
    assert read(got) == read(want)
    assert got.count() == want.count()


# -- projection: what SQL reads -------------------------------------------------------------------

@pytest.fixture
def people(sql_db: MicroDB) -> Any:
    """A table of 300 people with 30 cities."""
    t = sql_db.table("people")
    t.insert_many(
        {"name": f"n{i}", "age": i % 90, "city": f"c{i % 30}", "bio": "x" * 200,
         "items": [{"sku": f"s{i % 4}"}, {"sku": f"s{i % 6}"}]}
        for i in range(300)
    )
    return t


def selected(plan: dict[str, Any]) -> str:
    """The select list of the plan's SQL."""
    sql: str = plan["sql"]
    return sql.split(" FROM mdb_", 1)[0]


#: A field read as JSON text: ``doc -> '$."name"'`` (SQLite), ``(body::json) -> 'name'`` (PostgreSQL).
TEXT_READ = re.compile(r"(?:doc -> '\$\.\"|\(body::json\) -> ')(\w+)")


def body(people: Any) -> str:
    """The column holding whole documents on this backend."""
    return str(people._backend.body_column)


def test_include_projection_selects_only_its_fields(people: Any) -> None:
    """The SQL reads the projected top-level fields, never the whole document."""
    result = people.query(where("city").one_of(["c3", "c4"])).project("name", "items.sku").sort("city").limit(5)
    plan = result.explain()
    assert plan["projection"] == ["name", "items", "city"]
    head = selected(plan)
    # The document column only appears as the source of the fields read from it.
    assert head.startswith("SELECT id, NULL, ") and re.findall(TEXT_READ, head) == ["name", "items", "city"]
    assert "bio" not in head and "age" not in head
    docs = result.all()
    assert all(set(d) <= {"name", "items"} for d in docs) and docs[0]["items"][0] == {"sku": docs[0]["items"][0]["sku"]}


def test_residual_rows_alone_read_whole_documents(people: Any) -> None:
    """With a Python-only condition, the document is read only for rows SQL could not decide."""
    result = people.query((where("age") > 30) & where("name").test(lambda v: v.endswith("1"))).project("name")
    plan = result.explain()
    assert plan["projection"] == ["name"] and plan["residual"] is not None
    assert f"ELSE {body(people)} END" in selected(plan)
    assert [d["name"] for d in result] == [f"n{i}" for i in range(300) if i % 90 > 30 and str(i).endswith("1")]


def test_projected_rows_read_whole_documents_only_for_undecided_rows(
    people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A numeric filter is sure except on Decimals: only those rows come with their document."""
    people.update({"age": Decimal("80.5")}, doc_ids=[4, 9])
    spy = Spy(people._backend, monkeypatch)
    docs = people.query(where("age") > 80).project("name").all()
    assert [d.doc_id for d in docs] == [i + 1 for i in range(300) if i % 90 > 80 or i + 1 in (4, 9)]
    ((sql, rows),) = spy.calls
    assert sorted(r[0] for r in rows if r[1] is not None) == [4, 9]
    assert all(set(d) == {"name"} for d in docs)


@pytest.mark.parametrize("shape", ["exclude", "key function", "no projection", "map step"])
def test_whole_documents_when_something_needs_them(people: Any, shape: str) -> None:
    """Exclusions, key-function sorts and map() paths read whole documents (and stay exact)."""
    from microdb import Query

    result = people.query(where("age") == 3)
    if shape == "exclude":
        result = result.project("bio", exclude=True)
    elif shape == "key function":
        result = result.sort(lambda d: -len(d["name"])).project("name")
    elif shape == "map step":
        result = result.project(Query().map(lambda d: d).name)
    plan = result.explain()
    assert plan["projection"] is None
    if shape != "map step":
        assert selected(plan).startswith(f"SELECT id, {body(people)}")
        assert len(result.all()) == 4


# -- projection: property ---------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([1.0, 2.0, -0.5, 1e16]),
    st.text(alphabet="ab é", max_size=2),
    st.sampled_from([Decimal("1"), Decimal("1.50"), dt.date(2024, 1, 1),
                     dt.datetime(2024, 1, 1, 12, tzinfo=UTC), dt.datetime(2024, 1, 1, 13, tzinfo=PLUS_ONE)]),
)
small = st.one_of(scalars, st.lists(scalars, max_size=3), st.lists(scalars, max_size=2).map(tuple),
                  st.frozensets(st.integers(0, 2), max_size=2).map(set))
subdocs = st.fixed_dictionaries({}, optional={"c": small, "d": scalars})
values = st.one_of(small, subdocs, st.lists(st.one_of(subdocs, scalars), max_size=3))
documents = st.fixed_dictionaries({}, optional={"a": values, "b": values, "n": subdocs})
field_names = ["a", "b", "n", "a.c", "b.c", "n.c", "b.c.d", "a.0", "b.1.c", "zz"]
queries = st.sampled_from([
    None,
    where("a") == 1,
    where("b").c.exists(),
    ~(where("n").c == None),  # noqa: E711
    where("a").test(lambda v: v != 2),
    (where("b") >= 1) | where("a").any([True, "a"]),
    where("n").c < Decimal("2"),
])
sorts = st.lists(st.tuples(st.sampled_from(["a", "b", "n.c", "b.c"]), st.sampled_from([1, -1])), max_size=2)

_tables = itertools.count(1)
_dbs: dict[str, MicroDB] = {}


def _db(kind: str) -> MicroDB:
    db = _dbs.get(kind)
    if db is None or db.closed:
        db = MicroDB("sqlite://") if kind == "sqlite" else MicroDB(require_postgres(), schema=new_schema(), pool_size=1)
        _dbs[kind] = db
    return db


@pytest.fixture(scope="module", autouse=True)
def _close() -> Iterator[None]:
    yield
    for db in _dbs.values():
        db.close()
    _dbs.clear()


EXAMPLES = int(os.environ.get("MICRODB_SQL_EXAMPLES", "60"))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents, max_size=10), query=queries, sort=sorts, skip=st.integers(0, 3),
       limit=st.one_of(st.none(), st.integers(0, 4)),
       fields=st.lists(st.sampled_from(field_names), min_size=1, max_size=3), exclude=st.booleans())
def test_projection_agrees_with_memory(kind: str, docs: list[dict[str, Any]], query: Any, sort: list[Any],
                                       skip: int, limit: int | None, fields: list[str], exclude: bool) -> None:
    """Generated documents, filters, sorts, pages and projections: the same documents, typed."""
    mem = MicroDB().table("t")
    sql = _db(kind).table(f"p{next(_tables)}")
    mem.insert_many(docs)
    sql.insert_many(docs)
    want, got = mem.query(query), sql.query(query)
    if sort:
        want, got = want.sort(*sort), got.sort(*sort)
    want, got = want.project(fields, exclude=exclude), got.project(fields, exclude=exclude)
    assert read(got) == read(want)
    if limit is not None:
        assert read(got.skip(skip).limit(limit)) == read(want.skip(skip).limit(limit))
    sql._backend.drop_table(sql.name)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents, max_size=10), query=queries, sort=sorts,
       page=st.one_of(st.none(), st.tuples(st.integers(0, 2), st.integers(0, 4))))
def test_distinct_agrees_with_memory(kind: str, docs: list[dict[str, Any]], query: Any, sort: list[Any],
                                     page: tuple[int, int] | None) -> None:
    """Generated documents: distinct at every path gives the same values, kinds, forms and order."""
    mem = MicroDB().table("t")
    sql = _db(kind).table(f"d{next(_tables)}")
    mem.insert_many(docs)
    sql.insert_many(docs)
    want, got = mem.query(query), sql.query(query)
    if sort:
        want, got = want.sort(*sort), got.sort(*sort)
    if page is not None:
        want, got = want.skip(page[0]).limit(page[1]), got.skip(page[0]).limit(page[1])
    for name in field_names:
        assert typed(got.distinct(name)) == typed(want.distinct(name)), name
    sql._backend.drop_table(sql.name)


# -- distinct: edge cases -----------------------------------------------------------------------

DISTINCT: list[tuple[list[dict[str, Any]], str, list[Any]]] = [
    ([{"v": 1}, {"v": True}, {"v": 1.0}, {"v": None}, {}], "v", [None, 1, True]),
    ([{"v": 1.0}, {"v": 1}], "v", [1.0]),
    ([{"v": [1.0, 1]}, {"v": 1}], "v", [1.0]),
    ([{"v": [2, 1]}, {"v": [1.0, 2.0]}], "v", [1, 2]),
    ([{"v": Decimal("1.0")}, {"v": 1}, {"v": Decimal("2")}], "v", [Decimal("1.0"), Decimal("2")]),
    ([{"v": [[1], [1.0], 2]}, {"v": [[1]]}], "v", [2, [1]]),
    ([{"v": (3, 1)}, {"v": [1, 2]}], "v", [1, 2, 3]),
    ([{"v": {1, 2}}, {"v": [[1, 2]]}], "v", [{1, 2}, [1, 2]]),
    ([{"v": [[1, 2]]}, {"v": {1, 2}}], "v", [[1, 2], {1, 2}]),
    ([{"v": {"a": 1, "b": 2}}, {"v": {"b": 2, "a": 1.0}}], "v", [{"a": 1, "b": 2}]),
    ([{"v": {"$x": 1}}, {"v": {"$x": 1}}], "v", [{"$x": 1}]),
    ([{"v": dt.datetime(2024, 1, 1, 13, tzinfo=PLUS_ONE)}, {"v": dt.datetime(2024, 1, 1, 12, tzinfo=UTC)},
      {"v": dt.datetime(2024, 1, 1, 12)}],
     "v", [dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 1, 13, tzinfo=PLUS_ONE)]),
    ([{"v": {"w": 1}}, {"v": [{"w": 2}, {"w": [3, 1.0]}, {"x": 4}, 5]}, {"v": {"w": None}}], "v.w", [None, 1, 2, 3]),
    ([{"v": [{"w": [{"x": 1}]}, {"w": {"x": 2}}]}, {"v": {"w": [{"x": [3]}]}}], "v.w.x", [1, 2, 3]),
    ([{"v": ({"w": 1}, {"w": 2})}, {"v": {"w": (3, 4)}}], "v.w", [1, 2, 3, 4]),
    ([{"v": [[{"w": 1}]]}], "v.w", []),
    ([{"v": [10, 20]}, {"v": {"0": "key"}}], "v.0", [10, "key"]),
    ([{"v": "é\n\"q\""}, {"v": "é\n\"q\""}, {"v": ""}], "v", ["", "é\n\"q\""]),
    ([{"v": 1e16}, {"v": 10**16}], "v", [1e16]),
    ([{"v": b"\x00"}, {"v": uuid.UUID(int=1)}, {"v": dt.date(2024, 1, 1)}, {"v": dt.timedelta(1)}],
     "v", [b"\x00", uuid.UUID(int=1), dt.date(2024, 1, 1), dt.timedelta(1)]),
    ([{"v": None}, {"v": []}, {"w": 1}], "v", [None]),
]


@pytest.mark.parametrize("docs, field, expected", DISTINCT, ids=[f"{c[1]}-{i}" for i, c in enumerate(DISTINCT)])
def test_distinct_edge_cases(sql_db: MicroDB, docs: list[dict[str, Any]], field: str, expected: list[Any]) -> None:
    """MongoDB's rules: arrays give their items, paths reach into arrays of sub-documents,
    equal values of different forms count once (the first met is kept), kinds stay apart."""
    mem, sql = twins(sql_db, docs)
    assert typed(mem.query().distinct(field)) == typed(expected)
    assert typed(sql.query().distinct(field)) == typed(expected)


@pytest.mark.parametrize("query", [None, where("k") < 5, where("k").test(lambda k: k % 2 == 0),
                                   where("k") > Decimal("2"), where("v").exists()], ids=repr)
@pytest.mark.parametrize("sort", [[], [("k", -1)], ["v"]], ids=repr)
def test_distinct_keeps_the_form_met_first(sql_db: MicroDB, query: Any, sort: list[Any]) -> None:
    """With a filter (in SQL or in Python) and a sort, the kept form of ``1``/``1.0`` is memory's."""
    docs = [{"k": k, "v": v} for k, v in enumerate([1.0, [1, 2.0], 2, Decimal("1"), True, 1, {"v": 1}])]
    mem, sql = twins(sql_db, docs)
    want, got = mem.query(query), sql.query(query)
    if sort:
        want, got = want.sort(*sort), got.sort(*sort)
    assert typed(got.distinct("v")) == typed(want.distinct("v"))


class Spy:
    """Records the queries a backend runs (statements returning rows) and the rows they return."""

    def __init__(self, backend: Any, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[tuple[str, list[tuple[Any, ...]]]] = []
        stream, execute = backend._stream, backend._execute

        def spy_stream(s: Any, sql: str, params: Any) -> Iterator[tuple[Any, ...]]:
            rows = list(stream(s, sql, params))
            self.calls.append((sql, rows))
            return iter(rows)

        def spy_execute(s: Any, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = execute(s, sql, params)
            if sql.startswith(("SELECT id", "WITH")):
                self.calls.append((sql, rows))
            return rows

        monkeypatch.setattr(backend, "_stream", spy_stream)
        monkeypatch.setattr(backend, "_execute", spy_execute)


def test_distinct_groups_in_sql(people: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One row per distinct value comes back, never the documents."""
    spy = Spy(people._backend, monkeypatch)
    assert people.query(where("age") < 60).distinct("city") == sorted(f"c{i}" for i in range(30))
    ((sql, rows),) = spy.calls
    assert "row_number() OVER" in sql and len(rows) == 30
    assert all(r[3] is None and r[4] is None for r in rows)


def test_distinct_through_sub_documents_reads_one_field(people: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrays of sub-documents go to Python with only the field the path starts with."""
    spy = Spy(people._backend, monkeypatch)
    assert people.query().distinct("items.sku") == [f"s{i}" for i in range(6)]
    ((sql, rows),) = spy.calls
    assert len(rows) == 300 and all(r[3] is None and r[4].startswith('[{"sku"') for r in rows)
    assert people.query().distinct("items") == [{"sku": f"s{i}"} for i in range(6)]


def test_distinct_reads_documents_only_where_python_decides(people: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python-only condition reads whole documents for the rows SQL could not decide, and no others."""
    people.update({"age": Decimal("7.5")}, doc_ids=[2, 3])
    spy = Spy(people._backend, monkeypatch)
    assert people.query(where("age") > 7).distinct("age") == [Decimal("7.5"), *range(8, 90)]
    ((sql, rows),) = spy.calls
    assert sorted(r[0] for r in rows if r[3] is not None) == [2, 3]


def test_distinct_after_a_projected_read(people: Any) -> None:
    """A result read with a projection still gives the distinct values of any field."""
    result = people.query(where("age") < 3).project("name")
    assert len(result.all()) == 12
    assert result.distinct("city") == sorted({f"c{i % 30}" for i in range(300) if i % 90 < 3})
    assert result.distinct("name") == sorted(f"n{i}" for i in range(300) if i % 90 < 3)


class Token:
    """A registered type compared by identity (no ``__eq__``)."""

    def __init__(self, n: int):
        self.n = n

    def __repr__(self) -> str:
        return f"Token({self.n})"


Pair = collections.namedtuple("Pair", "x y")


@pytest.fixture
def own_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Types registered during the test are forgotten after it."""
    monkeypatch.setattr(serialization, "_user_types", dict(serialization._user_types))
    monkeypatch.setattr(serialization, "_user_tags", dict(serialization._user_tags))


def test_distinct_never_groups_registered_values(sql_db: MicroDB, own_types: None) -> None:
    """Values of a registered type compare by their own ``==``: two readings of one text may differ."""
    register_type(Token, "test_token", lambda t: t.n, Token)
    docs: list[dict[str, Any]] = [{"v": Token(1)}, {"v": Token(1)}, {"v": [Token(2), 3]}, {"v": [[Token(2)]]}]
    mem, sql = twins(sql_db, docs)
    assert len(mem.query().distinct("v")) == 5
    assert typed(sql.query().distinct("v")) == typed(mem.query().distinct("v"))


def test_distinct_walks_into_registered_tuples(sql_db: MicroDB, own_types: None) -> None:
    """A registered tuple subclass is walked into and flattened, as in memory."""
    register_type(Pair, "test_pair", list, lambda v: Pair(*v))
    docs: list[dict[str, Any]] = [{"p": Pair({"w": 1}, 2)}, {"p": {"w": 5}}, {"p": [Pair(3, 4)]}]
    mem, sql = twins(sql_db, docs)
    for field in ("p", "p.w"):
        assert typed(sql.query().distinct(field)) == typed(mem.query().distinct(field)), field
    assert sql.query().distinct("p.w") == [1, 5]


def test_distinct_on_missing_table_and_unaddressable_paths(sql_db: MicroDB) -> None:
    """No table, ``$`` keys and position steps: still memory's answers."""
    assert sql_db.table("nothing").query().distinct("a") == []
    docs: list[dict[str, Any]] = [{"$k": 1}, {"a": {"$k": 2}}, {"a": [{"$k": 3}, 4]}, {"a": [[5], 6]}]
    mem, sql = twins(sql_db, docs)
    for field in ("$k", "a.$k", "a.0", "a.1", ["a", 0]):
        assert typed(sql.query().distinct(field)) == typed(mem.query().distinct(field)), field


def test_distinct_in_a_transaction_sees_its_writes(sql_db: MicroDB) -> None:
    """Inside a write block, distinct reads the block's own writes."""
    t = sql_db.table("t")
    t.insert_many([{"v": 1}, {"v": 2}])
    with sql_db.transaction():
        t.insert({"v": 3})
        assert t.query().distinct("v") == [1, 2, 3]
        assert [d["v"] for d in t.query().project("v").all()] == [1, 2, 3]
