"""``benchmarks/bench_cli.py`` still runs: both commands import a few lines, rows well formed.

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
    """The ``bench_cli`` module, imported the way the runner imports it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield importlib.import_module("bench_cli")
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_import_case_times_both_commands(bench: Any) -> None:
    """Both commands store every line; a ratio row compares them (or a note says why not)."""
    rows = bench.run(sizes=(300,), rounds=1)
    times = {r["system"]: r["seconds"] for r in rows if r["kind"] == "time"}
    assert "microdb" in times and all(t > 0 for t in times.values())
    if bench.sqlite_utils_command() is not None:
        (ratio,) = [r for r in rows if r["kind"] == "ratio"]
        assert ratio["ratio"] > 0 and ratio["n"] == 300
    else:
        assert any(r["kind"] == "info" and "sqlite-utils" in r["note"] for r in rows)


def test_the_runner_knows_the_suite() -> None:
    """run.py lists the suite, so ``--only cli`` runs it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        assert importlib.import_module("run").SUITES["cli"] == "bench_cli"
    finally:
        sys.path.remove(str(BENCH_DIR))
