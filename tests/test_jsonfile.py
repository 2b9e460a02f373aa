"""The JSON file storage: file format, options, processes sharing a file, read-only modes,
locks, format versions, foreign files, TinyDB interoperability, and ``AutoSavingDict``."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microdb.serialization as serialization
import microdb.storage.checkpoint as checkpoint
import microdb.storage.journal as journal
import microdb.storage.snapshot as snapshot
from microdb import (
    AutoSavingDict,
    CorruptDatabaseError,
    DatabaseClosedError,
    DocumentError,
    FormatVersionError,
    LockTimeout,
    MicroDB,
    ReadOnlyError,
    StorageError,
    where,
)
from microdb.locking import FileLock
from microdb.storage.records import FORMAT_VERSION, frame_record

# -- helpers ------------------------------------------------------------------------------------

def journal_lines(path: Path) -> list[dict[str, Any] | list[Any]]:
    """The payloads of the journal beside ``path``, header first."""
    data = Path(str(path) + ".journal").read_bytes().rstrip(b"\0")
    out = []
    for line in data.split(b"\n")[:-1]:
        length, crc, payload = line.split(b" ", 2)
        assert int(length, 16) == len(payload)
        out.append(json.loads(payload))
    return out


def files(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` and its bytes (to prove nothing was touched)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def write_journal(path: Path, header: dict[str, Any], *records: Any) -> None:
    """Write a journal by hand (header and records)."""
    blob = frame_record(json.dumps(header).encode())
    for record in records:
        blob += frame_record(json.dumps(record).encode())
    Path(str(path) + ".journal").write_bytes(blob)


def header(**extra: Any) -> dict[str, Any]:
    """A journal header of the current format, with changes."""
    base: dict[str, Any] = {"microdb": "journal", "format": FORMAT_VERSION, "kind": "tables", "generation": 1, "meta": {}}
    base.update(extra)
    return base


def can_drop_privileges() -> bool:
    """Whether a child can run without the power to ignore file permissions."""
    return os.name == "posix" and (os.geteuid() != 0 or shutil.which("setpriv") is not None)


def run_unprivileged(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run Python code in a child that file permissions apply to (even when we are root)."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--", *cmd]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """The path of a database file in a fresh folder."""
    return tmp_path / "db.json"


@pytest.fixture
def db(path: Path) -> Iterator[MicroDB]:
    """A database on a fresh file, closed after the test."""
    database = MicroDB(str(path))
    yield database
    database.close()


# -- the file format ------------------------------------------------------------------------------

def test_snapshot_is_tinydb_shaped_json(path: Path) -> None:
    """After close the file is plain JSON: tables of documents keyed by id strings."""
    with MicroDB(str(path)) as db:
        db.insert({"a": 1})
        db.table("users").insert_many([{"name": "Ann"}, {"name": "Bo"}])
    assert json.loads(path.read_text()) == {"_default": {"1": {"a": 1}}, "users": {"1": {"name": "Ann"}, "2": {"name": "Bo"}}}


def test_each_commit_is_one_framed_journal_record(db: MicroDB, path: Path) -> None:
    """Every commit appends one record of absolute changes; a batch is one record."""
    db.insert({"a": 1})
    db.insert_many([{"a": 2}, {"a": 3}])
    db.update({"b": True}, where("a") >= 2)
    db.remove(doc_ids=[1])
    lines = journal_lines(path)
    assert lines[0]["microdb"] == "journal" and lines[0]["format"] == FORMAT_VERSION  # type: ignore[call-overload]
    commits = lines[1:]
    assert commits[1:] == [
        [["p", "_default", 2, {"a": 2}], ["p", "_default", 3, {"a": 3}]],
        [["f", "_default", 2, {"b": True}], ["f", "_default", 3, {"b": True}]],  # patches: the changed fields
        [["d", "_default", 1]],
    ]
    assert commits[0][-1] == ["p", "_default", 1, {"a": 1}]


def test_records_carry_length_and_checksum() -> None:
    """A record is '<length> <crc32> <payload>' on one line; the CRC covers length and payload."""
    import zlib

    line = frame_record(b'[["d","t",1]]')
    length, crc, rest = line.split(b" ", 2)
    assert rest == b'[["d","t",1]]\n'
    assert int(length, 16) == 13
    assert int(crc, 16) == zlib.crc32(b'[["d","t",1]]', zlib.crc32(length))


def test_writes_do_not_rewrite_the_snapshot(db: MicroDB, path: Path) -> None:
    """A commit only appends to the journal; the snapshot file stays the same inode and bytes."""
    db.insert_many([{"n": i} for i in range(50)])
    db.compact()
    before = (path.stat().st_ino, path.read_bytes())
    for i in range(20):
        db.insert({"n": i})
    assert (path.stat().st_ino, path.read_bytes()) == before


def test_rich_values_are_tagged_in_the_file_and_come_back_typed(path: Path) -> None:
    """Datetimes, UUIDs, sets... are written as $-tagged objects and read back as Python values."""
    doc = {"when": dt.datetime(2024, 5, 1, 12, 0), "id": uuid.UUID(int=7), "tags": {"a"}, "pair": (1, 2), "blob": b"\x00\x01"}
    with MicroDB(str(path)) as db:
        db.insert(doc)
        assert db.all() == [doc]
    raw = json.loads(path.read_text())["_default"]["1"]
    assert raw["when"] == {"$datetime": "2024-05-01T12:00:00"} and raw["id"] == {"$uuid": str(uuid.UUID(int=7))}
    with MicroDB(str(path)) as db:
        assert db.all() == [doc]


def test_ids_and_indexes_survive_in_the_journal_header(path: Path) -> None:
    """The next id and index definitions, which TinyDB's shape cannot hold, live in the header."""
    with MicroDB(str(path)) as db:
        t = db.table("t")
        t.insert_many([{"a": 1}, {"a": 2}, {"a": 3}])
        t.create_index("a", unique=True)
        t.remove(doc_ids=[3])
    head = journal_lines(path)[0]
    assert head["meta"]["t"] == {"next_id": 4, "indexes": [{"path": ["a"], "unique": True}]}  # type: ignore[call-overload]
    assert json.loads(path.read_text()) == {"t": {"1": {"a": 1}, "2": {"a": 2}}}
    with MicroDB(str(path)) as db:
        assert db.table("t").insert({"a": 9}) == 4
        assert db.table("t").indexes() == [{"path": ["a"], "unique": True}]


def test_empty_tables_are_kept(path: Path) -> None:
    """A table emptied by truncate still exists after reopening, and keeps its next id."""
    with MicroDB(str(path)) as db:
        db.table("t").insert({"a": 1})
        db.table("t").truncate()
    with MicroDB(str(path)) as db:
        assert "t" in db.tables()
        assert db.table("t").insert({"a": 2}) == 2


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, '{"t":{"1":{"b":1,"a":"é"}}}'),
        ({"indent": 2}, None),
        ({"sort_keys": True}, '{"t":{"1":{"a":"é","b":1}}}'),
        ({"ensure_ascii": True}, '{"t": {"1": {"b": 1, "a": "\\u00e9"}}}'),
    ],
)
def test_snapshot_options_shape_the_file(path: Path, options: dict[str, Any], expected: str | None) -> None:
    """indent, sort_keys and ensure_ascii shape the snapshot as they do in TinyDB."""
    with MicroDB(str(path), **options) as db:
        db.table("t").insert({"b": 1, "a": "é"})
    text = path.read_text(encoding="utf-8")
    if expected is None:
        assert text == json.dumps({"t": {"1": {"b": 1, "a": "é"}}}, indent=2, ensure_ascii=False)
    else:
        assert json.loads(text) == json.loads(expected)
        assert text.replace(" ", "") == expected.replace(" ", "")


def test_encoding_option(path: Path) -> None:
    """The snapshot is written and read in the chosen encoding."""
    with MicroDB(str(path), encoding="utf-16") as db:
        db.insert({"name": "Zoë"})
    assert json.loads(path.read_bytes().decode("utf-16")) == {"_default": {"1": {"name": "Zoë"}}}
    with MicroDB(str(path), encoding="utf-16") as db:
        assert db.all() == [{"name": "Zoë"}]


def test_create_dirs(tmp_path: Path) -> None:
    """Missing folders are created by default; with create_dirs=False opening fails clearly."""
    deep = tmp_path / "a" / "b" / "db.json"
    with MicroDB(str(deep)) as db:
        db.insert({"x": 1})
    assert deep.exists()
    with pytest.raises(StorageError, match="does not exist"):
        MicroDB(str(tmp_path / "missing" / "db.json"), create_dirs=False)


@pytest.mark.parametrize("bad", [{"lock_timeout": -1}, {"checkpoint_ratio": 0}, {"checkpoint_bytes": -5}, {"encoding": "no-such-codec"}])
def test_bad_options_are_rejected(path: Path, bad: dict[str, Any]) -> None:
    """Nonsensical options raise at once, before any file is created."""
    with pytest.raises((ValueError, LookupError)):
        MicroDB(str(path), **bad)
    assert not path.exists()


def test_new_database_files(path: Path) -> None:
    """Opening a new path creates the snapshot, its journal and the lock file."""
    db = MicroDB(str(path))
    assert json.loads(path.read_text()) == {}
    (head,) = journal_lines(path)
    data = path.read_bytes()
    assert head == header(meta={}, snapshot={"size": len(data), "crc": zlib.crc32(data), "mtime_ns": path.stat().st_mtime_ns})
    assert Path(str(path) + ".lock").exists()
    db.close()


# -- checkpoints ---------------------------------------------------------------------------------

def test_checkpoint_when_the_journal_outgrows_its_threshold(path: Path) -> None:
    """Past the threshold the journal is folded into a new snapshot and starts again."""
    with MicroDB(str(path), checkpoint_bytes=2000, checkpoint_ratio=0.5) as db:
        generations = set()
        for i in range(200):
            db.insert({"n": i, "pad": "x" * 20})
            generations.add(journal_lines(path)[0]["generation"])  # type: ignore[call-overload]
        assert len(generations) > 3
        assert len(json.loads(path.read_text())["_default"]) > 100
    with MicroDB(str(path)) as db:
        assert [d["n"] for d in db.all()] == list(range(200))


def test_compact_folds_the_journal_now(db: MicroDB, path: Path) -> None:
    """compact() writes every change into the snapshot and leaves a journal with only its header."""
    db.insert_many([{"n": i} for i in range(10)])
    db.remove(where("n") < 5)
    db.compact()
    assert len(journal_lines(path)) == 1
    assert json.loads(path.read_text()) == {"_default": {str(i + 1): {"n": i} for i in range(5, 10)}}


def test_close_checkpoints(path: Path) -> None:
    """Closing folds the journal into the snapshot."""
    db = MicroDB(str(path))
    db.insert({"a": 1})
    assert json.loads(path.read_text()) == {}
    db.close()
    assert json.loads(path.read_text()) == {"_default": {"1": {"a": 1}}}
    assert len(journal_lines(path)) == 1


def test_a_commit_a_checkpoint_follows_is_written_as_that_checkpoint(path: Path) -> None:
    """With a checkpoint due at the commit, the commit goes straight to the snapshot: the
    journal gets no record of it (it would be folded in at once), and the commit is there."""
    with MicroDB(str(path), checkpoint_interval=0) as db:
        generation = journal_lines(path)[0]["generation"]  # type: ignore[call-overload]
        db.insert_many([{"n": i} for i in range(3)])
        lines = journal_lines(path)
        assert len(lines) == 1 and lines[0]["generation"] == generation + 1  # type: ignore[call-overload]
        assert json.loads(path.read_text()) == {"_default": {str(i + 1): {"n": i} for i in range(3)}}
        other = MicroDB(str(path), read_only=True)
        assert [d["n"] for d in other.all()] == [0, 1, 2]
        other.close()
    with MicroDB(str(path)) as db:
        assert [d["n"] for d in db.all()] == [0, 1, 2]


def test_a_failed_direct_checkpoint_leaves_the_commit_to_the_journal(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing the commit as a checkpoint fails, it is appended to the journal as usual:
    the commit succeeds and stays, whichever step failed."""
    steps = ["begin", "snapshot-written", "journal-written", "snapshot-replaced", "journal-replaced"]
    with MicroDB(str(path), checkpoint_interval=0) as db:
        for n, step in enumerate(steps):
            def fail(name: str, step: str = step) -> None:
                if name == step:
                    raise OSError(errno.EIO, "I/O error")

            monkeypatch.setattr(journal.JournaledFile, "fault_hook", staticmethod(fail))
            db.insert({"n": n})
            monkeypatch.setattr(journal.JournaledFile, "fault_hook", None)
            assert [d["n"] for d in db.all()] == list(range(n + 1))
            with MicroDB(str(path), read_only=True) as other:
                assert [d["n"] for d in other.all()] == list(range(n + 1)), step
            db.compact()
    with MicroDB(str(path)) as db:
        assert [d["n"] for d in db.all()] == list(range(len(steps)))


def test_close_does_not_checkpoint_over_other_processes_writes(path: Path) -> None:
    """A handle that has not seen another's last commit leaves the journal for the next checkpoint."""
    a, b = MicroDB(str(path)), MicroDB(str(path))
    a.insert({"by": "a"})
    b.insert({"by": "b"})  # b catches up with a first, then commits
    a.close()  # a has not seen b's commit: it must not write a snapshot without it
    b.close()
    with MicroDB(str(path)) as db:
        assert sorted(d["by"] for d in db.all()) == ["a", "b"]


def test_snapshot_keeps_its_permissions(path: Path) -> None:
    """A checkpoint gives the new snapshot the old one's permission bits."""
    with MicroDB(str(path)) as db:
        db.insert({"a": 1})
    os.chmod(path, 0o600)
    with MicroDB(str(path)) as db:
        db.insert({"a": 2})
    assert path.stat().st_mode & 0o777 == 0o600


# -- several handles, threads and processes ----------------------------------------------------------

def test_two_handles_see_each_others_commits(path: Path) -> None:
    """Two databases on one file read each other's writes, across checkpoints too."""
    a, b = MicroDB(str(path)), MicroDB(str(path), checkpoint_bytes=300, checkpoint_ratio=0.1)
    try:
        a.insert({"n": 1})
        assert b.all() == [{"n": 1}]
        for i in range(2, 30):
            b.insert({"n": i})
        assert [d["n"] for d in a.all()] == list(range(1, 30))
        a.update({"seen": True}, doc_ids=[5])
        assert b.get(doc_id=5) == {"n": 5, "seen": True}
        a.table("other").insert({"x": 1})
        b.drop_table("other")
        assert a.tables() == {"_default"}
    finally:
        a.close()
        b.close()


def test_ids_stay_unique_across_handles(path: Path) -> None:
    """Inserts through two handles never hand out the same id."""
    a, b = MicroDB(str(path)), MicroDB(str(path))
    ids = [a.insert({}) if i % 2 else b.insert({}) for i in range(40)]
    assert sorted(ids) == list(range(1, 41))
    a.close()
    b.close()


def test_reading_checks_with_one_byte_and_no_reread(db: MicroDB, monkeypatch: pytest.MonkeyPatch) -> None:
    """When nobody wrote, a read costs a one-byte read of the journal: no stat, nothing re-read."""
    db.insert({"a": 1})
    monkeypatch.setattr(journal, "_RESTAT_EVERY", 3600.0)
    reads: list[int] = []
    stats: list[object] = []
    real_pread, real_stat, real_fstat = journal.pread_all, os.stat, os.fstat
    real_one = journal._pread
    monkeypatch.setattr(journal, "pread_all", lambda fd, size, offset: reads.append(size) or real_pread(fd, size, offset))
    monkeypatch.setattr(journal, "_pread", lambda fd, size, offset: reads.append(size) or real_one(fd, size, offset))
    monkeypatch.setattr(journal.os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    monkeypatch.setattr(journal.os, "fstat", lambda fd: stats.append(fd) or real_fstat(fd))
    for _ in range(10):
        assert db.count() == 1
    assert stats == []
    assert reads == [1] * 10


def test_journal_is_stat_ed_once_a_second_at_most(db: MicroDB, monkeypatch: pytest.MonkeyPatch) -> None:
    """A safety stat of the journal's path runs at most once per interval, catching a replaced file."""
    db.insert({"a": 1})
    stats: list[object] = []
    real_stat = os.stat
    monkeypatch.setattr(journal.os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    monkeypatch.setattr(journal, "_RESTAT_EVERY", 0.0)
    db.count()
    assert len(stats) == 1
    monkeypatch.setattr(journal, "_RESTAT_EVERY", 3600.0)
    for _ in range(5):
        db.count()
    assert len(stats) == 1


def test_other_process_sees_commits(path: Path) -> None:
    """A write in another process is read here before the next operation."""
    with MicroDB(str(path)) as db:
        db.insert({"from": "parent"})
        code = (
            "import sys; from microdb import MicroDB\n"
            "with MicroDB(sys.argv[1]) as db:\n"
            "    assert [d['from'] for d in db.all()] == ['parent']\n"
            "    db.insert({'from': 'child'})\n"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
        assert [d["from"] for d in db.all()] == ["parent", "child"]
        assert db.insert({"from": "parent"}) == 3


def test_threads_sharing_one_handle(db: MicroDB) -> None:
    """Many threads writing through one database lose nothing."""
    def work(k: int) -> None:
        for i in range(25):
            db.insert({"k": k, "i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.count() == 150


# -- locks --------------------------------------------------------------------------------------------

def test_lock_timeout_when_another_holds_the_lock(path: Path) -> None:
    """A writer that cannot get the lock in time raises LockTimeout and changes nothing."""
    db = MicroDB(str(path), lock_timeout=0.2)
    db.insert({"n": 1})
    other = FileLock(str(path) + ".lock")
    other.acquire()
    try:
        with pytest.raises(LockTimeout, match="within 0.2 s"):
            db.insert({"n": 2})
        assert db.all() == [{"n": 1}]  # reads need no lock
    finally:
        other.release()
        other.close()
    assert db.insert({"n": 3}) == 2
    db.close()


def test_lock_timeout_is_a_timeout_and_a_storage_error() -> None:
    """LockTimeout can be caught as TimeoutError or StorageError."""
    assert issubclass(LockTimeout, TimeoutError) and issubclass(LockTimeout, StorageError)


def test_file_lock_is_reentrant_and_exclusive(tmp_path: Path) -> None:
    """The same object may take the lock twice; another object cannot until both are released."""
    a, b = FileLock(str(tmp_path / "x.lock")), FileLock(str(tmp_path / "x.lock"), timeout=0.05)
    with a, a:
        assert a.held
        with pytest.raises(LockTimeout):
            b.acquire()
    b.acquire()
    b.release()
    a.close()
    b.close()


def test_file_lock_survives_its_file_being_removed(tmp_path: Path) -> None:
    """If the lock file is deleted while one holder waits, the lock is taken on the new file."""
    lock_path = str(tmp_path / "x.lock")
    a, b = FileLock(lock_path), FileLock(lock_path)
    a.acquire()
    os.remove(lock_path)
    a.release()
    b.acquire()  # locks the old (removed) file first, notices, and moves to a new one
    assert os.path.exists(lock_path)
    c = FileLock(lock_path, timeout=0.05)
    with pytest.raises(LockTimeout):
        c.acquire()
    b.release()
    for lock in (a, b, c):
        lock.close()


# -- read-only -------------------------------------------------------------------------------------------

def test_read_only_option(path: Path) -> None:
    """read_only=True reads, refuses every write with ReadOnlyError, and touches no file."""
    with MicroDB(str(path)) as db:
        db.insert({"a": 1})
    os.remove(str(path) + ".lock")
    before = files(path.parent)
    ro = MicroDB(str(path), read_only=True)
    assert ro.all() == [{"a": 1}]
    for write in (lambda: ro.insert({"b": 2}), lambda: ro.truncate(), lambda: ro.table("t").insert({}), ro.compact):
        with pytest.raises(ReadOnlyError):
            write()
    ro.close()
    assert files(path.parent) == before


def test_read_only_sees_writers(path: Path) -> None:
    """A read-only handle follows another handle's commits and checkpoints."""
    writer = MicroDB(str(path), checkpoint_bytes=200, checkpoint_ratio=0.1)
    reader = MicroDB(str(path), read_only=True)
    for i in range(20):
        writer.insert({"n": i})
        assert reader.count() == i + 1
    writer.close()
    assert reader.count() == 20
    reader.close()


def test_read_only_missing_file_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    """Opening a missing file read-only gives an empty database and creates no file."""
    with MicroDB(str(tmp_path / "none.json"), read_only=True) as db:
        assert db.all() == []
    assert list(tmp_path.iterdir()) == []


def test_read_only_mode_when_os_access_says_no(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the process may not write opens read-only; the first write raises ReadOnlyError."""
    with MicroDB(str(path)) as db:
        db.insert({"a": 1})
    monkeypatch.setattr(journal.os, "access", lambda p, mode: not mode & os.W_OK)
    db = MicroDB(str(path))
    assert db.backend.store.read_only  # type: ignore[attr-defined]
    assert db.all() == [{"a": 1}]
    with pytest.raises(ReadOnlyError):
        db.insert({"a": 2})
    db.close()


@pytest.mark.skipif(not can_drop_privileges(), reason="needs POSIX permissions (setpriv when root)")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_file_or_folder_opens_read_only(tmp_path: Path, what: str) -> None:
    """With a read-only file or folder (real permissions), reads work and writes raise ReadOnlyError."""
    folder = tmp_path / "data"
    folder.mkdir()
    with MicroDB(str(folder / "db.json")) as db:
        db.insert({"a": 1})
    os.chmod(tmp_path, 0o755)
    targets = [folder / "db.json", folder / "db.json.journal"] if what == "file" else [folder]
    for target in targets:
        os.chmod(target, 0o555 if target.is_dir() else 0o444)
    try:
        code = (
            "from microdb import MicroDB, ReadOnlyError\n"
            "db = MicroDB('db.json')\n"
            "assert db.all() == [{'a': 1}], db.all()\n"
            "try:\n"
            "    db.insert({'a': 2})\n"
            "except ReadOnlyError as exc:\n"
            "    print('refused:', exc)\n"
            "db.close()\n"
        )
        proc = run_unprivileged(code, folder)
        assert proc.returncode == 0, proc.stderr
        assert "refused:" in proc.stdout
    finally:
        for target in targets:
            os.chmod(target, 0o755 if target.is_dir() else 0o644)
    with MicroDB(str(folder / "db.json")) as db:
        assert db.all() == [{"a": 1}]


# -- format versions ---------------------------------------------------------------------------------------

def test_newer_format_is_refused_and_untouched(path: Path) -> None:
    """A journal from a newer MicroDB raises FormatVersionError and no file changes."""
    path.write_text('{"_default": {"1": {"a": 1}}}')
    write_journal(path, header(format=FORMAT_VERSION + 1))
    before = files(path.parent)
    with pytest.raises(FormatVersionError, match="newer MicroDB"):
        MicroDB(str(path))
    with pytest.raises(FormatVersionError):
        MicroDB(str(path), read_only=True)
    assert files(path.parent) == before


def test_older_format_is_upgraded(path: Path) -> None:
    """An older journal is replayed, then rewritten in the current format by a checkpoint."""
    path.write_text('{"t": {"1": {"a": 1}}}')
    write_journal(path, header(format=0, meta={"t": {"next_id": 5, "indexes": []}}), [["p", "t", 2, {"a": 2}]])
    with MicroDB(str(path)) as db:
        assert db.table("t").all() == [{"a": 1}, {"a": 2}]
        assert journal_lines(path)[0]["format"] == FORMAT_VERSION  # type: ignore[call-overload]
        assert json.loads(path.read_text()) == {"t": {"1": {"a": 1}, "2": {"a": 2}}}
        assert db.table("t").insert({"a": 3}) == 5


def test_a_plain_tinydb_file_gets_a_journal_only_when_opened_for_writing(path: Path) -> None:
    """A file without journal (TinyDB's, or format 0) opens as it is; a writable open adds the journal."""
    path.write_text('{"_default": {"1": {"a": 1}, "7": {"a": 7}}}')
    original = path.read_bytes()
    with MicroDB(str(path), read_only=True) as db:
        assert db.all() == [{"a": 1}, {"a": 7}]
    assert not Path(str(path) + ".journal").exists()
    with MicroDB(str(path)) as db:
        assert path.read_bytes() == original  # the snapshot is left as it was
        assert journal_lines(path)[0]["meta"] == {"_default": {"next_id": 8, "indexes": []}}  # type: ignore[call-overload]
        assert db.insert({"a": 8}) == 8


# -- corrupt and foreign files ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "content, offset, message",
    [
        (b'{"_default": {"1": {"a": 1}', 27, "not valid JSON"),
        (b'{"_default": {"1": {"a": 1}}} trailing', 30, "not valid JSON"),
        (b'{"t": {"1": {"a": NaN}}}', 18, "not valid JSON"),
        (b'{"t": {"1": {"a": "\xff"}}}', 19, "not valid JSON"),
        (b"[1, 2, 3]", 0, "not an object of tables"),
        (b'{"t": [1, 2]}', 1, "table 't' is not a JSON object"),
        (b'{"t": {"x": {"a": 1}}}', 7, "not an integer id"),
        (b'{"t": {"1": [1]}}', 7, "document 1 of table 't' is not a JSON object"),
    ],
)
@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_foreign_or_damaged_snapshot(
    path: Path, content: bytes, offset: int, message: str, large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that is not a database raises CorruptDatabaseError naming file and offset, untouched.

    "large": the file is parsed as a file over ``ORJSON_MAX_BYTES`` is, by the standard library.
    """
    if large:
        monkeypatch.setattr(serialization, "ORJSON_MAX_BYTES", 0)
    path.write_bytes(content)
    for read_only in (False, True):
        with pytest.raises(CorruptDatabaseError, match=message) as info:
            MicroDB(str(path), read_only=read_only)
        assert info.value.path == str(path)
        assert info.value.offset == offset
        assert str(path) in str(info.value) and f"byte {offset}" in str(info.value)
    assert files(path.parent) == {"db.json": content}


def test_a_file_over_the_orjson_limit_reads_back_the_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large snapshots are parsed by the standard library (a third of orjson's peak memory);
    they must read back exactly what the other parser reads: tagged types, exact 64-bit ints."""
    docs = [
        {"n": i, "when": dt.datetime(2026, 1, 1, 12, i % 60), "id": uuid.UUID(int=i), "big": 2**62 + i,
         "text": "é\u2028\n" * 3, "nested": {"tags": ["a", i], "f": i / 3}}
        for i in range(300)
    ]
    with MicroDB(str(path)) as db:
        db.insert_many(docs)
        db.compact()  # everything in the snapshot, nothing in the journal
    assert path.stat().st_size > 20_000
    monkeypatch.setattr(serialization, "ORJSON_MAX_BYTES", 20_000)
    assert not serialization._use_orjson(path.read_bytes())
    with MicroDB(str(path)) as db:
        assert db.all() == docs
        assert type(db.get(doc_id=1)["when"]) is dt.datetime


def test_empty_file_is_an_empty_database(path: Path) -> None:
    """An empty file (as TinyDB's touch() leaves it) opens as an empty database."""
    path.write_bytes(b"")
    with MicroDB(str(path)) as db:
        assert db.all() == []
        db.insert({"a": 1})
    with MicroDB(str(path)) as db:
        assert db.all() == [{"a": 1}]


@pytest.mark.parametrize(
    "journal, message",
    [
        (b"hello world\n", "header fails"),
        (frame_record(b'{"some": "json"}'), "not a MicroDB journal"),
        (frame_record(json.dumps(header(kind="dict")).encode()), "belongs to a 'dict' file"),
        (frame_record(json.dumps(header(meta={"t": 5})).encode()), "malformed"),
        (frame_record(json.dumps(header()).encode()) + frame_record(b'[["zz"]]'), "not a list of changes"),
        (frame_record(json.dumps(header()).encode()) + frame_record(b"[1, 2"), "not JSON"),
    ],
)
def test_foreign_or_damaged_journal(path: Path, journal: bytes, message: str) -> None:
    """A journal that is not ours, or holds nonsense with a good checksum, is refused untouched."""
    path.write_text('{"t": {}}')
    Path(str(path) + ".journal").write_bytes(journal)
    before = files(path.parent)
    with pytest.raises(CorruptDatabaseError, match=message):
        MicroDB(str(path))
    assert files(path.parent) == before


def test_autosaving_dict_and_database_files_do_not_mix(tmp_path: Path) -> None:
    """A database file is refused by AutoSavingDict and the other way round."""
    with MicroDB(str(tmp_path / "db.json")) as db:
        db.insert({"a": 1})
    with pytest.raises(CorruptDatabaseError):
        AutoSavingDict(tmp_path / "db.json")
    with AutoSavingDict(tmp_path / "d.json") as d:
        d["k"] = 1
    with pytest.raises(CorruptDatabaseError):
        MicroDB(str(tmp_path / "d.json"))


# -- faults ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "err, kind",
    [(errno.ENOSPC, StorageError), (errno.EIO, StorageError), (errno.EACCES, ReadOnlyError), (errno.EROFS, ReadOnlyError)],
)
def test_failed_write_applies_nothing(path: Path, monkeypatch: pytest.MonkeyPatch, err: int, kind: type[Exception]) -> None:
    """When the journal write fails, a clear StorageError is raised and nothing is applied anywhere."""
    db = MicroDB(str(path))
    db.insert_many([{"n": 1}, {"n": 2}])
    real = journal.pwrite_all

    def failing(fd: int, data: bytes, offset: int) -> None:
        real(fd, data[: len(data) // 2], offset)  # half the record reaches the file
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(journal, "pwrite_all", failing)
    with pytest.raises(kind, match="nothing was changed"):
        db.insert({"n": 3})
    with pytest.raises(kind):
        db.update({"n": 0}, doc_ids=[1])
    assert db.all() == [{"n": 1}, {"n": 2}]
    monkeypatch.undo()
    assert db.insert({"n": 3}) == 3
    db.close()
    with MicroDB(str(path)) as again:
        assert [d["n"] for d in again.all()] == [1, 2, 3]


def test_failed_fsync_applies_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When fsync fails the record is taken back and the commit raises StorageError."""
    db = MicroDB(str(path))
    db.insert({"n": 1})

    def failing(fd: int, full: bool = False) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(journal, "fsync_fd", failing)
    with pytest.raises(StorageError):
        db.insert({"n": 2})
    monkeypatch.undo()
    assert db.all() == [{"n": 1}]
    db.close()
    with MicroDB(str(path)) as again:
        assert again.all() == [{"n": 1}]


def test_journal_removed_underneath(path: Path) -> None:
    """If the journal is deleted while open, writes raise StorageError; reads keep working."""
    db = MicroDB(str(path))
    db.insert({"n": 1})
    os.remove(str(path) + ".journal")
    assert db.all() == [{"n": 1}]
    with pytest.raises(StorageError, match="removed"):
        db.insert({"n": 2})
    assert db.all() == [{"n": 1}]
    db.close()


def test_snapshot_removed_underneath(path: Path) -> None:
    """If the snapshot is deleted while open, writes raise StorageError and nothing is applied."""
    db = MicroDB(str(path))
    db.insert({"n": 1})
    os.remove(path)
    with pytest.raises(StorageError, match="removed"):
        db.insert({"n": 2})
    assert db.all() == [{"n": 1}]
    db.close()


def test_snapshot_replaced_underneath_is_reloaded(path: Path) -> None:
    """A snapshot replaced by another program is read again, as a fresh open would read it."""
    db = MicroDB(str(path))
    db.insert({"n": 1})
    db.compact()
    other = path.with_name("other.json")
    other.write_text('{"_default": {"1": {"n": 1}, "2": {"n": 2}}}')
    os.replace(other, path)
    db.insert({"n": 3})
    assert [d["n"] for d in db.all()] == [1, 2, 3]
    db.close()


def test_journal_replaced_by_garbage_underneath(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal replaced by something else is noticed (within a second) and refused."""
    db = MicroDB(str(path))
    db.insert({"n": 1})
    other = path.with_name("other")
    other.write_text("not a journal\n")
    os.replace(other, str(path) + ".journal")
    monkeypatch.setattr(journal, "_RESTAT_EVERY", 0.0)  # as if a second had passed
    with pytest.raises(CorruptDatabaseError):
        db.all()
    db.close()


# -- TinyDB ------------------------------------------------------------------------------------------------

def test_tinydb_reads_what_microdb_wrote(path: Path) -> None:
    """TinyDB opens a MicroDB file and finds the same tables, documents and ids."""
    tinydb = pytest.importorskip("tinydb")
    with MicroDB(str(path)) as db:
        db.insert_many([{"name": "Ann", "age": 30}, {"name": "Bo", "age": 25}])
        db.table("pets").insert({"kind": "cat"})
        db.remove(doc_ids=[1])
        db.insert({"name": "Cy", "age": 41})
    tdb = tinydb.TinyDB(str(path))
    assert tdb.tables() == {"_default", "pets"}
    assert [(d.doc_id, dict(d)) for d in tdb.all()] == [(2, {"name": "Bo", "age": 25}), (3, {"name": "Cy", "age": 41})]
    assert tdb.table("pets").all() == [{"kind": "cat"}]
    tdb.close()


def test_microdb_reads_what_tinydb_wrote(path: Path) -> None:
    """A file written by TinyDB opens in MicroDB as it is, ids included, and stays TinyDB-readable."""
    tinydb = pytest.importorskip("tinydb")
    tdb = tinydb.TinyDB(str(path), indent=4)
    tdb.insert_multiple([{"a": 1}, {"a": 2}, {"a": 3}])
    tdb.remove(doc_ids=[2])
    tdb.table("t").insert({"b": "x"})
    tdb.close()
    with MicroDB(str(path)) as db:
        assert [(d.doc_id, d) for d in db.all()] == [(1, {"a": 1}), (3, {"a": 3})]
        assert db.table("t").all() == [{"b": "x"}]
        assert db.insert({"a": 4}) == 4
    tdb = tinydb.TinyDB(str(path))
    assert [d["a"] for d in tdb.all()] == [1, 3, 4]
    tdb.close()


def test_tinydb_edits_between_sessions_are_read(path: Path) -> None:
    """Changes TinyDB makes while MicroDB is closed are seen at the next open; ids are never reused."""
    tinydb = pytest.importorskip("tinydb")
    with MicroDB(str(path)) as db:
        db.insert_many([{"a": 1}, {"a": 2}, {"a": 3}])
        db.remove(doc_ids=[3])
    tdb = tinydb.TinyDB(str(path))
    tdb.insert({"a": "tiny"})  # TinyDB gives it id 3 (it does not know 3 was used)
    tdb.close()
    with MicroDB(str(path)) as db:
        assert db.get(doc_id=3) == {"a": "tiny"}
        assert db.insert({"a": 5}) == 4


# -- AutoSavingDict ------------------------------------------------------------------------------------------

def test_autosaving_dict_saves_every_change(tmp_path: Path) -> None:
    """Each change is on disk when the call returns: another handle sees it at once."""
    f = tmp_path / "d.json"
    d, e = AutoSavingDict(f), AutoSavingDict(f)
    d["a"] = 1
    assert e["a"] == 1
    d["a"] = {"nested": [1, 2]}
    assert e["a"] == {"nested": [1, 2]}
    del d["a"]
    assert "a" not in e
    d.close()
    e.close()


def test_autosaving_dict_is_a_mutable_mapping(tmp_path: Path) -> None:
    """It behaves as a dict: item access, len, iteration order, get, pop, popitem, setdefault, clear."""
    with AutoSavingDict(tmp_path / "d.json") as d:
        d.update({"a": 1, "b": 2}, c=3)
        assert list(d) == ["a", "b", "c"] and len(d) == 3
        assert d == {"a": 1, "b": 2, "c": 3}
        assert d.get("zz", 9) == 9
        assert d.pop("b") == 2 and d.pop("b", None) is None
        with pytest.raises(KeyError):
            d.pop("b")
        with pytest.raises(KeyError):
            del d["b"]
        assert d.setdefault("a", 100) == 1 and d.setdefault("z", [1]) == [1]
        assert d.popitem() == ("z", [1])
        assert dict(d.items()) == {"a": 1, "c": 3}
        d.clear()
        assert d == {} and len(d) == 0
        with pytest.raises(KeyError):
            d.popitem()


def test_autosaving_dict_file_is_a_plain_json_object(tmp_path: Path) -> None:
    """After close its file is one plain JSON object, rich values tagged."""
    f = tmp_path / "d.json"
    with AutoSavingDict(f) as d:
        d["when"] = dt.date(2024, 1, 2)
        d["n"] = 1
    assert json.loads(f.read_text()) == {"when": {"$date": "2024-01-02"}, "n": 1}
    with AutoSavingDict(f) as d:
        assert d["when"] == dt.date(2024, 1, 2)


def test_autosaving_dict_update_is_one_commit(tmp_path: Path) -> None:
    """update() with many keys writes one journal record."""
    f = tmp_path / "d.json"
    with AutoSavingDict(f) as d:
        d.update({str(i): i for i in range(50)})
        assert len(journal_lines(f)) == 2


def test_autosaving_dict_rejects_bad_keys_and_values_before_writing(tmp_path: Path) -> None:
    """A non-string key or a value JSON cannot hold raises DocumentError; nothing is stored."""
    f = tmp_path / "d.json"
    with AutoSavingDict(f) as d:
        d["ok"] = 1
        with pytest.raises(DocumentError):
            d[1] = "x"  # type: ignore[index]
        with pytest.raises(DocumentError):
            d["nan"] = float("nan")
        with pytest.raises(DocumentError):
            d.update({"fine": 1, "bad": object()})
        assert d == {"ok": 1}
        assert len(journal_lines(f)) == 2


def test_autosaving_dict_values_are_copies(tmp_path: Path) -> None:
    """Changing a value read from the dict does not change what is stored."""
    with AutoSavingDict(tmp_path / "d.json") as d:
        d["l"] = [1]
        d["l"].append(2)
        assert d["l"] == [1]
        value = [1]
        d["m"] = value
        value.append(2)
        assert d["m"] == [1]


def test_autosaving_dict_closed_and_read_only(tmp_path: Path) -> None:
    """After close every call raises DatabaseClosedError; read-only refuses changes."""
    f = tmp_path / "d.json"
    d = AutoSavingDict(f)
    d["a"] = 1
    d.close()
    d.close()
    with pytest.raises(DatabaseClosedError):
        d["a"]
    with pytest.raises(DatabaseClosedError):
        d["b"] = 2
    ro = AutoSavingDict(f, read_only=True)
    assert ro.read_only and ro["a"] == 1
    with pytest.raises(ReadOnlyError):
        ro["a"] = 2
    with pytest.raises(ReadOnlyError):
        ro.compact()
    assert ro == {"a": 1}
    ro.close()


def test_autosaving_dict_failed_commit_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the write fails, memory is left exactly as it was."""
    with AutoSavingDict(tmp_path / "d.json") as d:
        d.update(a=1, b=2)
        monkeypatch.setattr(journal, "pwrite_all", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(StorageError, match="disk is full"):
            d.update(a=10, c=3)
        with pytest.raises(StorageError):
            del d["a"]
        with pytest.raises(StorageError):
            d.clear()
        assert d.to_dict() == {"a": 1, "b": 2}
        monkeypatch.undo()


def test_autosaving_dict_checkpoints_and_compacts(tmp_path: Path) -> None:
    """Many changes fold into the file; compact() does it on demand."""
    f = tmp_path / "d.json"
    with AutoSavingDict(f, checkpoint_bytes=500, checkpoint_ratio=0.5) as d:
        for i in range(100):
            d["k"] = i
            d[f"x{i % 5}"] = i
        d.compact()
        assert len(journal_lines(f)) == 1
        assert json.loads(f.read_text())["k"] == 99
    with AutoSavingDict(f) as d:
        assert d["k"] == 99 and len(d) == 6


def test_windows_rules_keep_the_same_behaviour(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Windows' rules (no descriptor kept on the snapshot, journal closed around renames) all works."""
    monkeypatch.setattr(checkpoint, "WINDOWS", True)
    monkeypatch.setattr(snapshot, "WINDOWS", True)
    a = MicroDB(str(path), checkpoint_bytes=300, checkpoint_ratio=0.1)
    b = MicroDB(str(path))
    for i in range(30):
        (a if i % 2 else b).insert({"n": i})
    assert a.backend.store.file.snapshot.fd is None  # type: ignore[attr-defined]
    assert [d["n"] for d in b.all()] == list(range(30))
    os.remove(path)
    with pytest.raises(StorageError, match="removed"):
        a.insert({"n": -1})
    a.close()
    b.close()


def test_a_folder_is_not_a_database(tmp_path: Path) -> None:
    """A path naming a folder raises a StorageError, not a bare OSError."""
    with pytest.raises(StorageError, match="cannot read"):
        MicroDB(str(tmp_path))


# -- a model ---------------------------------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(0, 9)),
        st.tuples(st.just("insert_many"), st.integers(1, 3)),
        st.tuples(st.just("update"), st.integers(0, 30)),
        st.tuples(st.just("remove"), st.integers(0, 30)),
        st.tuples(st.just("truncate"), st.just(0)),
        st.tuples(st.just("compact"), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(ops=OPS, small=st.booleans())
def test_any_sequence_of_writes_checkpoints_and_reopens_matches_a_model(ops: list[tuple[str, int]], small: bool) -> None:
    """Whatever mix of writes, checkpoints and reopens, the file holds what a plain dict model says."""
    options: dict[str, Any] = {"checkpoint_bytes": 200, "checkpoint_ratio": 0.2} if small else {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "db.json")
        db = MicroDB(path, **options)
        model: dict[int, dict[str, Any]] = {}
        next_id = 1
        for kind, arg in ops:
            if kind == "insert":
                assert db.insert({"v": arg}) == next_id
                model[next_id] = {"v": arg}
                next_id += 1
            elif kind == "insert_many":
                ids = db.insert_many([{"v": i} for i in range(arg)])
                assert ids == list(range(next_id, next_id + arg))
                model.update({doc_id: {"v": i} for i, doc_id in enumerate(ids)})
                next_id += arg
            elif kind == "update" and arg in model:
                db.update({"u": arg}, doc_ids=[arg])
                model[arg]["u"] = arg
            elif kind == "remove" and arg in model:
                db.remove(doc_ids=[arg])
                del model[arg]
            elif kind == "truncate":
                db.truncate()
                model.clear()
            elif kind == "compact":
                db.compact()
            elif kind == "reopen":
                db.close()
                db = MicroDB(path, **options)
            assert {d.doc_id: dict(d) for d in db.all()} == model
        db.close()
        with MicroDB(path, read_only=True) as again:
            assert {d.doc_id: dict(d) for d in again.all()} == model
        with MicroDB(path) as again:
            assert again.insert({"last": True}) == next_id
