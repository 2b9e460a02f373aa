"""Speed at scale: indexes at a million keys, compound indexes, counts, ranges, updates, arrays.

Run ``python benchmarks/bench_scale.py [--quick]``. Each question puts MicroDB beside the
reference a user would compare it with, in the same run, and reports the ratio:

1. **Indexes that scale.** Random keys (integers, floats, strings) inserted one call at a
   time into a table with a unique index, and into one without: the total against the
   unindexed total (target at most 2x at 1,000,000 keys), and the time per insert of the
   last 10,000 inserts at 1,000,000 keys against the same at 10,000 keys (flat: at most
   1.3x). The index orders the keys inserted since its last ordered read at the next one,
   so the first ordered read after the fill is timed too, and added to the indexed total
   in a second ratio. Quick: 2,000 and 20,000 keys.

The other questions are added by the functions below; ``run`` lists them all.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from common import AGE_MIN, CITIES, iter_docs, make_docs, peak_memory, print_rows, ratio_row  # noqa: E402
from group_model import model_rows  # noqa: E402

from microdb import MicroDB, where  # noqa: E402
from microdb.storage.mapping import InMemoryStorage  # noqa: E402

__all__ = [
    "bench_arrays", "bench_big_file", "bench_compound", "bench_count", "bench_group_commit",
    "bench_index_scaling", "bench_range", "bench_updates", "run",
]

SUITE = "scale"

#: The last inserts of a fill, timed on their own: the cost of one insert at that size.
WINDOW = 10_000


def _row(case: str, system: str, n: int, seconds: float) -> dict[str, Any]:
    return {"kind": "time", "suite": SUITE, "case": case, "system": system, "n": n, "seconds": seconds}


def _info(case: str, n: int, note: str) -> dict[str, Any]:
    return {"kind": "info", "suite": SUITE, "case": case, "n": n, "note": note}


# -- 1. indexes that scale ----------------------------------------------------------------------

def _keys(kind: str, n: int) -> list[Any]:
    rng = random.Random(7)
    if kind == "int":
        return rng.sample(range(10**12), n)
    if kind == "float":
        return [rng.random() for _ in range(n)]
    return [f"user-{rng.getrandbits(64):016x}" for _ in range(n)]


def _fill(docs: list[dict[str, Any]], indexed: bool, window: int) -> tuple[float, float, float]:
    """Insert ``docs`` one call at a time: (seconds per insert overall, in the last ``window``,
    and the seconds of the first ordered read after them)."""
    db = MicroDB(InMemoryStorage())
    table = db.table("t")
    if indexed:
        table.create_index("k", unique=True)
    insert = table.insert
    gc.collect()
    split = len(docs) - window
    start = time.perf_counter()
    for doc in docs[:split]:
        insert(doc)
    middle = time.perf_counter()
    for doc in docs[split:]:
        insert(doc)
    end = time.perf_counter()
    # The index orders the keys inserted since its last ordered read at the next one: the
    # first read after the fill pays for ordering them all (the unindexed table scans).
    first = table.query().sort("k").limit(1).all()
    read = time.perf_counter() - end
    assert first and first[0]["k"] == min(d["k"] for d in docs)
    db.close()
    return (end - start) / len(docs), (end - middle) / window, read


def bench_index_scaling(sizes: tuple[int, int], kinds: tuple[str, ...] = ("int", "float", "str"),
                        rounds: int = 1) -> list[dict[str, Any]]:
    """Unique-indexed single inserts against unindexed ones, and per-insert time at two sizes."""
    small, big = sizes
    window = max(1, min(WINDOW, small // 2))
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        case = f"insert one by one, random {kind} keys"
        per_size: dict[int, float] = {}
        for n in (small, big):
            docs = [{"k": k, "i": i} for i, k in enumerate(_keys(kind, n))]
            best = {"indexed": (float("inf"),) * 3, "plain": (float("inf"),) * 3}
            for _ in range(rounds):
                # Take turns, so a busy spell of the machine hits both alike.
                for system in ("plain", "indexed"):
                    got = _fill(docs, system == "indexed", window)
                    best[system] = min(best[system], got)
            rows.append(_row(case + " (per insert, whole fill)", "microdb unique index", n, best["indexed"][0]))
            rows.append(_row(case + " (per insert, whole fill)", "microdb no index", n, best["plain"][0]))
            rows.append(_row(case + f" (per insert, last {window:,})", "microdb unique index", n, best["indexed"][1]))
            rows.append(_row(case + f" (per insert, last {window:,})", "microdb no index", n, best["plain"][1]))
            rows.append(_row(case + " then the first ordered read", "microdb unique index", n, best["indexed"][2]))
            rows.append(ratio_row(SUITE, f"{kind} keys: indexed / unindexed inserts", n,
                                  best["indexed"][0] / best["plain"][0], "times the unindexed time",
                                  "<= 2", big))
            rows.append(ratio_row(SUITE, f"{kind} keys: indexed inserts and the first ordered read / unindexed inserts",
                                  n, (best["indexed"][0] * n + best["indexed"][2]) / (best["plain"][0] * n),
                                  "times the unindexed time"))
            per_size[n] = best["indexed"][1]
        rows.append(ratio_row(SUITE, f"{kind} keys: one indexed insert at {big:,} / at {small:,} keys", big,
                              per_size[big] / per_size[small], "times (flat is 1)", "<= 1.3", big))
    return rows


# -- 2. group commit ----------------------------------------------------------------------------

def _thread_inserts(path: str, threads: int, per: int) -> float:
    """Durable single inserts from ``threads`` threads into one JSON file: inserts per second."""
    db = MicroDB(path, group_commit=True)
    db.insert({"warm": True})
    barrier = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(per):
            db.insert({"t": k, "i": i, "name": "x" * 80})

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    db.close()
    return threads * per / elapsed


def _process_worker(path: str, per: int, go: Any, k: int) -> None:
    db = MicroDB(path, group_commit=True)
    db.insert({"warm": k})
    go.wait()
    for i in range(per):
        db.insert({"p": k, "i": i, "name": "x" * 80})
    db.close()


def _process_inserts(path: str, processes: int, per: int) -> float:
    """Durable single inserts from ``processes`` processes into one JSON file: inserts per second."""
    ctx = multiprocessing.get_context("spawn" if sys.platform == "win32" else "fork")
    go = ctx.Event()
    workers = [ctx.Process(target=_process_worker, args=(path, per, go, k)) for k in range(processes)]
    for w in workers:
        w.start()
    time.sleep(0.5)  # every process opened the file
    start = time.perf_counter()
    go.set()
    for w in workers:
        w.join()
    return processes * per / (time.perf_counter() - start)


def _sqlite_thread_inserts(path: str, threads: int, per: int) -> float:
    """``sqlite3`` in WAL mode with synchronous=FULL, one connection per thread, one insert per transaction."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
    setup.close()
    barrier = threading.Barrier(threads + 1)
    doc = json.dumps({"name": "x" * 80})

    def work(k: int) -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        barrier.wait()
        for _ in range(per):
            conn.execute("INSERT INTO docs (doc) VALUES (?)", (doc,))
        conn.close()

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    return threads * per / (time.perf_counter() - start)


def _backend_thread_inserts(url: str, threads: int, per: int) -> float:
    """The same as :func:`_thread_inserts` on another backend (``sqlite:///...``)."""
    db = MicroDB(url)
    db.insert({"warm": True})
    barrier = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(per):
            db.insert({"t": k, "i": i, "name": "x" * 80})

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    db.close()
    return threads * per / (time.perf_counter() - start)


def bench_group_commit(folder: str, total: int, rounds: int = 2) -> list[dict[str, Any]]:
    """Durable inserts per second: 1 thread, 8 threads, 4 processes, and ``sqlite3`` WAL FULL."""
    runs: dict[str, list[float]] = {k: [] for k in (
        "microdb, 1 thread", "microdb, 8 threads", "microdb, 4 processes", "sqlite3 WAL FULL, 1 thread",
        "sqlite3 WAL FULL, 8 threads", "microdb sqlite backend, 1 thread", "microdb sqlite backend, 8 threads")}
    for r in range(rounds):
        fresh = partial(_fresh, folder, r)
        runs["microdb, 1 thread"].append(_thread_inserts(fresh("1t.json"), 1, total))
        runs["microdb, 8 threads"].append(_thread_inserts(fresh("8t.json"), 8, total // 8))
        runs["microdb, 4 processes"].append(_process_inserts(fresh("4p.json"), 4, total // 4))
        runs["sqlite3 WAL FULL, 1 thread"].append(_sqlite_thread_inserts(fresh("1t.db"), 1, total))
        runs["sqlite3 WAL FULL, 8 threads"].append(_sqlite_thread_inserts(fresh("8t.db"), 8, total // 8))
        runs["microdb sqlite backend, 1 thread"].append(
            _backend_thread_inserts("sqlite:///" + fresh("b1.db"), 1, total))
        runs["microdb sqlite backend, 8 threads"].append(
            _backend_thread_inserts("sqlite:///" + fresh("b8.db"), 8, total // 8))
    rate = {k: statistics.median(v) for k, v in runs.items()}
    case = "durable single inserts"
    rows = [_row(case + " (time per insert, all writers together)", k, total, 1 / v) for k, v in rate.items()]
    one = rate["microdb, 1 thread"]
    rows.append(ratio_row(SUITE, "group commit: 8 threads / 1 thread (JSON file)", total,
                          rate["microdb, 8 threads"] / one, "times the inserts per second", ">= 4"))
    rows.append(ratio_row(SUITE, "group commit: 4 processes / 1 thread (JSON file)", total,
                          rate["microdb, 4 processes"] / one, "times the inserts per second", ">= 4"))
    rows.append(ratio_row(SUITE, "group commit: microdb 8 threads vs sqlite3 WAL FULL 8 threads", total,
                          rate["microdb, 8 threads"] / rate["sqlite3 WAL FULL, 8 threads"],
                          "times the inserts per second", ">= 1"))
    rows.append(ratio_row(SUITE, "sqlite backend: 8 threads / 1 thread", total,
                          rate["microdb sqlite backend, 8 threads"] / rate["microdb sqlite backend, 1 thread"],
                          "times the inserts per second"))
    sync = _fsync_latency(folder)
    rows.append(_info(case, total, f"fsync of 200 bytes on this disk: {sync * 1e6:.0f} µs"))
    return rows + model_rows(SUITE, case, folder, total, sync)


def _fresh(folder: str, r: int, name: str) -> str:
    return os.path.join(folder, f"gc-{r}-{name}")


def _fsync_latency(folder: str) -> float:
    path = os.path.join(folder, "fsync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, bytes(1 << 16))
        os.fsync(fd)
        start = time.perf_counter()
        for i in range(50):
            os.pwrite(fd, b"x" * 200, i * 200)
            os.fsync(fd)
        return (time.perf_counter() - start) / 50
    finally:
        os.close(fd)
        os.remove(path)


# -- 3-7. queries and updates at 100,000 documents ---------------------------------------------

#: How long one timed group of calls lasts at least (the smoke tests make it tiny).
MIN_TIME = 0.05


def _median_interleaved(calls: dict[str, Callable[[], Any]], runs: int = 5, min_time: float | None = None) -> dict[str, float]:
    """Median over ``runs`` interleaved rounds of each call's group time (one call's share)."""
    min_time = MIN_TIME if min_time is None else min(min_time, MIN_TIME * 4)
    numbers: dict[str, int] = {}
    for name, fn in calls.items():
        fn()
        start = time.perf_counter()
        fn()
        one = max(time.perf_counter() - start, 1e-7)
        numbers[name] = max(1, int(min_time / one))
    got: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, fn in calls.items():
            gc.collect()
            start = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            got[name].append((time.perf_counter() - start) / numbers[name])
    return {name: statistics.median(v) for name, v in got.items()}


def _sqlite_table(docs: list[dict[str, Any]], indexes: list[str], path: str = ":memory:") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
    for i, expr in enumerate(indexes):
        conn.execute(f"CREATE INDEX docs_x{i} ON docs ({expr})")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO docs (doc) VALUES (?)", ((json.dumps(d),) for d in docs))
    conn.execute("COMMIT")
    return conn


def _memory_db(docs: list[dict[str, Any]], *indexes: tuple[str, ...]) -> Any:
    db = MicroDB(InMemoryStorage())
    for fields in indexes:
        db.create_index(*fields)
    db.insert_many(docs)
    return db


def _same(case: str, answers: dict[str, Any]) -> None:
    first = next(iter(answers.values()))
    for name, answer in answers.items():
        if answer != first:
            raise RuntimeError(f"{case}: systems disagree ({name})")


def bench_compound(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``city == X and age < Y`` returning documents: compound index, city index, sqlite3 compound."""
    n = len(docs)
    city, age = CITIES[7], AGE_MIN + 6  # 1 in 50 cities, about 10 % of ages
    q = (where("city") == city) & (where("age") < age)
    compound = _memory_db(docs, ("city", "age"))
    single = _memory_db(docs, ("city",))
    conn = _sqlite_table(docs, ["json_extract(doc, '$.city'), json_extract(doc, '$.age')"])
    sql = "SELECT id, doc FROM docs WHERE json_extract(doc, '$.city') = ? AND json_extract(doc, '$.age') < ?"
    loads = json.loads
    calls: dict[str, Callable[[], Any]] = {
        "microdb compound (city, age)": lambda: compound.search(q),
        "microdb index on city": lambda: single.search(q),
        "sqlite3 compound expression index": lambda: [loads(d) for _, d in conn.execute(sql, (city, age))],
        "microdb compound, ids only": lambda: compound.query(q).ids(),
        "microdb index on city, ids only": lambda: single.query(q).ids(),
    }
    _same("compound", {k: sorted(d["email"] for d in fn()) for k, fn in calls.items() if "ids" not in k})
    t = _median_interleaved(calls)
    case = f"city == X and age < {age} -> docs"
    rows = [_row(case, k, n, v) for k, v in t.items()]
    rows.append(ratio_row(SUITE, "compound vs city index (documents)", n,
                          t["microdb index on city"] / t["microdb compound (city, age)"], "times faster", ">= 5", n))
    rows.append(ratio_row(SUITE, "compound vs city index (ids only)", n,
                          t["microdb index on city, ids only"] / t["microdb compound, ids only"], "times faster"))
    rows.append(ratio_row(SUITE, "compound vs sqlite3 compound expression index", n,
                          t["sqlite3 compound expression index"] / t["microdb compound (city, age)"],
                          "times faster", ">= 2", n))
    plan = compound.query(q).explain()
    rows.append(_info(case, n, f"{plan['matched']} matches; explain(): {plan['access']}"))
    return rows


def bench_count(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unindexed count against the list scan, both over dicts laid out in order."""
    n = len(docs)
    laid = [dict(d) for d in docs]
    db = _memory_db([dict(d) for d in docs])
    v = CITIES[7]
    q = where("city") == v
    calls: dict[str, Callable[[], Any]] = {
        "python list scan": lambda: sum(1 for d in laid if d.get("city") == v),
        "microdb, no index": lambda: db.count(q),
    }
    _same("count", {k: fn() for k, fn in calls.items()})
    t = _median_interleaved(calls)
    rows = [_row("count city == v, no index", k, n, v) for k, v in t.items()]
    rows.append(ratio_row(SUITE, "count, no index: microdb / list scan (dicts in order)", n,
                          t["microdb, no index"] / t["python list scan"], "x the list scan's time", "<= 1.3", n))
    return rows


def bench_range(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indexed range returning documents against ``sqlite3`` with an expression index (median of 5)."""
    n = len(docs)
    db = _memory_db(docs, ("age",))
    conn = _sqlite_table(docs, ["json_extract(doc, '$.age')"])
    loads = json.loads
    rows: list[dict[str, Any]] = []
    for label, q, sql, params in (
        ("age < 20", where("age") < 20, "json_extract(doc, '$.age') < ?", (20,)),
        ("40 <= age < 42", (where("age") >= 40) & (where("age") < 42),
         "json_extract(doc, '$.age') >= ? AND json_extract(doc, '$.age') < ?", (40, 42)),
    ):
        full = f"SELECT id, doc FROM docs WHERE {sql}"
        calls: dict[str, Callable[[], Any]] = {
            "microdb indexed": partial(db.search, q),
            "sqlite3 indexed": lambda full=full, params=params: [loads(d) for _, d in conn.execute(full, params)],
        }
        _same(label, {k: sorted(d["email"] for d in fn()) for k, fn in calls.items()})
        t = _median_interleaved(calls)
        rows += [_row(f"range {label} -> docs", k, n, v) for k, v in t.items()]
        rows.append(ratio_row(SUITE, f"range {label}: microdb vs sqlite3 (median of 5)", n,
                              t["sqlite3 indexed"] / t["microdb indexed"], "times faster", ">= 2", n))
    return rows


def _update_case(docs: list[dict[str, Any]], folder: str, indexed: bool, rounds: int) -> list[dict[str, Any]]:
    n = len(docs)
    path = os.path.join(folder, f"upd-{indexed}.json")
    db = MicroDB(path)
    if indexed:
        db.create_index("city")
    db.insert_many(docs)
    conn = _sqlite_table(docs, ["json_extract(doc, '$.city')"] if indexed else [],
                         os.path.join(folder, f"upd-{indexed}.db"))
    sql = "UPDATE docs SET doc = json_set(doc, '$.score', ?) WHERE json_extract(doc, '$.city') = ?"
    counter = iter(range(10**9))

    def sqlite_update() -> None:
        i = next(counter)
        conn.execute(sql, (i, CITIES[i % len(CITIES)]))

    def microdb_set() -> None:
        i = next(counter)
        db.update({"score": i}, where("city") == CITIES[i % len(CITIES)])

    def microdb_inc() -> None:
        i = next(counter)
        db.update({"$inc": {"score": 1}}, where("city") == CITIES[i % len(CITIES)])

    def microdb_push() -> None:
        i = next(counter)
        db.update({"$push": {"tags": "x"}}, where("city") == CITIES[i % len(CITIES)])

    def microdb_set_list() -> None:
        # What $push stores and journals: a list of strings as long as the tags, not a number.
        i = next(counter)
        db.update({"labels": ["vip", "red", "new", "x"]}, where("city") == CITIES[i % len(CITIES)])

    calls = {"microdb set": microdb_set, "microdb $inc": microdb_inc, "microdb $push": microdb_push,
             "microdb set a 4-item list": microdb_set_list,
             "sqlite3 json_set (WAL, synchronous=FULL)": sqlite_update}
    t = _median_interleaved(calls, runs=rounds, min_time=0.2)
    label = "indexed" if indexed else "no index"
    case = f"update score where city == c ({label}, ~{n // 50:,} documents, durable)"
    rows = [_row(case, k, n, v) for k, v in t.items()]
    rows.append(ratio_row(SUITE, f"update, {label}: microdb vs sqlite3 json_set", n,
                          t["sqlite3 json_set (WAL, synchronous=FULL)"] / t["microdb set"],
                          "times faster", ">= 1", n))
    for op in ("$inc", "$push"):
        rows.append(ratio_row(SUITE, f"update, {label}: {op} / set", n, t[f"microdb {op}"] / t["microdb set"],
                              "x the time of setting a field", "<= 1", n))
    rows.append(ratio_row(SUITE, f"update, {label}: $push / set of a list", n,
                          t["microdb $push"] / t["microdb set a 4-item list"], "x the time of setting a list"))
    db.close()
    conn.close()
    return rows


def bench_updates(docs: list[dict[str, Any]], folder: str, rounds: int = 5) -> list[dict[str, Any]]:
    """``update({'score': i}, city == c)`` on the durable JSON file against ``sqlite3``'s ``json_set``."""
    return _update_case(docs, folder, True, rounds) + _update_case(docs, folder, False, rounds)


def bench_arrays(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Array queries: unindexed and with a multikey index, against ``sqlite3`` with ``json_each``."""
    n = len(docs)
    plain = _memory_db(docs)
    indexed = _memory_db(docs, ("tags",))
    conn = _sqlite_table(docs, [])
    loads = json.loads
    each = "EXISTS (SELECT 1 FROM json_each(doc, '$.tags') WHERE value = ?)"
    rows: list[dict[str, Any]] = []
    for label, q, sql, params in (
        ("tags any ['vip']", where("tags").any(["vip"]), each, ("vip",)),
        ("tags all ['vip', 'red']", where("tags").all(["vip", "red"]), f"{each} AND {each}", ("vip", "red")),
        ("$elemMatch tags == 'vip'", {"tags": {"$elemMatch": {"$eq": "vip"}}}, each, ("vip",)),
    ):
        full = f"SELECT id, doc FROM docs WHERE {sql}"
        calls: dict[str, Callable[[], Any]] = {
            "microdb, no index": partial(plain.search, q),
            "microdb, multikey index": partial(indexed.search, q),
            "sqlite3 json_each": lambda full=full, params=params: [loads(d) for _, d in conn.execute(full, params)],
        }
        _same(label, {k: sorted(d["email"] for d in fn()) for k, fn in calls.items()})
        t = _median_interleaved(calls)
        rows += [_row(f"{label} -> docs", k, n, v) for k, v in t.items()]
        rows.append(ratio_row(SUITE, f"{label}, no index: microdb vs sqlite3", n,
                              t["sqlite3 json_each"] / t["microdb, no index"], "times faster", ">= 1", n))
        rows.append(ratio_row(SUITE, f"{label}, multikey index: microdb vs sqlite3", n,
                              t["sqlite3 json_each"] / t["microdb, multikey index"], "times faster", ">= 2", n))
    return rows


# -- 8. big files --------------------------------------------------------------------------------

def _one_insert_time(path: str, k: int) -> tuple[float, float]:
    """Seconds per durable insert over ``k`` inserts just after opening ``path``, and the
    seconds of the checkpoint that folds them in (``compact``)."""
    db = MicroDB(path)
    gc.collect()
    start = time.perf_counter()
    for i in range(k):
        db.insert({"extra": i, "name": "x" * 80})
    elapsed = (time.perf_counter() - start) / k
    start = time.perf_counter()
    db.compact()
    checkpoint = time.perf_counter() - start
    db.close()
    return elapsed, checkpoint


def bench_big_file(folder: str, n: int, small: int = 1_000, k: int = 200) -> list[dict[str, Any]]:
    """A file of ``n`` documents: open against ``json.load``, peak memory, and one insert."""
    path = os.path.join(folder, "big.json")
    db = MicroDB(path)
    batch: list[dict[str, Any]] = []
    for doc in iter_docs(n):
        batch.append(doc)
        if len(batch) == 50_000:
            db.insert_many(batch)
            batch = []
    if batch:
        db.insert_many(batch)
    db.close()
    size = os.path.getsize(path)

    def load_json() -> Any:
        with open(path, "rb") as f:
            return json.load(f)

    def open_microdb() -> Any:
        return MicroDB(path)

    times: dict[str, list[float]] = {"json.load": [], "MicroDB(path)": []}
    for _ in range(3):
        for name, fn in (("json.load", load_json), ("MicroDB(path)", open_microdb)):
            gc.collect()
            start = time.perf_counter()
            got = fn()
            times[name].append(time.perf_counter() - start)
            if isinstance(got, MicroDB):
                got.close()
            del got
    best = {k: min(v) for k, v in times.items()}
    _, json_peak, _ = peak_memory(load_json)
    opened, db_peak, _ = peak_memory(lambda: MicroDB(path))
    opened.close()
    small_path = os.path.join(folder, "small.json")
    with MicroDB(small_path) as s:
        s.insert_many(make_docs(small))
    big_insert, big_checkpoint = _one_insert_time(path, k)
    small_insert, small_checkpoint = _one_insert_time(small_path, k)
    rows = [
        _row("open a file (best of 3)", name, n, t) for name, t in best.items()
    ] + [
        {"kind": "memory", "suite": SUITE, "case": "peak memory while opening", "system": "json.load", "n": n,
         "bytes": json_peak},
        {"kind": "memory", "suite": SUITE, "case": "peak memory while opening", "system": "MicroDB(path)", "n": n,
         "bytes": db_peak},
        _row("one durable insert", f"file of {n:,} documents", n, big_insert),
        _row("one durable insert", f"file of {small:,} documents", n, small_insert),
        ratio_row(SUITE, "big file: open / json.load", n, best["MicroDB(path)"] / best["json.load"],
                  "x json.load's time", "<= 1.5", n),
        ratio_row(SUITE, "big file: peak memory / json.load's", n, db_peak / json_peak,
                  "x json.load's peak", "<= 1.5", n),
        ratio_row(SUITE, f"big file: one insert at {n:,} / at {small:,} documents", n, big_insert / small_insert,
                  "x (the same is 1)", "<= 1.3", n),
        _info("big file", n, f"the file holds {size / 1e6:.0f} MB"),
        # A writer also pays the time rule's checkpoints: at most one per ten checkpoint
        # durations (the first one ten times the open's read of the file after opening).
        _row("one checkpoint (compact)", f"file of {n:,} documents", n, big_checkpoint),
        _row("one checkpoint (compact)", f"file of {small:,} documents", n, small_checkpoint),
    ]
    return rows


# -- the runner ---------------------------------------------------------------------------------

def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every question of this suite (quick: small sizes, one round)."""
    rows: list[dict[str, Any]] = []
    folder = tempfile.mkdtemp(prefix="microdb-bench-scale-", dir=os.environ.get("BENCH_DIR"))
    try:
        rows += bench_group_commit(folder, 400 if quick else 2_000, rounds=1 if quick else 3)
        docs = make_docs(10_000 if quick else 100_000)
        rows += bench_compound(docs)
        rows += bench_count(docs)
        rows += bench_range(docs)
        rows += bench_arrays(docs)
        rows += bench_updates(docs, folder, rounds=3 if quick else 5)
        del docs
        rows += bench_index_scaling((2_000, 20_000) if quick else (10_000, 1_000_000))
        rows += bench_big_file(folder, 20_000 if quick else 1_000_000)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/bench_scale.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    args = parser.parse_args(argv)
    print_rows(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
