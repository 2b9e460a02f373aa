"""The ``microdb`` command against ``sqlite-utils``: importing NDJSON from the shell.

Both commands run as users run them, in a fresh process each (interpreter start included):
``microdb insert DB TABLE FILE.ndjson`` into a JSON file database, and
``sqlite-utils insert DB.db TABLE FILE.ndjson --nl`` into SQLite, on the same lines
(``common.iter_docs``). Each run starts from no database file. The two commands are timed
in interleaved rounds, best of three; ``sqlite-utils`` is a benchmark-only dependency
(``pip install sqlite-utils``), and the suite notes its absence rather than failing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from common import iter_docs, ratio_row

SUITE = "cli"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_ndjson(path: str, n: int) -> None:
    """``n`` generated documents, one JSON object per line."""
    with open(path, "w", encoding="utf-8") as f:
        for doc in iter_docs(n):
            f.write(json.dumps(doc) + "\n")


def _env() -> dict[str, str]:
    src = os.path.join(ROOT, "src")
    return dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))


def sqlite_utils_command() -> list[str] | None:
    """How to run sqlite-utils here, or ``None`` when it is not installed."""
    beside = os.path.join(os.path.dirname(sys.executable), "sqlite-utils")
    if os.path.exists(beside):
        return [beside]
    found = shutil.which("sqlite-utils")
    return [found] if found else None


def _timed(argv: list[str], cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()[:300]}")
    return elapsed


def _fresh(folder: str) -> None:
    for name in os.listdir(folder):
        if name.startswith("target"):
            os.remove(os.path.join(folder, name))


def _count_microdb(folder: str) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "microdb", "count", "target.json", "docs"], cwd=folder, env=_env(),
        capture_output=True, text=True, check=True, timeout=600,
    )
    return int(out.stdout)


def _count_sqlite(folder: str) -> int:
    import sqlite3

    with sqlite3.connect(os.path.join(folder, "target.db")) as conn:
        return int(conn.execute("select count(*) from docs").fetchone()[0])


def import_case(n: int, rounds: int, folder: str) -> list[dict[str, Any]]:
    """Rows for importing ``n`` NDJSON lines with each command."""
    source = os.path.join(folder, "docs.ndjson")
    write_ndjson(source, n)
    systems: dict[str, tuple[list[str], Callable[[str], int]]] = {
        "microdb": ([sys.executable, "-m", "microdb", "insert", "target.json", "docs", source, "--silent"], _count_microdb),
    }
    other = sqlite_utils_command()
    if other is not None:
        systems["sqlite-utils"] = ([*other, "insert", "target.db", "docs", source, "--nl"], _count_sqlite)
    best = {name: float("inf") for name in systems}
    for _ in range(rounds):
        for name, (argv, count) in systems.items():
            _fresh(folder)
            best[name] = min(best[name], _timed(argv, folder))
            got = count(folder)
            if got != n:
                raise RuntimeError(f"{name} stored {got} documents of {n}")
    _fresh(folder)
    rows: list[dict[str, Any]] = [
        {"kind": "time", "suite": SUITE, "case": "import NDJSON", "system": name, "n": n, "seconds": t}
        for name, t in best.items()
    ]
    if "sqlite-utils" in best:
        rows.append(ratio_row(
            SUITE, "import NDJSON", n, best["microdb"] / best["sqlite-utils"],
            "microdb insert time / sqlite-utils insert --nl time", "<= 1", target_n=max(SIZES_FULL),
        ))
    else:
        rows.append({"kind": "info", "suite": SUITE, "case": "import NDJSON", "n": n,
                     "note": "sqlite-utils is not installed (pip install sqlite-utils): no comparison"})
    return rows


SIZES_QUICK = (10_000,)
SIZES_FULL = (100_000, 1_000_000)


def run(quick: bool = False, sizes: tuple[int, ...] | None = None, rounds: int | None = None) -> list[dict[str, Any]]:
    """Every row of this suite (``quick``: 10,000 lines, one round)."""
    chosen = sizes or (SIZES_QUICK if quick else SIZES_FULL)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for n in chosen:
            rows.extend(import_case(n, rounds or (1 if quick else 3), folder))
    return rows


if __name__ == "__main__":  # pragma: no cover
    from common import print_rows

    print_rows(run(quick="--quick" in sys.argv))
