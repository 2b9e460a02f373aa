"""Rich types: stored and read back as the same type and value on every storage, compared right in queries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from microdb import DocumentError, MicroDB, register_type, where
from microdb.serialization import decode, encode

UTC = dt.timezone.utc
PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))
MINUS_0330 = dt.timezone(dt.timedelta(hours=-3, minutes=-30))


@dataclasses.dataclass(frozen=True, order=True)
class Point:
    """A user type stored as a two-element list."""

    x: int
    y: int


@dataclasses.dataclass
class Stamp:
    """A mutable user type whose encoded form holds a rich value itself."""

    at: dt.datetime
    tags: list[str]


register_type(Point, "test_point", lambda p: [p.x, p.y], lambda v: Point(*v))
register_type(Stamp, "test_stamp", lambda s: {"at": s.at, "tags": s.tags}, lambda v: Stamp(v["at"], v["tags"]))


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0, a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Decimal):
        return str(a) == str(b)  # the exponent too: 10.50 stays 10.50
    if isinstance(a, float) and a == 0:
        return math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.utcoffset() == b.utcoffset() and (a.tzinfo is None) == (b.tzinfo is None)
    return bool(a == b)


VALUES: dict[str, Any] = {
    "datetime-naive": dt.datetime(2024, 5, 1, 12, 30, 15, 123456),
    "datetime-utc": dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    "datetime-+05:30": dt.datetime(2024, 5, 1, 12, 30, 1, tzinfo=PLUS_0530),
    "datetime--03:30": dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=MINUS_0330),
    "date": dt.date(2024, 2, 29),
    "time-naive": dt.time(23, 59, 59, 1),
    "time-aware": dt.time(8, 0, tzinfo=PLUS_0530),
    "timedelta": dt.timedelta(days=-3, seconds=7, microseconds=11),
    "uuid": uuid.UUID("2f1c3e4d-5a6b-4c7d-8e9f-0a1b2c3d4e5f"),
    "decimal": Decimal("10.50"),
    "decimal-exponent": Decimal("1E+3"),
    "decimal-negative-zero": Decimal("-0.000"),
    "bytes": b"\x00\xff binary \n",
    "bytes-empty": b"",
    "set": {1, "a", (2, 3)},
    "set-empty": set(),
    "frozenset": frozenset({"x", frozenset({1})}),
    "tuple": (1, "a", None, [2, {"k": (3,)}]),
    "tuple-empty": (),
    "int64-max": 2**63 - 1,
    "int64-min": -(2**63),
    "negative-zero": -0.0,
    "dollar-key-dict": {"$set": [1, 2]},
    "tag-lookalike": {"$datetime": "not a date"},
    "escape-lookalike": {"$escape": {"$x": 1}},
    "unicode": "ünïcødé ✓ \u2028",
    "user-type": Point(1, -2),
    "user-type-holding-rich-values": Stamp(dt.datetime(2024, 1, 1, tzinfo=UTC), ["a"]),
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_rich_values_round_trip_on_every_storage(opener: Callable[[], MicroDB], name: str) -> None:
    """A value comes back as the same type and value after reopening, alone and nested."""
    value = VALUES[name]
    doc = {"v": value, "nested": {"list": [value], "tuple": (value,), "deep": [{"v": value}]}}
    db = opener()
    doc_id = db.table("t").insert(doc)
    assert same(dict(db.table("t").get(doc_id=doc_id)), doc)
    db.close()
    again = opener().table("t").get(doc_id=doc_id)
    assert again is not None
    assert same(dict(again), doc)


def test_returned_rich_values_are_copies(db: MicroDB) -> None:
    """Changing a returned set, tuple content or user object never changes what is stored."""
    stamp = Stamp(dt.datetime(2024, 1, 1), ["a"])
    doc_id = db.insert({"s": {1, 2}, "t": ([1],), "stamp": stamp})
    stamp.tags.append("changed before read")
    got = db.get(doc_id=doc_id)
    got["s"].add(3)
    got["t"][0].append(2)
    got["stamp"].tags.append("changed after read")
    assert db.get(doc_id=doc_id) == {"s": {1, 2}, "t": ([1],), "stamp": Stamp(dt.datetime(2024, 1, 1), ["a"])}


TAGGED: list[tuple[Any, Any]] = [
    (dt.datetime(2024, 5, 1, 12, 0), {"$datetime": "2024-05-01T12:00:00"}),
    (dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC), {"$datetime": "2024-05-01T12:00:00+00:00"}),
    (dt.date(2024, 5, 1), {"$date": "2024-05-01"}),
    (dt.time(12, 30), {"$time": "12:30:00"}),
    (dt.timedelta(days=1, seconds=2, microseconds=3), {"$timedelta": [1, 2, 3]}),
    (uuid.UUID(int=1), {"$uuid": "00000000-0000-0000-0000-000000000001"}),
    (Decimal("10.50"), {"$decimal": "10.50"}),
    (b"hi", {"$bytes": "aGk="}),
    ({1}, {"$set": [1]}),
    (frozenset({"a"}), {"$frozenset": ["a"]}),
    ((1, dt.date(2024, 1, 1)), {"$tuple": [1, {"$date": "2024-01-01"}]}),
    ({"$set": 1}, {"$escape": {"$set": 1}}),
    ({"$a": 1, "b": 2}, {"$a": 1, "b": 2}),
    (Point(3, 4), {"$test_point": [3, 4]}),
    (Stamp(dt.datetime(2024, 1, 1), []), {"$test_stamp": {"at": {"$datetime": "2024-01-01T00:00:00"}, "tags": []}}),
]


@pytest.mark.parametrize("value, tagged", TAGGED, ids=[repr(t[0])[:40] for t in TAGGED])
def test_the_documented_tagged_json_form(value: Any, tagged: Any) -> None:
    """Each rich value is written as the documented one-key ``$`` object, and decodes back."""
    assert encode(value) == tagged
    assert json.loads(json.dumps(tagged)) == tagged
    assert same(decode(tagged), value)


def test_the_json_file_stays_readable(tmp_path: Path) -> None:
    """The file on disk is plain JSON with the tagged values in it, readable by any tool."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path))
    db.table("events").insert({"at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "id": uuid.UUID(int=5),
                               "tags": {"x"}})
    db.close()
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["events"]["1"] == {
        "at": {"$datetime": "2024-05-01T12:00:00+00:00"},
        "id": {"$uuid": "00000000-0000-0000-0000-000000000005"},
        "tags": {"$set": ["x"]},
    }


# ---------------------------------------------------------------------------------------
# Queries and indexes compare rich values
# ---------------------------------------------------------------------------------------

EVENTS: list[dict[str, Any]] = [
    {"k": 1, "at": dt.datetime(2024, 1, 1, 9), "day": dt.date(2024, 1, 1), "dur": dt.timedelta(minutes=5),
     "price": Decimal("2.50"), "id": uuid.UUID(int=1), "raw": b"\x01", "p": Point(1, 1), "clock": dt.time(12, tzinfo=UTC)},
    {"k": 2, "at": dt.datetime(2024, 6, 1, 9), "day": dt.date(2024, 6, 1), "dur": dt.timedelta(hours=2),
     "price": Decimal("10"), "id": uuid.UUID(int=2), "raw": b"\x02", "p": Point(2, 0),
     "clock": dt.time(13, tzinfo=dt.timezone(dt.timedelta(hours=1)))},
    {"k": 3, "at": dt.datetime(2024, 6, 1, 9, tzinfo=UTC), "day": dt.datetime(2024, 6, 1), "dur": 7200,
     "price": 3, "id": "00000000-0000-0000-0000-000000000002", "raw": "\x02", "p": [2, 0], "clock": dt.time(12)},
    {"k": 4, "at": "2024-06-01T09:00:00", "price": 2.5, "p": Point(0, 9), "clock": dt.time(11, tzinfo=UTC)},
    {"k": 5, "at": dt.datetime(2023, 12, 31, 23, tzinfo=PLUS_0530), "dur": dt.timedelta(0)},
]

QUERIES: list[tuple[str, Any, list[int]]] = [
    ("datetime >", where("at") > dt.datetime(2024, 3, 1), [2]),
    ("datetime >= aware", where("at") >= dt.datetime(2024, 6, 1, 9, tzinfo=UTC), [3]),
    ("aware < aware, other zone", where("at") < dt.datetime(2024, 1, 1, tzinfo=UTC), [5]),
    ("naive == never aware", where("at") == dt.datetime(2024, 6, 1, 9), [2]),
    ("dict $gte datetime", {"at": {"$gte": dt.datetime(2024, 1, 1)}}, [1, 2]),
    ("date is not datetime", where("day") == dt.date(2024, 6, 1), [2]),
    ("datetime is not date", {"day": dt.datetime(2024, 6, 1)}, [3]),
    ("date range", {"day": {"$lt": dt.date(2024, 3, 1)}}, [1]),
    ("timedelta range", where("dur") >= dt.timedelta(minutes=5), [1, 2]),
    ("timedelta is not a number", {"dur": {"$gt": 0}}, [3]),
    ("decimal vs numbers", where("price") > 2.5, [2, 3]),
    ("decimal equals float", {"price": 2.5}, [1, 4]),
    ("decimal $in", {"price": {"$in": [Decimal("10.0"), 3]}}, [2, 3]),
    ("uuid ==", where("id") == uuid.UUID(int=2), [2]),
    ("uuid is not its string", {"id": {"$in": [uuid.UUID(int=1), "00000000-0000-0000-0000-000000000002"]}}, [1, 3]),
    ("bytes range", where("raw") > b"\x01", [2]),
    ("bytes is not str", {"raw": b"\x02"}, [2]),
    ("aware times across zones", where("clock") == dt.time(12, tzinfo=UTC), [1, 2]),
    ("aware time range", {"clock": {"$lt": dt.time(12, 30, tzinfo=UTC)}}, [1, 2, 4]),
    ("user type ==", where("p") == Point(2, 0), [2]),
    ("user type <", where("p") < Point(2, 0), [1, 4]),
    ("user type $in", {"p": {"$in": [Point(0, 9), Point(5, 5)]}}, [4]),
]


@pytest.mark.parametrize("label, query, expected", QUERIES, ids=[q[0] for q in QUERIES])
def test_queries_compare_rich_values(db: MicroDB, label: str, query: Any, expected: list[int]) -> None:
    """Rich values compare with values of their own kind only, the same with and without an index."""
    db.insert_many(EVENTS)
    assert [d["k"] for d in db.search(query)] == expected
    for field in ("at", "day", "dur", "price", "id", "raw", "p", "clock"):
        db.create_index(field)
    assert [d["k"] for d in db.search(query)] == expected
    assert db.count(query) == len(expected)


def test_sorting_mixed_naive_and_aware_datetimes(db: MicroDB) -> None:
    """Naive and aware datetimes sort without error: naive ones first, aware ones by instant."""
    db.insert_many([
        {"at": dt.datetime(2024, 1, 2, tzinfo=UTC)},
        {"at": dt.datetime(2024, 1, 3)},
        {"at": dt.datetime(2024, 1, 1, 23, tzinfo=MINUS_0330)},
        {"at": dt.datetime(2024, 1, 1)},
    ])
    assert [d.doc_id for d in db.query().sort("at")] == [4, 2, 1, 3]
    assert [d.doc_id for d in db.query().sort(("at", -1))] == [3, 1, 2, 4]
    db.create_index("at")
    assert [d.doc_id for d in db.query().sort("at").limit(3)] == [4, 2, 1]


def test_sorting_user_types_uses_their_order(db: MicroDB) -> None:
    """Values of a registered type sort by their own ``<``, not their text."""
    db.insert_many([{"p": Point(10, 0)}, {"p": Point(9, 0)}, {"p": Point(100, 0)}])
    assert [d["p"].x for d in db.query().sort("p")] == [9, 10, 100]
    db.create_index("p")
    assert [d["p"].x for d in db.search(where("p") > Point(9, 5))] == [10, 100]


# ---------------------------------------------------------------------------------------
# Values that cannot be stored exactly are refused, and nothing is stored
# ---------------------------------------------------------------------------------------


class Opaque:
    """A class nobody registered."""


BAD: dict[str, Any] = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "decimal-nan": Decimal("NaN"),
    "decimal-inf": Decimal("-Infinity"),
    "int-key": {1: "a"},
    "tuple-key": {(1, 2): "a"},
    "none-key": {None: 1},
    "nan-in-list": [1, {"y": float("nan")}],
    "nan-in-set": {float("nan")},
    "inf-in-tuple": (1, float("inf")),
    "object": Opaque(),
    "complex": 1 + 2j,
    "bytearray": bytearray(b"x"),
    "deep-inf": [[[float("inf")]]],
    "int-beyond-64-bits": 2**63,
    "negative-int-beyond-64-bits": [-(2**63) - 1],
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_unstorable_values_are_refused_and_nothing_is_stored(opener: Callable[[], MicroDB], name: str) -> None:
    """NaN, infinities, non-string keys and unknown objects raise DocumentError; no write happens."""
    bad = BAD[name]
    db = opener()
    db.insert({"ok": 1})
    before = db.all()
    with pytest.raises(DocumentError) as info:
        db.insert({"x": bad})
    assert "'x'" in str(info.value)
    with pytest.raises(DocumentError):
        db.insert_many([{"ok": 2}, {"x": {"y": bad}}, {"ok": 3}])
    with pytest.raises(DocumentError):
        db.update({"x": bad}, {})
    with pytest.raises(DocumentError):
        db.update({"$set": {"a.b": bad}}, {})
    with pytest.raises(DocumentError):
        db.upsert({"x": bad}, where("ok") == 99)
    with pytest.raises(DocumentError):
        with db.transaction():
            db.table("other").insert({"fine": True})
            db.table("other").insert({"x": bad})
    assert db.all() == before
    assert db.tables() == {"_default"}
    db.close()
    again = opener()
    assert again.all() == before
    assert again.tables() == {"_default"}


class Color(str, enum.Enum):
    """A str-valued enum (its str() is 'Color.RED', its value 'red')."""

    RED = "red"


class Level(enum.IntEnum):
    """An int-valued enum."""

    HIGH = 3


def test_subclasses_of_str_and_int_are_stored_as_their_value(opener: Callable[[], MicroDB]) -> None:
    """Enum members (str or int mixins) are stored as the plain value, keys included."""
    db = opener()
    db.insert({"c": Color.RED, "l": [Level.HIGH], "by": {Color.RED: 1}})
    db.close()
    doc = opener().get(doc_id=1)
    assert same(dict(doc), {"c": "red", "l": [3], "by": {"red": 1}})


def test_a_non_string_top_level_key_is_refused(db: MicroDB) -> None:
    """A document with an int key raises DocumentError instead of turning 1 into '1'."""
    with pytest.raises(DocumentError, match="key 1"):
        db.insert({1: "a"})
    assert len(db) == 0


class Broken:
    """A registered type whose encoder fails or returns something unstorable."""

    def __init__(self, mode: str):
        self.mode = mode


def _encode_broken(value: Broken) -> Any:
    if value.mode == "raise":
        raise RuntimeError("cannot encode this one")
    return Opaque() if value.mode == "object" else float("nan")


register_type(Broken, "test_broken", _encode_broken, lambda v: Broken("decoded"))


@pytest.mark.parametrize("mode", ["raise", "object", "nan"])
def test_a_failing_user_encoder_is_a_document_error(db: MicroDB, mode: str) -> None:
    """An encoder that raises, or returns a value MicroDB cannot store, is caught before storing."""
    with pytest.raises(DocumentError, match="test_broken"):
        db.insert({"b": Broken(mode)})
    assert len(db) == 0


@pytest.mark.parametrize(
    "cls, name, fragment",
    [
        (dt.datetime, "mydate", "natively"),
        (int, "myint", "natively"),
        (dict, "mydict", "natively"),
        (Opaque, "not-an-identifier", "identifier"),
        (Opaque, "datetime", "built-in"),
        (Opaque, "escape", "built-in"),
        (Opaque, "test_point", "taken"),
        ("Opaque", "opaque", "class"),
    ],
)
def test_register_type_refuses_misuse(cls: Any, name: str, fragment: str) -> None:
    """Registering a native type, a bad or taken name, or a non-class raises DocumentError."""
    with pytest.raises(DocumentError, match=fragment):
        register_type(cls, name, repr, repr)
