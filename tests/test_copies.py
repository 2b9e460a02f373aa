"""Returned documents are private copies: changing one, however deeply, never changes the
stored data, another result or a later read, on every storage and through every read path.

The reads copy plain lists and objects with a fast path (table.Table._documents) and hand
anything nested or unusual to ``copy_value``; these tests change every container a copy
holds, at every depth, for both paths, small reads and large ones (which pause the
collector), a custom document class and models.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from microdb import MicroDB, where
from microdb.document import Document
from microdb.table import Table


def _sample(n: int) -> dict[str, Any]:
    """One document with containers of every shape the fast path and the slow path meet."""
    return {
        "n": n,
        "name": f"user {n}",
        "tags": ["a", "b", n],  # a plain list: the fast path
        "address": {"city": "Oslo", "zip": "0150"},  # a plain object: the fast path
        "matrix": [[1, 2], [3, n]],  # a list of lists
        "people": [{"name": "x", "tags": ["p"]}, {"name": "y"}],  # a list of objects
        "meta": {"seen": [1, 2], "inner": {"deep": {"list": [n]}}},  # an object of containers
        "pair": (1, [2, 3]),  # a tuple holding a list
        "labels": {"red", "blue"},  # a set
        "frozen": frozenset({1, 2}),
        "when": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
        "price": Decimal("1.50"),
        "raw": b"\x00\x01",
        "empty_list": [],
        "empty_obj": {},
        "mixed": ["a", {"b": [1]}],  # a list whose first item is plain, the second not
        "flag": True,
        "score": 1.5,
        "none": None,
    }


def _scribble(value: Any) -> None:
    """Change every mutable container reachable from ``value``, at every depth."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _scribble(item)
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("scribbled")
    elif isinstance(value, tuple):
        for item in value:
            _scribble(item)
    elif isinstance(value, set):
        value.add("scribbled")


def _reads(db: MicroDB, table: Table) -> list[list[Any]]:
    """The table's documents through every read path that returns copies."""
    first_id = table.all()[0].doc_id
    return [
        table.all(),
        table.search(where("n") >= 0),
        list(table.query()),
        [doc for batch in table.query().batches(7) for doc in batch],
        [table.get(doc_id=first_id)],
        table.get(doc_ids=[first_id]),
        [table.get(where("n") == 0)],
        table.query().sort("n").all(),
        table.query().limit(3).all(),
    ]


@pytest.mark.parametrize("n", [5, 1200], ids=["small read", "large read"])
def test_changing_returned_documents_changes_nothing_stored(db: MicroDB, n: int) -> None:
    """Every container of every returned document can be changed without changing a later read."""
    expected = [_sample(i) for i in range(n)]
    table = db.table("t")
    table.insert_many(copy.deepcopy(expected))
    if n > 100:
        table.create_index("n")  # an indexed read too, on the large table
    for docs in _reads(db, table):
        for doc in docs:
            assert doc is not None
            _scribble(doc)
    again = sorted(table.all(), key=lambda d: d["n"])
    assert again == expected
    assert all(type(doc) is Document for doc in again)


def test_copies_do_not_share_containers_with_each_other(db: MicroDB) -> None:
    """Two reads of one document share no container: changing one leaves the other as read."""
    db.insert(_sample(0))
    one, two = db.all()[0], db.all()[0]
    _scribble(one)
    assert two == _sample(0)
    assert one["tags"] is not two["tags"] and one["meta"]["inner"] is not two["meta"]["inner"]


def test_inserted_documents_are_copied_too(db: MicroDB) -> None:
    """Changing a document after inserting it (one or many) changes nothing stored."""
    one, many = _sample(0), [_sample(i) for i in range(1, 1101)]
    db.insert(one)
    db.insert_many(many)
    _scribble(one)
    for doc in many:
        _scribble(doc)
    assert sorted(db.all(), key=lambda d: d["n"]) == [_sample(i) for i in range(1101)]


class Tagged(Document):
    """A custom document class: built by the general path, with copies all the same."""

    __slots__ = ()


def test_custom_document_class_gets_copies(db: MicroDB) -> None:
    """A table whose document_class is a subclass returns it, deep copies included."""
    table = db.table("custom")
    table.document_class = Tagged
    table.insert_many([_sample(i) for i in range(3)])
    docs = table.all()
    assert all(type(doc) is Tagged for doc in docs)
    for doc in docs:
        _scribble(doc)
    assert table.all() == [_sample(i) for i in range(3)]


@dataclasses.dataclass
class Holder:
    name: str
    tags: list[str]
    address: dict[str, Any]


def test_models_get_copies(db: MicroDB) -> None:
    """Model instances hold copies: changing their lists and dicts changes nothing stored."""
    people = db.table("people", schema=Holder, models=True)
    people.insert({"name": "A", "tags": ["x"], "address": {"city": "Oslo"}})
    got = people.all()[0]
    got.tags.append("y")
    got.address["city"] = "Bergen"
    assert people.all() == [Holder("A", ["x"], {"city": "Oslo"})]
    model = people.query().models()[0]
    model.tags.append("z")
    assert people.query().models() == [Holder("A", ["x"], {"city": "Oslo"})]
