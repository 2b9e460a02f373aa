"""The scale benchmarks still run, on tiny sizes, and report rows of the runner's shapes.

No timing is asserted: these tests keep ``benchmarks/bench_scale.py`` working as the
library changes (a case that crashes, or whose systems disagree, fails here).
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
def scale() -> Iterator[Any]:
    """The ``bench_scale`` module, imported the way the runner imports it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        module = importlib.import_module("bench_scale")
        module.MIN_TIME = 0.0001  # one call per timed group: these tests only run the code
        yield module
    finally:
        sys.path.remove(str(BENCH_DIR))


def _ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert rows and all(r["suite"] == "scale" for r in rows)
    for row in rows:
        if row["kind"] == "time":
            assert row["seconds"] > 0
    ratios = [r for r in rows if r["kind"] == "ratio"]
    assert ratios and all(r["ratio"] > 0 for r in ratios)
    return ratios


def test_index_scaling_reports_both_ratios(scale: Any) -> None:
    """Indexed against unindexed inserts, and the flatness ratio, for each kind of key."""
    ratios = _ratios(scale.bench_index_scaling((40, 200), kinds=("int", "str")))
    cases = {r["case"] for r in ratios}
    assert "int keys: indexed / unindexed inserts" in cases
    assert "str keys: one indexed insert at 200 / at 40 keys" in cases
    assert "int keys: indexed inserts and the first ordered read / unindexed inserts" in cases
    # The targets are judged at the big size only; the total with the first ordered read has none.
    assert all(r["met"] is not None for r in ratios if r["n"] == 200 and "first ordered read" not in r["case"])


@pytest.fixture(scope="module")
def docs(scale: Any) -> list[dict[str, Any]]:
    """A few hundred generated documents."""
    common = importlib.import_module("common")
    return list(common.make_docs(300))


@pytest.mark.parametrize("case", ["bench_compound", "bench_count", "bench_range", "bench_arrays"])
def test_query_cases_run_and_agree(scale: Any, docs: list[dict[str, Any]], case: str) -> None:
    """Each query case checks its systems agree, then reports times and ratios."""
    _ratios(getattr(scale, case)(docs))


def test_update_case_runs_on_durable_files(scale: Any, docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """The update case times set, $inc, $push and sqlite3's json_set, indexed and not."""
    ratios = _ratios(scale.bench_updates(docs, str(tmp_path), rounds=1))
    assert {r["case"] for r in ratios} >= {"update, indexed: $inc / set", "update, no index: microdb vs sqlite3 json_set"}


def test_group_commit_case_runs_threads_and_processes(scale: Any, tmp_path: Path) -> None:
    """The group commit case runs 1 and 8 threads, 4 processes and sqlite3."""
    ratios = _ratios(scale.bench_group_commit(str(tmp_path), 16, rounds=1))
    assert "group commit: 4 processes / 1 thread (JSON file)" in {r["case"] for r in ratios}
    # The model beside the measured ratios: w, c and f, and the ceilings they set.
    ceilings = [r for r in ratios if r["case"].startswith("group commit ceiling")]
    assert len(ceilings) == 2 and all(r["ratio"] > 0 for r in ceilings)


def test_big_file_case_runs_small(scale: Any, tmp_path: Path) -> None:
    """The big-file case opens, measures memory and inserts, on a small file."""
    ratios = _ratios(scale.bench_big_file(str(tmp_path), 500, small=100, k=5))
    assert any(r["case"] == "big file: open / json.load" for r in ratios)
