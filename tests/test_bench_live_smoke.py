"""``benchmarks/bench_live.py`` still runs: every measure at a tiny size, rows well formed.

No timing is asserted; this only keeps the benchmark working as the library changes.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """The ``bench_live`` module, imported the way the runner imports it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield importlib.import_module("bench_live")
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_latency_is_measured_across_processes(bench: Any, tmp_path: Path) -> None:
    """A watcher process reports one delay per commit."""
    p50, p99, c50, c99 = bench.latency("json file", str(tmp_path / "db.json"), {}, 5)
    assert 0 < p50 <= p99 and 0 < c50 <= c99


def test_loop_lag_and_watcher_cost(bench: Any, tmp_path: Path) -> None:
    """The loop-lag and writer-cost measures return sane numbers."""
    p99, worst, queries, idle = bench.loop_lag(200, 0.2, freeze=True)
    assert 0 <= p99 <= worst and queries > 0 and idle >= 0
    watched, feed = bench.watcher_cost(str(tmp_path), 50, 1)
    assert watched > 0 and feed > 0


def test_runner_knows_the_suite() -> None:
    """``benchmarks/run.py --only live`` finds this module."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        run = importlib.import_module("run")
        assert run.SUITES["live"] == "bench_live"
    finally:
        sys.path.remove(str(BENCH_DIR))
