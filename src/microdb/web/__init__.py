"""MicroDB's web page: browse, query and (with ``write=True``) change a database in a browser.

Needs the ``web`` extra (``pip install 'microdb[web]'``: Starlette, Jinja2 and uvicorn).
Start it with ``microdb serve DB`` or ``python -m microdb.web DB``, or from Python::

    from microdb.web import run
    run('mydb.json', port=8000)              # read-only, on 127.0.0.1, token printed

:func:`create_app` gives the ASGI application for a database you opened yourself. The
pages use the JSON API under ``/api`` described in docs/web.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from microdb import UnsupportedFeature

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from microdb import MicroDB

__all__ = ["INSTALL", "create_app", "run"]

#: What a missing extra's error says.
INSTALL = "the web page needs Starlette, Jinja2 and uvicorn: pip install 'microdb[web]'"


def _require() -> None:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UnsupportedFeature(INSTALL) from exc


def create_app(db: MicroDB, *, write: bool = False, token: str | None = None, password: str | None = None,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI application showing ``db`` (see :func:`microdb.web.app.create_app`)."""
    _require()
    from microdb.web.app import create_app as build

    return build(db, write=write, token=token, password=password, allowed_hosts=allowed_hosts)


def run(db_spec: Any, *, host: str = "127.0.0.1", port: int = 8000, write: bool = False,
        token: str | None = None, password: str | None = None) -> None:
    """Serve the database ``db_spec`` (a path, a URL, or an open ``MicroDB``) until stopped.

    Read-only unless ``write``. A token is made up and printed (with the address to open)
    unless ``token`` or ``password`` is given.
    """
    _require()
    from microdb.web.server import serve

    serve(db_spec, host=host, port=port, write=write, token=token, password=password)
