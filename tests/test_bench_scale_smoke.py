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
        yield importlib.import_module("bench_scale")
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
    # The target is judged at the big size only.
    assert all(r["met"] is not None for r in ratios if r["n"] == 200)
