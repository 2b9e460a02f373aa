"""The SQL benchmark still runs: every case of ``bench_sql.py`` on a few hundred documents.

No timing is asserted; a case that crashes, whose query stops using its index, or that
reports a malformed row fails here. The PostgreSQL case uses the server the test session
starts (skipped without one outside CI, failed in CI).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB
from sql_backends import require_postgres

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
N = 300

KEYS = {
    "time": {"kind", "suite", "case", "system", "n", "seconds"},
    "ratio": {"kind", "suite", "case", "n", "ratio", "meaning", "target", "met"},
}


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """The ``bench_sql`` module, imported the way the runner imports it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield importlib.import_module("bench_sql")
    finally:
        sys.path.remove(str(BENCH_DIR))


@pytest.fixture
def once(bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each measurement times one call (the code path stays the benchmark's own)."""
    common = importlib.import_module("common")
    monkeypatch.setattr(bench, "measure", lambda fn, **_: common.measure(fn, repeat=1, min_time=0.0, warmup=0))


def _check(rows: list[dict[str, Any]], systems: set[str]) -> None:
    assert rows
    for row in rows:
        assert set(row) == KEYS[row["kind"]], row
        assert row["suite"] == "sql" and row["n"] == N
        assert row.get("seconds", row.get("ratio")) > 0, row
    assert {r["system"] for r in rows if r["kind"] == "time"} == systems


def test_sqlite_case_times_the_query_with_and_without_index(bench: Any, once: None, tmp_path: Path) -> None:
    """The SQLite case loads, times both queries unindexed, indexes them and times them again."""
    rows = bench._sqlite(N, str(tmp_path), quick=True)
    _check(rows, {"sqlite", "sqlite, no index", "sqlite, index"})
    assert sum(r["kind"] == "ratio" for r in rows) == 2


def test_memory_case_measures_every_read(bench: Any, tmp_path: Path) -> None:
    """The memory case reports a positive peak for each of its four reads."""
    with MicroDB(f"sqlite:///{tmp_path / f'bench-{N}.db'}", durable=False) as db:
        bench._load(db, N)
        db.table("people").create_index("city")
    peaks = bench._memory(N, str(tmp_path))
    assert len(peaks) == 4 and all(p > 0 for p in peaks.values())


def test_postgres_case_pushes_the_indexed_query_down(bench: Any, once: None) -> None:
    """The PostgreSQL case checks its answers and times the pushed-down query beside a Python filter."""
    require_postgres()
    rows = bench._postgres(N)
    _check(rows, {"postgresql", "postgresql, all rows + Python filter", "postgresql, index, pushed down"})
    assert sum(r["kind"] == "ratio" for r in rows) == 2
