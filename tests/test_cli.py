"""The ``microdb`` command, writing: every input format, errors with places, batches, progress.

Commands run as real subprocesses where the process matters (exit codes, stdin, terminals,
tracebacks); the others call the same entry point in-process, which is faster.
"""

from __future__ import annotations

import datetime as dt
import os
import pty
import subprocess
import sys
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from microdb import MicroDB
from microdb.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: a fresh interpreter, ``python -m microdb``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "microdb", *args], input=stdin, capture_output=True, text=True,
        timeout=120, cwd=cwd, env=env,
    )


def docs_of(db: str, table: str) -> list[dict[str, object]]:
    with MicroDB(db) as d:
        return [dict(x) for x in d.table(table).all()]


@pytest.mark.parametrize(
    ("name", "text", "extra"),
    [
        ("a.json", '[{"a": 1}, {"a": 2, "b": [1, {"c": null}]}]', []),
        ("a.json", '{\n  "a": 1\n}\n{\n  "a": 2,\n  "b": [1, {"c": null}]\n}\n', []),
        ("a.json", '{"a": 1}\n\n{"a": 2, "b": [1, {"c": null}]}\n', []),
        ("a.ndjson", '{"a": 1}\n{"a": 2, "b": [1, {"c": null}]}\n', []),
        ("a.txt", '{"a": 1}\n{"a": 2, "b": [1, {"c": null}]}\n', ["--nl"]),
        ("a.csv", 'a,b\n1,\n2,"[1, {""c"": null}]"\n', []),
        ("a.tsv", 'a\tb\n1\t\n2\t[1, {"c": null}]\n', []),
        ("a.json", '{"_default": {"1": {"a": 1}, "2": {"a": 2, "b": [1, {"c": null}]}}}', []),
        ("a.json", '{"_default": {"1": {"a": 1}, "2": {"a": 2, "b": [1, {"c": null}]}}}', ["--tinydb"]),
    ],
)
def test_insert_reads_every_format(tmp_path: Path, name: str, text: str, extra: list[str]) -> None:
    """JSON object, array, pretty stream, NDJSON, CSV, TSV and TinyDB files all load."""
    src = tmp_path / name
    src.write_text(text, encoding="utf-8")
    db = str(tmp_path / "db.json")
    assert main(["insert", db, "t", str(src), "-q", *extra]) == 0
    got = docs_of(db, "t")
    if name.endswith((".csv", ".tsv")):
        assert got == [{"a": 1, "b": None}, {"a": 2, "b": [1, {"c": None}]}]
    else:
        assert got == [{"a": 1}, {"a": 2, "b": [1, {"c": None}]}]


def test_insert_inline_json_and_stdin(tmp_path: Path) -> None:
    """Inline JSON arguments and stdin (the default input) load; --ids prints the ids."""
    db = str(tmp_path / "s.json")
    proc = run("insert", db, "t", '{"a": 1}', '[{"a": 2}, {"a": 3}]', "--ids")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "2", "3"]
    proc = run("insert", db, "t", stdin='{"a": 4}\n{"a": 5}\n')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "inserted 2 documents into t (ids 4-5)\n"
    assert [d["a"] for d in docs_of(db, "t")] == [1, 2, 3, 4, 5]


def test_csv_types_detected_or_given(tmp_path: Path) -> None:
    """CSV columns get int, float, bool or JSON when every value fits; --type and
    --no-detect-types override."""
    src = tmp_path / "p.csv"
    src.write_text("id,price,ok,name,zip,tags\n1,2.5,true,Ann,01234,[1]\n2,3,false,Bob,99999,[]\n")
    db = str(tmp_path / "db.json")
    assert main(["insert", db, "t", str(src), "-q"]) == 0
    assert docs_of(db, "t")[0] == {"id": 1, "price": 2.5, "ok": True, "name": "Ann", "zip": "01234", "tags": [1]}
    assert main(["insert", db, "u", str(src), "-q", "--type", "id=str", "--type", "price=float"]) == 0
    assert docs_of(db, "u")[1]["id"] == "2" and docs_of(db, "u")[1]["price"] == 3.0
    assert main(["insert", db, "v", str(src), "-q", "--no-detect-types"]) == 0
    assert docs_of(db, "v")[0]["ok"] == "true"


@pytest.mark.parametrize(
    ("name", "text", "extra", "where"),
    [
        ("bad.ndjson", '{"a": 1}\n{"a": 2}\n{"a": 3,}\n', [], "bad.ndjson:3:9: not valid JSON"),
        ("bad.json", '[{"a": 1},\n {"a": 2},\n 7]', [], "bad.json:3:2: expected a JSON object"),
        ("bad.json", '[{"a": 1},\n {"a": NaN}]', [], "bad.json:2:2: NaN is not a JSON value"),
        ("bad.json", '{"a": 1}\n{"a": {"$date": "nope"}}', [], "bad.json:2:1: bad $date value"),
        ("bad.json", '{"a": 1}\n{"a": 123456789012345678901234}', [], "bad.json:2:1: the integer"),
        # A bad value deep inside a document, on line N of NDJSON read in one piece.
        ("deep.ndjson", '{"a": 1}\n{"a": 2}\n\n{"a": {"b": [1, {"c": 123456789012345678901234}]}}\n', [],
         "deep.ndjson:4:1: the integer"),
        ("deep.json", '[{"a": 1},\n  {"a": [[{"b": 99999999999999999999}]]}]', [], "deep.json:2:3: the integer"),
        # Tags decoded only on the lines that may hold one: "$" escaped as \u0024 too.
        ("tag.ndjson", '{"a": {"$date": "2024-05-01"}}\n{"a": 2}\n{"a": {"\\u0024date": "nope"}}\n', [],
         "tag.ndjson:3:1: bad $date value"),
        ("esc.ndjson", '{"a": 1}\n{"a": {"\\u0024date": "nope"}}\n', [], "esc.ndjson:2:1: bad $date value"),
        ("type.ndjson", '{"a": 1}\n{"a": 2}\n[1, 2]\n', [], "type.ndjson:3:1: expected a JSON object"),
        ("bad.csv", "a,b\n1,2\n3,x\n", ["--type", "b=int"], "bad.csv:3: column 'b': 'x' is not int"),
        ("bad.csv", "a,b\n1,2\n3,4,5\n", [], "bad.csv:3: 3 values for 2 columns"),
        ("bad.tsv", "a\n\xff\n", [], "bad.tsv:2: not UTF-8"),
    ],
)
def test_errors_name_file_line_and_column(tmp_path: Path, name: str, text: str, extra: list[str], where: str) -> None:
    """A bad document is reported as file:line:column on one line, and nothing is stored."""
    src = tmp_path / name
    src.write_bytes(text.encode("utf-8") if "\xff" not in text else b"a\n\xff\n")
    db = tmp_path / "db.json"
    with MicroDB(str(db)) as d:
        d.table("t").insert({"kept": True})
    proc = run("insert", str(db), "t", name, *extra, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"microdb: {where}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert docs_of(str(db), "t") == [{"kept": True}]


def test_ndjson_tags_decode_where_the_line_holds_one(tmp_path: Path) -> None:
    """Lines with tags (written "$" or escaped) read back to rich values; the others stay as
    they are, "$" in a plain string included."""
    src = tmp_path / "in.ndjson"
    src.write_text(
        '{"n": 1, "day": {"$date": "2024-05-01"}}\n'
        '{"n": 2, "s": "costs $5", "k": "\\u0024"}\n'
        '{"n": 3, "id": {"\\u0024uuid": "00000000-0000-0000-0000-00000000002a"}}\n'
        '{"n": 4, "odd": {"$escape": {"$x": 1}}}\n',
        encoding="utf-8",
    )
    db = str(tmp_path / "db.json")
    assert main(["insert", db, "t", str(src), "-q"]) == 0
    assert docs_of(db, "t") == [
        {"n": 1, "day": dt.date(2024, 5, 1)},
        {"n": 2, "s": "costs $5", "k": "$"},
        {"n": 3, "id": uuid.UUID(int=42)},
        {"n": 4, "odd": {"$x": 1}},
    ]


def test_error_in_a_later_file_names_that_file(tmp_path: Path) -> None:
    """Several inputs load as one commit; an error names the file, line and column it is in."""
    (tmp_path / "a.ndjson").write_text('{"a": 1}\n{"a": 2}\n')
    (tmp_path / "b.ndjson").write_text('{"b": 1}\n\n{"b": [1, 123456789012345678901234]}\n')
    db = tmp_path / "db.json"
    proc = run("insert", str(db), "t", "a.ndjson", "b.ndjson", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("microdb: b.ndjson:3:1: the integer"), proc.stderr
    assert not db.exists() or docs_of(str(db), "t") == []
    proc = run("insert", str(db), "t", "a.ndjson", "a.ndjson", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [d["a"] for d in docs_of(str(db), "t")] == [1, 2, 1, 2]


def test_batch_size_keeps_earlier_batches(tmp_path: Path) -> None:
    """Without --batch-size a load is all or nothing; with it, full batches before an error stay."""
    src = tmp_path / "in.ndjson"
    src.write_text("".join(f'{{"i": {i}}}\n' for i in range(25)) + "{oops}\n")
    db = str(tmp_path / "db.json")
    assert main(["insert", db, "t", str(src), "-q"]) == 1
    assert not os.path.exists(db) or docs_of(db, "t") == []
    proc = run("insert", db, "t", str(src), "--batch-size", "10")
    assert proc.returncode == 1 and "in.ndjson:26:2" in proc.stderr
    assert "(20 documents of earlier batches were stored; --skip 20 resumes after them)" in proc.stderr
    assert [d["i"] for d in docs_of(db, "t")] == list(range(20))


def test_skip_resumes_a_batch_load(tmp_path: Path) -> None:
    """--skip N leaves out the first N input documents: a mended input resumes where the
    stored batches end, each document stored once; a bad value after a resume says how to
    resume again (counting the documents skipped)."""
    src = tmp_path / "in.ndjson"
    lines = [f'{{"i": {i}}}' for i in range(30)]
    lines[24] = '{"i": 24, "big": 123456789012345678901234}'
    src.write_text("\n".join(lines) + "\n")
    db = str(tmp_path / "db.json")
    proc = run("insert", db, "t", str(src), "--batch-size", "10", "--skip", "5")
    assert proc.returncode == 1
    assert proc.stderr.startswith("microdb: ") and "in.ndjson:25:1: the integer" in proc.stderr, proc.stderr
    assert "(10 documents of earlier batches were stored; --skip 15 resumes after them)" in proc.stderr
    assert [d["i"] for d in docs_of(db, "t")] == list(range(5, 15))
    lines[24] = '{"i": 24}'
    src.write_text("\n".join(lines) + "\n")
    assert main(["insert", db, "t", str(src), "--batch-size", "10", "--skip", "15", "-q"]) == 0
    assert [d["i"] for d in docs_of(db, "t")] == list(range(5, 30))
    other = str(tmp_path / "one.json")
    assert main(["insert", other, "t", str(src), "--skip", "28", "-q"]) == 0  # one commit, skipped too
    assert [d["i"] for d in docs_of(other, "t")] == [28, 29]
    assert main(["insert", other, "t", str(src), "--skip", "-1", "-q"]) == 1


def test_insert_duplicate_in_unique_index_names_nothing_stored(tmp_path: Path) -> None:
    """A load that breaks a unique index stores nothing and says so."""
    db = str(tmp_path / "db.json")
    with MicroDB(db) as d:
        d.table("t").create_index("k", unique=True)
    proc = run("insert", db, "t", '[{"k": 1}, {"k": 2}, {"k": 1}]')
    assert proc.returncode == 1
    assert "DuplicateKeyError" in proc.stderr or "nothing was stored" in proc.stderr
    assert docs_of(db, "t") == []


def test_quiet_and_silent(tmp_path: Path) -> None:
    """--quiet and --silent print nothing on success."""
    db = str(tmp_path / "db.json")
    for flag in ("--quiet", "-q", "--silent"):
        proc = run("insert", db, "t", '{"a": 1}', flag)
        assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def run_on_pty(args: list[str], stdin: bytes | None = None) -> tuple[int, str, bytes]:
    """Run the command with stderr on a pseudo-terminal; returns (code, stdout, terminal bytes)."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="100")
    proc = subprocess.Popen(
        [sys.executable, "-m", "microdb", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=slave, env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block the writer: read as it writes
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(stdin, timeout=120)
    reader.join(timeout=30)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks)


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """A terminal on stderr shows a bar over the file's bytes; a pipe shows nothing."""
    src = tmp_path / "big.ndjson"
    src.write_text("".join(f'{{"i": {i}, "pad": "{"x" * 50}"}}\n' for i in range(20_000)))
    code, out, seen = run_on_pty(["insert", str(tmp_path / "db.json"), "t", str(src)])
    assert code == 0
    assert b"\r" in seen and b"100%" in seen and b"20,000 docs" in seen and b"[####" in seen
    assert out == "inserted 20000 documents into t (ids 1-20000)\n"
    code, _, seen = run_on_pty(["insert", str(tmp_path / "db.json"), "u", "-"], stdin=b'{"a": 1}\n' * 500)
    assert code == 0 and b"500 docs" in seen
    code, _, seen = run_on_pty(["insert", str(tmp_path / "db.json"), "v", str(src), "--silent"])
    assert code == 0 and seen == b""
    proc = run("insert", str(tmp_path / "db.json"), "w", str(src))
    assert proc.returncode == 0 and proc.stderr == ""


def test_upsert_by_key(tmp_path: Path) -> None:
    """upsert --pk updates the documents whose key matches and inserts the others."""
    db = str(tmp_path / "db.json")
    assert main(["insert", db, "u", '[{"email": "a@x", "n": 1}, {"email": "b@x", "n": 2}]', "-q"]) == 0
    proc = run("upsert", db, "u", '[{"email": "a@x", "n": 10}, {"email": "c@x", "n": 3}]', "--pk", "email")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "inserted 1, updated 1 in u\n"
    assert sorted((d["email"], d["n"]) for d in docs_of(db, "u")) == [("a@x", 10), ("b@x", 2), ("c@x", 3)]
    proc = run("upsert", db, "u", '{"n": 5}', "--pk", "email")
    assert proc.returncode == 1 and "<argument>:1:1: the document has no 'email' field" in proc.stderr


def test_a_tag_on_a_line_of_another_value_still_decodes(tmp_path: Path) -> None:
    """Text that is not one value per line (a value over two lines, two values on one)
    pairs lines with the wrong values; such text is read value by value, so the tag on
    the second line still decodes into the first value."""
    src = tmp_path / "in.ndjson"
    src.write_text('{"x": [1\n2], "d": {"$date": "2024-05-01"}}\n{"y": 1},{"z": 2}\n', encoding="utf-8")
    db = str(tmp_path / "db.json")
    assert main(["insert", db, "t", str(src), "-q"]) == 0
    assert docs_of(db, "t") == [{"x": [1, 2], "d": dt.date(2024, 5, 1)}, {"y": 1}, {"z": 2}]


def test_tagged_values_round_trip(tmp_path: Path) -> None:
    """Rich values print in tagged JSON, and insert reads that output back to equal values."""
    rich = {
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc), "day": dt.date(2024, 5, 1),
        "price": Decimal("10.50"), "id": uuid.UUID(int=42), "raw": b"\x00\xff", "tags": {"a", "b"},
        "pair": (1, 2), "$odd": 1, "nested": {"$date": "not a tag here"},
    }
    src = str(tmp_path / "src.json")
    with MicroDB(src) as d:
        d.table("t").insert(rich)
    for fmt in ("--nl", "--json"):
        proc = run("rows", src, "t", fmt)
        assert proc.returncode == 0, proc.stderr
        assert '{"$date":"2024-05-01"}' in proc.stdout
        dst = str(tmp_path / f"dst{fmt}.json")
        back = run("insert", dst, "t", "-", stdin=proc.stdout)
        assert back.returncode == 0, back.stderr
        assert docs_of(dst, "t") == [rich]


def test_tinydb_file_from_tinydb_itself(tmp_path: Path) -> None:
    """A file written by TinyDB loads, table by table."""
    tinydb = pytest.importorskip("tinydb")
    path = tmp_path / "tiny.json"
    t = tinydb.TinyDB(str(path))
    t.insert({"a": 1})
    t.table("users").insert_multiple([{"name": "Ann"}, {"name": "Bob"}])
    t.close()
    db = str(tmp_path / "db.json")
    assert main(["insert", db, "people", str(path), "--tinydb-table", "users", "-q"]) == 0
    assert docs_of(db, "people") == [{"name": "Ann"}, {"name": "Bob"}]
    assert main(["import", db, str(path), "-q"]) == 0
    assert docs_of(db, "users") == [{"name": "Ann"}, {"name": "Bob"}]
    assert docs_of(db, "_default") == [{"a": 1}]
