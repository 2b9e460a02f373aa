"""The benchmarks still run: each engine case on 200 documents, the tables and the runner.

No timing is asserted; these tests only keep the benchmark code working as the library
changes (a benchmark that crashes, or whose systems disagree, fails here).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
N = 200

TIME_KEYS = {"kind", "suite", "case", "system", "n", "seconds"}
MEMORY_KEYS = {"kind", "suite", "case", "system", "n", "bytes"}
RATIO_KEYS = {"kind", "suite", "case", "n", "ratio", "meaning", "target", "met"}
INFO_KEYS = {"kind", "suite", "case", "n", "note"}
KEYS = {"time": TIME_KEYS, "memory": MEMORY_KEYS, "ratio": RATIO_KEYS, "info": INFO_KEYS}


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """The ``bench_engine`` module, imported the way the runner imports it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield importlib.import_module("bench_engine")
    finally:
        sys.path.remove(str(BENCH_DIR))


@pytest.fixture(scope="module")
def env(bench: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Every system loaded with 200 documents, timed once per case (no repeats)."""
    folder = tmp_path_factory.mktemp("bench")
    loaded = bench.Env.build(N, bench.Timing(1, 0.0), str(folder))
    yield loaded
    loaded.close()


def _check_rows(rows: list[dict[str, Any]], *, systems: set[str] | None = None) -> None:
    assert rows
    for row in rows:
        assert set(row) == KEYS[row["kind"]], row
        assert row["suite"] == "engine" and row["n"] == N
        if row["kind"] == "time":
            assert row["seconds"] > 0
        elif row["kind"] == "memory":
            assert row["bytes"] > 0
        elif row["kind"] == "ratio":
            assert row["ratio"] > 0
            # Targets are judged at 100,000 documents only.
            assert row["target"] is None and row["met"] is None
    if systems is not None:
        assert systems <= {r["system"] for r in rows if r["kind"] == "time"}


@pytest.mark.parametrize(
    ("case", "systems"),
    [
        ("bench_count", {"python list scan", "microdb", "sqlite3", "tinydb memory", "tinydb json"}),
        ("bench_equality", {"python dict of lists", "microdb indexed", "microdb", "sqlite3 indexed", "tinydb json"}),
        ("bench_range", {"python list scan", "microdb indexed", "sqlite3 indexed", "tinydb memory"}),
        ("bench_sorted", {"microdb indexed", "microdb", "sqlite3 indexed", "sqlite3"}),
        ("bench_get", {"python dict", "microdb", "sqlite3", "tinydb memory", "tinydb json"}),
    ],
)
def test_query_cases_return_rows_for_every_system(bench: Any, env: Any, case: str, systems: set[str]) -> None:
    """Each query case runs on 200 documents and reports a row per system, plus ratios."""
    rows = getattr(bench, case)(env)
    _check_rows(rows, systems=systems)
    assert any(r["kind"] == "ratio" for r in rows)


def test_insert_case_reports_microdb_and_sqlite(bench: Any, tmp_path: Path) -> None:
    """The bulk insert case times MicroDB and sqlite3 on fresh tables."""
    rows = bench.bench_insert(N, bench.Timing(1, 0.0), str(tmp_path))
    _check_rows(rows, systems={"microdb", "sqlite3", "tinydb memory", "tinydb json"})


def test_memory_case_reports_peak_and_retained(bench: Any) -> None:
    """The memory case measures MicroDB and a plain list, peak and retained."""
    rows = bench.bench_memory(N)
    _check_rows(rows, systems=set())
    cases = {(r["case"], r["system"]) for r in rows if r["kind"] == "memory"}
    assert ("peak memory, n docs loaded", "microdb") in cases
    assert ("retained memory, n docs loaded", "python list") in cases


def test_disagreeing_systems_are_refused(bench: Any) -> None:
    """A case whose systems return different answers raises instead of timing them."""
    bench._same("case", {"a": [1], "b": [1]})
    with pytest.raises(RuntimeError, match="disagree"):
        bench._same("case", {"a": [1], "b": [2]})


def test_tables_render_every_kind_as_text_and_markdown(bench: Any) -> None:
    """format_rows prints measurements, ratios with verdicts, notes and unknown rows."""
    common = importlib.import_module("common")

    rows = [
        {"kind": "time", "suite": "engine", "case": "c", "system": "s", "n": 10, "seconds": 0.002},
        {"kind": "memory", "suite": "engine", "case": "m", "system": "s", "n": 10, "bytes": 4096},
        common.ratio_row("engine", "r", 10, 3.0, "times faster", ">= 2", 10),
        common.ratio_row("engine", "r", 5, 1.0, "times faster", ">= 2", 10),
        {"kind": "info", "suite": "engine", "case": "c", "n": 10, "note": "a note"},
        {"suite": "other", "what": "x", "value": 1.5},
    ]
    text = common.format_rows(rows)
    assert "2.00 ms" in text and "4.0 KiB" in text and "3.00x" in text and "met" in text and "a note" in text
    assert "== other ==" in text and "what" in text
    markdown = common.format_rows(rows, markdown=True)
    assert "### engine" in markdown and "| c | s | 2.00 ms |" in markdown


@pytest.mark.parametrize(
    ("value", "target", "met"),
    [(2.0, ">= 2", True), (1.9, ">= 2", False), (1.3, "<= 1.3", True), (1.31, "<= 1.3", False), (5.0, None, None)],
)
def test_check_target(bench: Any, value: float, target: str | None, met: bool | None) -> None:
    """A ratio meets '>= x' and '<= x' targets as written; no target gives no verdict."""
    common = importlib.import_module("common")

    assert common.check_target(value, target) is met


def test_runner_skips_missing_suites_and_writes_markdown(bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """run.py skips a suite whose module does not exist and writes machine and method."""
    run = importlib.import_module("run")

    modules, notes = run.load_suites(["engine"])
    assert [name for name, _ in modules] == ["engine"]
    monkeypatch.setitem(run.SUITES, "ghost", "bench_ghost_does_not_exist")
    modules, notes = run.load_suites(["ghost"])
    assert modules == [] and "does not exist yet" in notes[0]
    rows = [{"kind": "time", "suite": "engine", "case": "c", "system": "s", "n": 10, "seconds": 0.5}]
    text = run.to_markdown(rows, notes, quick=True, seconds=1.0)
    assert "## Machine" in text and "| Python |" in text and "## Method" in text and "| c | s |" in text
