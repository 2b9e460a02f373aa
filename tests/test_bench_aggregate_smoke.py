"""benchmarks/bench_aggregate.py still runs: its one case on 300 documents, every system agreeing.

No timing is asserted: this keeps the benchmark working as the library changes.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def test_aggregate_benchmark_runs_and_systems_agree(tmp_path: Path) -> None:
    """The case loads every system, checks their groups agree, and reports times and ratios."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        bench = importlib.import_module("bench_aggregate")
        run_module = importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH_DIR))
    rows = bench.run_case(300, str(tmp_path), repeat=1)
    systems = {r["system"] for r in rows if r["kind"] == "time"}
    assert systems == {"MicroDB aggregate (SQLite)", "fetch + Python (SQLite)", "sqlite3 GROUP BY",
                       "MicroDB aggregate (memory)"}
    ratios = [r for r in rows if r["kind"] == "ratio"]
    assert len(ratios) == 2 and all(r["ratio"] > 0 and r["n"] == 300 for r in ratios)
    assert run_module.SUITES["aggregate"] == "bench_aggregate"
