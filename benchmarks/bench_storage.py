"""The durable JSON file beside TinyDB's JSON storage and ``sqlite3``, measured in one run.

Run ``python benchmarks/bench_storage.py [--quick]``. Three questions, each on the same
generated documents (:func:`common.make_docs`) for every system:

1. **Single inserts.** 10,000 documents (quick: 1,000) inserted into an empty file one
   call at a time. Systems: MicroDB durable (fsync at each commit) and fast
   (``durable=False``: handed to the OS); ``sqlite3`` in WAL mode, one transaction per
   insert, with ``synchronous=FULL`` (the match for durable) and ``NORMAL`` (the match for
   fast); TinyDB's default ``JSONStorage``, which rewrites and fsyncs the whole file on
   every write (run once: it is slow).
2. **Cost of one write against the file's size.** Files of 1,000 and 100,000 documents
   (quick: 1,000 and 20,000) are filled, closed and reopened; then 1,000 (quick: 300) more
   documents are inserted one call at a time. The per-insert time must not grow with the
   file. This measures the commit path; checkpoints are folded in separately (below).
3. **Reopening.** Opening a closed file of 100,000 documents (quick: 20,000) against
   ``json.load`` of the same snapshot file.

Disk timings are noisy, so the systems of one question take turns, round after round,
and a time is the median of the rounds. The cost of a checkpoint (``compact()``) is shown
too, with what it adds to each insert once spread over the journal growth that triggers it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from common import iter_docs, make_docs, print_rows, ratio_row  # noqa: E402

from microdb import MicroDB  # noqa: E402
from microdb.storage.options import DEFAULT_CHECKPOINT_BYTES, DEFAULT_CHECKPOINT_INTERVAL  # noqa: E402

__all__ = ["bench_growth", "bench_interval", "bench_reopen", "bench_single_inserts", "run"]

SUITE = "storage"

Doc = dict[str, Any]


# -- the systems: open an empty store, insert one document per call, close -------------------------

class _System:
    """One storage under test: ``open(path)``, ``insert(doc)`` (one commit), ``close()``."""

    name = ""

    def open(self, path: str) -> None:
        raise NotImplementedError

    def insert(self, doc: Doc) -> None:
        raise NotImplementedError

    def fill(self, docs: list[Doc]) -> None:
        """Load many documents fast (untimed setup)."""
        for doc in docs:
            self.insert(doc)

    def close(self) -> None:
        raise NotImplementedError


class _MicroDB(_System):
    def __init__(self, durable: bool, interval: float | None = DEFAULT_CHECKPOINT_INTERVAL):
        self.durable = durable
        self.interval = interval
        self.name = "MicroDB durable" if durable else "MicroDB fast (durable=False)"
        if interval != DEFAULT_CHECKPOINT_INTERVAL:
            self.name += f", checkpoint_interval={interval}"
        self.db: MicroDB | None = None

    def open(self, path: str) -> None:
        self.db = MicroDB(path + ".json", durable=self.durable, checkpoint_interval=self.interval)

    def insert(self, doc: Doc) -> None:
        assert self.db is not None
        self.db.insert(doc)

    def fill(self, docs: list[Doc]) -> None:
        assert self.db is not None
        self.db.insert_many(docs)

    def close(self) -> None:
        assert self.db is not None
        self.db.close()


class _SQLite(_System):
    def __init__(self, synchronous: str):
        self.synchronous = synchronous
        self.name = f"sqlite3 WAL synchronous={synchronous}"
        self.conn: sqlite3.Connection | None = None

    def open(self, path: str) -> None:
        self.conn = sqlite3.connect(path + ".db", isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self.conn.execute("CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")

    def insert(self, doc: Doc) -> None:
        assert self.conn is not None
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO docs (doc) VALUES (?)", (json.dumps(doc),))
        self.conn.execute("COMMIT")

    def fill(self, docs: list[Doc]) -> None:
        assert self.conn is not None
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO docs (doc) VALUES (?)", ((json.dumps(d),) for d in docs))
        self.conn.execute("COMMIT")

    def close(self) -> None:
        assert self.conn is not None
        self.conn.close()


class _TinyDB(_System):
    name = "TinyDB JSONStorage"

    def open(self, path: str) -> None:
        from tinydb import TinyDB  # imported here only: TinyDB is a benchmark peer, not a dependency

        self.db = TinyDB(path + ".tinydb.json")

    def insert(self, doc: Doc) -> None:
        self.db.insert(doc)

    def fill(self, docs: list[Doc]) -> None:
        self.db.insert_multiple(docs)

    def close(self) -> None:
        self.db.close()


def _tinydb_available() -> bool:
    try:
        import tinydb  # noqa: F401
    except ImportError:
        return False
    return True


def _fresh(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    os.makedirs(path)
    return os.path.join(path, "store")


def _time_inserts(system: _System, path: str, docs: list[Doc], prefill: list[Doc] | None = None) -> float:
    """Seconds to insert ``docs`` one call at a time (after an untimed prefill and reopen)."""
    system.open(path)
    if prefill:
        system.fill(prefill)
        system.close()
        system.open(path)
    if hasattr(os, "sync"):
        os.sync()  # let the disk finish the setup's writes: they would slow whoever comes next
    gc.collect()
    start = time.perf_counter()
    for doc in docs:
        system.insert(doc)
    elapsed = time.perf_counter() - start
    system.close()
    return elapsed


def _row(case: str, system: str, n: int, seconds: float) -> dict[str, Any]:
    return {"kind": "time", "suite": SUITE, "case": case, "system": system, "n": n, "seconds": seconds}


def _info(case: str, n: int, note: str) -> dict[str, Any]:
    return {"kind": "info", "suite": SUITE, "case": case, "n": n, "note": note}


# -- 1. single inserts ----------------------------------------------------------------------------

def bench_single_inserts(folder: str, n: int, rounds: int, tinydb: bool) -> list[dict[str, Any]]:
    """Insert ``n`` documents one call at a time into an empty file, every system in turn."""
    docs = make_docs(n)
    systems: list[_System] = [_MicroDB(True), _SQLite("FULL"), _MicroDB(False), _SQLite("NORMAL")]
    times: dict[str, list[float]] = {s.name: [] for s in systems}
    for r in range(rounds):
        for system in systems:
            times[system.name].append(_time_inserts(system, _fresh(folder, f"single-{r}-{len(times[system.name])}-{id(system)}"), docs))
    case = f"{n:,} inserts, one call each (total)"
    rows = [_row(case, name, n, statistics.median(t)) for name, t in times.items()]
    median = {name: statistics.median(t) for name, t in times.items()}
    durable, fast = median["MicroDB durable"], median["MicroDB fast (durable=False)"]
    if tinydb:
        print(f"[storage] TinyDB: {n:,} single inserts (this takes a while)...", file=sys.stderr, flush=True)
        tiny = _time_inserts(_TinyDB(), _fresh(folder, "single-tinydb"), docs)
        rows.append(_row(case, "TinyDB JSONStorage", n, tiny))
        rows.append(ratio_row(SUITE, "single inserts: TinyDB / MicroDB durable", n, tiny / durable,
                              "times faster than TinyDB (both fsync every write)", ">= 50", 10_000))
    rows.append(ratio_row(SUITE, "single inserts: sqlite3 FULL / MicroDB durable", n,
                          median["sqlite3 WAL synchronous=FULL"] / durable,
                          "times as fast as sqlite3 at the same durability", ">= 1"))
    rows.append(ratio_row(SUITE, "single inserts: sqlite3 NORMAL / MicroDB fast", n,
                          median["sqlite3 WAL synchronous=NORMAL"] / fast,
                          "times as fast as sqlite3 at the same durability", ">= 1"))
    return rows


# -- 2. the cost of a write against the file's size ---------------------------------------------------

def bench_growth(folder: str, sizes: tuple[int, int], k: int, rounds: int) -> list[dict[str, Any]]:
    """Per-insert time of ``k`` single inserts into files of each size, every system in turn."""
    small, large = sizes
    prefills = {small: make_docs(small, seed=1), large: make_docs(large, seed=1)}
    extra = make_docs(k, seed=2)
    systems: list[_System] = [_MicroDB(True), _MicroDB(False), _SQLite("FULL"), _SQLite("NORMAL")]
    rows: list[dict[str, Any]] = []
    per: dict[tuple[str, int], float] = {}
    for size in sizes:
        print(f"[storage] one insert into a file of {size:,} documents...", file=sys.stderr, flush=True)
        times: dict[str, list[float]] = {s.name: [] for s in systems}
        for r in range(rounds):
            for system in systems:
                path = _fresh(folder, f"growth-{size}-{r}-{id(system)}")
                times[system.name].append(_time_inserts(system, path, extra, prefills[size]) / k)
                shutil.rmtree(os.path.dirname(path))
        for name, t in times.items():
            per[(name, size)] = statistics.median(t)
            rows.append(_row("one insert into a file of n documents", name, size, per[(name, size)]))
    for name in ("MicroDB durable", "MicroDB fast (durable=False)"):
        rows.append(ratio_row(SUITE, f"{name}: insert at {large:,} / at {small:,}", large,
                              per[(name, large)] / per[(name, small)],
                              "per-insert time at the large file over the small one", "<= 1.5"))
    return rows


def bench_interval(folder: str, size: int, seconds: float, rounds: int) -> list[dict[str, Any]]:
    """What the time rule (``checkpoint_interval``, 1 s) costs: inserts into a file of ``size``
    documents for ``seconds``, with the rule and without it (size rule only)."""
    prefill = make_docs(size, seed=1)
    extra = make_docs(20_000, seed=3)
    rows: list[dict[str, Any]] = []
    for durable in (True, False):
        systems: list[_MicroDB] = [_MicroDB(durable), _MicroDB(durable, None)]
        times: dict[str, list[float]] = {s.name: [] for s in systems}
        for r in range(rounds):
            for system in systems:
                path = _fresh(folder, f"interval-{durable}-{r}-{id(system)}")
                system.open(path)
                system.fill(prefill)
                system.close()
                system.open(path)
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    system.insert(extra[count % len(extra)])
                    count += 1
                times[system.name].append((time.perf_counter() - start) / count)
                system.close()
                shutil.rmtree(os.path.dirname(path))
        per = {name: statistics.median(t) for name, t in times.items()}
        for name, value in per.items():
            rows.append(_row(f"one insert into a file of n documents, for {seconds:g} s", name, size, value))
        with_rule, without = per[systems[0].name], per[systems[1].name]
        rows.append(ratio_row(SUITE, f"{systems[0].name}: with the 1 s time rule / without", size, with_rule / without,
                              "per-insert time with checkpoint_interval=1 over None", "<= 1.25"))
    return rows


def bench_checkpoint(folder: str, n: int, rounds: int) -> list[dict[str, Any]]:
    """Time of a checkpoint (compact) of ``n`` documents, and its share of each insert."""
    path = os.path.join(folder, "checkpoint", "db.json")
    extra = make_docs(1, seed=4)[0]
    with MicroDB(path, durable=False) as db:
        db.insert_many(make_docs(n, seed=3))
        db.compact()
        db.insert(extra)
        record = db.backend.store.file.pending_bytes  # type: ignore[attr-defined]  # one insert's record
        snapshot = os.path.getsize(path)
        best = float("inf")
        for _ in range(rounds):
            db.insert(dict(extra))
            start = time.perf_counter()
            db.compact()
            best = min(best, time.perf_counter() - start)
    # With the defaults a checkpoint comes once the journal outgrows the snapshot (and 4 MiB):
    # spread over the inserts that grew it, this is what it adds to each one.
    inserts_between = max(snapshot, DEFAULT_CHECKPOINT_BYTES) / max(record, 1)
    return [
        _row("checkpoint (compact) of n documents", "MicroDB", n, best),
        _info("checkpoint", n, f"a checkpoint every ~{inserts_between:,.0f} single inserts of this size adds "
                               f"~{best / inserts_between * 1e6:.1f} µs to each (constant in n: both grow with the file)"),
    ]


# -- 3. reopening ------------------------------------------------------------------------------------

def bench_reopen(folder: str, n: int, rounds: int) -> list[dict[str, Any]]:
    """Opening a closed file of ``n`` documents, against ``json.load`` of the same file."""
    path = os.path.join(folder, "reopen", "db.json")
    with MicroDB(path) as db:
        db.insert_many(list(iter_docs(n)))

    def load() -> float:
        gc.collect()
        start = time.perf_counter()
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        elapsed = time.perf_counter() - start
        assert len(data["_default"]) == n
        return elapsed

    def reopen() -> float:
        gc.collect()
        start = time.perf_counter()
        db = MicroDB(path)
        elapsed = time.perf_counter() - start
        assert len(db) == n
        db.close()
        return elapsed

    timings: dict[str, Callable[[], float]] = {"json.load of the snapshot": load, "MicroDB(path)": reopen}
    best = {name: min(fn() for _ in range(rounds)) for name, fn in timings.items()}
    case = "open a file of n documents"
    rows = [_row(case, name, n, seconds) for name, seconds in best.items()]
    rows.append(ratio_row(SUITE, "reopen: MicroDB / json.load", n, best["MicroDB(path)"] / best["json.load of the snapshot"],
                          "times json.load of the same data", "<= 1.5"))
    return rows


def _fsync_latency(folder: str) -> float:
    """Median time of one small write plus fdatasync on this disk (context for the figures)."""
    path = os.path.join(folder, "fsync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, bytes(1 << 16))
        os.fsync(fd)
        samples = []
        for i in range(200):
            start = time.perf_counter()
            os.pwrite(fd, b"x" * 256, i * 256)
            getattr(os, "fdatasync", os.fsync)(fd)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)
    finally:
        os.close(fd)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The whole storage benchmark (quick: smaller files, fewer rounds, TinyDB on 1,000)."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="microdb-bench-storage-") as folder:
        try:
            import orjson  # noqa: F401

            parser = "orjson (the fast extra)"
        except ImportError:
            parser = "the standard json module"
        rows.append(_info("setup", 0, f"MicroDB parses with {parser}; one write+fdatasync on this disk "
                                     f"takes {_fsync_latency(folder) * 1e6:.0f} µs (median)"))
        n_single = 1_000 if quick else 10_000
        print(f"[storage] {n_single:,} single inserts...", file=sys.stderr, flush=True)
        rows += bench_single_inserts(folder, n_single, rounds=2 if quick else 3, tinydb=_tinydb_available())
        sizes = (1_000, 20_000) if quick else (1_000, 100_000)
        rows += bench_growth(folder, sizes, k=300 if quick else 1_000, rounds=2 if quick else 3)
        rows += bench_checkpoint(folder, sizes[1], rounds=2 if quick else 3)
        print("[storage] the time rule's cost...", file=sys.stderr, flush=True)
        rows += bench_interval(folder, sizes[1], seconds=1.5 if quick else 4.0, rounds=1 if quick else 3)
        print("[storage] reopening...", file=sys.stderr, flush=True)
        rows += bench_reopen(folder, sizes[1], rounds=3 if quick else 5)
    rank = {"time": 0, "ratio": 1, "info": 2}
    return sorted(rows, key=lambda r: rank.get(str(r.get("kind")), 3))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/bench_storage.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller files, fewer rounds, TinyDB on 1,000 inserts")
    args = parser.parse_args(argv)
    print_rows(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
