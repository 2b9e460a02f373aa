"""The web page's benchmark still runs (on 300 documents; no timing is asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def test_bench_web_runs_at_small_size() -> None:
    """bench_web times the first page, a deep page, the API page and the sqlite3 reference."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        bench = importlib.import_module("bench_web")
        run = importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH_DIR))
    rows = bench.run(quick=True, n=300)
    times = {(r["case"], r["system"]) for r in rows if r["kind"] == "time"}
    assert ("first table page (HTML)", "microdb web") in times
    assert ("first 50 rows", "sqlite3 + json.loads") in times
    assert all(r["seconds"] > 0 for r in rows if r["kind"] == "time")
    target = [r for r in rows if r["kind"] == "ratio" and r["case"] == "first table page, milliseconds"]
    assert len(target) == 1 and target[0]["met"] is None  # the target is judged at 1,000,000 only
    assert run.SUITES["web"] == "bench_web"
