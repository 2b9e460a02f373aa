"""Large async reads run in slices (``microdb.handover``), and give the synchronous API's answers.

A worker thread reading for the event loop hands the interpreter lock over between slices
of its work; these tests check that the sliced paths (selection, count, sort, the copy of
a result, SQLite's fetch and decoding) return exactly what the synchronous calls return,
that a read sees one committed state while a writer runs, and that cancelling a read
leaves no lock held. Timing is measured by ``benchmarks/bench_live.py``, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, handover, where
from microdb.aio import AsyncMicroDB
from microdb.handover import Pacer, handing_over, paced, pacer

N = 2100  # more than ROWS several times over, and more than one sort run (RUN)


@pytest.fixture(autouse=True)
def hand_over_at_every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tick hands the lock over, so the sliced paths take every branch."""
    monkeypatch.setattr(handover, "SLICE", 0.0)


def _docs() -> list[dict[str, Any]]:
    rng = random.Random(7)
    out: list[dict[str, Any]] = []
    for i in range(N):
        doc: dict[str, Any] = {"i": i, "group": rng.randrange(7), "name": f"n{rng.randrange(50)}",
                               "tags": [rng.choice("abc") for _ in range(rng.randrange(3))],
                               "address": {"city": rng.choice(["Oslo", "Lima", "Pune"])}}
        if i % 11:
            doc["score"] = rng.choice([1, 2.5, "x", None, True])  # mixed kinds, ties, missing
        out.append(doc)
    return out


BACKENDS = {
    "json": lambda tmp: str(tmp / "db.json"),
    "sqlite": lambda tmp: f"sqlite:///{tmp / 'db.sqlite'}",
    "memory": lambda tmp: None,
}


@pytest.fixture(params=sorted(BACKENDS))
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MicroDB]:
    target = BACKENDS[request.param](tmp_path)
    database = MicroDB(target) if target is not None else MicroDB()
    database.insert_many(_docs())
    database.create_index("group")
    yield database
    database.close()


def _results(db: MicroDB) -> list[Any]:
    return [
        db.query(where("i") >= 0),
        db.query(where("score") == 2.5),
        db.query(where("group") >= 3),  # the index, and a residual-free selection
        db.query((where("group") == 2) & (where("name") != "n3")),  # the index and a residual
        db.query().sort("score", ("group", -1), "i"),
        db.query(where("group") != 3).sort("name", reverse=True),
        db.query().sort(lambda d: (d.get("address", {}).get("city"), -d["i"])),
        db.query().sort("score").skip(17).limit(2500),
        db.query(where("tags").any(["a"])).sort("group").skip(5),
        db.query().project(["i", "address.city"]).sort(("i", -1)),
        db.query(where("group") > 1).project({"tags": 0}),
        db.query(where("i") >= 5).sort("group").limit(1500),  # read in index order
        db.query().sort(("group", -1)).skip(3).limit(2000),
        db.query().limit(0),
    ]


def test_sliced_reads_equal_the_synchronous_ones(db: MicroDB) -> None:
    """Every reading method, run in a handing-over block, answers as the plain call does."""
    for result in _results(db):
        expected = [(d.doc_id, dict(d)) for d in result.all()]
        again = type(result)(result._table, result.plan)
        assert [(d.doc_id, dict(d)) for d in paced(again.all)] == expected
        again = type(result)(result._table, result.plan)
        assert paced(again.count) == len(expected)
        again = type(result)(result._table, result.plan)
        assert paced(again.ids) == [i for i, _ in expected]
        again = type(result)(result._table, result.plan)
        assert paced(again.distinct, "group") == result.distinct("group")
        again = type(result)(result._table, result.plan)
        first, last = paced(again.first), paced(again.last)
        assert (first and (first.doc_id, dict(first))) == (expected[0] if expected else None)
        assert (last and (last.doc_id, dict(last))) == (expected[-1] if expected else None)
    assert pacer() is None  # the block ended with the call


def test_async_reads_equal_the_synchronous_ones(db: MicroDB) -> None:
    """The async API (``all``, ``async for``, ``count``...) gives the synchronous answers."""

    async def main() -> None:
        adb = AsyncMicroDB(db)
        for result, sync in zip(_results(adb.sync), _results(adb.sync)):
            expected = [(d.doc_id, dict(d)) for d in sync.all()]
            aresult = adb.query()._with(result)
            assert [(d.doc_id, dict(d)) async for d in aresult] == expected
            aresult = adb.query()._with(type(result)(result._table, result.plan))
            assert [(d.doc_id, dict(d)) for d in await aresult.all()] == expected
            aresult = adb.query()._with(type(result)(result._table, result.plan))
            assert await aresult.count() == len(expected)
        assert await adb.count(where("group") == 4) == db.count(where("group") == 4)
        assert await adb.search(where("name") == "n9") == db.search(where("name") == "n9")
        assert await adb.get(where("name") == "n9") == db.get(where("name") == "n9")
        assert await adb.contains(where("i") == N - 1)
        # The worker threads' marks end with their calls.
        assert await asyncio.get_running_loop().run_in_executor(adb._run.pool, pacer) is None

    asyncio.run(main())


def test_a_sliced_read_sees_one_committed_state(db: MicroDB) -> None:
    """While a writer rewrites every document in one commit after another, each async read
    (the selection in slices, then the copy on the loop) sees all of them at one version."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            version = 0
            while not stop.is_set():
                version += 1
                if version % 2:
                    db.update({"v": version, "w": [version]}, where("i") >= 0)
                else:  # operators change copies too, never a stored document in place
                    db.update({"$set": {"v": version, "address.n": version}, "$push": {"w": version}},
                              where("i") >= 0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    async def main() -> None:
        adb = AsyncMicroDB(db)
        for _ in range(4):
            versions = {(d.get("v"), tuple(d.get("w", ())), d["address"].get("n"))
                        async for d in adb.query(where("i") >= 0)}
            assert len(versions) == 1, versions
            sorted_versions = {d.get("v") for d in await adb.query().sort("group").all()}
            assert len(sorted_versions) == 1
        assert len(await adb.query().all()) == N

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        thread.join()
    assert not errors


def test_cancelling_a_read_leaves_no_lock_held(db: MicroDB) -> None:
    """A read cancelled in its selection or half-way through ``async for`` leaves the
    database free: a write from another task goes through."""

    async def main() -> None:
        adb = AsyncMicroDB(db)

        async def read_all() -> None:
            async for _ in adb.query(where("i") >= 0).sort("name"):
                await asyncio.sleep(0)

        for delay in (0, 0.001, 0.01):
            task = asyncio.create_task(read_all())
            await asyncio.sleep(delay)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # (a fast machine may finish first)
                await task
            doc_id = await asyncio.wait_for(adb.insert({"i": -1}), timeout=60)
            await asyncio.wait_for(adb.remove(doc_ids=[doc_id]), timeout=60)

        reader = adb.query(where("i") >= 0).__aiter__()
        await reader.__anext__()
        await reader.aclose()  # left after one document
        await asyncio.wait_for(adb.update({"x": 1}, where("i") == 0), timeout=60)

    asyncio.run(main())
    lock = getattr(db._backend, "_lock", None)
    if lock is not None:  # the in-memory engine: nobody holds its lock
        assert lock.acquire(blocking=False)
        lock.release()


def test_pacer_orders_as_sorted_does() -> None:
    """``Pacer.order`` and ``Pacer.sorted`` sort in runs and merge, stably, both ways."""
    rng = random.Random(3)
    pace = Pacer()
    for size in (0, 1, 5, handover.RUN, handover.RUN * 3 + 17):
        keys = [rng.randrange(40) for _ in range(size)]
        for reverse in (False, True):
            assert pace.order(keys, reverse) == sorted(range(size), key=keys.__getitem__, reverse=reverse)
        items = [(k, i) for i, k in enumerate(keys)]
        assert pace.sorted(items, lambda item: item[0], True) == sorted(items, key=lambda item: item[0], reverse=True)


def test_pacer_hands_over_between_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick sleeps (releasing the lock) once the slice's time is up, and only then."""
    sleeps: list[float] = []
    monkeypatch.setattr(handover.time, "sleep", sleeps.append)
    pace = Pacer()
    assert pace.joined(lambda part: [x * 2 for x in part], iter(range(1000)), 1000) == [x * 2 for x in range(1000)]
    assert len(sleeps) == 3  # between four slices of ROWS
    assert [list(s) for s in pace.slices(list(range(600)))] == [list(range(0, 256)), list(range(256, 512)),
                                                                  list(range(512, 600))]
    assert list(pace.each(iter("abc"))) == ["a", "b", "c"]
    assert sleeps == [0] * 8
    monkeypatch.setattr(handover, "SLICE", 3600.0)
    pace = Pacer()
    pace.tick()
    assert len(sleeps) == 8  # not yet due


def test_handing_over_marks_only_the_calling_thread() -> None:
    """The mark is per thread, nests, and ends with its block."""
    assert pacer() is None
    with handing_over() as outer:
        assert pacer() is outer
        with handing_over() as inner:
            assert inner is outer
        assert pacer() is outer
        other: list[Any] = []
        thread = threading.Thread(target=lambda: other.append(pacer()))
        thread.start()
        thread.join()
        assert other == [None]
    assert pacer() is None
