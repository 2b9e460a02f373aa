"""The SQL backends: indexes pushed down to SQLite and PostgreSQL, and memory at scale.

Run ``python benchmarks/bench_sql.py [--quick]``. Cases:

- **SQLite, one million documents** (``--quick``: 20,000): the same query with and without
  an index, all through MicroDB's API (``where('email') == v``: one match; ``where('city')
  == v``: one document in 50). Target: the indexed query at least 100x faster.
- **SQLite, memory**: the peak that ``tracemalloc`` sees while counting, reading a page
  (``limit(100)``) and scanning without an index, at 100,000 and at one million documents
  (quick: 2,000 and 20,000). The data stays in the file, so the peak does not grow with it.
- **PostgreSQL, 100,000 documents** (quick: 5,000), on a throwaway server started like the
  tests do (``tests/pg_server.py``): an indexed query pushed down vs fetching every row
  and filtering in Python (``[d for d in db.all() if ...]``). Target: at least 50x.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
TESTS = os.path.join(os.path.dirname(HERE), "tests")

from common import CITIES, iter_docs, measure, peak_memory, print_rows, ratio_row  # noqa: E402

from microdb import MicroDB, where  # noqa: E402

__all__ = ["run"]

SUITE = "sql"
BATCH = 20_000


def _load(db: MicroDB, n: int) -> None:
    table = db.table("people")
    batch: list[dict[str, Any]] = []
    for doc in iter_docs(n):
        batch.append(doc)
        if len(batch) >= BATCH:
            table.insert_many(batch)
            batch = []
    if batch:
        table.insert_many(batch)


def _time_row(case: str, system: str, n: int, seconds: float) -> dict[str, Any]:
    return {"kind": "time", "suite": SUITE, "case": case, "system": system, "n": n, "seconds": seconds}


def _queries(n: int) -> dict[str, Any]:
    email = next(d["email"] for i, d in enumerate(iter_docs(n)) if i == n // 2)
    return {"email == v (1 match)": where("email") == email, "city == v (1 in 50)": where("city") == CITIES[38]}


def _sqlite(n: int, folder: str, quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    url = f"sqlite:///{os.path.join(folder, f'bench-{n}.db')}"
    db = MicroDB(url, durable=False)
    start = time.perf_counter()
    _load(db, n)
    rows.append(_time_row("insert_many (batches of 20,000)", "sqlite", n, time.perf_counter() - start))
    table = db.table("people")
    queries = _queries(n)
    plain: dict[str, float] = {}
    for case, query in queries.items():
        expected = table.query(query).ids()
        plain[case] = measure(lambda q=query: table.query(q).all(), repeat=2 if not quick else 3, min_time=0.0, warmup=0)
        rows.append(_time_row(case, "sqlite, no index", n, plain[case]))
        assert table.query(query).ids() == expected
    for field in ("email", "city"):
        start = time.perf_counter()
        table.create_index(field)
        rows.append(_time_row(f"create_index({field!r})", "sqlite", n, time.perf_counter() - start))
    for case, query in queries.items():
        plan = table.query(query).explain()
        assert plan["index"] is not None, plan
        indexed = measure(lambda q=query: table.query(q).all(), repeat=5, min_time=0.05)
        rows.append(_time_row(case, "sqlite, index", n, indexed))
        target = ">= 100" if case.startswith("email") else None
        rows.append(ratio_row(SUITE, f"SQLite {case}: index vs none", n, plain[case] / indexed,
                              "times faster with the index", target, None if quick else 1_000_000))
    db.close()
    return rows


def _memory(n: int, folder: str) -> dict[str, int]:
    url = f"sqlite:///{os.path.join(folder, f'bench-{n}.db')}"
    db = MicroDB(url)
    table = db.table("people")
    peaks: dict[str, int] = {}
    cases: dict[str, Callable[[], Any]] = {
        "count(city == v), indexed": lambda: table.count(where("city") == CITIES[3]),
        "query(age < 20).limit(100)": lambda: table.query(where("age") < 20).limit(100).all(),
        "count(score > 99.5), no index": lambda: table.count(where("score") > 99.5),
        "query().sort('score').limit(10)": lambda: table.query().sort(("score", -1)).limit(10).all(),
    }
    for case, fn in cases.items():
        fn()  # warm caches and compiled queries
        _, peak, _ = peak_memory(fn)
        peaks[case] = peak
    db.close()
    return peaks


def _postgres(n: int) -> list[dict[str, Any]]:
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    import pg_server

    reason = pg_server.unavailable()
    if reason is not None:
        return [{"kind": "info", "suite": SUITE, "case": "PostgreSQL", "n": n, "note": f"skipped: {reason}"}]
    db = MicroDB(pg_server.server().url, schema=f"bench_{os.getpid()}")
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    _load(db, n)
    rows.append(_time_row("insert_many (batches of 20,000)", "postgresql", n, time.perf_counter() - start))
    table = db.table("people")
    for field in ("email", "city"):
        table.create_index(field)
    for case, query in _queries(n).items():
        field, value = query.path[0], query.operand

        def naive(f: str = field, v: Any = value) -> list[Any]:
            return [d for d in table.all() if d.get(f) == v]

        expected = sorted(d.doc_id for d in naive())
        assert table.query(query).ids() == expected
        plan = table.query(query).explain()
        assert plan["index"] is not None, plan
        slow = measure(naive, repeat=3, min_time=0.0, warmup=1)
        fast = measure(lambda q=query: table.query(q).all(), repeat=5, min_time=0.1)
        rows.append(_time_row(case, "postgresql, all rows + Python filter", n, slow))
        rows.append(_time_row(case, "postgresql, index, pushed down", n, fast))
        target = ">= 50" if case.startswith("email") else None
        rows.append(ratio_row(SUITE, f"PostgreSQL {case}: pushed down vs Python filter", n, slow / fast,
                              "times faster pushed down", target, None if n < 100_000 else 100_000))
    db.close()
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every SQL case; ``quick`` uses small sizes (the targets are judged on the full run)."""
    big, small, pg_n = (20_000, 2_000, 5_000) if quick else (1_000_000, 100_000, 100_000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="microdb-bench-sql-") as folder:
        print(f"[sql] SQLite, {big:,} documents...", file=sys.stderr, flush=True)
        rows += _sqlite(big, folder, quick)
        print(f"[sql] SQLite, {small:,} documents (memory)...", file=sys.stderr, flush=True)
        with MicroDB(f"sqlite:///{os.path.join(folder, f'bench-{small}.db')}", durable=False) as db:
            _load(db, small)
            db.table("people").create_index("city")
        low, high = _memory(small, folder), _memory(big, folder)
        for case in low:
            rows.append({"kind": "memory", "suite": SUITE, "case": case, "system": "sqlite", "n": small,
                         "bytes": low[case]})
            rows.append({"kind": "memory", "suite": SUITE, "case": case, "system": "sqlite", "n": big,
                         "bytes": high[case]})
            rows.append(ratio_row(SUITE, f"peak memory of {case}, {big:,} vs {small:,} docs", big,
                                  high[case] / max(1, low[case]), "times the peak at the smaller size",
                                  "<= 2", None if quick else 1_000_000))
    print(f"[sql] PostgreSQL, {pg_n:,} documents...", file=sys.stderr, flush=True)
    rows += _postgres(pg_n)
    rank = {"time": 0, "memory": 1, "ratio": 2, "info": 3}
    return sorted(rows, key=lambda r: rank.get(str(r.get("kind")), 4))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/bench_sql.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    print_rows(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
