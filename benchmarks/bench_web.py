"""The web page's table page on a large SQLite database: how long the first page takes.

A table page shows 50 documents found by id (keyset paging), so its cost should not grow
with the table. This benchmark loads 1,000,000 documents (20,000 with ``--quick``) into a
SQLite database and times, through the ASGI application in-process (routing, the database
reads, the template, no network):

- the table page (``GET /t/people``): the first 50 documents as collapsible HTML;
- the same page deep in the table (``?after=`` the middle id);
- the API's first page (``GET /api/tables/people/documents``), the same reads as JSON;
- the best case beside them: ``sqlite3`` reading 50 rows by id and ``json.loads`` on each.

The target: the table page's first page in at most 100 ms on 1,000,000 documents.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
from typing import Any

from common import iter_docs, measure, print_rows, ratio_row
from starlette.testclient import TestClient

from microdb import MicroDB
from microdb.web import create_app

SUITE = "web"
BATCH = 20_000


def _load(path: str, n: int) -> None:
    with MicroDB(f"sqlite:///{path}", durable=False) as db:
        table = db.table("people")
        docs = iter_docs(n)
        while True:
            batch = [d for _, d in zip(range(BATCH), docs)]
            if not batch:
                break
            table.insert_many(batch)


def _raw_first_page(path: str) -> Any:
    """The best case: 50 rows by id straight from sqlite3, parsed into dicts."""
    con = sqlite3.connect(path)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    data = next(t for t in tables if t.startswith("mdb_") and t[4:].isdigit())
    column = [r[1] for r in con.execute(f"PRAGMA table_info({data})")][1]

    def read() -> list[dict[str, Any]]:
        return [json.loads(text) for _, text in con.execute(f"SELECT id, {column} FROM {data} ORDER BY id LIMIT 50")]

    return con, read


def _row(case: str, system: str, n: int, seconds: float) -> dict[str, Any]:
    return {"kind": "time", "suite": SUITE, "case": case, "system": system, "n": n, "seconds": seconds}


def run(quick: bool = False, n: int | None = None) -> list[dict[str, Any]]:
    """Time the table page's first page (and a deep one) on ``n`` documents."""
    n = n or (20_000 if quick else 1_000_000)
    repeat, min_time = (2, 0.01) if quick else (5, 0.05)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="microdb-bench-web-") as folder:
        path = os.path.join(folder, "people.db")
        print(f"[web] SQLite, {n:,} documents...", file=sys.stderr, flush=True)
        _load(path, n)
        with MicroDB(f"sqlite:///{path}") as db:
            client = TestClient(create_app(db))

            def page(url: str) -> Any:
                def get() -> None:
                    response = client.get(url)
                    assert response.status_code == 200 and response.text.count('class="doc"') == min(50, n)
                return get

            def api_page() -> None:
                assert len(client.get("/api/tables/people/documents").json()["documents"]) == min(50, n)

            first = measure(page("/t/people"), repeat=repeat, min_time=min_time)
            deep = measure(page(f"/t/people?after={n // 2}" if n > 100 else "/t/people"), repeat=repeat, min_time=min_time)
            api = measure(api_page, repeat=repeat, min_time=min_time)
            con, read = _raw_first_page(path)
            try:
                assert [d["email"] for d in read()] == [d["email"] for d in iter_docs(min(50, n))]
                raw = measure(read, repeat=repeat, min_time=min_time)
            finally:
                con.close()
    rows.append(_row("first table page (HTML)", "microdb web", n, first))
    rows.append(_row("table page after the middle id (HTML)", "microdb web", n, deep))
    rows.append(_row("first page (JSON API)", "microdb web", n, api))
    rows.append(_row("first 50 rows", "sqlite3 + json.loads", n, raw))
    rows.append(ratio_row(SUITE, "first table page, milliseconds", n, first * 1000, "ms (target: at most 100)",
                          "<= 100", 1_000_000))
    rows.append(ratio_row(SUITE, "deep page vs first page", n, deep / first, "times the first page's time"))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/bench_web.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20,000 documents, for a smoke run")
    args = parser.parse_args(argv)
    print_rows(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
