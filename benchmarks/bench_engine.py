"""The in-memory engine beside TinyDB, ``sqlite3`` and plain Python, on the same documents.

Run ``python benchmarks/bench_engine.py [--quick]``. Every system gets the same generated
documents (:func:`common.make_docs`) at each size; the targets of the speed issue are
judged at 100,000 documents. Each case first checks that every system returns the same
answer, so no system is timed doing less work than another.

Systems:

- MicroDB over ``InMemoryStorage`` (and the JSON file storage, for bulk inserts, when it
  is installed), with and without indexes on ``city`` and ``age``;
- TinyDB with its default JSON storage and with ``MemoryStorage`` (query cache off, so a
  repeated query is really run again);
- ``sqlite3`` in memory: one row per document, the document as JSON text, expression
  indexes on ``json_extract(doc, '$.city')`` and ``json_extract(doc, '$.age')``; returned
  documents are parsed back into dicts with ``json.loads``;
- plain Python: a list of dicts scanned by a comprehension, and a dict of lists as a hash
  index (the limits no pure-Python engine can beat).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import itertools
import json
import os
import random
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from common import compare, compare_with_setup, make_docs, peak_memory, print_rows, ratio_row

from microdb import MicroDB, where
from microdb.storage import InMemoryStorage

__all__ = [
    "EQ_CITY",
    "RANGE_AGE",
    "SIZES",
    "Env",
    "bench_count",
    "bench_equality",
    "bench_get",
    "bench_insert",
    "bench_memory",
    "bench_range",
    "bench_sorted",
    "run",
    "run_size",
]

SUITE = "engine"
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
TARGET_N = 100_000
#: The city of the equality cases: one of 50, so about 1 document in 50 matches.
EQ_CITY = "Paris"
#: ``age < 20`` matches about 1 document in 31 (ages run from 18 to 79).
RANGE_AGE = 20
#: A two-sided range of two ages out of 62, to show how the planner handles ``a <= x < b``.
RANGE_LOW, RANGE_HIGH = 40, 42
INDEXED = ("city", "age")


@dataclass
class Timing:
    """How hard to try: best of ``repeat`` groups lasting ``min_time`` seconds each."""

    repeat: int
    min_time: float

    def slow(self) -> Timing:
        """Settings for operations taking a large part of a second each."""
        return Timing(max(2, self.repeat - 2), 0.0)


FULL = Timing(5, 0.1)
QUICK = Timing(3, 0.02)


# -- the systems ----------------------------------------------------------------------------

def _sqlite(docs: list[dict[str, Any]], indexed: bool, path: str = ":memory:") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
    if indexed:
        _sqlite_indexes(conn)
    _sqlite_insert(conn, docs)
    return conn


def _sqlite_indexes(conn: sqlite3.Connection) -> None:
    for name in INDEXED:
        conn.execute(f"CREATE INDEX docs_{name} ON docs (json_extract(doc, '$.{name}'))")


def _sqlite_insert(conn: sqlite3.Connection, docs: list[dict[str, Any]]) -> None:
    dumps = json.dumps
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO docs (doc) VALUES (?)", ((dumps(d),) for d in docs))
    conn.execute("COMMIT")


def _microdb(docs: list[dict[str, Any]], indexed: bool) -> MicroDB:
    db = MicroDB(InMemoryStorage())
    if indexed:
        for name in INDEXED:
            db.create_index(name)
    db.insert_many(docs)
    return db


def _tinydb_available() -> bool:
    try:
        import tinydb  # noqa: F401
    except ImportError:
        return False
    return True


def _tinydb(docs: list[dict[str, Any]], path: str | None) -> Any:
    """A TinyDB table (query cache off) on a JSON file, or in memory when ``path`` is None."""
    from tinydb import TinyDB
    from tinydb.storages import MemoryStorage

    db = TinyDB(path) if path is not None else TinyDB(storage=MemoryStorage)
    table = db.table("_default", cache_size=0)
    table.insert_multiple(docs)
    return table


def _json_storage_available() -> bool:
    return importlib.util.find_spec("microdb.storage.jsonfile") is not None


@dataclass
class Env:
    """Every system loaded with the same ``n`` documents."""

    n: int
    timing: Timing
    folder: str
    docs: list[dict[str, Any]]
    systems: dict[str, Any] = field(default_factory=dict)
    by_city: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_id: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, n: int, timing: Timing, folder: str, *, tinydb: bool = True) -> Env:
        """Load ``n`` generated documents into every system."""
        docs = make_docs(n)
        env = cls(n, timing, folder, docs)
        env.systems["microdb"] = _microdb(docs, indexed=False)
        env.systems["microdb indexed"] = _microdb(docs, indexed=True)
        env.systems["sqlite3"] = _sqlite(docs, indexed=False)
        env.systems["sqlite3 indexed"] = _sqlite(docs, indexed=True)
        if tinydb and _tinydb_available():
            env.systems["tinydb memory"] = _tinydb(docs, None)
            env.systems["tinydb json"] = _tinydb(docs, os.path.join(folder, f"tinydb-{n}.json"))
        for doc_id, doc in enumerate(docs, 1):
            env.by_city.setdefault(doc["city"], []).append(doc)
            env.by_id[doc_id] = doc
        return env

    def close(self) -> None:
        """Close what holds files or connections."""
        for name, system in self.systems.items():
            if name.startswith("sqlite3"):
                system.close()
            elif name == "tinydb json":
                system.storage.close()

    def has(self, name: str) -> bool:
        """Whether the system was loaded."""
        return name in self.systems

    def compare(self, calls: dict[str, Callable[[], Any]]) -> dict[str, float]:
        """Best time of one call of each function, timed side by side (see :func:`common.compare`)."""
        return compare(calls, repeat=self.timing.repeat, min_time=self.timing.min_time)


def _row(case: str, system: str, n: int, seconds: float) -> dict[str, Any]:
    return {"kind": "time", "suite": SUITE, "case": case, "system": system, "n": n, "seconds": seconds}


def _same(case: str, answers: dict[str, Any]) -> None:
    """Refuse to time systems that disagree: they would not be doing the same work."""
    values = list(answers.values())
    if any(v != values[0] for v in values[1:]):
        raise RuntimeError(f"{case}: the systems disagree: {answers!r:.500}")


def _tiny_get(table: Any, doc_id: int) -> Any:
    return table.get(doc_id=doc_id)


def _tiny_cond(field_name: str) -> Any:
    from tinydb import where as tiny_where

    return tiny_where(field_name)


def _speedups(case: str, n: int, times: dict[str, float], subject: str, others: list[str]) -> list[dict[str, Any]]:
    """Informative ratios: how many times faster ``subject`` is than each of ``others``."""
    return [
        ratio_row(SUITE, f"{case}: {subject} vs {other}", n, times[other] / times[subject], f"times faster than {other}")
        for other in others
        if other in times and subject in times
    ]


# -- the cases --------------------------------------------------------------------------------

def bench_count(env: Env) -> list[dict[str, Any]]:
    """Counting an equality match, without an index (the target) and with one."""
    case, n, v = "count city == v", env.n, EQ_CITY
    docs, db, dbi, conn = env.docs, env.systems["microdb"], env.systems["microdb indexed"], env.systems["sqlite3"]
    q = where("city") == v
    calls: dict[str, Callable[[], int]] = {
        "python list scan": lambda: sum(1 for d in docs if d.get("city") == v),
        "microdb": lambda: db.count(q),
        "microdb indexed": lambda: dbi.count(q),
        "sqlite3": lambda: conn.execute(
            "SELECT count(*) FROM docs WHERE json_extract(doc, '$.city') = ?", (v,)
        ).fetchone()[0],
    }
    for name in ("tinydb memory", "tinydb json"):
        if env.has(name):
            table, cond = env.systems[name], _tiny_cond("city") == v
            calls[name] = partial(table.count, cond)
    _same(case, {name: fn() for name, fn in calls.items()})
    times = env.compare(calls)
    rows = [_row(case, name, n, t) for name, t in times.items()]
    rows.append(ratio_row(SUITE, "count, no index: microdb / list scan", n, times["microdb"] / times["python list scan"],
                          "x the time of sum(1 for d in docs if ...)", "<= 1.3", TARGET_N))
    rows += _speedups("count, no index", n, times, "microdb", ["tinydb memory", "tinydb json", "sqlite3"])
    rows.append(ratio_row(SUITE, "count: index vs no index (microdb)", n, times["microdb"] / times["microdb indexed"],
                          "times faster with the index"))
    return rows


def bench_equality(env: Env) -> list[dict[str, Any]]:
    """An equality query (1 in 50) returning the documents, with and without indexes."""
    case, n, v = "query city == v -> docs", env.n, EQ_CITY
    docs, by_city = env.docs, env.by_city
    db, dbi = env.systems["microdb"], env.systems["microdb indexed"]
    conn, conni = env.systems["sqlite3"], env.systems["sqlite3 indexed"]
    q = where("city") == v
    sql = "SELECT id, doc FROM docs WHERE json_extract(doc, '$.city') = ?"
    loads = json.loads
    calls: dict[str, Callable[[], list[Any]]] = {
        "python list scan": lambda: [d for d in docs if d.get("city") == v],
        "python dict of lists": lambda: list(by_city.get(v, ())),
        "microdb indexed": lambda: dbi.query(q).all(),
        "microdb": lambda: db.query(q).all(),
        "sqlite3 indexed": lambda: [loads(doc) for _, doc in conni.execute(sql, (v,))],
        "sqlite3": lambda: [loads(doc) for _, doc in conn.execute(sql, (v,))],
    }
    for name in ("tinydb memory", "tinydb json"):
        if env.has(name):
            table, cond = env.systems[name], _tiny_cond("city") == v
            calls[name] = partial(table.search, cond)
    _same(case, {name: sorted(d["email"] for d in fn()) for name, fn in calls.items()})
    times = env.compare(calls)
    # Where the time goes: the same queries returning ids only, without copying documents.
    ids_times = env.compare({
        "microdb indexed": lambda: dbi.query(q).ids(),
        "microdb": lambda: db.query(q).ids(),
    })
    rows = [_row(case, name, n, t) for name, t in times.items()]
    rows += [_row("query city == v -> ids only", name, n, t) for name, t in ids_times.items()]
    rows.append(ratio_row(SUITE, "equality: index vs no index (microdb)", n, times["microdb"] / times["microdb indexed"],
                          "times faster with the index", ">= 50", TARGET_N))
    rows.append(ratio_row(SUITE, "equality: index vs no index, ids only", n,
                          ids_times["microdb"] / ids_times["microdb indexed"], "times faster with the index"))
    # What the indexed query spends beyond finding its ids is building the documents'
    # private copies. The query without an index builds the same copies, so no index can
    # make it faster than (no-index query) / (those copies).
    copies = max(times["microdb indexed"] - ids_times["microdb indexed"], 1e-12)
    rows.append(ratio_row(SUITE, "equality, indexed: copying documents / whole query", n,
                          copies / times["microdb indexed"], "of the indexed query is copying (the rest finds ids)"))
    rows.append(ratio_row(SUITE, "equality: the most an index can gain returning copies", n,
                          times["microdb"] / copies, "times (no-index query / copying time)"))
    rows.append(ratio_row(SUITE, "equality, indexed: microdb vs sqlite3", n,
                          times["sqlite3 indexed"] / times["microdb indexed"], "times faster than sqlite3 indexed",
                          ">= 2", TARGET_N))
    rows += _speedups("equality", n, times, "microdb indexed", ["tinydb memory", "tinydb json"])
    return rows


def bench_range(env: Env) -> list[dict[str, Any]]:
    """Range queries on an indexed field: one-sided (``age < 20``) and two-sided."""
    rows = _range_case(
        env, f"query age < {RANGE_AGE} -> docs", where("age") < RANGE_AGE,
        "json_extract(doc, '$.age') < ?", (RANGE_AGE,), lambda d: bool(d["age"] < RANGE_AGE),
        lambda age: age < RANGE_AGE, ">= 2",
    )
    rows += _range_case(
        env, f"query {RANGE_LOW} <= age < {RANGE_HIGH} -> docs",
        (where("age") >= RANGE_LOW) & (where("age") < RANGE_HIGH),
        "json_extract(doc, '$.age') >= ? AND json_extract(doc, '$.age') < ?", (RANGE_LOW, RANGE_HIGH),
        lambda d: bool(RANGE_LOW <= d["age"] < RANGE_HIGH),
        lambda age: (age >= RANGE_LOW) & (age < RANGE_HIGH), None,
    )
    return rows


def _range_case(
    env: Env, case: str, q: Any, where_sql: str, params: tuple[Any, ...],
    test: Callable[[dict[str, Any]], bool], tiny: Callable[[Any], Any], target: str | None,
) -> list[dict[str, Any]]:
    n, docs = env.n, env.docs
    db, dbi = env.systems["microdb"], env.systems["microdb indexed"]
    conn, conni = env.systems["sqlite3"], env.systems["sqlite3 indexed"]
    loads = json.loads
    sql = f"SELECT id, doc FROM docs WHERE {where_sql}"
    calls: dict[str, Callable[[], list[Any]]] = {
        "python list scan": lambda: [d for d in docs if test(d)],
        "microdb indexed": lambda: dbi.query(q).all(),
        "microdb": lambda: db.query(q).all(),
        "sqlite3 indexed": lambda: [loads(doc) for _, doc in conni.execute(sql, params)],
        "sqlite3": lambda: [loads(doc) for _, doc in conn.execute(sql, params)],
    }
    if env.has("tinydb memory"):
        calls["tinydb memory"] = partial(env.systems["tinydb memory"].search, tiny(_tiny_cond("age")))
    _same(case, {name: sorted(d["email"] for d in fn()) for name, fn in calls.items()})
    times = env.compare(calls)
    rows = [_row(case, name, n, t) for name, t in times.items()]
    label = case.split(" -> ")[0].removeprefix("query ")
    rows.append(ratio_row(SUITE, f"range ({label}), indexed: microdb vs sqlite3", n,
                          times["sqlite3 indexed"] / times["microdb indexed"], "times faster than sqlite3 indexed",
                          target, TARGET_N))
    plan = dbi.query(q).explain()
    rows.append({"kind": "info", "suite": SUITE, "case": case, "n": n,
                 "note": f"microdb indexed examined {plan.get('examined')} documents for {plan.get('matched')} "
                         f"matches ({plan.get('access')})"})
    return rows


def bench_sorted(env: Env) -> list[dict[str, Any]]:
    """The 10 youngest: ``sort`` + ``limit`` read from an ordered index, or a full sort."""
    case, n = "sort by age, limit 10", env.n
    db, dbi = env.systems["microdb"], env.systems["microdb indexed"]
    conn, conni = env.systems["sqlite3"], env.systems["sqlite3 indexed"]
    sql = "SELECT id, doc FROM docs ORDER BY json_extract(doc, '$.age'), id LIMIT 10"
    loads = json.loads
    calls: dict[str, Callable[[], list[Any]]] = {
        "microdb indexed": lambda: dbi.query().sort("age").limit(10).all(),
        "microdb": lambda: db.query().sort("age").limit(10).all(),
        "sqlite3 indexed": lambda: [loads(doc) for _, doc in conni.execute(sql)],
        "sqlite3": lambda: [loads(doc) for _, doc in conn.execute(sql)],
    }
    _same(case, {name: [d["email"] for d in fn()] for name, fn in calls.items()})
    times = env.compare(calls)
    rows = [_row(case, name, n, t) for name, t in times.items()]
    rows.append(ratio_row(SUITE, "sort+limit, indexed: microdb vs sqlite3", n,
                          times["sqlite3 indexed"] / times["microdb indexed"], "times faster than sqlite3 indexed"))
    return rows


def bench_get(env: Env) -> list[dict[str, Any]]:
    """Reading one document by its id."""
    case, n = "get by id", env.n
    rng = random.Random(7)
    ids = [rng.randint(1, n) for _ in range(1000)]
    db, conn, by_id = env.systems["microdb"], env.systems["sqlite3"], env.by_id
    loads = json.loads
    sql = "SELECT doc FROM docs WHERE id = ?"

    def rotating(fn: Callable[[int], Any]) -> Callable[[], Any]:
        it = itertools.cycle(ids)
        return lambda: fn(next(it))

    calls: dict[str, Callable[[int], Any]] = {
        "python dict": lambda i: by_id[i],
        "microdb": lambda i: db.get(doc_id=i),
        "sqlite3": lambda i: loads(conn.execute(sql, (i,)).fetchone()[0]),
    }
    for name in ("tinydb memory", "tinydb json"):
        if env.has(name):
            table = env.systems[name]
            calls[name] = partial(_tiny_get, table)
    _same(case, {name: [dict(fn(i)) for i in ids[:20]] for name, fn in calls.items()})
    times = env.compare({name: rotating(fn) for name, fn in calls.items()})
    rows = [_row(case, name, n, t) for name, t in times.items()]
    rows.append(ratio_row(SUITE, "get by id: microdb vs sqlite3 primary key", n, times["sqlite3"] / times["microdb"],
                          "times faster than sqlite3", ">= 2", TARGET_N))
    rows += _speedups("get by id", n, times, "microdb", ["tinydb memory", "tinydb json"])
    return rows


def bench_insert(n: int, timing: Timing, folder: str, *, tinydb: bool = True) -> list[dict[str, Any]]:
    """``insert_many`` of ``n`` documents into an empty table, indexes on city and age included."""
    case = "insert_many of n docs (indexes on city, age if any)"
    docs = make_docs(n)
    repeat = timing.slow().repeat if n >= 10_000 else timing.repeat
    folder = tempfile.mkdtemp(prefix=f"insert-{n}-", dir=folder)
    counter = itertools.count()
    notes: list[str] = []

    def fresh_microdb() -> MicroDB:
        db = MicroDB(InMemoryStorage())
        for name in INDEXED:
            db.create_index(name)
        return db

    def microdb_load(db: MicroDB) -> None:
        db.insert_many(docs)

    def fresh_sqlite(path: str = ":memory:") -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        _sqlite_indexes(conn)
        return conn

    def sqlite_load(conn: sqlite3.Connection) -> None:
        _sqlite_insert(conn, docs)
        conn.close()

    calls: dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]] = {
        "microdb": (microdb_load, fresh_microdb),
        "sqlite3": (sqlite_load, fresh_sqlite),
    }
    if tinydb and _tinydb_available():
        from tinydb import TinyDB
        from tinydb.storages import MemoryStorage

        def tiny_memory() -> Any:
            return TinyDB(storage=MemoryStorage).table("_default", cache_size=0)

        def tiny_json() -> Any:
            return TinyDB(os.path.join(folder, f"tiny-insert-{next(counter)}.json")).table("_default", cache_size=0)

        def tiny_load(table: Any) -> None:
            table.insert_multiple(docs)
            table.storage.close()

        calls["tinydb memory"] = (tiny_load, tiny_memory)
        calls["tinydb json"] = (tiny_load, tiny_json)
    times = compare_with_setup(calls, repeat=repeat)
    if _json_storage_available():
        # The durable file storages side by side: fsync at commit (MicroDB's default) and
        # SQLite in WAL mode with synchronous=FULL, one transaction.
        def json_db() -> MicroDB:
            db = MicroDB(os.path.join(folder, f"microdb-insert-{next(counter)}.json"))
            for name in INDEXED:
                db.create_index(name)
            return db

        def json_load(db: MicroDB) -> None:
            db.insert_many(docs)
            db.close()

        def sqlite_file() -> sqlite3.Connection:
            conn = fresh_sqlite(os.path.join(folder, f"sqlite-insert-{next(counter)}.db"))
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn

        try:
            times.update(compare_with_setup({
                "microdb json file": (json_load, json_db),
                "sqlite3 file (WAL, FULL)": (sqlite_load, sqlite_file),
            }, repeat=repeat))
        except Exception as exc:  # the file storage is young: report it, keep the other figures
            notes.append(f"microdb json file failed: {exc!r:.200}")
    rows = [_row(case, name, n, sec) for name, sec in times.items()]
    rows += [{"kind": "info", "suite": SUITE, "case": case, "n": n, "note": note} for note in notes]
    rows.append(ratio_row(SUITE, "insert_many with indexes: microdb vs sqlite3 executemany", n,
                          times["sqlite3"] / times["microdb"], "times as fast as sqlite3 (1 = same speed)",
                          ">= 1", TARGET_N))
    if "microdb json file" in times:
        rows.append(ratio_row(SUITE, "insert_many, durable files: microdb json vs sqlite3 file", n,
                              times["sqlite3 file (WAL, FULL)"] / times["microdb json file"], "times as fast as sqlite3"))
    rows += _speedups("insert_many", n, times, "microdb", ["tinydb memory", "tinydb json"])
    return rows


def bench_memory(n: int, folder: str | None = None, *, tinydb: bool = True) -> list[dict[str, Any]]:
    """Peak and retained memory while ``n`` documents are loaded (no index), vs a plain list.

    Every loader consumes the same generator, so the documents it builds are its own. With
    ``folder``, opening a JSON file of the documents is also measured, beside ``json.load``.
    """
    from common import iter_docs

    def plain() -> list[dict[str, Any]]:
        return list(iter_docs(n))

    def microdb() -> MicroDB:
        db = MicroDB(InMemoryStorage())
        db.insert_many(iter_docs(n))
        return db

    def microdb_one_by_one() -> MicroDB:
        db = MicroDB(InMemoryStorage())
        for doc in iter_docs(n):
            db.insert(doc)
        return db

    loaders: dict[str, Callable[[], Any]] = {
        "python list": plain, "microdb": microdb, "microdb, one insert per document": microdb_one_by_one,
    }
    if tinydb and _tinydb_available():
        from tinydb import TinyDB
        from tinydb.storages import MemoryStorage

        def tiny() -> Any:
            db = TinyDB(storage=MemoryStorage)
            db.insert_multiple(iter_docs(n))
            return db

        loaders["tinydb memory"] = tiny
    notes: list[str] = []
    opened: list[MicroDB] = []
    if folder is not None and _json_storage_available():
        path = os.path.join(tempfile.mkdtemp(prefix=f"memory-{n}-", dir=folder), "db.json")
        try:
            with MicroDB(path) as db:
                db.insert_many(iter_docs(n))
        except Exception as exc:  # the file storage is young: report it, keep the other figures
            notes.append(f"microdb json file failed: {exc!r:.200}")
        else:
            def open_json_file() -> Any:
                with open(path, encoding="utf-8") as f:
                    return json.load(f)

            def open_microdb() -> MicroDB:
                db = MicroDB(path)
                db.count()  # make sure the data is loaded, whatever the storage defers
                opened.append(db)
                return db

            loaders["json.load of the file"] = open_json_file
            loaders["microdb, opening the file"] = open_microdb
    peaks: dict[str, int] = {}
    retained: dict[str, int] = {}
    for name, load in loaders.items():
        result, peaks[name], retained[name] = peak_memory(load)
        del result
    for db in opened:
        db.close()
    rows: list[dict[str, Any]] = []
    for name in loaders:
        rows.append({"kind": "memory", "suite": SUITE, "case": "peak memory, n docs loaded", "system": name, "n": n,
                     "bytes": peaks[name]})
        rows.append({"kind": "memory", "suite": SUITE, "case": "retained memory, n docs loaded", "system": name,
                     "n": n, "bytes": retained[name]})
    rows += [{"kind": "info", "suite": SUITE, "case": "memory", "n": n, "note": note} for note in notes]
    rows.append(ratio_row(SUITE, "peak memory: microdb / python list", n, peaks["microdb"] / peaks["python list"],
                          "x the peak of a plain list", "<= 1.5", TARGET_N))
    rows.append(ratio_row(SUITE, "peak memory, one insert per document: microdb / python list", n,
                          peaks["microdb, one insert per document"] / peaks["python list"], "x the peak of a plain list"))
    rows.append(ratio_row(SUITE, "retained memory: microdb / python list", n,
                          retained["microdb"] / retained["python list"], "x the memory of a plain list"))
    if "microdb, opening the file" in loaders:
        rows.append(ratio_row(SUITE, "peak memory opening a file: microdb / json.load", n,
                              peaks["microdb, opening the file"] / peaks["json.load of the file"],
                              "x the peak of json.load"))
    return rows


# -- running ----------------------------------------------------------------------------------

def run_size(n: int, timing: Timing, folder: str, *, tinydb: bool = True) -> list[dict[str, Any]]:
    """Every case at one size."""
    env = Env.build(n, timing, folder, tinydb=tinydb)
    try:
        rows = bench_count(env)
        rows += bench_equality(env)
        rows += bench_range(env)
        rows += bench_sorted(env)
        rows += bench_get(env)
    finally:
        env.close()
    del env
    gc.collect()
    rows += bench_insert(n, timing, folder, tinydb=tinydb)
    rows += bench_memory(n, folder, tinydb=tinydb)
    return rows


def run(quick: bool = False, sizes: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """The whole engine benchmark: 1,000, 10,000 and 100,000 documents (quick: the first two)."""
    timing = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="microdb-bench-") as folder:
        for n in sizes or (QUICK_SIZES if quick else SIZES):
            print(f"[engine] {n:,} documents...", file=sys.stderr, flush=True)
            rows += run_size(n, timing, folder)
    return _ordered(rows)


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Group by kind so the printed tables read case by case rather than size by size.
    rank = {"time": 0, "memory": 1, "ratio": 2, "info": 3}
    return sorted(rows, key=lambda r: rank.get(str(r.get("kind")), 4))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/bench_engine.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 documents only, fewer repeats")
    parser.add_argument("--sizes", help="comma-separated document counts instead of the defaults")
    args = parser.parse_args(argv)
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else None
    print_rows(run(quick=args.quick, sizes=sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
