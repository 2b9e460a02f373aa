"""Take the screenshots of the web page shown in docs/web.md (docs/images/web-*.png).

Usage: ``.venv/bin/python scripts/screenshots.py`` (needs the ``web`` and ``test`` extras and
Debian's ``chromium``, as the tests do). It builds a small example database in a temporary
folder, serves it on 127.0.0.1 with writes allowed, and photographs the main pages in
headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import socket
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from microdb import MicroDB
from microdb.web import create_app

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CITIES = ["Oslo", "Rome", "Lima", "Kyiv", "Seoul"]
NAMES = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth",
         "Frances Allen", "Ken Thompson", "Radia Perlman", "Niklaus Wirth", "Margaret Hamilton", "John Backus"]


def example(folder: Path) -> MicroDB:
    """A small database with rich values, two tables and an index."""
    db = MicroDB(str(folder / "shop.json"))
    people = db.table("people")
    for i, name in enumerate(NAMES * 3):
        people.insert({
            "name": name, "age": 20 + (i * 7) % 50, "joined": dt.datetime(2024, 1 + i % 12, 1 + i % 27, 9, 30, tzinfo=dt.timezone.utc),
            "balance": Decimal(f"{(i * 37) % 500}.{i % 100:02d}"), "id": uuid.UUID(int=0x5F5CB016 + i),
            "address": {"city": CITIES[i % 5], "zip": f"{1000 + i * 13}"}, "tags": ["vip", "beta"][: 1 + i % 2],
        })
    people.create_index("address.city")
    db.table("orders").insert_many({"person": 1 + i % 12, "total": Decimal(f"{i * 3}.50"), "on": dt.date(2024, 5, 1 + i)}
                                  for i in range(20))
    return db


def main() -> int:
    """Write the screenshots; 0 on success."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="microdb-shots-") as tmp:
        db = example(Path(tmp))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server = uvicorn.Server(uvicorn.Config(create_app(db, write=True), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                context = p.chromium.launch_persistent_context(
                    str(Path(tmp) / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
                    viewport={"width": 1100, "height": 760})
                page = context.new_page()
                page.goto(base + "/")
                page.screenshot(path=str(IMAGES / "web-tables.png"))
                page.goto(base + "/t/people")
                for summary in page.locator("li.doc > details > summary").all()[:2]:
                    summary.click()
                page.screenshot(path=str(IMAGES / "web-table.png"))
                page.goto(base + "/t/people?filter=" + '{"address.city": "Oslo", "age": {"$gte": 30}}'
                          + "&sort=-age&fields=name,age,address.city")
                page.click("details.plan summary")
                page.screenshot(path=str(IMAGES / "web-query.png"))
                page.goto(base + "/t/people/doc/3")
                page.click("#edit")
                page.locator("#editor textarea").fill('{\n  "name": "Grace Hopper",\n  "joined": {"$datetime": "2024-13-01"}\n}')
                page.click("#save")
                page.wait_for_selector("#editor-error:not([hidden])")
                page.screenshot(path=str(IMAGES / "web-edit.png"))
                context.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            db.close()
    for image in sorted(IMAGES.glob("web-*.png")):
        print(image.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
