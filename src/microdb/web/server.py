"""Running the page under uvicorn: opening the database, choosing the secret, printing the address."""

from __future__ import annotations

import ipaddress
import secrets
import sys
from typing import Any, TextIO

import uvicorn

from microdb import MicroDB, UnsupportedFeature
from microdb.web.app import create_app

__all__ = ["is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(db_spec: Any, *, host: str = "127.0.0.1", port: int = 8000, write: bool = False,
          token: str | None = None, password: str | None = None, out: TextIO | None = None) -> None:
    """Open the database, print the address to open, and serve until interrupted."""
    out = sys.stdout if out is None else out
    if password is not None and not password:
        raise UnsupportedFeature("an empty password protects nothing: give one, or leave it out to use a token")
    if token is None and password is None:
        token = secrets.token_urlsafe(24)
    # On loopback, requests naming another host are refused (a defence against DNS rebinding).
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if is_loopback(host) else None
    # Read-only all the way down: the storage itself refuses writes and creates no file.
    db = db_spec if isinstance(db_spec, MicroDB) else MicroDB(db_spec, read_only=not write)
    try:
        app = create_app(db, write=write, token=token, password=password, allowed_hosts=allowed)
        shown = f"[{host}]" if ":" in host else host
        mode = "read-write" if write else "read-only (start with --write to change data)"
        print(f"MicroDB web page, {mode}", file=out)
        if token is not None:
            print(f"Open: http://{shown}:{port}/?token={token}", file=out, flush=True)
        else:
            print(f"Open: http://{shown}:{port}/ and sign in with the password", file=out, flush=True)
        # Open event streams (live updates) end with the server rather than hold it up.
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
    finally:
        if db is not db_spec:
            db.close()
