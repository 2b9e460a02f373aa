"""The web page end to end, in a real headless Chromium (Debian's) driven by Playwright.

Each test serves a real database with uvicorn on 127.0.0.1 and clicks through the page as
a person would. Under CI these tests fail, never skip, when the browser is missing.
"""

from __future__ import annotations

import datetime as dt
import http.server
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB
from microdb.web import create_app
from web_server import browser, free_port, serving

XSS_VALUE = "<img src=x onerror=\"window.__xss='value'\"><script>window.__xss='script'</script>"
XSS_TABLE = "t<img src=x onerror=\"window.__xss='table'\">"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module (a fresh profile)."""
    with browser() as context:
        yield context


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A new tab with no cookies; any alert() or console error is recorded on it."""
    chromium.clear_cookies()
    tab = chromium.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.set_default_timeout(10_000)
    yield tab
    tab.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MicroDB]:
    """A JSON-file database with 75 people (rich values included)."""
    database = MicroDB(str(tmp_path / "people.json"))
    database.table("people").insert_many(
        {"name": f"person {i}", "age": i, "born": dt.date(1990, 1, 1 + i % 28), "pay": Decimal("10.50"),
         "address": {"city": "Oslo" if i % 2 else "Rome"}}
        for i in range(75)
    )
    yield database
    database.close()


@pytest.fixture
def serve(db: MicroDB) -> Iterator[Callable[..., AbstractContextManager[str]]]:
    """Start the page for ``db`` with the given options; yields the base URL."""

    def start(**options: Any) -> AbstractContextManager[str]:
        return serving(create_app(db, **options))

    yield start


def ids_on(page: Any) -> list[int]:
    """The document ids the page lists."""
    return [int(i) for i in page.eval_on_selector_all("li.doc", "els => els.map(e => e.dataset.id)")]


def test_browse_tables_pages_and_documents(page: Any, serve: Any) -> None:
    """Sign in with the printed token, open a table, page through it, unfold a document."""
    with serve(token="tok3n") as base:
        page.goto(base + "/")
        assert "Sign in needed" in page.inner_text("h1")
        page.goto(base + "/?token=tok3n")
        assert page.url == base + "/"  # the token left the address bar
        assert "75" in page.inner_text("#tables")
        page.click("text=people")
        assert ids_on(page) == list(range(1, 51))
        page.wait_for_function("document.getElementById('count').textContent !== ''")
        assert page.inner_text("#count") == "75 documents"
        page.click("#next")
        assert ids_on(page) == list(range(51, 76))
        assert page.locator("#next").count() == 0
        page.click("#prev")
        assert ids_on(page) == list(range(1, 51))
        first = page.locator("li.doc").first
        assert first.locator("details.json").first.get_attribute("open") is None
        first.locator("summary").first.click()
        assert first.locator(".rich .type").first.inner_text() == "date"
        assert first.locator(".rich .text").first.inner_text() == "1990-01-01"
        assert first.locator(".key").first.is_visible()
        page.click("a.doc-id >> nth=0")
        assert page.inner_text("h1") == "Document 1"
        assert page.locator("#edit").count() == 0  # read-only by default
    assert page.dialogs == []


def test_query_box_plan_time_and_inline_errors(page: Any, serve: Any) -> None:
    """A query shows its documents, count, plan and time; a bad one shows the error inline."""
    with serve() as base:
        page.goto(base + "/t/people")
        page.fill("textarea[name=filter]", '{"age": {"$gte": 70}, "address.city": "Oslo"}')
        page.fill("input[name=sort]", "-age")
        page.fill("input[name=fields]", "name, age")
        page.click("#query button[type=submit]")
        assert ids_on(page) == [74, 72]  # ages 73 and 71
        assert page.inner_text("#matches") == "2"
        assert page.inner_text("#time").endswith(" ms")
        page.click("details.plan summary")
        assert '"access"' in page.inner_text("#plan")
        page.fill("textarea[name=filter]", '{"age": {"$gte": 70}')
        page.click("#query button[type=submit]")
        assert page.inner_text("#error").startswith("the filter is not valid JSON: Expecting ',' delimiter")
        assert "Traceback" not in page.content()
        page.fill("textarea[name=filter]", '{"age": {"$bogus": 1}}')
        page.click("#query button[type=submit]")
        assert "$bogus" in page.inner_text("#error")


def test_edit_validates_then_saves_and_shows_exact_errors(page: Any, serve: Any, db: MicroDB) -> None:
    """The editor flags bad JSON before saving, shows the server's exact error, and saves."""
    with serve(write=True) as base:
        page.goto(base + "/t/people/doc/3")
        page.click("#edit")
        editor = page.locator("#editor textarea")
        editor.fill('{"name": "Ann",}')
        assert page.inner_text("#editor-error").startswith("Not valid JSON:")
        assert "line 1" in page.inner_text("#editor-error")
        assert page.is_disabled("#save")
        editor.fill('{"name": "Ann", "seen": {"$datetime": "not a date"}}')
        assert page.is_enabled("#save")
        page.click("#save")
        page.wait_for_selector("#editor-error:not([hidden])")
        assert "bad $datetime value 'not a date'" in page.inner_text("#editor-error")
        assert db.table("people").get(doc_id=3)["name"] == "person 2"  # nothing changed
        editor.fill('{"name": "Ann", "seen": {"$datetime": "2024-05-01T12:00:00"}}')
        with page.expect_navigation():
            page.click("#save")
        assert page.inner_text("h1") == "Document 3"
        assert page.locator(".rich .type").first.inner_text() == "datetime"
        assert dict(db.table("people").get(doc_id=3)) == {"name": "Ann", "seen": dt.datetime(2024, 5, 1, 12)}


def test_insert_delete_and_indexes(page: Any, serve: Any, db: MicroDB) -> None:
    """Insert a document, delete one after confirming, create and drop an index."""
    with serve(write=True) as base:
        page.goto(base + "/t/people")
        page.click("#insert")
        page.locator("#editor textarea").fill('{"name": "New", "pay": {"$decimal": "3.10"}}')
        with page.expect_navigation():
            page.click("#save")
        assert page.inner_text("h1") == "Document 76"
        assert db.table("people").get(doc_id=76)["pay"] == Decimal("3.10")
        page.click("#delete")
        assert page.is_visible("#confirm")
        page.click("#cancel-delete")
        assert db.table("people").get(doc_id=76) is not None
        page.click("#delete")
        with page.expect_navigation():
            page.click("#confirm-delete")
        assert db.table("people").get(doc_id=76) is None
        assert page.url == base + "/t/people"
        page.fill("#create-index input[name=field]", "address.city")
        with page.expect_navigation():
            page.click("#create-index button")
        assert db.table("people").indexes() == [{"path": ["address", "city"], "unique": False}]
        page.fill("#create-index input[name=field]", "pay")
        page.check("#create-index input[name=unique]")
        page.click("#create-index button")
        page.wait_for_selector("#index-error:not([hidden])")
        assert "pay" in page.inner_text("#index-error")
        with page.expect_navigation():
            page.click("button.drop-index")
        assert db.table("people").indexes() == []


def test_read_only_refuses_writes_from_the_page(page: Any, serve: Any, db: MicroDB) -> None:
    """A read-only server shows no write controls and refuses a write sent from its own page."""
    with serve() as base:
        page.goto(base + "/t/people/doc/1")
        assert page.inner_text("#mode") == "read-only"
        assert page.locator("#edit, #delete, #editor").count() == 0
        page.goto(base + "/t/people")
        assert page.locator("#insert, #create-index").count() == 0
        status = page.evaluate("""async () => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/tables/people/documents/1', {method: 'DELETE', headers: {'X-CSRF-Token': csrf}});
            return [r.status, (await r.json()).error];
        }""")
        assert status[0] == 403 and "read-only" in status[1]
    assert db.table("people").get(doc_id=1) is not None


class _EvilPage(http.server.BaseHTTPRequestHandler):
    """Another site, whose page tries to change the database behind the user's back."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = f"""<!doctype html><body>
<form id="f" method="post" action="{self.target}/api/tables/people/documents" enctype="text/plain">
<input name='{{"doc": {{"hacked": 1}}, "x": "' value='"}}'></form>
<script>
window.results = [];
fetch("{self.target}/api/tables/people/documents/2", {{method: "DELETE", mode: "no-cors", credentials: "include"}})
  .then(r => window.results.push("fetch " + r.type), e => window.results.push("fetch failed"));
fetch("{self.target}/api/tables/people/documents", {{method: "POST", credentials: "include",
  headers: {{"Content-Type": "application/json", "X-CSRF-Token": "guess"}}, body: '{{"doc": {{"x": 1}}}}'}})
  .then(r => window.results.push("cors " + r.status), e => window.results.push("cors failed"));
</script></body>""".encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_cross_site_writes_are_refused(page: Any, serve: Any, db: MicroDB) -> None:
    """A page on another origin cannot change data by form, simple fetch or CORS fetch."""
    before = [dict(d) for d in db.table("people").all()]
    with serve(write=True) as base:
        page.goto(base + "/t/people")  # the user has the page open in another tab
        handler = type("Evil", (_EvilPage,), {"target": base})
        evil = http.server.HTTPServer(("127.0.0.1", free_port()), handler)
        thread = threading.Thread(target=evil.serve_forever, daemon=True)
        thread.start()
        try:
            attacker = page.context.new_page()
            attacker.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
            attacker.wait_for_function("window.results.length === 2")
            with attacker.expect_navigation():
                attacker.evaluate("document.getElementById('f').submit()")
            assert "refused" in attacker.content()
            attacker.close()
        finally:
            evil.shutdown()
            evil.server_close()
    assert [dict(d) for d in db.table("people").all()] == before


def test_table_page_follows_other_processes(page: Any, serve: Any, db: MicroDB, tmp_path: Path) -> None:
    """Without a reload, the table page shows a document another process inserts."""
    writer = "import sys\nfrom microdb import MicroDB\nwith MicroDB(sys.argv[1]) as db:\n    db.table('people').insert({'name': 'late'})\n"
    with serve() as base:
        page.goto(base + "/t/people?after=50")
        page.wait_for_selector("#live:not([hidden])")
        page.evaluate("window.stillHere = true")
        subprocess.run([sys.executable, "-c", writer, str(tmp_path / "people.json")], check=True, timeout=60)
        page.wait_for_selector('li.doc[data-id="76"]')
        assert page.evaluate("window.stillHere") is True  # swapped in, not reloaded
        assert "1 change" in page.inner_text("#live")
        page.wait_for_function("document.getElementById('count').textContent === '76 documents'")
        page.goto(base + "/t/people?filter=%7B%7D&sort=-age")  # a query waits to be run again
        page.wait_for_selector("#live:not([hidden])")
        subprocess.run([sys.executable, "-c", writer, str(tmp_path / "people.json")], check=True, timeout=60)
        page.wait_for_function("document.getElementById('live').textContent.includes('Run the query again')")
        page.goto("about:blank")  # close the event stream before the server stops


def test_markup_in_data_never_runs(page: Any, serve: Any, db: MicroDB) -> None:
    """Documents, keys, index names and table names holding <script> or onerror stay text."""
    table = db.table(XSS_TABLE)
    table.insert({"note": XSS_VALUE, XSS_VALUE: [XSS_VALUE], "nested": {"deep": XSS_VALUE}})
    table.create_index("note")
    db.table("people").update({"name": XSS_VALUE}, doc_ids=[1])
    with serve(write=True) as base:
        page.goto(base + "/")
        page.click("#tables a >> nth=1")
        page.locator("li.doc summary").first.click()
        assert XSS_VALUE in page.inner_text("li.doc")
        page.click("a.doc-id")
        page.click("#edit")
        page.goto(base + "/t/people?filter=" + XSS_VALUE.replace("#", "%23"))
        page.goto(base + "/t/people/doc/1")
        page.goto(base + "/t/people?fields=name&filter=%7B%22age%22%3A0%7D")
        assert XSS_VALUE in page.text_content("#docs")
        assert page.evaluate("window.__xss") is None
    assert page.dialogs == []
