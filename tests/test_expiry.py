"""Expiring documents (TTL indexes) on every backend: invisible once expired, swept by writers."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from microdb import MicroDB, QueryError, where
from microdb.expiry import SWEEP_BATCH

UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _fill(db: MicroDB) -> None:
    now = _now()
    db.table("s").insert_many([
        {"n": 1, "at": now - dt.timedelta(seconds=30)},            # expired
        {"n": 2, "at": now + dt.timedelta(hours=1)},               # lives
        {"n": 3, "at": (now - dt.timedelta(seconds=30)).replace(tzinfo=None)},  # naive: UTC, expired
        {"n": 4, "at": "yesterday"},                               # not a datetime: never expires
        {"n": 5},                                                  # no field: never expires
        {"n": 6, "at": dt.datetime(2020, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))},  # expired
        {"n": 7, "at": dt.date(2020, 1, 1)},                       # a date, not a datetime
    ])


def test_expired_documents_are_invisible_to_every_read(db: MicroDB) -> None:
    """Once expired, no query, count, get or distinct returns a document."""
    _fill(db)
    s = db.table("s")
    s.create_index("at", expire_after=dt.timedelta(0))
    live = [2, 4, 5, 7]
    assert [d["n"] for d in s.all()] == live
    assert [d["n"] for d in s.search(where("n") > 0)] == live
    assert s.count() == len(s) == 4
    assert s.count(where("n") < 4) == 1
    assert s.get(doc_id=1) is None and s.get(doc_id=2)["n"] == 2
    assert not s.contains(doc_id=3) and 3 not in s
    assert [d["n"] for d in s.get(doc_ids=[1, 2, 3])] == [2]
    assert s.query().distinct("n") == live
    assert [d["n"] for d in s.query().sort("n", reverse=True).limit(2)] == [7, 5]
    assert s.query(where("n") == 1).ids() == []
    assert s.update({"seen": True}, {}) == [2, 4, 5, 7]
    assert s.remove(where("n") >= 1) == [2, 4, 5, 7]


def test_expire_after_counts_from_the_field(db: MicroDB) -> None:
    """A document lives expire_after past its datetime; changing the rule applies at once."""
    now = _now()
    s = db.table("s")
    s.insert_many([{"n": 1, "at": now - dt.timedelta(minutes=30)}, {"n": 2, "at": now - dt.timedelta(hours=2)}])
    s.create_index("at", expire_after=dt.timedelta(hours=1))
    assert [d["n"] for d in s.all()] == [1]
    s.create_index("at", expire_after=3 * 3600)
    assert [d["n"] for d in s.all()] == [1, 2]
    assert s.indexes() == [{"path": ["at"], "unique": False, "expire_after": dt.timedelta(hours=3)}]


def test_a_document_expires_while_you_wait(db: MicroDB) -> None:
    """A document stops being returned the moment its time passes."""
    s = db.table("s")
    s.create_index("at", expire_after=0)
    s.insert({"at": _now() + dt.timedelta(seconds=1.0)})
    assert len(s.all()) == 1
    time.sleep(1.2)
    assert s.all() == [] and s.count() == 0


def test_writers_sweep_in_batches(opener: object) -> None:
    """A write removes a batch of expired documents; reads never remove any."""
    db = opener()  # type: ignore[operator]
    s = db.table("s")
    old = _now() - dt.timedelta(days=1)
    s.insert_many([{"at": old} for _ in range(SWEEP_BATCH + 20)] + [{"at": None}])
    s.create_index("at", expire_after=dt.timedelta(0))
    stored = db.backend.length
    assert stored("s") == SWEEP_BATCH + 21
    s.all()
    assert stored("s") == SWEEP_BATCH + 21
    s._sweep_at = 0.0
    s.insert({"at": None})
    assert stored("s") == 22
    s.insert({"at": None})  # within the sweep interval: no sweep
    assert stored("s") == 23
    s._sweep_at = 0.0
    s.insert({"at": None})
    assert stored("s") == 4
    assert len(s) == 4


def test_ttl_is_stored_and_dropped(opener: object) -> None:
    """The TTL rule survives reopening; drop_index removes it and unswept documents come back."""
    db = opener()  # type: ignore[operator]
    s = db.table("s")
    s.insert({"at": _now() - dt.timedelta(seconds=5)})
    s.create_index("at", expire_after=dt.timedelta(0))
    db.close()
    db = opener()  # type: ignore[operator]
    s = db.table("s")
    assert s.all() == []
    s._sweep_at = time.monotonic() + 60  # no sweep yet: the expired document is still stored
    assert s.drop_index("at")
    assert len(s.all()) == 1 and s.indexes() == []
    db.close()


@pytest.mark.parametrize("bad", [-1, "1h", dt.timedelta(seconds=-1), float("nan"), True])
def test_bad_expire_after_is_refused(db: MicroDB, bad: object) -> None:
    """expire_after must be a non-negative timedelta or number of seconds."""
    with pytest.raises(QueryError, match="expire_after"):
        db.table("s").create_index("at", expire_after=bad)
    assert db.table("s").indexes() == []


def test_tinydb_layer_hides_expired(tmp_path: object) -> None:
    """The TinyDB layer's queries skip expired documents too (and do not cache them)."""
    from pathlib import Path

    from microdb.tinydb import Query, TinyDB

    path = str(Path(str(tmp_path)) / "db.json")
    with MicroDB(path) as db:
        s = db.table("s")
        s.create_index("at", expire_after=0)
        s.insert_many([{"n": 1, "at": _now() + dt.timedelta(seconds=0.8)}, {"n": 2}])
    tdb = TinyDB(path)
    table = tdb.table("s")
    assert len(table.search(Query().n.exists())) == 2
    time.sleep(1.0)
    assert [d["n"] for d in table.search(Query().n.exists())] == [2]
    assert [d["n"] for d in table.all()] == [2]
    tdb.close()
