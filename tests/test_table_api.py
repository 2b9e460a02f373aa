"""The table and database API, on every storage (the ``db`` and ``opener`` fixtures)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from microdb import (
    DatabaseClosedError,
    Document,
    DocumentError,
    DocumentNotFound,
    MicroDB,
    MicroDBError,
    Query,
    QueryError,
    UpdateError,
    where,
)
from microdb.operations import add, decrement, delete, increment, subtract
from microdb.operations import set as set_field

Opener = Callable[[], MicroDB]


def fill(table: Any) -> list[int]:
    return table.insert_many(
        [
            {"name": "Alice", "age": 30, "tags": ["a", "b"], "address": {"city": "Oslo"}},
            {"name": "Bob", "age": 25, "tags": ["b"], "address": {"city": "Rome"}},
            {"name": "Charlie", "age": 35, "tags": [], "address": {"city": "Oslo"}},
        ]
    )


# -- the database is the default table ---------------------------------------------------

def test_database_is_the_default_table(db: MicroDB) -> None:
    """``db.insert`` and ``db.query`` act on the table ``_default``."""
    doc_id = db.insert({"x": 1})
    assert db.table("_default").get(doc_id=doc_id) == {"x": 1}
    assert db.query(where("x") == 1).count() == 1
    assert db.tables() == {"_default"}
    assert db.name == "_default"


def test_tables_listing_and_dropping(db: MicroDB) -> None:
    """Tables appear on first write; drop_table and drop_tables remove them."""
    assert db.tables() == set()
    db.table("a").insert({"v": 1})
    db.table("b").insert({"v": 2})
    assert db.tables() == {"a", "b"}
    assert db.table("a") is db.table("a")
    assert db.drop_table("a") is True
    assert db.drop_table("a") is False
    assert db.tables() == {"b"}
    db.drop_tables()
    assert db.tables() == set()
    assert db.table("b").all() == []


def test_context_manager_closes(opener: Opener) -> None:
    """Leaving ``with`` closes the database; every later call raises DatabaseClosedError."""
    with opener() as db:
        db.insert({"a": 1})
        users = db.table("users")
    for call in (
        lambda: db.insert({"a": 2}),
        lambda: db.all(),
        lambda: users.insert({"a": 1}),
        lambda: users.query(where("a") == 1).all(),
        lambda: db.table("x"),
        lambda: db.tables(),
        lambda: len(db),
        lambda: db.get(doc_id=1),
    ):
        with pytest.raises(DatabaseClosedError):
            call()
    db.close()  # closing twice is harmless


# -- inserting and ids -------------------------------------------------------------------

def test_insert_returns_increasing_ids(db: MicroDB) -> None:
    """Ids are ints, start at 1 and increase."""
    t = db.table("t")
    assert t.insert({"a": 1}) == 1
    assert t.insert({"a": 2}) == 2
    assert t.insert_many([{"a": 3}, {"a": 4}]) == [3, 4]
    assert t.insert_many([{"a": 5}]) == [5]


def test_ids_never_reused_after_reopen(opener: Opener) -> None:
    """Removing the highest id and reopening still gives a fresh id."""
    db = opener()
    t = db.table("t")
    t.insert_many([{"a": 1}, {"a": 2}, {"a": 3}])
    t.remove(doc_ids=[3])
    db.close()
    db = opener()
    assert db.table("t").insert({"a": 4}) == 4
    db.table("t").truncate()
    db.close()
    db = opener()
    assert db.table("t").insert({"a": 5}) == 5
    assert db.table("t").all() == [{"a": 5}]


def test_ids_are_per_table(db: MicroDB) -> None:
    """Each table counts its own ids."""
    assert db.table("a").insert({}) == 1
    assert db.table("b").insert({}) == 1


def test_insert_document_keeps_its_id(db: MicroDB) -> None:
    """Inserting a Document stores it under its own doc_id; a taken id is refused."""
    t = db.table("t")
    assert t.insert(Document({"a": 1}, doc_id=10)) == 10
    assert t.insert({"a": 2}) == 11
    with pytest.raises(MicroDBError):
        t.insert(Document({"a": 3}, doc_id=10))
    assert [d.doc_id for d in t.all()] == [10, 11]


@pytest.mark.parametrize(
    "bad",
    [
        ["not", "a", "mapping"],
        "text",
        42,
        {"when": object()},
        {"nested": {"deep": [1, {2, 3}, lambda: 1]}},
        {1: "non-string key"},
        {"x": float("nan")},
        {"x": float("inf")},
    ],
)
def test_bad_documents_are_rejected_and_nothing_stored(db: MicroDB, bad: Any) -> None:
    """A non-mapping or unstorable document raises DocumentError and changes nothing."""
    db.insert({"keep": 1})
    with pytest.raises(DocumentError):
        db.insert(bad)
    with pytest.raises(DocumentError):
        db.insert_many([{"fine": 1}, bad])
    assert db.all() == [{"keep": 1}]
    assert db.insert({"next": 1}) == 2


def test_insert_many_rejects_non_list(db: MicroDB) -> None:
    """insert_many needs an iterable of documents."""
    with pytest.raises(DocumentError):
        db.insert_many({"a": 1})  # type: ignore[arg-type]
    assert db.insert_many([]) == []


def test_stored_documents_are_private_copies(db: MicroDB) -> None:
    """Changing the inserted dict or a returned document never changes what is stored."""
    doc = {"name": "A", "tags": ["x"], "address": {"city": "Oslo"}}
    doc_id = db.insert(doc)
    doc["tags"].append("mutated")
    doc["address"]["city"] = "changed"
    got = db.get(doc_id=doc_id)
    assert got == {"name": "A", "tags": ["x"], "address": {"city": "Oslo"}}
    got["tags"].append("again")
    got["address"]["city"] = "again"
    for found in (db.all()[0], db.get(where("name") == "A"), db.search(where("name") == "A")[0]):
        assert found == {"name": "A", "tags": ["x"], "address": {"city": "Oslo"}}


def test_insert_many_without_copy_takes_the_documents_over(db: MicroDB) -> None:
    """copy=False stores handed-over documents as they are checked: the same values come back,
    rich values too; a bad one is still refused, and nothing of the batch is stored."""
    import datetime as dt
    from decimal import Decimal

    docs = [{"n": i, "tags": ["x", i], "address": {"city": "Oslo"}} for i in range(1500)]
    docs.append({"n": 1500, "day": dt.date(2024, 5, 1), "price": Decimal("1.5"), "pair": (1, 2)})
    ids = db.insert_many(docs, copy=False)
    assert len(ids) == 1501
    assert db.get(doc_id=ids[7]) == {"n": 7, "tags": ["x", 7], "address": {"city": "Oslo"}}
    assert db.get(doc_id=ids[-1]) == {"n": 1500, "day": dt.date(2024, 5, 1), "price": Decimal("1.5"), "pair": (1, 2)}
    for bad in ({"deep": [{"x": float("nan")}]}, {"big": {"n": 2**70}}, {"obj": [object()]}):
        with pytest.raises(DocumentError):
            db.insert_many([{"fine": 1}, bad], copy=False)
    assert db.count() == 1501


def test_documents_know_their_ids(db: MicroDB) -> None:
    """Every returned document is a Document dict with doc_id."""
    ids = fill(db)
    docs = db.all()
    assert all(isinstance(d, Document) and isinstance(d, dict) for d in docs)
    assert [d.doc_id for d in docs] == ids


# -- reading -----------------------------------------------------------------------------

def test_get_by_query_id_and_ids(db: MicroDB) -> None:
    """get() finds by query, doc_id or doc_ids; absent gives None or is left out."""
    fill(db)
    assert db.get(where("name") == "Bob")["age"] == 25
    assert db.get(where("name") == "Nobody") is None
    assert db.get(doc_id=3)["name"] == "Charlie"
    assert db.get(doc_id=99) is None
    assert [d["name"] for d in db.get(doc_ids=[3, 99, 1])] == ["Charlie", "Alice"]
    with pytest.raises(QueryError):
        db.get()


def test_contains_count_len_iter(db: MicroDB) -> None:
    """contains, count, len() and iteration agree."""
    fill(db)
    assert db.contains(where("name") == "Alice")
    assert not db.contains(where("name") == "Zed")
    assert db.contains(doc_id=2) and not db.contains(doc_id=9)
    assert 2 in db and 9 not in db
    assert db.count(where("age") > 26) == 2
    assert db.count() == len(db) == 3
    assert [d["name"] for d in db] == ["Alice", "Bob", "Charlie"]


def test_search_returns_a_list(db: MicroDB) -> None:
    """search() returns a plain list of documents."""
    fill(db)
    found = db.search(where("address").city == "Oslo")
    assert isinstance(found, list)
    assert [d["name"] for d in found] == ["Alice", "Charlie"]


# -- the lazy result ---------------------------------------------------------------------

def test_result_reading_methods(db: MicroDB) -> None:
    """all, first, final/last, count, len, ids, truthiness of a result."""
    fill(db)
    r = db.query(where("age") >= 30)
    assert [d["name"] for d in r.all()] == ["Alice", "Charlie"]
    assert r.first()["name"] == "Alice"
    assert r.last()["name"] == "Charlie"
    assert r.count() == len(r) == 2
    assert r.ids() == [1, 3]
    assert bool(r) is True
    empty = db.query(where("age") > 100)
    assert empty.first() is None and empty.last() is None
    assert not empty and empty.all() == [] and len(empty) == 0


def test_result_sort_skip_limit_project(db: MicroDB) -> None:
    """sort (several keys, reverse), skip, limit and project compose into one plan."""
    fill(db)
    db.insert({"name": "Dora", "age": 30, "address": {"city": "Bern"}})
    by_age = db.query().sort("age", "name")
    assert [d["name"] for d in by_age] == ["Bob", "Alice", "Dora", "Charlie"]
    assert [d["name"] for d in db.query().sort("age", reverse=True).all()] == ["Charlie", "Alice", "Dora", "Bob"]
    assert [d["name"] for d in db.query().sort(("age", -1), "name").all()] == ["Charlie", "Alice", "Dora", "Bob"]
    assert [d["name"] for d in db.query().sort(lambda d: d["name"][::-1]).all()] == ["Dora", "Bob", "Alice", "Charlie"]
    page = db.query().sort("name").skip(1).limit(2)
    assert [d["name"] for d in page] == ["Bob", "Charlie"]
    assert page.count() == 2
    projected = db.query(where("name") == "Alice").project(["name", "address.city"]).first()
    assert projected == {"name": "Alice", "address": {"city": "Oslo"}}
    assert projected.doc_id == 1
    assert db.query().sort("address.city").first()["name"] == "Dora"


def test_result_is_lazy_until_read(db: MicroDB) -> None:
    """A result built before a write sees the write when it is first read."""
    r = db.query(where("a") == 1)
    db.insert({"a": 1})
    assert r.count() == 1
    assert len(r.all()) == 1


# -- updating ----------------------------------------------------------------------------

def test_update_fields_by_query_and_ids(db: MicroDB) -> None:
    """update() with fields by query or doc_ids returns the changed ids."""
    fill(db)
    assert db.update({"age": 26}, where("name") == "Bob") == [2]
    assert db.get(doc_id=2)["age"] == 26
    assert db.update({"seen": True}, doc_ids=[1, 3]) == [1, 3]
    assert db.count(where("seen") == True) == 2  # noqa: E712
    assert db.update({"x": 0}, where("name") == "Nobody") == []


def test_update_everything_with_an_empty_filter(db: MicroDB) -> None:
    """update() with the empty filter changes every document (without a condition it raises)."""
    fill(db)
    assert db.update({"flag": 1}, {}) == [1, 2, 3]
    assert db.count(where("flag") == 1) == 3


def test_update_with_function_and_operations(db: MicroDB) -> None:
    """A function, and TinyDB's operations, change documents in place."""
    fill(db)

    def birthday(doc: dict[str, Any]) -> None:
        doc["age"] += 1

    db.update(birthday, where("name") == "Alice")
    assert db.get(doc_id=1)["age"] == 31
    db.update(increment("age"), doc_ids=[2])
    db.update(decrement("age"), doc_ids=[3])
    db.update(add("name", "!"), doc_ids=[1])
    db.update(subtract("age", 10), doc_ids=[1])
    db.update(set_field("city", "X"), doc_ids=[2])
    db.update(delete("tags"), doc_ids=[3])
    assert db.get(doc_id=1)["name"] == "Alice!" and db.get(doc_id=1)["age"] == 21
    assert db.get(doc_id=2)["age"] == 26 and db.get(doc_id=2)["city"] == "X"
    assert db.get(doc_id=3)["age"] == 34 and "tags" not in db.get(doc_id=3)


def test_failed_update_changes_nothing(db: MicroDB) -> None:
    """An update that fails on one document changes none of them."""
    fill(db)
    db.insert({"name": "Eve"})  # no age: increment fails on it
    before = db.all()
    with pytest.raises(UpdateError):
        db.update(increment("age"), {})
    with pytest.raises(DocumentError):
        db.update({"bad": object()}, {})
    assert db.all() == before


def test_update_missing_ids_raise(db: MicroDB) -> None:
    """update/remove by ids that do not exist raise DocumentNotFound and change nothing."""
    fill(db)
    with pytest.raises(DocumentNotFound):
        db.update({"x": 1}, doc_ids=[1, 42])
    with pytest.raises(KeyError):
        db.remove(doc_ids=[42])
    assert db.count(where("x").exists()) == 0 and len(db) == 3


def test_update_multiple(db: MicroDB) -> None:
    """update_multiple applies several (fields, query) pairs in one commit."""
    fill(db)
    ids = db.update_multiple([({"grp": "young"}, where("age") < 30), ({"grp": "old"}, where("age") >= 30)])
    assert sorted(ids) == [1, 2, 3]
    assert [d["grp"] for d in db.all()] == ["old", "young", "old"]


def test_upsert(db: MicroDB) -> None:
    """upsert updates matching documents, or inserts when none match."""
    fill(db)
    assert db.upsert({"name": "Bob", "age": 50}, where("name") == "Bob") == [2]
    assert db.get(doc_id=2)["age"] == 50
    assert db.upsert({"name": "Zed", "age": 1}, where("name") == "Zed") == [4]
    assert db.get(doc_id=4) == {"name": "Zed", "age": 1}
    assert db.upsert(Document({"name": "Id7"}, doc_id=7)) == [7]
    assert db.upsert(Document({"extra": True}, doc_id=7)) == [7]
    assert db.get(doc_id=7) == {"name": "Id7", "extra": True}
    with pytest.raises(QueryError):
        db.upsert({"a": 1})


@pytest.mark.parametrize("bad", [42, "text", ["list"]])
def test_malformed_update_rejected(db: MicroDB, bad: Any) -> None:
    """An update that is neither fields, operators nor a function raises UpdateError."""
    db.insert({"a": 1})
    with pytest.raises(UpdateError):
        db.update(bad)
    assert db.all() == [{"a": 1}]


# -- removing ----------------------------------------------------------------------------

def test_remove_and_truncate(db: MicroDB) -> None:
    """remove by query or ids returns the removed ids; truncate empties the table."""
    fill(db)
    assert db.remove(where("age") < 30) == [2]
    assert db.remove(doc_ids=[3]) == [3]
    assert [d["name"] for d in db.all()] == ["Alice"]
    with pytest.raises(QueryError):
        db.remove()
    db.truncate()
    assert len(db) == 0
    assert db.insert({"a": 1}) == 4


def test_update_and_remove_need_a_condition(db: MicroDB) -> None:
    """One rule: without a query or doc_ids both raise and change nothing; {} means every document."""
    fill(db)
    before = db.all()
    with pytest.raises(QueryError, match="needs a query or doc_ids"):
        db.update({"x": 1})
    with pytest.raises(QueryError):
        db.remove()
    assert db.all() == before
    assert sorted(db.update({"x": 1}, {})) == [1, 2, 3]
    assert sorted(db.update({"x": 2}, Query().noop())) == [1, 2, 3]
    assert db.count(where("x") == 2) == 3
    assert sorted(db.remove({})) == [1, 2, 3]


def test_the_tinydb_drop_in_keeps_tinydbs_rule(tmp_path: Any) -> None:
    """microdb.tinydb: update(fields) changes every document, remove() without a condition raises."""
    from microdb.tinydb import TinyDB

    with TinyDB(tmp_path / "t.json") as tdb:
        tdb.insert_multiple([{"a": 1}, {"a": 2}])
        assert sorted(tdb.update({"x": 1})) == [1, 2]
        with pytest.raises(RuntimeError):
            tdb.remove()
        assert len(tdb) == 2


# -- queries through the table -----------------------------------------------------------

def test_fluent_seed_queries(db: MicroDB) -> None:
    """The seed's fluent form filters as a conjunction, correct for falsy values."""
    db.insert_many([{"n": 0, "ok": False, "s": ""}, {"n": 1, "ok": True, "s": "x"}, {"other": 1}])
    assert db.query(Query().exists("n").value("n", 0)).ids() == [1]
    assert db.query(Query().value("ok", False)).ids() == [1]
    assert db.query(Query().value("s", "")).ids() == [1]
    assert db.query(Query().exists("n").value(Query.gte("n", 1))).ids() == [2]
    assert db.query(Query.ne("n", 0)).ids() == [2]
    assert db.query(Query().noop()).count() == 3


def test_plain_callable_as_query(db: MicroDB) -> None:
    """A plain function of the document is a query."""
    fill(db)
    assert [d["name"] for d in db.search(lambda d: d["name"].startswith("C"))] == ["Charlie"]


def test_bad_queries_raise_query_error(db: MicroDB) -> None:
    """Things that are not queries raise QueryError."""
    fill(db)
    for bad in (42, "name == 'Alice'", where("name"), Query()):
        if isinstance(bad, Query) and not bad._path:
            assert db.query(bad).count() == 3  # an empty Query() matches everything
            continue
        with pytest.raises(QueryError):
            db.search(bad)


def test_missing_and_mismatched_fields_do_not_match(db: MicroDB) -> None:
    """A missing field or a value of another type does not match and never raises."""
    db.insert_many([{"age": "thirty"}, {"age": None}, {}, {"age": [1]}, {"age": 3}, {"age": True}])
    assert db.query(where("age") < 30).ids() == [5]
    assert db.query(where("age") == 1).ids() == []
    assert db.query(where("age").matches("th")).ids() == [1]
    assert db.query(~(where("age") == 3)).ids() == [1, 2, 3, 4, 6]


# -- indexes through the API ----------------------------------------------------------------

def test_indexes_survive_reopen(opener: Opener) -> None:
    """Index definitions are stored with the data."""
    db = opener()
    t = db.table("t")
    fill(t)
    t.create_index("age")
    t.create_index("address.city")
    assert sorted(i["path"] for i in t.indexes()) == [["address", "city"], ["age"]]
    db.close()
    db = opener()
    t = db.table("t")
    assert sorted(i["path"] for i in t.indexes()) == [["address", "city"], ["age"]]
    assert t.query(where("age") > 26).ids() == [1, 3]
    assert t.drop_index("age") is True
    assert t.drop_index("age") is False


# -- threads -----------------------------------------------------------------------------------

def test_many_threads_lose_nothing(db: MicroDB) -> None:
    """One database object used from many threads at once loses no write."""
    counter_id = db.insert({"n": 0})
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(50):
                db.table("log").insert({"k": k, "i": i})
                db.update(increment("n"), doc_ids=[counter_id])
                db.table("log").count(where("k") == k)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert db.get(doc_id=counter_id)["n"] == 400
    log = db.table("log")
    assert len(log) == 400
    assert sorted(d.doc_id for d in log.all()) == list(range(1, 401))


def test_explicit_ids_in_a_batch_are_not_handed_out_again(db: MicroDB) -> None:
    """An explicit id later in a batch is skipped by the ids given to documents before it."""
    ids = db.insert_many([{"a": 1}, Document({"a": 2}, doc_id=2), {"a": 3}])
    assert ids == [1, 2, 3]
    with pytest.raises(MicroDBError):
        db.insert_many([Document({"a": 4}, doc_id=9), Document({"a": 5}, doc_id=9)])
    assert len(db) == 3


def test_rolled_back_bulk_insert_leaves_no_trace(opener: Opener) -> None:
    """A bulk insert undone by a failing transaction leaves no document and no used id."""
    db = opener()
    db.insert({"keep": True})
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.insert_many({"n": i} for i in range(2500))
            raise RuntimeError("abort")
    assert db.all() == [{"keep": True}]
    assert db.insert({"after": True}) == 2
    db.close()
    db = opener()
    assert [d.doc_id for d in db.all()] == [1, 2]


# -- the garbage collector is paused during bulk work, and given back as it was -----------
@pytest.mark.parametrize("enabled", [True, False])
def test_bulk_reads_and_writes_leave_the_collector_as_they_found_it(db: MicroDB, enabled: bool) -> None:
    import gc

    docs = [{"n": i, "tags": [i], "sub": {"i": i}} for i in range(2500)]
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        db.insert_many(docs)
        assert gc.isenabled() is enabled
        got = db.all()
        assert gc.isenabled() is enabled
        assert got == docs
        # The copies are independent of the database even when built in bulk.
        got[0]["tags"].append("x")
        got[1]["sub"]["i"] = "changed"
        assert db.get(doc_id=got[0].doc_id)["tags"] == [0]
        assert db.get(doc_id=got[1].doc_id)["sub"] == {"i": 1}
        with pytest.raises(DocumentError):
            db.insert_many([*docs, {"bad": object()}])
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()
