"""The JSON API under ``/api`` that the page uses (documented in docs/web.md).

Documents travel as ``{"id": 1, "doc": {...}}`` in tagged JSON. Errors are
``{"error": "..."}`` with status 400 (bad input), 401 (no access), 403 (read-only or
cross-site), 404 (no such table, document or index) or 409 (a unique index refused a value).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from microdb import Document, DocumentError, DuplicateKeyError, MicroDBError
from microdb.web import data, values
from microdb.web.state import NotFound, Refused, State

__all__ = ["routes"]


def _doc(doc: Document) -> dict[str, Any]:
    return {"id": doc.doc_id, "doc": values.to_json(dict(doc))}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _guarded(state: State, handler: Callable[[Request, Any], Any], *, write: bool = False) -> Callable[[Request], Any]:
    """``handler`` behind the access check, the read-only check (writes) and the CSRF check."""

    async def endpoint(request: Request) -> Response:
        if not state.access.allowed(request):
            return _error(401, "not signed in: open the address printed at start, or sign in at /login")
        if write:
            if not state.write:
                return _error(403, "this server is read-only: start it with --write to change data")
            refusal = state.access.csrf_refusal(request)
            if refusal is not None:
                return _error(403, refusal)
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                body = json.loads(await request.body() or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return _error(400, f"the request body is not JSON: {exc}")
            if not isinstance(body, dict):
                return _error(400, "the request body must be a JSON object")
        try:
            result = await state.call(handler, request, body)
        except NotFound as exc:
            return _error(404, str(exc))
        except Refused as exc:
            return _error(403, str(exc))
        except DuplicateKeyError as exc:
            return _error(409, str(exc))
        except (MicroDBError, ValueError) as exc:
            return _error(400, str(exc))
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


def _doc_id(request: Request) -> int:
    text = request.path_params["doc_id"]
    try:
        return int(text)
    except ValueError:
        raise NotFound(f"no document {text!r:.40}") from None


def _document_body(body: dict[str, Any]) -> dict[str, Any]:
    if "doc" not in body or not isinstance(body["doc"], dict):
        raise DocumentError('send the document as {"doc": {...}} (a JSON object, tagged values allowed)')
    doc = values.from_json(body["doc"])
    assert isinstance(doc, dict)
    return doc


def routes(state: State) -> list[Route]:
    """The API's routes, bound to ``state``."""

    def info(request: Request, body: Any) -> Any:
        return {"write": state.write, "tables": data.summaries(state.db)}

    def tables(request: Request, body: Any) -> Any:
        return data.summaries(state.db)

    def documents(request: Request, body: Any) -> Any:
        table = state.table(request)
        q = request.query_params
        page = data.page(state.db, table, after=parse_id(q.get("after")), before=parse_id(q.get("before")),
                         limit=q.get("limit") or data.DEFAULT_LIMIT)
        return {"documents": [_doc(d) for d in page.documents], "next_after": page.next_after,
                "prev_before": page.prev_before}

    def count(request: Request, body: Any) -> Any:
        return {"count": len(state.table(request))}

    def insert(request: Request, body: Any) -> Any:
        table = state.table(request, create=True)
        return {"id": table.insert(_document_body(body))}

    def document(request: Request, body: Any) -> Any:
        table = state.table(request)
        doc = table.get(doc_id=_doc_id(request))
        if doc is None:
            raise NotFound(f"no document {request.path_params['doc_id']} in table {table.name!r}")
        return _doc(doc)

    def replace(request: Request, body: Any) -> Any:
        table = state.table(request)
        doc_id = _doc_id(request)
        new = _document_body(body)

        def swap(stored: dict[str, Any]) -> None:
            stored.clear()
            stored.update(new)

        if not table.update(swap, doc_ids=[doc_id]):
            raise NotFound(f"no document {doc_id} in table {table.name!r}")
        return _doc(table.get(doc_id=doc_id))

    def delete(request: Request, body: Any) -> Any:
        table = state.table(request)
        doc_id = _doc_id(request)
        if not table.contains(doc_id=doc_id):
            raise NotFound(f"no document {doc_id} in table {table.name!r}")
        table.remove(doc_ids=[doc_id])
        return {"deleted": doc_id}

    def query(request: Request, body: Any) -> Any:
        table = state.table(request)
        q = request.query_params
        spec = data.parse_query(q.get("filter"), q.get("sort"), q.get("fields"), q.get("limit"))
        run = data.run_query(table, spec)
        return {"documents": [_doc(d) for d in run.documents], "count": run.count,
                "plan": json.loads(json.dumps(run.plan, default=str)), "ms": round(run.ms, 3)}

    def indexes(request: Request, body: Any) -> Any:
        return state.table(request).indexes()

    def create_index(request: Request, body: Any) -> Any:
        table = state.table(request)
        field = body.get("field")
        if not isinstance(field, str) or not field.strip():
            raise DocumentError('send the index as {"field": "address.city", "unique": false}')
        table.create_index(field.strip(), unique=bool(body.get("unique", False)))
        return table.indexes()

    def drop_index(request: Request, body: Any) -> Any:
        table = state.table(request)
        field = request.path_params["field"]
        if not table.drop_index(field):
            raise NotFound(f"table {table.name!r} has no index on {field!r}")
        return table.indexes()

    def export(request: Request, body: Any) -> Any:
        table = state.table(request)
        q = request.query_params
        fmt = q.get("format", "json")
        spec = None
        if any(q.get(k) for k in ("filter", "sort", "fields")):
            spec = data.parse_query(q.get("filter"), q.get("sort"), q.get("fields"), 0)
        chunks = data.export(state.db, table, fmt, spec)
        first = next(chunks, "")  # errors show now, as JSON, not halfway through a download
        name = f"{table.name}.{fmt}".replace('"', "")
        return StreamingResponse(_chain(first, chunks), media_type=data.EXPORT_FORMATS[fmt],
                                 headers={"content-disposition": f'attachment; filename="{name}"'})

    base = "/api/tables/{table}"
    spec: list[tuple[str, Callable[[Request, Any], Any], list[str], bool]] = [
        ("/api", info, ["GET"], False),
        ("/api/tables", tables, ["GET"], False),
        (base + "/documents", documents, ["GET"], False),
        (base + "/count", count, ["GET"], False),
        (base + "/documents", insert, ["POST"], True),
        (base + "/documents/{doc_id}", document, ["GET"], False),
        (base + "/documents/{doc_id}", replace, ["PUT"], True),
        (base + "/documents/{doc_id}", delete, ["DELETE"], True),
        (base + "/query", query, ["GET"], False),
        (base + "/indexes", indexes, ["GET"], False),
        (base + "/indexes", create_index, ["POST"], True),
        (base + "/indexes/{field}", drop_index, ["DELETE"], True),
        (base + "/export", export, ["GET"], False),
    ]
    return [Route(path, _guarded(state, fn, write=w), methods=methods, name=f"api_{fn.__name__}")
            for path, fn, methods, w in spec]


def parse_id(text: str | None) -> int | None:
    """A document id from a request's text (``None`` when absent or blank)."""
    if text is None or not str(text).strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise DocumentError(f"an id must be a whole number, got {text!r:.40}") from None


def _chain(first: str, rest: Any) -> Any:
    yield first
    yield from rest

