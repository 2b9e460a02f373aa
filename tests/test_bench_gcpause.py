"""The collector-pause benchmark still runs: every case of ``bench_gcpause.py`` on 1,500 documents.

No timing is asserted. The benchmark runs in a fresh interpreter: its "alone" case needs
a process with one thread, which the test session (database pools, servers) is not.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import bench_gcpause
print(json.dumps(bench_gcpause.run(n=1500, rounds=1)))
"""


def test_every_case_times_both_modes_and_counts_collections() -> None:
    """Each case reports a time alone and beside a thread, their ratio and the collections."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(BENCH_DIR)], capture_output=True, text=True,
                          timeout=300, check=True)
    rows = json.loads(done.stdout)
    cases = {"insert_many of n docs", "all() -> docs", "query age < 20 (indexed) -> docs"}
    times = {(r["case"], r["system"]) for r in rows if r["kind"] == "time" and r["seconds"] > 0}
    assert times == {(c, s) for c in cases for s in ("alone (collector paused)", "beside a thread (collector on)")}
    assert {r["case"].split(":")[0] for r in rows if r["kind"] == "ratio" and r["ratio"] > 0} == cases
    notes = [r["note"] for r in rows if r["kind"] == "info"]
    assert len(notes) == 3 and all("cyclic collections during one run" in note for note in notes)
    # Inserting 1,500 documents alone pauses the collector; beside a thread it runs.
    note = next(r["note"] for r in rows if r["kind"] == "info" and r["case"] == "insert_many of n docs")
    alone, beside = map(int, re.findall(r"(\d+) (?:alone|beside)", note))
    assert alone < beside, note

def test_the_runner_knows_the_suite() -> None:
    """run.py lists the suite, so a full run includes it."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import run

        assert run.SUITES["gcpause"] == "bench_gcpause"
    finally:
        sys.path.remove(str(BENCH_DIR))
