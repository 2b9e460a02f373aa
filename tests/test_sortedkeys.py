"""The sorted keys of an index, and single inserts into indexed tables, against plain models.

``SortedKeys`` notes added keys and places them at the next read, one by one or by sorting
everything; these tests run both ways with tiny chunks (so chunks split and empty often)
and compare every read with a sorted list. Single inserts check and file a document in
each index in one step; they are compared with full scans and with what a duplicate must
leave behind (nothing).
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microdb import DuplicateKeyError, MicroDB, where
from microdb.engine import sortedkeys
from microdb.engine.sortedkeys import SortedKeys
from microdb.storage import InMemoryStorage

#: (what, key): add, discard, or a read of the whole order and of one range
_ops = st.lists(st.tuples(st.sampled_from(("add", "add", "add", "discard", "read")), st.integers(0, 300)),
                max_size=300)


@settings(max_examples=200, deadline=None)
@given(ops=_ops, chunk=st.sampled_from((2, 3, 8)), rebuild=st.sampled_from((1, 2, 1000)),
       low=st.integers(-5, 305), span=st.integers(0, 120), reverse=st.booleans())
def test_sorted_keys_equal_a_sorted_list_however_keys_are_placed(
    ops: list[tuple[str, int]], chunk: int, rebuild: int, low: int, span: int, reverse: bool,
) -> None:
    """Adds, discards and reads in any order: every read equals the model's sorted keys."""
    keys, model = SortedKeys(), set()
    with mock.patch.object(sortedkeys, "CHUNK", chunk), mock.patch.object(sortedkeys, "REBUILD", rebuild):
        for what, key in ops:
            if what == "add" and key not in model:
                keys.add(key)
                model.add(key)
            elif what == "discard":
                keys.discard(key)
                model.discard(key)
            elif what == "read":
                assert list(keys) == sorted(model)
            assert len(keys) == len(model)
        want = [k for k in sorted(model) if low <= k < low + span]
        assert keys.count(low, True, low + span, False) == len(want)
        assert list(keys.irange(low, True, low + span, False, reverse)) == (want[::-1] if reverse else want)
        assert list(reversed(keys)) == sorted(model, reverse=True)
        assert all(len(c) <= chunk for c in keys._chunks) and keys._maxes == [c[-1] for c in keys._chunks]


def test_an_iterator_handed_out_before_more_keys_are_placed_keeps_its_keys() -> None:
    """Placing noted keys by sorting everything builds new chunks: a running scan is not disturbed."""
    keys = SortedKeys()
    for k in range(0, 100, 2):
        keys.add(k)
    running = iter(keys)
    assert next(running) == 0
    for k in range(1, 1000, 2):
        keys.add(k)
    assert list(keys) == sorted([*range(0, 100, 2), *range(1, 1000, 2)])
    assert list(running) == list(range(2, 100, 2))


_scalar = st.one_of(st.integers(0, 12), st.sampled_from((1.0, 2.5, "a", "b", "c", True, None)))
_doc = st.fixed_dictionaries({}, optional={"u": _scalar, "v": _scalar, "w": st.one_of(_scalar, st.just([1, "a"]))})


@settings(max_examples=120, deadline=None)
@given(docs=st.lists(_doc, max_size=40), reads=st.lists(st.booleans(), max_size=40), compound=st.booleans())
def test_single_inserts_into_indexed_tables_equal_a_model(docs: list[dict[str, Any]], reads: list[bool],
                                                          compound: bool) -> None:
    """One insert at a time into a table with two unique indexes and a plain one: a document
    is refused exactly when a unique value (or pair) is taken, refused ones leave no trace,
    and indexed answers equal a scan of what was stored."""
    db = MicroDB(InMemoryStorage())
    t = db.table("t")
    t.create_index("u", unique=True)
    if compound:
        t.create_index("v", "w", unique=True)
    else:
        t.create_index("v", unique=True)
    t.create_index("w")
    plain = MicroDB(InMemoryStorage()).table("t")
    stored: list[dict[str, Any]] = []

    def taken(doc: dict[str, Any]) -> bool:
        def same(f: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
            # Present in both, and equal as MicroDB compares: 1 == 1.0, True != 1.
            if f not in a or f not in b:
                return False
            x, y = a[f], b[f]
            numbers = (int, float)
            return (type(x) is type(y) or (type(x) in numbers and type(y) in numbers)) and x == y

        for other in stored:
            if same("u", doc, other) or (
                    same("v", doc, other) and (not compound or same("w", doc, other))):
                return True
        return False

    for i, doc in enumerate(docs):
        if taken(doc):
            with pytest.raises(DuplicateKeyError):
                t.insert(doc)
        else:
            t.insert(doc)
            plain.insert(doc)
            stored.append(doc)
        if i < len(reads) and reads[i]:
            assert [d["u"] for d in t.query(where("u") >= 0).sort("u")] == [
                d["u"] for d in plain.query(where("u") >= 0).sort("u")]
    assert t.all() == plain.all()
    for q in (where("u") >= 3, where("u") < "b", where("v") == 2, where("v") > 1, where("w") == "a",
              (where("v") == 1) & (where("w") < 5), where("w").any([1])):
        assert t.query(q).ids() == plain.query(q).ids(), q
        assert [d.doc_id for d in t.query(q).sort("u")] == [d.doc_id for d in plain.query(q).sort("u")], q
