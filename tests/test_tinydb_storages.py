"""microdb.tinydb's storages and middlewares: TinyDB's options, a user's own storage, files, processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from microdb.errors import MicroDBError, ReadOnlyError, StorageError, UnsupportedFeature
from microdb.tinydb import Query, TinyDB, where
from microdb.tinydb.middlewares import CachingMiddleware, Middleware
from microdb.tinydb.queries import QueryInstance
from microdb.tinydb.storages import JSONStorage, MemoryStorage, Storage, touch
from microdb.tinydb.utils import LRUCache
from tinydb_storages import FileStorage

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, cwd: Path, timeout: float = 60) -> str:
    """Run ``code`` in a fresh interpreter (MicroDB from this checkout) and return its output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONWARNINGS="error")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- JSONStorage ---------------------------------------------------------------------------

def test_json_options_shape_the_file(tmp_path: Path) -> None:
    """indent, sort_keys and separators (TinyDB's pretty-printing example) shape the file."""
    path = tmp_path / "db.json"
    with TinyDB(path, sort_keys=True, indent=4, separators=(",", ": ")) as db:
        db.insert({"b": 2, "a": 1})
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n    "_default": {\n        "1": {\n            "a": 1,')
    assert json.loads(text) == {"_default": {"1": {"a": 1, "b": 2}}}


@pytest.mark.parametrize(
    "options, raw",
    [
        ({}, b'"\\u00e9t\\u00e9"'),
        ({"ensure_ascii": False}, '"été"'.encode()),
        ({"ensure_ascii": False, "encoding": "latin-1"}, '"été"'.encode("latin-1")),
    ],
)
def test_json_text_options(tmp_path: Path, options: dict[str, Any], raw: bytes) -> None:
    """ensure_ascii (on by default, as json's) and encoding decide the bytes of the file."""
    path = tmp_path / "db.json"
    with TinyDB(path, **options) as db:
        db.insert({"season": "été"})
    assert raw in path.read_bytes()
    with TinyDB(path, **options) as db:
        assert db.all() == [{"season": "été"}]


def test_json_read_only_mode(tmp_path: Path) -> None:
    """access_mode='r' reads; a write raises an OSError (ReadOnlyError) and changes nothing."""
    path = tmp_path / "db.json"
    with TinyDB(path) as db:
        db.insert({"a": 1})
    with TinyDB(path, access_mode="r") as db:
        assert db.all() == [{"a": 1}]
        with pytest.raises(OSError) as info:
            db.insert({"a": 2})
        assert isinstance(info.value, ReadOnlyError)
        assert db.all() == [{"a": 1}]


def test_json_missing_file_or_folder(tmp_path: Path) -> None:
    """A missing file opened read-only, or a missing folder without create_dirs, is FileNotFoundError."""
    with pytest.raises(FileNotFoundError) as info:
        TinyDB(tmp_path / "nope.json", access_mode="r")
    assert isinstance(info.value, StorageError)
    with pytest.raises(FileNotFoundError):
        TinyDB(tmp_path / "a" / "b" / "db.json")
    with TinyDB(tmp_path / "a" / "b" / "db.json", create_dirs=True) as db:
        db.insert({"x": 1})
    assert (tmp_path / "a" / "b" / "db.json").exists()


def test_json_other_access_modes_warn_and_never_truncate(tmp_path: Path) -> None:
    """An access mode TinyDB warns about warns here too, and never empties the file."""
    path = tmp_path / "db.json"
    with TinyDB(path) as db:
        db.insert({"a": 1})
    with pytest.warns(UserWarning, match="access_mode"):
        db = TinyDB(path, access_mode="w")
    with db:
        assert db.all() == [{"a": 1}]


@pytest.mark.parametrize(
    "option, error",
    [({"cls": json.JSONEncoder}, UnsupportedFeature), ({"default": str}, UnsupportedFeature), ({"colour": 1}, TypeError)],
)
def test_json_refuses_options_it_cannot_honour(tmp_path: Path, option: dict[str, Any], error: type[Exception]) -> None:
    """json options that would store unreadable values, and unknown options, are refused up front."""
    with pytest.raises(error):
        TinyDB(tmp_path / "db.json", **option)
    assert not (tmp_path / "db.json").exists()


def test_a_tinydb_file_opens_as_it_is(tmp_path: Path) -> None:
    """A file TinyDB wrote opens with its documents, ids and tables, and TinyDB reads ours."""
    tinydb = pytest.importorskip("tinydb")
    path = tmp_path / "db.json"
    real = tinydb.TinyDB(path)
    real.insert_multiple([{"n": 1}, {"n": 2}, {"n": 3}])
    real.remove(doc_ids=[2])
    real.table("other").insert({"x": [1, {"y": None}]})
    real.close()
    with TinyDB(path) as db:
        assert [(d.doc_id, d["n"]) for d in db.all()] == [(1, 1), (3, 3)]
        assert db.table("other").all() == [{"x": [1, {"y": None}]}]
        db.insert({"n": 4})
    real = tinydb.TinyDB(path)
    assert [(d.doc_id, d["n"]) for d in real.all()] == [(1, 1), (3, 3), (4, 4)]
    real.close()


def test_an_empty_file_opens(tmp_path: Path) -> None:
    """An empty file (what TinyDB leaves before its first write) is an empty database."""
    path = tmp_path / "db.json"
    touch(path, create_dirs=False)
    with TinyDB(path) as db:
        assert db.all() == [] and db.tables() == set()
        db.insert({"a": 1})
    with TinyDB(path) as db:
        assert db.all() == [{"a": 1}]


def test_touch_creates_folders_and_keeps_content(tmp_path: Path) -> None:
    """touch() creates a missing file (and folders with create_dirs), never changing one."""
    path = tmp_path / "x" / "db.json"
    with pytest.raises(FileNotFoundError):
        touch(path, create_dirs=False)
    touch(path, create_dirs=True)
    path.write_text("{}", encoding="utf-8")
    touch(path, create_dirs=True)
    assert path.read_text(encoding="utf-8") == "{}"


def test_storage_read_and_write_views(tmp_path: Path) -> None:
    """db.storage.read() is the whole database in TinyDB's shape; write(data) replaces it."""
    with TinyDB(tmp_path / "db.json") as db:
        db.insert({"a": 1})
        db.table("gone").insert({"b": 1})
        assert db.storage.read() == {"_default": {"1": {"a": 1}}, "gone": {"1": {"b": 1}}}
        db.search(where("a") == 2)
        db.storage.write({"_default": {"1": {"a": 2}, "5": {"a": 5}}})
        assert db.tables() == {"_default"}
        assert db.search(where("a") == 2) == [{"a": 2}]
        assert db.insert({"a": 6}) == 6
    memory = MemoryStorage()
    assert memory.read() is None and memory.memory is None
    TinyDB(storage=lambda: memory).insert({"m": 1})
    assert memory.memory == {"_default": {"1": {"m": 1}}}


# -- many processes ------------------------------------------------------------------------

def test_cached_queries_see_other_processes(tmp_path: Path) -> None:
    """A cached query result is dropped when another process writes the file (TinyDB's is not)."""
    with TinyDB(tmp_path / "db.json") as db:
        db.insert({"n": 1})
        assert db.count(where("n") > 0) == 1
        run_python(
            """
            from microdb.tinydb import TinyDB
            with TinyDB('db.json') as db:
                db.insert({'n': 2})
            """,
            tmp_path,
        )
        assert db.count(where("n") > 0) == 2
        assert [d["n"] for d in db.search(where("n") > 0)] == [1, 2]


def test_two_databases_on_one_file_share_it(tmp_path: Path) -> None:
    """Two TinyDB objects on one file see each other's writes and never hand out one id twice."""
    with TinyDB(tmp_path / "db.json") as a, TinyDB(tmp_path / "db.json") as b:
        assert a.search(where("x") == 1) == []
        assert b.insert({"x": 1}) == 1
        assert a.search(where("x") == 1) == [{"x": 1}]
        assert a.insert({"x": 2}) == 2


def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Several processes inserting into one file at once: every document is there, ids unique."""
    code = """
        import sys
        from microdb.tinydb import TinyDB
        with TinyDB('db.json') as db:
            for i in range(30):
                db.insert({'worker': int(sys.argv[1]), 'i': i})
        """
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONWARNINGS="error")
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(n)], cwd=tmp_path, env=env)
        for n in range(3)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    with TinyDB(tmp_path / "db.json") as db:
        ids = [d.doc_id for d in db.all()]
        assert len(ids) == 90 == len(set(ids))


def test_processes_incrementing_one_counter_lose_no_update(tmp_path: Path) -> None:
    """update(increment(...)) from several processes at once is an atomic read-modify-write."""
    with TinyDB(tmp_path / "db.json") as db:
        db.insert({"name": "hits", "n": 0})
    code = """
        from microdb.tinydb import TinyDB, where
        from microdb.tinydb.operations import increment
        with TinyDB('db.json') as db:
            for _ in range(30):
                db.update(increment('n'), where('name') == 'hits')
        """
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONWARNINGS="error")
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    with TinyDB(tmp_path / "db.json") as db:
        assert db.get(where("name") == "hits") == {"name": "hits", "n": 90}


def test_killed_writer_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """A TinyDB program killed mid-write leaves a file that opens with every acknowledged insert."""
    code = """
        import sys
        from microdb.tinydb import TinyDB
        db = TinyDB('db.json')
        i = 0
        while True:
            i += 1
            db.insert({'i': i, 'pad': 'x' * 200})
            print(i, flush=True)
        """
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for trial, stop_after in enumerate((5, 40, 120)):
        path = tmp_path / f"t{trial}"
        path.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)], cwd=path, env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        acknowledged = 0
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= stop_after:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # Inserts the child acknowledged between our last read and the kill are in the pipe.
        for line in proc.stdout:
            acknowledged = int(line)
        proc.stdout.close()
        with TinyDB(path / "db.json") as db:
            found = [d["i"] for d in db.all()]
        assert found[:acknowledged] == list(range(1, acknowledged + 1))
        assert len(found) <= acknowledged + 1


# -- a user's own storage ---------------------------------------------------------------------

def test_user_storage_gets_tinydb_calls(tmp_path: Path) -> None:
    """A Storage subclass is read once per operation and written once per write, whole."""
    db = TinyDB(tmp_path / "db.json", storage=FileStorage)
    storage = db.storage
    assert isinstance(storage, FileStorage)
    reads, writes = storage.reads, storage.writes
    db.insert({"a": 1})
    db.insert_multiple([{"a": 2}, {"a": 3}])
    assert storage.writes - writes == 2
    db.search(where("a") == 1)
    db.all()
    assert storage.reads - reads == 4
    assert json.loads((tmp_path / "db.json").read_text()) == {
        "_default": {"1": {"a": 1}, "2": {"a": 2}, "3": {"a": 3}}
    }
    db.close()
    assert storage.closed == 1


def test_user_storage_sees_changes_made_behind_its_back(tmp_path: Path) -> None:
    """As in TinyDB, what another program writes to a user's storage is seen at the next call."""
    path = tmp_path / "db.json"
    with TinyDB(path, storage=FileStorage) as db:
        db.insert({"a": 1})
        assert db.count(where("a") == 1) == 1
        path.write_text(json.dumps({"_default": {"1": {"a": 1}, "7": {"a": 1}}}))
        assert db.count(where("a") == 1) == 2
        assert db.insert({"a": 8}) == 8


def test_failing_user_storage_changes_nothing(tmp_path: Path) -> None:
    """When a storage's write fails, the call raises StorageError and memory is unchanged."""

    class Flaky(Storage):
        def __init__(self) -> None:
            self.data: Any = None
            self.fail = False

        def read(self) -> Any:
            return self.data

        def write(self, data: Any) -> None:
            if self.fail:
                raise OSError("disk on fire")
            self.data = json.loads(json.dumps(data))

    db = TinyDB(storage=Flaky)
    db.insert({"a": 1})
    db.storage.fail = True
    with pytest.raises(StorageError) as info:
        db.insert({"a": 2})
    assert isinstance(info.value.__cause__, OSError)
    assert db.all() == [{"a": 1}]
    db.storage.fail = False
    assert db.insert({"a": 3}) == 2


def test_storage_without_read_or_write_is_refused() -> None:
    """An object lacking read() or write() is refused with a clear TypeError."""

    class NoWrite:
        def read(self) -> Any:
            return None

    with pytest.raises(TypeError, match="write"):
        TinyDB(storage=NoWrite)


def test_storage_must_return_tinydb_shaped_data() -> None:
    """A storage whose read() returns something else raises CorruptDatabaseError, never guesses."""

    class Weird(Storage):
        def read(self) -> Any:
            return {"_default": {"one": {"a": 1}}}

        def write(self, data: Any) -> None:
            raise AssertionError("never written")

    with pytest.raises(StorageError, match="not an integer"):
        TinyDB(storage=Weird)


# -- middlewares ---------------------------------------------------------------------------

def test_caching_middleware_over_json_writes_through_and_flushes(tmp_path: Path) -> None:
    """Over MicroDB's file, every write reaches the journal at once; flush/close make it durable."""
    db = TinyDB(tmp_path / "db.json", storage=CachingMiddleware(JSONStorage))
    assert "fast" in repr(db._engine.store)
    db.insert({"a": 1})
    seen = run_python(
        """
        from microdb.tinydb import TinyDB
        with TinyDB('db.json', access_mode='r') as db:
            print(len(db))
        """,
        tmp_path,
    )
    assert seen.strip() == "1"
    db.storage.flush()
    assert json.loads((tmp_path / "db.json").read_text()) == {"_default": {"1": {"a": 1}}}
    db.insert({"a": 2})
    db.close()
    assert json.loads((tmp_path / "db.json").read_text())["_default"] == {"1": {"a": 1}, "2": {"a": 2}}


def test_caching_middleware_over_user_storage_holds_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over any other storage: reads from memory, writes every WRITE_CACHE_SIZE writes, flush, close."""
    monkeypatch.setattr(CachingMiddleware, "WRITE_CACHE_SIZE", 3)
    db = TinyDB(tmp_path / "db.json", storage=CachingMiddleware(FileStorage))
    inner = db.storage.storage
    assert isinstance(inner, FileStorage)
    db.insert({"a": 1})
    db.insert({"a": 2})
    assert inner.writes == 0 and db.count(where("a") > 0) == 2
    reads = inner.reads
    db.all()
    assert inner.reads == reads
    db.insert({"a": 3})
    assert inner.writes == 1
    db.insert({"a": 4})
    db.storage.flush()
    assert inner.writes == 2
    db.insert({"a": 5})
    db.close()
    assert inner.writes == 3 and inner.closed == 1
    assert len(json.loads((tmp_path / "db.json").read_text())["_default"]) == 5


def test_user_middleware_changes_data_on_its_way(tmp_path: Path) -> None:
    """A middleware that filters data (TinyDB's RemoveEmptyItems example) works as documented."""

    class RemoveEmptyItemsMiddleware(Middleware):
        def read(self) -> Any:
            data = self.storage.read()
            return self._clean(data)

        def write(self, data: Any) -> None:
            self.storage.write(self._clean(data))

        @staticmethod
        def _clean(data: Any) -> Any:
            if data is None:
                return None
            return {t: {i: d for i, d in docs.items() if d != {}} for t, docs in data.items()}

    path = tmp_path / "db.json"
    with TinyDB(path, storage=RemoveEmptyItemsMiddleware(JSONStorage)) as db:
        db.insert({"a": 1})
        db.insert({})
        assert db.all() == [{"a": 1}]
    with TinyDB(path) as db:
        assert db.all() == [{"a": 1}]


def test_middlewares_nest(tmp_path: Path) -> None:
    """Middlewares nest: FirstMiddleware(SecondMiddleware(JSONStorage)), as TinyDB's guide shows."""
    from tinydb_storages import CountingMiddleware

    path = tmp_path / "db.json"
    with TinyDB(path, storage=CachingMiddleware(CountingMiddleware(JSONStorage))) as db:
        db.insert({"a": 1})
        counting = db.storage.storage
        assert isinstance(counting, CountingMiddleware) and counting.writes == 0
    assert counting.writes == 1
    with TinyDB(path) as db:
        assert db.all() == [{"a": 1}]


def test_transparent_middleware_keeps_microdb_engine(tmp_path: Path) -> None:
    """A middleware that only adds methods leaves the file engine in charge (no whole rewrites)."""

    class Tagged(Middleware):
        def tag(self) -> str:
            return "tagged"

    db = TinyDB(tmp_path / "db.json", storage=Tagged(JSONStorage))
    assert db.storage.tag() == "tagged"
    assert db._engine is db.storage.storage._engine
    assert db.storage.kwargs == {}  # other attributes pass through to the storage
    db.insert({"a": 1})
    db.close()


# -- queries and utils ----------------------------------------------------------------------

def test_query_instance() -> None:
    """Every query is a QueryInstance; QueryInstance(test, hashval) makes one from a function."""
    assert isinstance(Query().a == 1, QueryInstance)
    assert isinstance(Query(), QueryInstance)
    assert not isinstance(lambda doc: True, QueryInstance)
    mine = QueryInstance(lambda doc: doc.get("a", 0) > 1, ("a", ">", 1))
    assert mine({"a": 2}) and not mine({"a": 0})
    db = TinyDB(storage=MemoryStorage)
    db.insert_multiple([{"a": 1}, {"a": 5}])
    assert db.search(mine & (Query().a < 9)) == [{"a": 5}]
    assert (Query().a == 1)({"a": 1}) is True


def test_lru_cache() -> None:
    """LRUCache keeps the most recently used entries up to its capacity."""
    cache: LRUCache[str, int] = LRUCache(capacity=2)
    cache["a"] = 1
    cache["b"] = 2
    assert cache.get("a") == 1
    cache["c"] = 3
    assert cache.lru == ["a", "c"] and "b" not in cache
    assert cache.get("b", 0) == 0 and len(cache) == cache.length == 2
    with pytest.raises(KeyError):
        cache["b"]
    del cache["a"]
    cache.clear()
    assert len(cache) == 0
    unbounded: LRUCache[int, int] = LRUCache()
    for i in range(100):
        unbounded[i] = i
    assert len(unbounded) == 100
    off: LRUCache[int, int] = LRUCache(capacity=0)
    off[1] = 1
    assert len(off) == 0


def test_errors_keep_both_families(tmp_path: Path) -> None:
    """Every compatibility error is a MicroDBError as well as TinyDB's built-in exception."""
    from microdb.tinydb import _errors

    for name in _errors.__all__:
        assert issubclass(getattr(_errors, name), MicroDBError)


def test_reading_never_writes(tmp_path: Path) -> None:
    """Opening, reading and closing never calls write() (TinyDB's empty-write guarantee)."""

    class NoWrites(Middleware):
        def write(self, data: Any) -> None:
            raise AssertionError("no write for an unchanged database")

    path = tmp_path / "db.json"
    with TinyDB(path) as db:
        db.insert({"a": 1})
    with TinyDB(path, storage=NoWrites(JSONStorage)) as db:
        assert db.all() == [{"a": 1}]
        assert db.search(where("a") == 1) == [{"a": 1}]
        assert db.tables() == {"_default"}


def test_tinydb_file_with_nan_is_refused_and_kept(tmp_path: Path) -> None:
    """A TinyDB file holding NaN (not JSON) raises CorruptDatabaseError and is left untouched."""
    from microdb.errors import CorruptDatabaseError

    path = tmp_path / "db.json"
    text = '{"_default": {"1": {"x": NaN}}}'
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorruptDatabaseError) as info:
        TinyDB(path)
    assert info.value.offset == text.index("NaN")
    assert path.read_text(encoding="utf-8") == text
