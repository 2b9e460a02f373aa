"""Live updates: the table's event stream follows commits made by other processes."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from microdb import MicroDB
from microdb.storage import InMemoryStorage
from microdb.web import create_app
from web_server import serving

WRITER = """
import sys
from microdb import MicroDB
with MicroDB(sys.argv[1]) as db:
    db.table("notes").insert({"text": "from another process"})
    db.table("notes").remove(doc_ids=[1])
"""


def open_events(base: str, path: str, **headers: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """An open event stream (status checked by the caller)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    conn.request("GET", path, headers={"accept": "text/event-stream", **headers})
    return conn, conn.getresponse()


def next_event(response: http.client.HTTPResponse) -> dict[str, str]:
    """The next event of the stream (comments skipped): its field -> value."""
    fields: dict[str, str] = {}
    while True:
        line = response.readline().decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if not line:
            if fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value


@pytest.fixture(params=["json", "sqlite"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database on disk with one note, as a path or URL another process can open."""
    spec = str(tmp_path / "notes.json") if request.param == "json" else f"sqlite:///{tmp_path / 'notes.db'}"
    with MicroDB(spec) as db:
        db.table("notes").insert({"text": "first"})
    yield spec


def test_event_stream_follows_another_process(spec: str) -> None:
    """A commit by another process arrives as a change event naming the op and the id."""
    with MicroDB(spec) as db, serving(create_app(db)) as base:
        conn, response = open_events(base, "/api/tables/notes/events")
        try:
            assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
            assert response.readline().decode().startswith(": following")
            subprocess.run([sys.executable, "-c", WRITER, spec], check=True, timeout=60)
            seen: list[dict[str, object]] = []
            while len(seen) < 2:
                event = next_event(response)
                assert event["event"] == "change"
                seen.extend(json.loads(event["data"])["changes"])
            assert seen == [{"op": "insert", "id": 2}, {"op": "remove", "id": 1}]
        finally:
            conn.close()


def test_event_stream_needs_a_feed_and_access(tmp_path: Path) -> None:
    """Storages without a change feed answer 404 (the page keeps its Refresh button); unknown
    tables answer 404; a signed-in server refuses a stream to a stranger."""
    memory = MicroDB(InMemoryStorage())
    memory.table("notes").insert({"a": 1})
    with serving(create_app(memory)) as base:
        conn, response = open_events(base, "/api/tables/notes/events")
        assert response.status == 404 and "change feed" in json.loads(response.read())["error"]
        conn.close()
    with MicroDB(str(tmp_path / "db.json")) as db, serving(create_app(db, token="t0k")) as base:
        db.table("notes").insert({"a": 1})
        conn, response = open_events(base, "/api/tables/notes/events")
        assert response.status == 401
        conn.close()
        conn, response = open_events(base, "/api/tables/nothing/events", authorization="Bearer t0k")
        assert response.status == 404 and json.loads(response.read()) == {"error": "no table 'nothing'"}
        conn.close()
