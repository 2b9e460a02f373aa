"""Starting the web page as a real process: the printed address, the token, the refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from microdb import MicroDB, UnsupportedFeature
from microdb.web import run
from microdb.web.server import is_loopback
from web_server import free_port, wait_for_port


def fetch(url: str, **headers: str) -> tuple[int, str]:
    """GET ``url``: the status and the body (no redirects followed)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A JSON-file database with one document holding markup."""
    path = tmp_path / "db.json"
    with MicroDB(str(path)) as db:
        db.table("notes").insert({"text": "<b>hello</b>"})
    return path


@contextmanager
def started(command: list[str]) -> Iterator[tuple[str, str]]:
    """Run the server command; yield its base URL and token; stop it afterwards."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline(), proc.stdout.readline()]
            found = re.search(r"Open: (http://127\.0\.0\.1:\d+)/\?token=(\S+)", "".join(lines))
            assert found is not None, lines
            wait_for_port(int(found.group(1).rsplit(":", 1)[1]))
            yield found.group(1), found.group(2)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_python_m_microdb_web_prints_a_token_and_serves(database: Path) -> None:
    """``python -m microdb.web DB`` prints the address with a token; only that token opens it."""
    port = free_port()
    with started([sys.executable, "-m", "microdb.web", str(database), "--port", str(port)]) as (base, token):
        assert base == f"http://127.0.0.1:{port}"
        assert fetch(base + "/")[0] == 401
        status, body = fetch(base + "/api/tables", authorization=f"Bearer {token}")
        assert status == 200 and json.loads(body)[0] == {"name": "notes", "count": 1, "indexes": []}
        status, _ = fetch(base + f"/?token={token}")
        assert status == 303
        status, body = fetch(base + "/t/notes", authorization=f"Bearer {token}")
        assert status == 200 and "&lt;b&gt;hello&lt;/b&gt;" in body and "read-only" in body
        assert fetch(base + "/", host="evil.example")[0] == 400  # DNS rebinding refused on loopback


def test_read_only_server_opens_the_storage_read_only(tmp_path: Path) -> None:
    """Without --write the database is opened read-only: a missing file is not created."""
    port = free_port()
    missing = tmp_path / "missing.json"
    with started([sys.executable, "-m", "microdb.web", str(missing), "--port", str(port)]) as (base, token):
        status, body = fetch(base + "/api/tables", authorization=f"Bearer {token}")
        assert status == 200 and json.loads(body) == []
    assert not missing.exists()


def test_run_refuses_an_empty_password(database: Path) -> None:
    """An empty password is refused before anything listens."""
    with pytest.raises(UnsupportedFeature, match="empty password"):
        run(str(database), password="")


@pytest.mark.parametrize(("host", "expected"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("[::1]", True), ("0.0.0.0", False), ("192.168.1.5", False)])
def test_loopback_hosts(host: str, expected: bool) -> None:
    """Which listening addresses count as reachable from this machine only."""
    assert is_loopback(host) is expected


def test_microdb_serve_runs_the_web_page(database: Path) -> None:
    """``microdb serve DB --port P`` (the command line) starts this page, read-only, with a token."""
    port = free_port()
    command = [sys.executable, "-m", "microdb", "serve", str(database), "--port", str(port)]
    with started(command) as (base, token):
        assert base == f"http://127.0.0.1:{port}"
        status, body = fetch(base + "/t/notes", authorization=f"Bearer {token}")
        assert status == 200 and "&lt;b&gt;hello&lt;/b&gt;" in body and "read-only" in body
        assert fetch(base + "/t/notes")[0] == 401
