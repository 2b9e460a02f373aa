"""Live updates: a table's committed changes, from every process, as Server-Sent Events.

``GET /api/tables/T/events`` streams one ``change`` event per batch of commits, read from
the database's change feed (``table.watch()``), so the table page follows writes made by
other processes. Storages that keep no feed (in memory, a plain mapping) answer 404 and
the page keeps its Refresh button only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from microdb import Change, MicroDBError, UnsupportedFeature
from microdb.web.state import NotFound, State

__all__ = ["routes"]

#: Seconds one look at the feed waits before the stream checks on its client.
_POLL = 1.0
#: Looks without a change between two keep-alive comments.
_KEEPALIVE = 15
#: Changes described one by one in an event at most (the count covers the rest).
_DESCRIBED = 100


def _event(seq: int, changes: list[Change]) -> str:
    data = {
        "seq": seq,
        "count": len(changes),
        "changes": [{"op": c.op, "id": c.doc_id} for c in changes[:_DESCRIBED]],
    }
    return f"event: change\nid: {seq}\ndata: {json.dumps(data)}\n\n"


def routes(state: State) -> list[Route]:
    """The event stream's route, bound to ``state``."""

    async def events(request: Request) -> Response:
        if not state.access.allowed(request):
            return JSONResponse({"error": "not signed in"}, status_code=401)
        try:
            table = state.table(request)
            watch = await state.call(table.watch)
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except UnsupportedFeature as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        stream = watch.stream

        async def body() -> AsyncIterator[str]:
            quiet = 0
            try:
                yield ": following changes\n\n"
                while True:
                    try:
                        changes = await state.call(stream.poll, _POLL)
                    except MicroDBError as exc:  # the feed was cut short (the database closed...)
                        yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n"
                        return
                    if changes:
                        quiet = 0
                        yield _event(stream.seq, changes)
                    else:
                        quiet += 1
                        if quiet >= _KEEPALIVE:
                            quiet = 0
                            yield ": keep-alive\n\n"
            finally:
                stream.close()

        headers: dict[str, Any] = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

    return [Route("/api/tables/{table}/events", events, methods=["GET"], name="api_events")]
