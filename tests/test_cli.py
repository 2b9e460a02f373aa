"""The ``microdb`` command: each command works and is documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from microdb import MicroDB
from microdb.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microdb", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_demo_prints_what_it_finds() -> None:
    """``python -m microdb demo`` runs the seed's example and prints its findings."""
    proc = run("demo")
    assert proc.returncode == 0, proc.stderr
    assert "{'name': 'Bob', 'age': 25}" in proc.stdout
    assert "{'name': 'Alice', 'age': 30}" in proc.stdout
    assert "2 users left" in proc.stdout


def test_insert_query_count_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """insert, query (filter, sort, limit, ids), count and tables round-trip through a file."""
    db = str(tmp_path / "people.json")
    assert main(["insert", db, "users", '{"name": "Alice", "age": 30}', '{"name": "Bob", "age": 25}']) == 0
    assert capsys.readouterr().out.split() == ["1", "2"]
    assert main(["query", db, "users", '{"age": {"$lt": 30}}']) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [{"name": "Bob", "age": 25}]
    assert main(["query", db, "users", "--sort=-age", "--limit", "1", "--ids"]) == 0
    assert json.loads(capsys.readouterr().out) == {"_id": 1, "name": "Alice", "age": 30}
    assert main(["count", db, "users"]) == 0
    assert capsys.readouterr().out.strip() == "2"
    assert main(["tables", db]) == 0
    assert capsys.readouterr().out.strip() == "users\t2"
    assert main(["compact", db]) == 0
    with MicroDB(db) as check:
        assert check.table("users").count() == 2


def test_insert_from_stdin(tmp_path: Path) -> None:
    """``insert DB TABLE -`` reads one JSON document per line."""
    db = str(tmp_path / "s.json")
    proc = run("insert", db, "t", "-", stdin='{"a": 1}\n{"a": 2}\n')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "2"]


def test_errors_are_reported_not_raised(tmp_path: Path) -> None:
    """A bad filter or a corrupt file gives a message and a non-zero status."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = run("tables", str(bad))
    assert proc.returncode == 1
    assert "CorruptDatabaseError" in proc.stderr
    assert bad.read_text() == "{not json"
    proc = run("query", str(tmp_path / "x.json"), "t", "[1]")
    assert proc.returncode != 0 and "JSON object" in proc.stderr


def test_copy_between_files(tmp_path: Path) -> None:
    """``copy`` moves every table into another database."""
    src, dst = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    with MicroDB(src) as db:
        db.table("t").insert_many([{"i": i} for i in range(5)])
        db.table("t").create_index("i")
    proc = run("copy", src, dst, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "t\t5"
    with MicroDB(dst) as db:
        assert db.table("t").count() == 5
        assert db.table("t").indexes() == [{"path": ["i"], "unique": False}]


def test_every_command_is_documented() -> None:
    """Each subcommand of the parser appears in docs/cli.md."""
    doc = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"`microdb {name}" in doc, f"{name} is not documented in docs/cli.md"
