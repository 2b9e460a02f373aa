"""microdb.tinydb used the way TinyDB's documentation and its users use TinyDB, on every storage.

Each test runs on every kind of storage a TinyDB program may pass (``tinydb_storages.KINDS``):
the JSON file, memory, a user-written ``Storage`` subclass, ``CachingMiddleware`` over the
JSON file and over the user's storage, and a user's middleware over the JSON file.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from microdb.errors import DatabaseClosedError, DocumentError, DuplicateKeyError, MicroDBError, QueryError
from microdb.tinydb import Query, TinyDB, where
from microdb.tinydb import operations as ops
from microdb.tinydb.table import Document, Table
from tinydb_storages import KINDS, PERSISTENT

Opener = Callable[..., TinyDB]


def _openers(kind: str, tmp_path: Path) -> Iterator[Opener]:
    """An opener of TinyDBs on one kind of storage (the same data each call); closes them after."""
    made = KINDS[kind](tmp_path)
    opened: list[TinyDB] = []

    def open_db(**kwargs: Any) -> TinyDB:
        db = made(**kwargs)
        opened.append(db)
        return db

    yield open_db
    for db in opened:
        db.close()


@pytest.fixture(params=sorted(KINDS))
def open_tdb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a TinyDB on one kind of storage (the same data each call); closes them after."""
    yield from _openers(request.param, tmp_path)


@pytest.fixture(params=sorted(PERSISTENT))
def open_kept(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Like ``open_tdb``, on the kinds of storage whose data outlives the database object."""
    yield from _openers(request.param, tmp_path)


@pytest.fixture
def tdb(open_tdb: Opener) -> TinyDB:
    """An empty TinyDB on each kind of storage in turn."""
    return open_tdb()


@pytest.fixture
def people(tdb: TinyDB) -> TinyDB:
    """A TinyDB holding the people of TinyDB's usage guide."""
    tdb.insert_multiple(
        [
            {"name": "John", "age": 22, "groups": ["user"], "birthday": {"year": 1990}},
            {"name": "Jane", "age": 37, "groups": ["admin", "user"], "birthday": {"year": 1985}},
            {"name": "Bob", "age": 41, "groups": ["sudo", "user"], "logged-in": True},
        ]
    )
    return tdb


def names(docs: list[Document]) -> list[str]:
    return [d["name"] for d in docs]


# -- inserting and reading -------------------------------------------------------------

def test_insert_returns_increasing_ids(tdb: TinyDB) -> None:
    """insert() returns 1, 2, 3...; every returned document carries its doc_id."""
    assert [tdb.insert({"n": i}) for i in range(3)] == [1, 2, 3]
    assert [d.doc_id for d in tdb.all()] == [1, 2, 3]
    assert isinstance(tdb.all()[0], Document)


def test_insert_multiple_takes_a_generator(tdb: TinyDB) -> None:
    """insert_multiple() accepts any iterable, generators included, and returns the ids."""
    assert tdb.insert_multiple({"int": 1, "value": i} for i in range(2)) == [1, 2]
    assert tdb.insert_multiple([{"a": 1}, {"a": 2}]) == [3, 4]
    assert len(tdb) == 4


def test_document_keeps_its_id_when_inserted(tdb: TinyDB) -> None:
    """A Document inserted (say, copied from another table) keeps its doc_id."""
    assert tdb.insert(Document({"a": 1}, doc_id=12)) == 12
    assert tdb.insert({"a": 2}) == 13
    assert tdb.get(doc_id=12) == {"a": 1}


def test_insert_multiple_never_duplicates_ids(tdb: TinyDB) -> None:
    """Explicit ids among new documents are skipped over, never overwritten (TinyDB's bug)."""
    tdb.insert({"x": 0})
    ids = tdb.insert_multiple([Document({"x": "kept"}, doc_id=3), {"x": 1}, {"x": 2}, {"x": 3}])
    assert ids == [3, 2, 4, 5]
    assert tdb.get(doc_id=3) == {"x": "kept"}
    assert len(tdb) == 5


QUERIES = [
    (Query().name == "John", ["John"]),
    (where("name") != "John", ["Jane", "Bob"]),
    (Query().age < 37, ["John"]),
    (Query().age <= 37, ["John", "Jane"]),
    (Query().age > 37, ["Bob"]),
    (Query().age >= 37, ["Jane", "Bob"]),
    (Query().birthday.year == 1990, ["John"]),
    (where("birthday")["year"] == 1985, ["Jane"]),
    (Query()["logged-in"] == True, ["Bob"]),  # noqa: E712 - TinyDB's docs write it so
    (Query().name.exists(), ["John", "Jane", "Bob"]),
    (Query().birthday.exists(), ["John", "Jane"]),
    (Query().name.matches("J"), ["John", "Jane"]),
    (Query().name.matches("john", flags=re.IGNORECASE), ["John"]),
    (Query().name.search("o"), ["John", "Bob"]),
    (Query().name.test(lambda s: s == "John"), ["John"]),
    (Query().age.test(lambda v, m, n: m <= v <= n, 30, 40), ["Jane"]),
    (Query().groups.any(["admin", "sudo"]), ["Jane", "Bob"]),
    (Query().groups.all(["admin", "user"]), ["Jane"]),
    (Query().name.one_of(["Jane", "Bob"]), ["Jane", "Bob"]),
    (Query().fragment({"name": "Bob", "age": 41}), ["Bob"]),
    (Query().birthday.fragment({"year": 1990}), ["John"]),
    (Query().noop(), ["John", "Jane", "Bob"]),
    (Query().age.map(lambda a: a // 10) == 4, ["Bob"]),
    (~(Query().name == "John"), ["Jane", "Bob"]),
    ((Query().name == "John") & (Query().age <= 30), ["John"]),
    ((Query().name == "John") | (Query().name == "Bob"), ["John", "Bob"]),
]


@pytest.mark.parametrize("query, expected", QUERIES, ids=[repr(q) for q, _ in QUERIES])
def test_search_with_every_query_form(people: TinyDB, query: Any, expected: list[str]) -> None:
    """Every query form of TinyDB's guide selects the documents the guide says."""
    assert names(people.search(query)) == expected
    assert people.count(query) == len(expected)
    assert people.contains(query) is bool(expected)


def test_nested_any_and_all(tdb: TinyDB) -> None:
    """any()/all() with a nested query, as in TinyDB's guide (groups and permissions)."""
    groups = tdb.table("groups")
    groups.insert({"name": "user", "permissions": [{"type": "read"}]})
    groups.insert({"name": "sudo", "permissions": [{"type": "read"}, {"type": "sudo"}]})
    groups.insert({"name": "admin", "permissions": [{"type": "read"}, {"type": "write"}, {"type": "sudo"}]})
    group, permission = Query(), Query()
    assert names(groups.search(group.permissions.any(permission.type == "read"))) == ["user", "sudo", "admin"]
    assert names(groups.search(group.permissions.all(permission.type == "read"))) == ["user"]


def test_get_by_query_id_and_ids(people: TinyDB) -> None:
    """get() finds one document by query or doc_id, and a list in table order by doc_ids."""
    assert people.get(Query().name == "Jane") == {
        "name": "Jane", "age": 37, "groups": ["admin", "user"], "birthday": {"year": 1985}
    }
    assert people.get(Query().name == "Bobby") is None
    assert people.get(doc_id=3)["name"] == "Bob"
    assert people.get(doc_id=99) is None
    assert people.get(doc_id=float("nan")) is None
    assert [d.doc_id for d in people.get(doc_ids=[3, 1, 3, 99])] == [1, 3]


def test_contains_by_id(people: TinyDB) -> None:
    """contains(doc_id=...) tells whether the id exists."""
    assert people.contains(doc_id=1)
    assert not people.contains(doc_id=88)


def test_iteration_and_len(people: TinyDB) -> None:
    """A database iterates over its default table's documents; len() counts them."""
    assert [d for d in people] == people.all()
    assert len(people) == 3


# -- changing ------------------------------------------------------------------------------

def test_update_fields_returns_ids(people: TinyDB) -> None:
    """update() merges fields into the matching documents and returns their ids."""
    assert people.update({"age": 23}, Query().name == "John") == [1]
    assert people.get(doc_id=1)["age"] == 23
    assert people.update({"foo": "bar"}) == [1, 2, 3]
    assert people.count(Query().foo == "bar") == 3


@pytest.mark.parametrize(
    "operation, before, after",
    [
        (ops.delete("v"), {"v": 1, "w": 0}, {"w": 0}),
        (ops.increment("v"), {"v": 1}, {"v": 2}),
        (ops.decrement("v"), {"v": 1}, {"v": 0}),
        (ops.add("v", 5), {"v": 1}, {"v": 6}),
        (ops.add("v", "!"), {"v": "hi"}, {"v": "hi!"}),
        (ops.subtract("v", 2), {"v": 1}, {"v": -1}),
        (ops.set("v", [1]), {"v": 1}, {"v": [1]}),
    ],
)
def test_update_with_operations(tdb: TinyDB, operation: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Each of TinyDB's operations changes the matching document as documented."""
    doc_id = tdb.insert(before)
    assert tdb.update(operation, doc_ids=[doc_id]) == [doc_id]
    assert tdb.get(doc_id=doc_id) == after


def test_update_with_own_function(people: TinyDB) -> None:
    """A function of the document changes it in place, as TinyDB's guide shows."""
    def shout(field: str) -> Callable[[dict[str, Any]], None]:
        def transform(doc: dict[str, Any]) -> None:
            doc[field] = doc[field].upper()
        return transform

    people.update(shout("name"), Query().age > 30)
    assert names(people.all()) == ["John", "JANE", "BOB"]


def test_update_and_remove_skip_missing_ids(people: TinyDB) -> None:
    """doc_ids that do not exist are skipped; the returned ids are those really changed."""
    assert people.update({"x": 1}, doc_ids=[1, 42]) == [1]
    assert people.remove(doc_ids=[2, 77]) == [2]
    assert [d.doc_id for d in people.all()] == [1, 3]


def test_failed_update_changes_nothing(people: TinyDB) -> None:
    """An update that fails on one document changes none, and raises what TinyDB raises."""
    with pytest.raises(KeyError):
        people.update(ops.increment("missing"), Query().age > 0)
    with pytest.raises(TypeError):
        people.update(ops.add("age", "x"))
    assert [d["age"] for d in people.all()] == [22, 37, 41]


def test_update_multiple(people: TinyDB) -> None:
    """update_multiple() applies several (fields, query) pairs in one go."""
    changed = people.update_multiple([({"role": "dev"}, Query().age < 30), ({"role": "ops"}, Query().age > 40)])
    assert changed == [1, 3]
    assert [d.get("role") for d in people.all()] == ["dev", None, "ops"]


def test_upsert_updates_or_inserts(people: TinyDB) -> None:
    """upsert() updates every match, or inserts the document when nothing matches."""
    assert people.upsert({"name": "John", "logged-in": True}, Query().name == "John") == [1]
    assert people.get(doc_id=1)["logged-in"] is True
    assert people.upsert({"name": "Zoe", "age": 5}, Query().name == "Zoe") == [4]
    assert people.upsert(Document({"name": "Bob", "age": 42}, doc_id=3)) == [3]
    assert people.get(doc_id=3)["age"] == 42
    assert people.upsert(Document({"name": "Ann"}, doc_id=10)) == [10]
    assert people.get(doc_id=10) == {"name": "Ann"}


def test_remove_returns_ids(people: TinyDB) -> None:
    """remove() deletes the matching documents and returns their ids."""
    assert people.remove(Query().age > 30) == [2, 3]
    assert names(people.all()) == ["John"]


def test_truncate_keeps_the_table_and_never_reuses_ids(tdb: TinyDB) -> None:
    """truncate() empties the table; MicroDB never hands an id out twice (TinyDB restarts at 1)."""
    tdb.insert_multiple([{"a": 1}, {"a": 2}])
    tdb.truncate()
    assert len(tdb) == 0
    assert tdb.tables() == {"_default"}
    assert tdb.insert({"a": 3}) == 3


def test_any_write_creates_its_table(tdb: TinyDB) -> None:
    """As in TinyDB, a write creates its table even when it changes no document."""
    tdb.table("a").truncate()
    tdb.table("b").remove(Query().x == 1)
    tdb.table("c").update({"x": 1})
    tdb.table("d").search(Query().x == 1)
    assert tdb.tables() == {"a", "b", "c"}


# -- tables ------------------------------------------------------------------------------

def test_tables_and_dropping(tdb: TinyDB) -> None:
    """tables(), drop_table() and drop_tables() work as TinyDB's guide describes."""
    table = tdb.table("table_name")
    table.insert({"value": True})
    assert table.all() == [{"value": True}]
    tdb.insert({"x": 1})
    assert tdb.tables() == {"_default", "table_name"}
    tdb.drop_table("table_name")
    assert tdb.tables() == {"_default"}
    tdb.drop_table("never-existed")
    tdb.drop_tables()
    assert tdb.tables() == set()
    assert len(tdb) == 0


def test_table_objects_are_cached_with_first_options(tdb: TinyDB) -> None:
    """db.table(name) returns the same object; options only apply the first time."""
    first = tdb.table("t", cache_size=1)
    assert tdb.table("t", cache_size=30) is first
    assert first._query_cache.capacity == 1


def test_default_table_name_override(open_tdb: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting TinyDB.default_table_name redirects every default-table call."""
    monkeypatch.setattr(TinyDB, "default_table_name", "my-default")
    db = open_tdb()
    db.insert({"a": 1})
    assert db.tables() == {"my-default"}
    assert db.table("my-default").all() == [{"a": 1}]


def test_persist_empty_creates_and_never_empties(tdb: TinyDB) -> None:
    """persist_empty stores an empty table at once; on a full table it keeps the documents."""
    tdb.table("empty", persist_empty=True)
    assert "empty" in tdb.tables()
    tdb.table("full").insert({"a": 1})
    again = Table(tdb.storage, "full", persist_empty=True)
    assert again.all() == [{"a": 1}]


def test_custom_classes(open_tdb: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    """table_class, document_class and document_id_class overrides are honoured."""

    class MyDocument(Document):
        def shout(self) -> str:
            return str(self["name"]).upper()

    class MyId(int):
        pass

    class MyTable(Table):
        document_class = MyDocument
        document_id_class = MyId

        def names(self) -> list[str]:
            return [d["name"] for d in self.all()]

    monkeypatch.setattr(TinyDB, "table_class", MyTable)
    db = open_tdb()
    db.insert({"name": "ann"})
    doc = db.get(Query().name == "ann")
    assert isinstance(doc, MyDocument) and doc.shout() == "ANN"
    assert isinstance(doc.doc_id, MyId)
    assert db.names() == ["ann"]  # forwarded to the default table, a MyTable
    assert isinstance(db.update({"x": 1})[0], MyId)


def test_default_query_cache_capacity_hook(tdb: TinyDB, monkeypatch: pytest.MonkeyPatch) -> None:
    """TinyDB.table_class.default_query_cache_capacity sets the capacity of new tables."""
    monkeypatch.setattr(Table, "default_query_cache_capacity", 100)
    assert tdb.table("fresh")._query_cache.capacity == 100


# -- the query cache ------------------------------------------------------------------------

def test_returned_documents_are_copies(people: TinyDB) -> None:
    """Changing a returned document changes neither the data nor a later cached result."""
    first = people.search(Query().name == "John")
    first[0]["name"] = "changed"
    first.append(Document({"bogus": 1}, doc_id=99))
    assert names(people.search(Query().name == "John")) == ["John"]
    assert people.get(doc_id=1)["name"] == "John"


def test_query_cache_is_bounded(tdb: TinyDB) -> None:
    """cache_size bounds the number of cached queries; 0 turns the cache off."""
    table = tdb.table("t", cache_size=1)
    table.insert({"int": 1})
    table.insert({"int": 1})
    assert table.count(where("int") == 1) == 2
    assert table.count(where("int") == 2) == 0
    assert len(table._query_cache) == 1
    off = tdb.table("off", cache_size=0)
    off.search(where("int") == 1)
    assert len(off._query_cache) == 0
    table.clear_cache()
    assert len(table._query_cache) == 0


def test_query_cache_sees_writes_through_other_objects(tdb: TinyDB) -> None:
    """A cached result is dropped when another table object on the same storage writes."""
    mine = tdb.table("t")
    other = Table(tdb.storage, "t")
    assert mine.search(where("a") == 1) == []
    other.insert({"a": 1})
    assert mine.search(where("a") == 1) == [{"a": 1}]
    assert mine.count(where("a") == 1) == 1


def test_queries_running_user_code_are_not_cached(tdb: TinyDB) -> None:
    """test(), map() and plain functions run every time (their answer may change)."""
    allowed = {"a"}
    query = Query().name.test(lambda n: n in allowed)
    tdb.insert({"name": "b"})
    assert tdb.search(query) == []
    allowed.add("b")
    assert tdb.search(query) == [{"name": "b"}]
    assert tdb.search(lambda doc: doc.get("name") == "b") == [{"name": "b"}]


# -- misuse -------------------------------------------------------------------------------

MISUSE: list[tuple[str, Callable[[TinyDB], Any], type[BaseException]]] = [
    ("get() with nothing", lambda db: db.get(), RuntimeError),
    ("contains() with nothing", lambda db: db.contains(), RuntimeError),
    ("remove() with nothing", lambda db: db.remove(), RuntimeError),
    ("insert a list", lambda db: db.insert([1, 2, 3]), ValueError),
    ("insert a set", lambda db: db.insert({"bark"}), ValueError),
    ("insert_multiple with a non-mapping", lambda db: db.insert_multiple([{"a": 1}, 5]), ValueError),
    ("insert an existing id", lambda db: db.insert(Document({}, doc_id=1)), ValueError),
    ("upsert without query or id", lambda db: db.upsert({"a": 1}), ValueError),
    ("search with an empty Query()", lambda db: db.search(Query()), RuntimeError),
    ("compare an empty Query()", lambda db: Query() == 1, ValueError),
    ("search with a bare path", lambda db: db.search(Query().a), RuntimeError),
    ("evaluate a path", lambda db: Query().a({"a": 1}), RuntimeError),
    ("a value JSON cannot hold", lambda db: db.insert({"x": object()}), TypeError),
]


@pytest.mark.parametrize("what, call, builtin", MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse_raises_what_tinydb_raises(
    tdb: TinyDB, what: str, call: Callable[[TinyDB], Any], builtin: type[BaseException]
) -> None:
    """Misuse raises TinyDB's built-in exception, which is also a MicroDBError; nothing changes."""
    tdb.insert({"a": 1})
    with pytest.raises(builtin) as info:
        call(tdb)
    assert isinstance(info.value, MicroDBError)
    assert tdb.all() == [{"a": 1}]


def test_misuse_error_classes() -> None:
    """The duplicate-id and empty-query errors are MicroDB's own classes too."""
    assert issubclass(DuplicateKeyError, ValueError)
    assert issubclass(DocumentError, TypeError)
    assert issubclass(QueryError, ValueError)


def test_queries_cannot_be_combined_with_and(people: TinyDB) -> None:
    """`q1 and q2` is an error, not a silent `q2` (TinyDB's trap)."""
    with pytest.raises(QueryError):
        people.search((Query().name == "John") and (Query().age == 37))


# -- reprs, lifecycle, persistence -----------------------------------------------------------

def test_reprs(people: TinyDB) -> None:
    """TinyDB's and Table's reprs read as TinyDB's do."""
    people.table("other").insert({"x": 1})
    assert repr(people) == (
        "<TinyDB tables=['_default', 'other'], tables_count=2, default_table_documents_count=3, "
        "all_tables_documents_count=['_default=3', 'other=1']>"
    )
    assert re.fullmatch(r"<Table name='other', total=1, storage=.+>", repr(people.table("other")))


def test_context_manager_closes_the_file(tmp_path: Path) -> None:
    """Leaving a with-block closes the JSON file; using it afterwards is a clear error."""
    with TinyDB(tmp_path / "db.json") as db:
        db.insert({"a": 1})
    with pytest.raises(DatabaseClosedError):
        db.insert({"a": 2})
    with pytest.raises(DatabaseClosedError):
        db.all()
    assert repr(db) == "<TinyDB closed>"
    assert "total=closed" in repr(db.table("t"))
    db.close()  # closing twice is harmless


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_after_close_the_storage_decides(kind: str, tmp_path: Path) -> None:
    """After close(), as in TinyDB: memory and a user's storage still answer, files refuse."""
    with KINDS[kind](tmp_path)() as db:
        db.insert({"a": 1})
    if kind in ("memory", "user-storage", "caching-user-storage"):
        assert db.all() == [{"a": 1}]
    else:
        with pytest.raises(DatabaseClosedError):
            db.all()


def test_reopening_finds_the_data(open_kept: Opener) -> None:
    """What was written is there after close and reopen, ids included."""
    with open_kept() as db:
        db.insert_multiple([{"a": 1}, {"a": 2}, {"a": 3}])
        db.table("t").insert({"b": 1})
        db.remove(doc_ids=[2])
    with open_kept() as db:
        assert [(d.doc_id, d["a"]) for d in db.all()] == [(1, 1), (3, 3)]
        assert db.table("t").all() == [{"b": 1}]
        assert db.insert({"a": 4}) == 4


def test_rich_values_round_trip(tdb: TinyDB) -> None:
    """Dates and other rich values come back as they went in, on every storage."""
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    tdb.insert({"when": when, "tags": {"a"}})
    assert tdb.all() == [{"when": when, "tags": {"a"}}]


def test_rich_values_survive_reopening(open_kept: Opener) -> None:
    """Rich values are stored in a form that reads back as the same values."""
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    with open_kept() as db:
        db.insert({"when": when, "tags": {"a"}})
    with open_kept() as db:
        assert db.all() == [{"when": when, "tags": {"a"}}]


def test_threads_lose_nothing(tdb: TinyDB) -> None:
    """Threads inserting into one database at once get distinct ids and lose nothing."""
    def work(n: int) -> None:
        for i in range(25):
            tdb.insert({"t": n, "i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [d.doc_id for d in tdb.all()]
    assert len(ids) == 100 == len(set(ids))


def test_microdb_extras_work_on_tinydb_tables(people: TinyDB) -> None:
    """MicroDB's lazy queries, indexes and transactions are there for TinyDB code to grow into."""
    people.create_index("age")
    assert names(people.query(Query().age > 20).sort("age", reverse=True).limit(2).all()) == ["Bob", "Jane"]
    with pytest.raises(ZeroDivisionError), people.transaction():
        people.insert({"name": "ghost"})
        raise ZeroDivisionError
    assert people.count(Query().name == "ghost") == 0


# -- the modules -------------------------------------------------------------------------------

TINYDB_NAMES = {
    "microdb.tinydb": ["JSONStorage", "Query", "Storage", "TinyDB", "where"],
    "microdb.tinydb.table": ["Document", "Table"],
    "microdb.tinydb.storages": ["JSONStorage", "MemoryStorage", "Storage", "touch"],
    "microdb.tinydb.middlewares": ["CachingMiddleware", "Middleware"],
    "microdb.tinydb.queries": ["Query", "QueryInstance", "QueryLike", "where"],
    "microdb.tinydb.operations": ["add", "decrement", "delete", "increment", "set", "subtract"],
    "microdb.tinydb.utils": ["LRUCache"],
}


@pytest.mark.parametrize("module", sorted(TINYDB_NAMES))
def test_modules_mirror_tinydb(module: str) -> None:
    """Each module offers TinyDB's public names, in a sorted __all__, each with a docstring."""
    import importlib

    mod = importlib.import_module(module)
    assert list(mod.__all__) == sorted(mod.__all__) == TINYDB_NAMES[module]
    assert (mod.__doc__ or "").strip()
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert (obj.__doc__ or "").strip(), name
        if isinstance(obj, type):
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and callable(value):
                    assert (value.__doc__ or "").strip(), f"{name}.{attr}"


@pytest.mark.parametrize("module", sorted(TINYDB_NAMES))
def test_tinydb_names_all_exist_here(module: str) -> None:
    """Every name TinyDB's matching module exports exists here (utils: what TinyDB documents)."""
    import importlib

    pytest.importorskip("tinydb")
    tinydb_name = module.replace("microdb.tinydb", "tinydb")
    real = importlib.import_module(tinydb_name)
    mine = importlib.import_module(module)
    exported = getattr(real, "__all__", None) or [
        n for n, v in vars(real).items() if not n.startswith("_") and getattr(v, "__module__", "") == tinydb_name
    ]
    undocumented = {"freeze", "with_typehint"}
    assert [n for n in exported if n not in undocumented and not hasattr(mine, n)] == []
