"""What every request handler shares: the database, the server's options and its secrets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from microdb import MicroDB, MicroDBError, Table
from microdb.web.security import Access

__all__ = ["NotFound", "Refused", "State"]

T = TypeVar("T")


class NotFound(MicroDBError, LookupError):
    """The request names a table, document or index that does not exist (HTTP 404)."""


class Refused(MicroDBError, PermissionError):
    """The request may not do this (HTTP 403)."""


@dataclass
class State:
    """The database behind the page, whether it may change, and who may see it."""

    db: MicroDB
    write: bool
    access: Access

    def table(self, request: Request, *, create: bool = False) -> Table:
        """The table named in the request's path; ``NotFound`` unless it exists (or ``create``)."""
        name = request.path_params["table"]
        if not create and name not in self.db.tables():
            raise NotFound(f"no table {name!r}")
        return self.db.table(name)

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking database work off the event loop."""
        return await run_in_threadpool(func, *args)
