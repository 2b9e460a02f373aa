"""The ``microdb`` command, reading and managing: queries, outputs, tables, indexes, export, check."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from microdb import MicroDB, UnsupportedFeature
from microdb.cli import build_parser, main
from test_cli import docs_of, run

ROOT = Path(__file__).resolve().parent.parent

PEOPLE = [
    {"name": "Ann", "age": 31, "city": "Oslo", "tags": ["a", "b"]},
    {"name": "Bob", "age": 25, "city": "Rome"},
    {"name": "Cid", "age": 41, "city": "Oslo", "tags": ["b"]},
    {"name": "Dee", "age": 19},
]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "people.json")
    with MicroDB(path) as d:
        d.table("users").insert_many(PEOPLE)
    return path


def out_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_query_filter_sort_skip_limit_fields(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """query takes a dict filter and --sort, --skip, --limit, --fields, --exclude and --ids."""
    got = json.loads(out_of(capsys, "query", db, "users", '{"age": {"$gt": 20}}', "--sort=-age", "--fields", "name"))
    assert got == [{"name": "Cid"}, {"name": "Ann"}, {"name": "Bob"}]
    got = json.loads(out_of(capsys, "rows", db, "users", "--sort", "age", "--skip", "1", "--limit", "2", "--ids",
                            "--exclude", "tags,city"))
    assert got == [{"_id": 2, "name": "Bob", "age": 25}, {"_id": 1, "name": "Ann", "age": 31}]
    got = json.loads(out_of(capsys, "query", db, "users", '{"tags": "b"}', "--sort", "city,-name"))
    assert [d["name"] for d in got] == ["Cid", "Ann"]


def test_output_formats(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--json (default), --nl, --csv, --tsv and --table print the same documents."""
    as_json = json.loads(out_of(capsys, "rows", db, "users"))
    assert as_json == PEOPLE
    lines = out_of(capsys, "rows", db, "users", "--nl").splitlines()
    assert [json.loads(x) for x in lines] == PEOPLE
    rows = list(csv.DictReader(io.StringIO(out_of(capsys, "rows", db, "users", "--csv"))))
    assert rows[0] == {"name": "Ann", "age": "31", "city": "Oslo", "tags": '["a","b"]'}
    assert rows[3] == {"name": "Dee", "age": "19", "city": "", "tags": ""}
    tsv = out_of(capsys, "rows", db, "users", "--tsv").splitlines()
    assert tsv[0] == "name\tage\tcity\ttags" and tsv[2] == "Bob\t25\tRome\t"
    table = out_of(capsys, "rows", db, "users", "--table").splitlines()
    assert table[0].split() == ["name", "age", "city", "tags"]
    assert set(table[1]) == {"-", " "}
    assert table[2].split() == ["Ann", "31", "Oslo", '["a","b"]']


def test_table_fits_the_terminal_width(tmp_path: Path) -> None:
    """--table clips the widest columns (with …) to the terminal's width."""
    path = str(tmp_path / "w.json")
    with MicroDB(path) as d:
        d.table("t").insert_many([{"id": i, "text": "word " * 40, "more": "x" * 60} for i in range(3)])
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="50")
    proc = subprocess.run([sys.executable, "-m", "microdb", "rows", path, "t", "--table"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5 and all(len(line) <= 50 for line in lines)
    assert "…" in lines[2] and lines[2].startswith("0 ")


def test_memory_queries_files_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """memory loads files of any format into memory and queries them; no file is written."""
    (tmp_path / "a.csv").write_text("name,age\nAnn,31\nBob,25\n")
    (tmp_path / "b.ndjson").write_text('{"name": "Cid", "age": 41}\n')
    before = sorted(os.listdir(tmp_path))
    got = out_of(capsys, "memory", str(tmp_path / "a.csv"), str(tmp_path / "b.ndjson"),
                 "--filter", '{"age": {"$gt": 30}}', "--sort=-age", "--nl")
    assert got.splitlines() == ['{"name":"Cid","age":41}', '{"name":"Ann","age":31}']
    assert sorted(os.listdir(tmp_path)) == before
    proc = run("memory", str(tmp_path / "nope.csv"))
    assert proc.returncode == 1 and "cannot read" in proc.stderr


def test_get_count_distinct(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """get prints one document by id; count and distinct take filters."""
    assert json.loads(out_of(capsys, "get", db, "users", "2")) == PEOPLE[1]
    assert out_of(capsys, "count", db, "users", '{"city": "Oslo"}') == "2\n"
    assert out_of(capsys, "count", db, "users") == "4\n"
    assert json.loads(out_of(capsys, "distinct", db, "users", "tags")) == ["a", "b"]
    assert out_of(capsys, "distinct", db, "users", "city", '{"age": {"$lt": 30}}', "--nl") == '"Rome"\n'
    proc = run("get", db, "users", "99")
    assert proc.returncode == 1 and proc.stderr == "microdb: table 'users' has no document with id 99\n"


def test_update_and_remove(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """update applies operators to matches; remove refuses an empty filter without --all."""
    assert out_of(capsys, "update", db, "users", '{"city": "Oslo"}', '{"$inc": {"age": 1}}') == "updated 2 documents\n"
    assert [d["age"] for d in docs_of(db, "users")] == [32, 25, 42, 19]
    proc = run("update", db, "users", "{}", '{"$set": {"x": 1}}')
    assert proc.returncode == 1 and "--all" in proc.stderr
    assert out_of(capsys, "update", db, "users", "{}", '{"$set": {"x": 1}}', "--all", "-q") == ""
    assert all(d["x"] == 1 for d in docs_of(db, "users"))
    proc = run("remove", db, "users")
    assert proc.returncode == 1 and "--all" in proc.stderr
    assert out_of(capsys, "remove", db, "users", '{"age": {"$lt": 20}}') == "removed 1 document\n"
    assert out_of(capsys, "remove", db, "users", "--all") == "removed 3 documents\n"
    assert docs_of(db, "users") == []
    proc = run("update", db, "users", '{"a": 1}', '{"$bogus": 1}')
    assert proc.returncode == 1 and proc.stderr.startswith("microdb: UpdateError")


@pytest.mark.parametrize(
    "args",
    [
        ["query", "{db}", "t"], ["rows", "{db}", "t"], ["count", "{db}", "t"], ["get", "{db}", "t", "1"],
        ["tables", "{db}"], ["indexes", "{db}"], ["info", "{db}"], ["export", "{db}"], ["distinct", "{db}", "t", "a"],
        ["check", "{db}"], ["query", "sqlite:///{db}", "t"],
    ],
)
def test_read_commands_never_create_a_file(tmp_path: Path, args: list[str]) -> None:
    """A missing file is an error for read commands, and it is not created."""
    missing = tmp_path / "nope.json"
    proc = run(*[a.format(db=missing) for a in args])
    assert proc.returncode == 1
    assert proc.stderr == f"microdb: no database at {missing} (a read command never creates one)\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["query", "rows", "count", "remove", "indexes", "drop-table", "export"])
def test_missing_table_is_named(db: str, command: str) -> None:
    """A missing table is named in the error, with the tables there are."""
    proc = run(command, db, "nobody", *(["--yes"] if command == "drop-table" else []))
    assert proc.returncode == 1
    assert proc.stderr == "microdb: no table 'nobody' in this database (tables: users)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "{db}", "users", "{bad"], "microdb: bad filter: the filter is not valid JSON"),
        (["query", "{db}", "users", '{"a": {"$where": "1"}}'], "microdb: bad filter: unknown operator"),
        (["query", "{db}", "users", '{"' + "a." * 30 + 'b": 1}'], "microdb: bad filter: the field"),
        (["query", "{db}", "users", "--sort", "age", "--limit", "-1"], "microdb: QueryError: limit()"),
        (["query", "{db}", "users", "--fields", "a", "--exclude", "b"], "microdb: give --fields or --exclude"),
        (["update", "{db}", "users", "{}", "[1]", "--all"], "microdb: the update must be a JSON object"),
        (["insert", "{db}", "users", "/nonexistent/x.json"], "microdb: cannot read /nonexistent/x.json"),
        (["query", "{dir}", "users"], "microdb: "),
        (["query", "mysql://x/y", "users"], "microdb: QueryError: unknown database URL scheme"),
    ],
)
def test_user_errors_are_one_line_without_traceback(db: str, tmp_path: Path, args: list[str], message: str) -> None:
    """A user's mistake prints one ``microdb: ...`` line and exits 1, never a traceback."""
    proc = run(*[a.replace("{db}", db).replace("{dir}", str(tmp_path)) for a in args])
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr


def test_usage_errors_exit_2(db: str) -> None:
    """A wrong command line exits 2 with argparse's usage message."""
    proc = run("query")
    assert proc.returncode == 2 and "usage: microdb query" in proc.stderr
    proc = run("frobnicate", db)
    assert proc.returncode == 2


def test_catastrophic_regex_from_the_command_line_does_not_hang(db: str) -> None:
    """A filter from the command line goes through the untrusted-filter bounds."""
    with MicroDB(db) as d:
        d.table("users").insert({"name": "a" * 30})
    proc = run("count", db, "users", '{"name": {"$regex": "(a|a)+b"}}')
    assert proc.returncode in (0, 1)
    if proc.returncode == 1:
        assert "time limit" in proc.stderr or "exponential" in proc.stderr


def test_tables_indexes_create_and_drop(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """tables, indexes, create-index (unique), drop-index and drop-table --yes."""
    assert out_of(capsys, "tables", db) == "users\t4\n"
    assert json.loads(out_of(capsys, "tables", db, "--json")) == [{"table": "users", "count": 4}]
    assert out_of(capsys, "create-index", db, "users", "name", "--unique") == ""
    assert out_of(capsys, "create-index", db, "users", "city") == ""
    assert out_of(capsys, "indexes", db) == "users\tname\tunique\nusers\tcity\n"
    proc = run("insert", db, "users", '{"name": "Ann"}')
    assert proc.returncode == 1 and "already holds 'Ann'" in proc.stderr and "nothing was stored" in proc.stderr
    proc = run("create-index", db, "users", "age", "--unique")
    assert proc.returncode == 0
    assert out_of(capsys, "drop-index", db, "users", "city") == ""
    proc = run("drop-index", db, "users", "city")
    assert proc.returncode == 1 and "no index on city" in proc.stderr
    proc = run("drop-table", db, "users")
    assert proc.returncode == 1 and "--yes" in proc.stderr
    assert out_of(capsys, "drop-table", db, "users", "--yes") == ""
    assert out_of(capsys, "tables", db) == ""


def test_compound_index(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Several fields make one compound index where the engine has them; else a clear refusal."""
    import inspect

    from microdb import Table

    compound = any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in inspect.signature(Table.create_index).parameters.values()
    )
    code = main(["create-index", db, "users", "city", "age"])
    if compound:
        assert code == 0
        assert out_of(capsys, "indexes", db, "users") == "users\tcity, age\n"
        assert json.loads(out_of(capsys, "query", db, "users", '{"city": "Oslo", "age": {"$gt": 35}}')) == [PEOPLE[2]]
        assert main(["drop-index", db, "users", "city", "age"]) == 0
        assert out_of(capsys, "indexes", db, "users") == ""
    else:
        assert code == 1
        assert capsys.readouterr().err == "microdb: this MicroDB has no compound indexes: index one field\n"
        with MicroDB(db) as d:
            assert d.table("users").indexes() == []


def test_drop_table_asks_on_a_terminal(db: str) -> None:
    """On a terminal, drop-table asks; "n" keeps the table, "y" drops it."""
    import pty

    for answer, code, left in ((b"n\n", 1, 1), (b"y\n", 0, 0)):
        master, slave = pty.openpty()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        proc = subprocess.Popen([sys.executable, "-m", "microdb", "drop-table", db, "users"],
                                stdin=slave, stdout=subprocess.DEVNULL, stderr=slave, env=env)
        os.write(master, answer)
        proc.wait(timeout=120)
        os.close(slave)
        prompt = os.read(master, 4096)
        os.close(master)
        assert b"drop table 'users' and its 4 documents? [y/N]" in prompt
        assert proc.returncode == code
        with MicroDB(db) as d:
            assert len(d.tables()) == left


@pytest.mark.parametrize("fmt", ["json", "nl", "csv", "tsv"])
def test_export_and_import_a_table(db: str, tmp_path: Path, fmt: str) -> None:
    """A table exported as JSON, NDJSON, CSV or TSV imports back to the same documents."""
    out = tmp_path / f"users.{ {'nl': 'ndjson'}.get(fmt, fmt) }"
    proc = run("export", db, "users", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    back = str(tmp_path / "back.json")
    proc = run("import", back, str(out), "--table", "users")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "users\t4\n"
    got = docs_of(back, "users")
    if fmt in ("csv", "tsv"):  # flat columns: a missing field comes back empty
        assert [d["name"] for d in got] == [p["name"] for p in PEOPLE]
        assert got[0]["tags"] == ["a", "b"] and got[3]["city"] == "" and got[3]["tags"] is None
    else:
        assert got == PEOPLE


def test_export_and_import_a_whole_database_keeps_ids(db: str, tmp_path: Path) -> None:
    """A whole-database export is a TinyDB-shaped file: tables and ids come back."""
    with MicroDB(db) as d:
        d.table("users").remove(doc_ids=[1])
        d.table("other").insert({"x": b"\x01"})
    out = tmp_path / "all.json"
    assert run("export", db, "-o", str(out)).returncode == 0
    data = json.loads(out.read_text())
    assert sorted(data) == ["other", "users"] and sorted(data["users"]) == ["2", "3", "4"]
    assert data["other"]["1"] == {"x": {"$bytes": "AQ=="}}
    back = str(tmp_path / "back.json")
    proc = run("import", back, str(out))
    assert proc.returncode == 0, proc.stderr
    with MicroDB(back) as d:
        assert [x.doc_id for x in d.table("users").all()] == [2, 3, 4]
        assert d.table("other").all()[0]["x"] == b"\x01"
    proc = run("import", back, str(out))  # the same ids again: refused, nothing added
    assert proc.returncode == 1
    assert len(docs_of(back, "users")) == 3
    proc = run("export", db, "--format", "csv")
    assert proc.returncode == 1 and "name a table" in proc.stderr


def test_copy_info_check_compact(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """copy to SQLite; info shows sizes, format, durability, tables and indexes; check says ok."""
    with MicroDB(db) as d:
        d.table("users").create_index("age")
    target = f"sqlite:///{tmp_path}/copy.db"
    assert out_of(capsys, "copy", db, target) == "users\t4\n"
    assert json.loads(out_of(capsys, "rows", target, "users")) == PEOPLE
    info = json.loads(out_of(capsys, "info", db, "--json"))
    header = json.loads(Path(db + ".journal").read_bytes().split(b"\n", 1)[0].split(b" ", 2)[2])
    assert info["tables"] == {"users": 4} and info["format_version"] == header["format"] >= 1
    assert info["file_bytes"] == os.path.getsize(db) and info["journal_bytes"] > 0
    assert info["indexes"] == [{"table": "users", "fields": "age", "unique": False}]
    assert "durable" in info["durability"]
    text = out_of(capsys, "info", target)
    assert "backend: sqlite" in text and "users: 4 documents" in text
    assert out_of(capsys, "check", db) == "ok: 1 tables, 4 documents\n"
    assert out_of(capsys, "compact", db) == ""
    assert out_of(capsys, "check", target) == "ok: 1 tables, 4 documents\n"


def test_check_reports_damage_with_exit_3(db: str) -> None:
    """A damaged journal record is found: exit code 3, and the message says where."""
    # A process that ends without closing leaves its commit in the journal.
    code = f"import os; from microdb import MicroDB; t = MicroDB({db!r}).table('users'); t.insert({{'name': 'Eve'}}); t.insert({{'name': 'Fay'}}); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    journal = Path(db + ".journal")
    data = bytearray(journal.read_bytes())
    at = data.rindex(b"Eve")
    data[at] = ord("X")
    journal.write_bytes(bytes(data))
    proc = run("check", db)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("microdb: damage:") and "journal" in proc.stderr
    proc = run("rows", db, "users")
    assert proc.returncode == 3 and proc.stderr.startswith("microdb: damaged database:")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """version and --version print the package's version."""
    import microdb

    assert out_of(capsys, "version").startswith(f"microdb {microdb.__version__} (Python ")
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout == f"microdb {microdb.__version__}\n"


def test_serve_calls_the_web_page(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve hands its options to microdb.web.run."""
    calls: list[tuple[object, dict[str, object]]] = []
    fake = types.ModuleType("microdb.web")
    fake.run = lambda database, **options: calls.append((database, options))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "microdb.web", fake)
    assert main(["serve", db, "--port", "9999", "--write", "--token", "t0k"]) == 0
    assert calls == [(db, {"host": "127.0.0.1", "port": 9999, "write": True, "token": "t0k", "password": None})]


def test_serve_without_the_extra_names_the_install(db: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Without the web extra, serve says which pip command installs it, and exits 1."""
    monkeypatch.setitem(sys.modules, "microdb.web", None)  # an import of it raises ImportError
    assert main(["serve", db]) == 1
    err = capsys.readouterr().err
    assert err.startswith("microdb: the web page needs its extra: pip install 'microdb[web]'")
    fake = types.ModuleType("microdb.web")

    def missing(*args: object, **options: object) -> None:
        raise UnsupportedFeature("the web page needs Starlette: pip install 'microdb[web]'")

    fake.run = missing  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "microdb.web", fake)
    assert main(["serve", db]) == 1
    assert capsys.readouterr().err == "microdb: the web page needs Starlette: pip install 'microdb[web]'\n"


def test_shell_runs_filters_and_commands(db: str) -> None:
    """The shell reads commands and filters (here from a pipe) against one database."""
    script = 'use users\n{"age": {"$lt": 20}}\ncount users\ntables\nnonsense\nexit\n'
    proc = run("shell", db, stdin=script)
    assert proc.stdout.splitlines() == ['{"name":"Dee","age":19}', "4", "users\t4"]
    assert "unknown command 'nonsense'" in proc.stderr


def test_every_command_has_help_with_an_example() -> None:
    """Each subcommand's --help carries an example that runs that command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        assert p.epilog and f"microdb {name}" in p.epilog, name


def test_every_command_is_documented() -> None:
    """Each subcommand of the parser appears in docs/cli.md."""
    doc = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"`microdb {name}" in doc, f"{name} is not documented in docs/cli.md"


def test_demo_and_python_dash_m() -> None:
    """``python -m microdb demo`` runs the seed's example and prints its findings."""
    proc = run("demo")
    assert proc.returncode == 0, proc.stderr
    assert "{'name': 'Bob', 'age': 25}" in proc.stdout and "2 users left" in proc.stdout


def test_check_reports_a_flipped_snapshot_byte_and_schema_violations(tmp_path: Path) -> None:
    """check finds a changed snapshot byte (file check), and documents that break a schema added later."""
    path = str(tmp_path / "s.json")
    with MicroDB(path) as d:
        d.table("users").insert_many([{"name": "Ann", "age": 30}, {"name": "Bob", "age": "old"}])
    assert run("check", path).returncode == 0
    with MicroDB(path) as d:  # a schema set after the documents were written
        d.table("users").set_schema({"type": "object", "properties": {"age": {"type": "integer"}}})
    proc = run("check", path)
    assert proc.returncode == 3
    assert "microdb: schema: table 'users', document 2:" in proc.stderr and "1 documents break" in proc.stderr
    # A single changed byte of the checkpointed snapshot, its mtime kept: damage, said by the file check.
    stat = os.stat(path)
    data = bytearray(Path(path).read_bytes())
    at = data.index(b"Ann")
    data[at] = ord("E")
    Path(path).write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    proc = run("check", path)
    assert proc.returncode == 3 and proc.stderr.startswith("microdb: damage:"), proc.stderr
