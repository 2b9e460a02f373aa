"""Run MicroDB's benchmarks in one go and print every table.

Usage::

    python benchmarks/run.py [--quick] [--only engine,storage,sql] [--markdown FILE]

``engine`` is ``bench_engine.py`` (queries, indexes, bulk inserts and memory of the
in-memory engine), ``storage`` is ``bench_storage.py`` (the durable JSON file) and ``sql``
is ``bench_sql.py`` (the SQLite and PostgreSQL backends), ``live`` is ``bench_live.py`` (the
change feed's latency across processes, the async API's event-loop lag, a watcher's cost),
``aggregate`` is ``bench_aggregate.py`` (``$group`` in SQL vs in Python), ``web`` is
``bench_web.py`` (the web page's first table page on a large SQLite database). Each module exposes
``run(quick: bool) -> list[dict]``; one that does not exist yet is skipped with a note.
``--markdown FILE`` also writes the results as markdown, with the machine and the method.

``gcpause`` is ``bench_gcpause.py`` (what pausing the cyclic collector saves bulk work);
it runs first, as its "alone" case needs a process with one thread.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import platform
import sqlite3
import sys
import time
import traceback
from importlib import metadata
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    # The benchmark modules import their shared helpers as ``common``.
    sys.path.insert(0, HERE)

from common import format_rows  # noqa: E402

#: Suite name -> module name, in the order they run.
SUITES: dict[str, str] = {
    # First, while the process has one thread: its "alone" case needs that.
    "gcpause": "bench_gcpause",
    "engine": "bench_engine", "storage": "bench_storage", "sql": "bench_sql", "live": "bench_live",
    "aggregate": "bench_aggregate", "web": "bench_web", "cli": "bench_cli", "scale": "bench_scale",
}

METHOD = """\
- Every system gets the same generated documents (about 240 bytes of JSON each: name,
  email, age, city, tags, nested address, score, active; `benchmarks/common.py`, fixed
  seed), at 1,000, 10,000 and 100,000 documents, in one process, one after the other.
- A time is the best of several runs (`time.perf_counter`), after a warm-up call; short
  operations are repeated in groups lasting at least 0.1 s and divided. The systems of a
  case are timed in interleaved rounds (each round times every system once), so a busy
  spell of the machine slows them all rather than one. Operations that change their
  input (bulk inserts) get a fresh empty table, untimed, before each run. The garbage
  collector stays on, as in a real program, with a full collection before each timed run.
- Before timing a case, the benchmark checks that every system returns the same answer.
- `sqlite3` stores one row per document, the document as JSON text, with expression
  indexes on `json_extract(doc, '$.city')` and `json_extract(doc, '$.age')`; returned
  documents are parsed back into dicts with `json.loads`. TinyDB runs with its query cache
  off, so a repeated query is run again.
- Memory is measured with `tracemalloc` while loading documents from the same generator:
  the peak during the load and what stays allocated after it.
- A ratio's target is judged at 100,000 documents; ratios at smaller sizes are shown for
  the trend.
"""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "microdb": _version("microdb"),
        "tinydb": _version("tinydb"),
        "SQLite (sqlite3 module)": sqlite3.sqlite_version,
        "orjson": _version("orjson"),
        "psycopg": _version("psycopg"),
    }


def load_suites(names: list[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """The benchmark modules to run, and notes on those skipped."""
    modules: list[tuple[str, Any]] = []
    notes: list[str] = []
    for name in names:
        module_name = SUITES[name]
        if not os.path.exists(os.path.join(HERE, module_name + ".py")):
            notes.append(f"{name}: skipped, benchmarks/{module_name}.py does not exist yet")
            continue
        try:
            modules.append((name, importlib.import_module(module_name)))
        except Exception as exc:  # a broken suite must not hide the others' results
            notes.append(f"{name}: skipped, importing {module_name} failed: {exc!r}")
    return modules, notes


def to_markdown(rows: list[dict[str, Any]], notes: list[str], quick: bool, seconds: float) -> str:
    """The results as a markdown document with the machine and the method."""
    lines = [
        "# MicroDB benchmark results",
        "",
        f"Run on {_dt.date.today().isoformat()} with `python benchmarks/run.py{' --quick' if quick else ''}`"
        f" ({seconds:.0f} s).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in machine().items()]
    lines += ["", "## Method", "", METHOD.rstrip(), "", "## Results", "", format_rows(rows, markdown=True)]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Run MicroDB's benchmarks and print the tables.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--only", default=",".join(SUITES),
                        help=f"comma-separated suites to run (default: {','.join(SUITES)})")
    parser.add_argument("--markdown", metavar="FILE", help="also write the results as markdown to FILE")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    modules, notes = load_suites(names)
    for note in notes:
        print(note, file=sys.stderr)
    rows: list[dict[str, Any]] = []
    failed = False
    start = time.perf_counter()
    for name, module in modules:
        try:
            suite_rows = list(module.run(quick=args.quick))
        except Exception:
            failed = True
            notes.append(f"{name}: failed: {traceback.format_exc(limit=3).strip().splitlines()[-1]}")
            traceback.print_exc()
            continue
        for row in suite_rows:
            row.setdefault("suite", name)
        rows += suite_rows
        print(format_rows(suite_rows), flush=True)
        print(flush=True)
    elapsed = time.perf_counter() - start
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(to_markdown(rows, notes, args.quick, elapsed))
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
