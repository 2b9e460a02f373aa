"""check_file: an integrity report of a database file that never changes it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from microdb import MicroDB
from microdb.storage.jsonfile import FORMAT_VERSION, FileCheck, check_file


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".lock")}


def test_a_sound_file_with_commits_in_its_journal(tmp_path: Path) -> None:
    """Format, sizes, the commits waiting in the journal and the documents per table are reported."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path), checkpoint_interval=None)
    db.insert({"n": 1})
    db.table("t").insert_many([{"a": 1}, {"a": 2}])
    report = check_file(path)
    assert isinstance(report, FileCheck) and report.ok
    assert report.format == FORMAT_VERSION
    assert report.commits == 2
    assert report.tables == {"_default": 1, "t": 2}
    assert report.snapshot_bytes == path.stat().st_size
    assert report.torn_bytes == 0 and report.journal_bytes > 0
    db.close()
    assert check_file(path).commits == 0


def test_a_torn_tail_is_reported_not_a_problem(tmp_path: Path) -> None:
    """A commit cut short is counted in torn_bytes; the file still opens, so it is ok."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path), checkpoint_interval=None)
    db.insert({"n": 1})
    db.backend.store.file._close_fds()  # type: ignore[attr-defined]
    journal = Path(str(path) + ".journal")
    data = journal.read_bytes().rstrip(b"\0")
    journal.write_bytes(data + b"0000002b 12345678 [[\"p\",\"_def")
    before = files_of(tmp_path)
    report = check_file(path)
    assert report.ok and report.torn_bytes == 29 and report.commits == 1
    assert files_of(tmp_path) == before


def test_damage_is_a_problem_and_nothing_changes(tmp_path: Path) -> None:
    """A damaged record before a synced one, or a damaged snapshot, is reported in problems."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path), checkpoint_interval=None)
    db.insert({"n": 1})
    db.insert({"n": 2})
    db.backend.store.file._close_fds()  # type: ignore[attr-defined]
    journal = Path(str(path) + ".journal")
    data = bytearray(journal.read_bytes())
    first = data.index(b"\n") + 1
    data[first + 20] ^= 1
    journal.write_bytes(bytes(data))
    before = files_of(tmp_path)
    report = check_file(path)
    assert not report.ok and "damaged at byte" in report.problems[0]
    assert files_of(tmp_path) == before


def test_a_flipped_bit_in_the_snapshot_is_a_problem(tmp_path: Path) -> None:
    """The snapshot is checked against what the last checkpoint recorded of it."""
    path = tmp_path / "db.json"
    with MicroDB(str(path)) as db:
        db.insert({"name": "t"})
    st = path.stat()
    path.write_bytes(path.read_bytes().replace(b'"t"', b'"u"'))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "damaged" in check_file(path).problems[0]


def test_a_tinydb_file_and_a_missing_one(tmp_path: Path) -> None:
    """A file without journal is format None; no file at all is a problem."""
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"_default": {"1": {"a": 1}}}))
    report = check_file(path)
    assert report.ok and report.format is None and report.tables == {"_default": 1}
    assert not (tmp_path / "tiny.json.journal").exists()
    missing = check_file(tmp_path / "none.json")
    assert not missing.ok and "no database" in missing.problems[0]
