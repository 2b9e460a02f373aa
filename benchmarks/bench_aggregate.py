"""Aggregation: ``$group`` by city with ``$avg`` of age, run as SQL vs fetched and grouped in Python.

Run ``python benchmarks/bench_aggregate.py [--quick]``. One case, at one million documents
(``--quick``: 20,000), on the SQLite backend, every system in the same run:

- **MicroDB aggregate**: ``table.aggregate([{'$group': {'_id': '$city', 'avg': {'$avg':
  '$age'}}}])``: the ``$group`` runs as one ``GROUP BY`` in SQLite.
- **fetch + Python**: ``table.all()`` and a dict of running sums: what a program does
  without ``aggregate``. Target: ``aggregate`` at least 20x faster.
- **sqlite3 GROUP BY** (the best case): the same ``GROUP BY`` on a plain ``sqlite3`` table
  of JSON text, without MicroDB's guards.
- **MicroDB memory engine**: the same pipeline on the in-memory engine (Python ``$group``).

Every system's groups are checked to be the same before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from common import compare, iter_docs, print_rows, ratio_row  # noqa: E402

from microdb import MicroDB  # noqa: E402

__all__ = ["PIPELINE", "run", "run_case"]

SUITE = "aggregate"
BATCH = 20_000
PIPELINE: list[dict[str, Any]] = [{"$group": {"_id": "$city", "avg": {"$avg": "$age"}}}]
CASE = "$group by city, $avg of age"


def _fetch_and_group(table: Any) -> dict[Any, float]:
    sums: dict[Any, list[float]] = {}
    for doc in table.all():
        acc = sums.get(doc.get("city"))
        if acc is None:
            acc = sums[doc.get("city")] = [0.0, 0]
        age = doc.get("age")
        if isinstance(age, (int, float)) and not isinstance(age, bool):
            acc[0] += age
            acc[1] += 1
    return {city: total / count for city, (total, count) in sums.items() if count}


def _as_dict(groups: list[dict[str, Any]]) -> dict[Any, float]:
    return {g["_id"]: g["avg"] for g in groups}


def _same(a: dict[Any, float], b: dict[Any, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 * max(1.0, abs(a[k])) for k in a)


def run_case(n: int, folder: str, *, repeat: int = 3, min_time: float = 0.0) -> list[dict[str, Any]]:
    """Load ``n`` documents into every system, check they agree, time them; result rows."""
    rows: list[dict[str, Any]] = []
    db = MicroDB(f"sqlite:///{os.path.join(folder, f'aggregate-{n}.db')}", durable=False)
    table = db.table("people")
    memory = MicroDB().table("people")
    raw = sqlite3.connect(os.path.join(folder, f"raw-{n}.db"))
    raw.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
    batch: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, doc in enumerate(iter_docs(n), 1):
        batch.append(doc)
        if len(batch) >= BATCH or i == n:
            table.insert_many(batch)
            memory.insert_many(batch)
            raw.executemany("INSERT INTO people (doc) VALUES (?)", [(json.dumps(d),) for d in batch])
            batch = []
    raw.commit()
    rows.append({"kind": "info", "suite": SUITE, "case": "load", "n": n,
                 "note": f"{n:,} documents loaded into three systems in {time.perf_counter() - start:.1f} s"})
    raw_sql = ("SELECT json_extract(doc, '$.city'), AVG(json_extract(doc, '$.age')) FROM people "
               "GROUP BY 1 ORDER BY MIN(id)")
    calls = {
        "MicroDB aggregate (SQLite)": lambda: table.aggregate(PIPELINE),
        "fetch + Python (SQLite)": lambda: _fetch_and_group(table),
        "sqlite3 GROUP BY": lambda: raw.execute(raw_sql).fetchall(),
        "MicroDB aggregate (memory)": lambda: memory.aggregate(PIPELINE),
    }
    expected = _as_dict(table.aggregate(PIPELINE))
    assert _same(expected, _fetch_and_group(table)), "fetch + Python disagrees"
    assert _same(expected, dict(raw.execute(raw_sql).fetchall())), "sqlite3 disagrees"
    assert _same(expected, _as_dict(memory.aggregate(PIPELINE))), "the memory engine disagrees"
    best = compare(calls, repeat=repeat, min_time=min_time, warmup=0)
    for system, seconds in best.items():
        rows.append({"kind": "time", "suite": SUITE, "case": CASE, "system": system, "n": n, "seconds": seconds})
    rows.append(ratio_row(SUITE, f"{CASE}: aggregate vs fetch + Python (SQLite)", n,
                          best["fetch + Python (SQLite)"] / best["MicroDB aggregate (SQLite)"],
                          "times faster in SQL", ">= 20", 1_000_000))
    rows.append(ratio_row(SUITE, f"{CASE}: MicroDB vs plain sqlite3 GROUP BY", n,
                          best["MicroDB aggregate (SQLite)"] / best["sqlite3 GROUP BY"],
                          "times the time of the best case", None))
    db.close()
    raw.close()
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The suite's rows: one million documents, or 20,000 with ``quick``."""
    with tempfile.TemporaryDirectory() as folder:
        return run_case(20_000 if quick else 1_000_000, folder, repeat=3 if quick else 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 documents instead of one million")
    args = parser.parse_args(argv)
    print_rows(run(args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
