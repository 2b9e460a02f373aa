"""The file a user opens: after a normal exit (with or without ``close()``) it holds everything."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from microdb import AutoSavingDict, MicroDB

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "seed.md"


def run_script(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONWARNINGS="error")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_the_seed_example_leaves_every_document_in_the_file(tmp_path: Path) -> None:
    """The seed's first example, run as a script that never calls close(), leaves mydb.json complete."""
    first = re.findall(r"```python[^\n]*\n(.*?)```", SEED.read_text(), re.S)[0]
    proc = run_script(first, tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "mydb.json", encoding="utf-8") as f:
        data = json.load(f)
    assert data == {"users": {"1": {"name": "Alice", "age": 30}, "3": {"name": "Charlie", "age": 35}}}


def test_an_autosaving_dict_left_open_is_complete_after_exit(tmp_path: Path) -> None:
    """An AutoSavingDict never closed leaves its file holding every key after a normal exit."""
    proc = run_script("from microdb import AutoSavingDict\nd = AutoSavingDict('s.json')\nd['a'] = 1\nd.update(b=[2])\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 1, "b": [2]}


def test_exit_folds_in_other_processes_commits(tmp_path: Path) -> None:
    """At exit a process catches up first: the file holds commits another handle made too."""
    code = textwrap.dedent("""
        from microdb import MicroDB
        a = MicroDB('db.json', checkpoint_interval=None)
        b = MicroDB('db.json', checkpoint_interval=None)
        a.insert({'n': 1})
        b.insert({'n': 2})
        a.insert({'n': 3})
    """)
    proc = run_script(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads((tmp_path / "db.json").read_text())["_default"]
    assert sorted(d["n"] for d in docs.values()) == [1, 2, 3]


def test_an_exit_with_an_exception_still_leaves_the_file_complete(tmp_path: Path) -> None:
    """A script ending in an uncaught exception still exits normally: the file is complete."""
    proc = run_script("from microdb import MicroDB\ndb = MicroDB('db.json')\ndb.insert({'n': 1})\nraise SystemExit(3)\n", tmp_path)
    assert proc.returncode == 3
    assert json.loads((tmp_path / "db.json").read_text()) == {"_default": {"1": {"n": 1}}}


def snapshot_of(path: Path) -> dict[str, dict[str, object]]:
    with open(path, encoding="utf-8") as f:
        data: dict[str, dict[str, object]] = json.load(f)
    return data


def test_checkpoint_interval_bounds_how_stale_the_snapshot_is(tmp_path: Path) -> None:
    """The first commit after checkpoint_interval seconds also checkpoints; None keeps only the size rule."""
    path = tmp_path / "db.json"
    with MicroDB(str(path), checkpoint_interval=0.2) as db:
        db.insert({"n": 1})
        assert snapshot_of(path) == {}  # within the interval: in the journal only
        # The interval, or ten times the last checkpoint's duration if that is longer.
        due = db.backend.store.file._checkpoint_due  # type: ignore[attr-defined]
        time.sleep(max(0.25, due - time.monotonic() + 0.05))
        db.insert({"n": 2})
        assert snapshot_of(path) == {"_default": {"1": {"n": 1}, "2": {"n": 2}}}
    lazy = tmp_path / "lazy.json"
    with MicroDB(str(lazy), checkpoint_interval=None) as db:
        db.insert({"n": 1})
        time.sleep(0.05)
        db.insert({"n": 2})
        assert snapshot_of(lazy) == {}
    with MicroDB(str(lazy), checkpoint_interval=0) as db:
        db.insert({"n": 3})
        assert len(snapshot_of(lazy)["_default"]) == 3


def test_the_first_timed_checkpoint_waits_ten_times_the_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before a process has timed a checkpoint, the time its open took reading the file stands
    for one: a commit soon after opening a big file does not rewrite it (that cost seconds)."""
    path = tmp_path / "db.json"
    with MicroDB(str(path)) as db:
        db.insert({"n": 1})
    from microdb.storage import journal

    class SlowRead:
        """The journal module's clock, reading the file as if it took 3 s."""

        def __init__(self) -> None:
            self.calls = 0

        def monotonic(self) -> float:
            self.calls += 1
            return time.monotonic() + (3.0 if self.calls > 1 else 0.0)

    monkeypatch.setattr(journal, "time", SlowRead())
    db = MicroDB(str(path), checkpoint_interval=0.05)
    monkeypatch.undo()
    assert db.backend.store.file._checkpoint_due - time.monotonic() > 25  # type: ignore[attr-defined]
    time.sleep(0.1)
    db.insert({"n": 2})  # past checkpoint_interval, within ten times the open
    assert snapshot_of(path) == {"_default": {"1": {"n": 1}}}
    db.close()
    assert snapshot_of(path) == {"_default": {"1": {"n": 1}, "2": {"n": 2}}}


def test_autosaving_dict_follows_the_interval(tmp_path: Path) -> None:
    """AutoSavingDict takes checkpoint_interval too: with 0 the file is current after every change."""
    f = tmp_path / "s.json"
    d = AutoSavingDict(f, checkpoint_interval=0)
    d["a"] = 1
    assert json.loads(f.read_text()) == {"a": 1}
    d.close()


@pytest.mark.parametrize("bad", [-1, "1", [1]])
def test_bad_checkpoint_interval_is_refused(tmp_path: Path, bad: object) -> None:
    """A negative or non-numeric interval is a ValueError naming the option."""
    with pytest.raises(ValueError, match="checkpoint_interval"):
        MicroDB(str(tmp_path / "db.json"), checkpoint_interval=bad)


def test_unknown_option_is_a_type_error(tmp_path: Path) -> None:
    """A misspelt option is a TypeError listing the known ones."""
    with pytest.raises(TypeError, match="durabel.*checkpoint_interval"):
        MicroDB(str(tmp_path / "db.json"), durabel=False)
