"""The storage benchmark still runs: every case of ``bench_storage.py`` on a few documents.

No timing is asserted; a case that crashes, reports a malformed row or loses a system
fails here, so the benchmark cannot rot while the JSON file storage changes.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"

KEYS = {
    "time": {"kind", "suite", "case", "system", "n", "seconds"},
    "ratio": {"kind", "suite", "case", "n", "ratio", "meaning", "target", "met"},
    "info": {"kind", "suite", "case", "n", "note"},
}


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """The ``bench_storage`` module, imported the way the runner imports it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield importlib.import_module("bench_storage")
    finally:
        sys.path.remove(str(BENCH_DIR))


def _check(rows: list[dict[str, Any]], systems: set[str], ratios: int) -> None:
    """Well-formed rows of the storage suite: a positive time per system, ``ratios`` ratios."""
    assert rows
    for row in rows:
        assert set(row) == KEYS[row["kind"]], row
        assert row["suite"] == "storage"
        if row["kind"] == "time":
            assert row["seconds"] > 0, row
        elif row["kind"] == "ratio":
            assert row["ratio"] > 0, row
    assert {r["system"] for r in rows if r["kind"] == "time"} == systems
    assert sum(r["kind"] == "ratio" for r in rows) == ratios


def test_single_inserts_time_every_system(bench: Any, tmp_path: Path) -> None:
    """Single inserts time MicroDB (durable and fast) and sqlite3 at both settings, with TinyDB."""
    rows = bench.bench_single_inserts(str(tmp_path), 20, rounds=1, tinydb=True)
    _check(rows, {
        "MicroDB durable", "MicroDB fast (durable=False)", "sqlite3 WAL synchronous=FULL",
        "sqlite3 WAL synchronous=NORMAL", "TinyDB JSONStorage",
    }, ratios=3)


def test_growth_compares_a_small_and_a_large_file(bench: Any, tmp_path: Path) -> None:
    """The per-insert cost is measured at both file sizes, with one ratio per MicroDB mode."""
    rows = bench.bench_growth(str(tmp_path), (20, 60), k=5, rounds=1)
    assert {r["n"] for r in rows if r["kind"] == "time"} == {20, 60}
    _check(rows, {
        "MicroDB durable", "MicroDB fast (durable=False)", "sqlite3 WAL synchronous=FULL",
        "sqlite3 WAL synchronous=NORMAL",
    }, ratios=2)


def test_checkpoint_reports_its_time_and_share(bench: Any, tmp_path: Path) -> None:
    """The checkpoint case times compact() and says what it adds to each insert."""
    rows = bench.bench_checkpoint(str(tmp_path), 50, rounds=1)
    _check(rows, {"MicroDB"}, ratios=0)
    assert any(r["kind"] == "info" and "single inserts" in r["note"] for r in rows)


def test_interval_compares_with_and_without_the_time_rule(bench: Any, tmp_path: Path) -> None:
    """The time rule's cost is measured in both durability modes, one ratio each."""
    rows = bench.bench_interval(str(tmp_path), 30, seconds=0.05, rounds=1)
    _check(rows, {
        "MicroDB durable", "MicroDB durable, checkpoint_interval=None",
        "MicroDB fast (durable=False)", "MicroDB fast (durable=False), checkpoint_interval=None",
    }, ratios=2)


def test_reopen_compares_with_json_load(bench: Any, tmp_path: Path) -> None:
    """Reopening a file is timed beside json.load of the same snapshot."""
    rows = bench.bench_reopen(str(tmp_path), 50, rounds=1)
    _check(rows, {"MicroDB(path)", "json.load of the snapshot"}, ratios=1)


def test_runner_knows_the_suite(bench: Any) -> None:
    """run.py lists the storage suite, so ``--only storage`` reaches this module."""
    run = importlib.import_module("run")
    assert run.SUITES["storage"] == "bench_storage"
    assert callable(bench.run)
