"""A throwaway PostgreSQL server for the tests and benchmarks: started once, stopped at exit.

``initdb`` into a temporary folder, ``postgres`` listening on 127.0.0.1 on a free port with
its socket in that folder, durability off (the data is thrown away). PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` user, with the folder owned by
it. The server is stopped (by its pid) when the Python process exits.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["PGServer", "find_bin", "server", "unavailable"]

_lock = threading.Lock()
_server: PGServer | None = None
_error: str | None = None


def find_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres`` (the newest version installed)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb") + glob.glob("/usr/local/pgsql/bin/initdb")

    def version(p: str) -> tuple[int, ...]:
        parts = [x for x in p.split("/") if x.replace(".", "").isdigit()]
        return tuple(int(x) for x in parts[0].split(".")) if parts else (0,)

    candidates.sort(key=version)
    return Path(candidates[-1]).parent if candidates else None


def _parent() -> str:
    """A folder the server's user can reach (a private TMPDIR of root's would not do)."""
    folder = tempfile.gettempdir()
    if os.geteuid() == 0 and not os.stat(folder).st_mode & 0o001:
        return "/tmp"
    return folder


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PGServer:
    """One running server; ``url`` connects to its ``postgres`` database."""

    def __init__(self) -> None:
        bindir = find_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL's server binaries (initdb, postgres) were not found")
        self.folder = Path(tempfile.mkdtemp(prefix="microdb-pg-", dir=_parent()))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server") from exc
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            # setpriv replaces itself with the command, so the pid we hold is the server's.
            as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        log = open(self.folder / "initdb.log", "wb")  # noqa: SIM115 - closed below
        try:
            subprocess.run(
                as_user + [str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                           "-E", "UTF8", "--locale=C", "--no-sync"],
                check=True, stdout=log, stderr=subprocess.STDOUT, timeout=120,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            log.close()
            text = (self.folder / "initdb.log").read_text(errors="replace")[-2000:]
            self._remove()
            raise RuntimeError(f"initdb failed: {exc}\n{text}") from exc
        log.close()
        self.log = open(self.folder / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            as_user + [str(bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                       "-h", "127.0.0.1", "-k", str(self.folder),
                       "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                       "-c", "max_connections=300", "-c", "shared_buffers=128MB"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        atexit.register(self.stop)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            if self._ready():
                return
            time.sleep(0.1)
        text = (self.folder / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"the PostgreSQL server did not start:\n{text}")

    def _ready(self) -> bool:
        try:
            import psycopg
        except ImportError:
            return True  # the port answers; tests needing psycopg report it themselves
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if getattr(self, "log", None) is not None:
            self.log.close()
        self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def server() -> PGServer:
    """The server of this process, started on first use (raises RuntimeError if it cannot)."""
    global _server, _error
    with _lock:
        if _server is not None:
            return _server
        if _error is not None:
            raise RuntimeError(_error)
        try:
            _server = PGServer()
        except RuntimeError as exc:
            _error = str(exc)
            raise
        return _server


def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (no psycopg, no server), or ``None``."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return 'psycopg is not installed (pip install "microdb[postgres]")'
    try:
        server()
    except RuntimeError as exc:
        return str(exc)
    return None
