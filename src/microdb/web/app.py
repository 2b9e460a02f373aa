"""The web application: the pages, the JSON API, the static files and the security around them."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from microdb import DocumentError, MicroDB, MicroDBError
from microdb.web import api, data, events, values
from microdb.web.security import SESSION_COOKIE, Access, HeadersMiddleware
from microdb.web.state import NotFound, State

__all__ = ["create_app"]

HERE = Path(__file__).resolve().parent


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value a template prints is escaped unless marked safe
        undefined=jinja2.StrictUndefined,
    )
    env.filters["q"] = lambda text: urllib.parse.quote(str(text), safe="")
    return env


class _Pages:
    """The HTML pages; each reads through the same functions as the API."""

    def __init__(self, state: State, env: jinja2.Environment):
        self.state = state
        self.env = env

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.update(
            write=self.state.write,
            csrf=self.state.access.csrf_token(request),
            signed_in=self.state.access.required,
        )
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status)

    async def guard(self, request: Request) -> Response | None:
        """A response refusing the request, or ``None`` when it may go on."""
        access = self.state.access
        token = request.query_params.get("token")
        if token is not None and access.accepts(token):
            # As Jupyter does: the address printed at start signs the browser in, then the
            # token leaves the address bar (and the history).
            query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + ("?" + urllib.parse.urlencode(query) if query else "")
            response = RedirectResponse(target, status_code=303)
            _set_session(response, access.new_session())
            return response
        if not access.allowed(request):
            if access.password is not None:
                return RedirectResponse("/login?next=" + urllib.parse.quote(request.url.path), status_code=303)
            return self.render(request, "error.html", status=401, title="Sign in needed",
                               message="Open the address printed when the server started (it holds the token).")
        return None

    async def page(self, request: Request, name: str, build: Any) -> Response:
        refused = await self.guard(request)
        if refused is not None:
            return refused
        try:
            context = await self.state.call(build, request)
        except NotFound as exc:
            return self.render(request, "error.html", status=404, title="Not found", message=str(exc))
        except MicroDBError as exc:
            return self.render(request, "error.html", status=400, title="Error", message=str(exc))
        return self.render(request, name, **context)

    # -- the pages ----------------------------------------------------------------------
    async def tables(self, request: Request) -> Response:
        return await self.page(request, "tables.html", lambda r: {"tables": data.summaries(self.state.db)})

    def _table_context(self, request: Request) -> dict[str, Any]:
        table = self.state.table(request)
        q = request.query_params
        form = {k: q.get(k, "") for k in ("filter", "sort", "fields", "limit")}
        context: dict[str, Any] = {
            "table": table.name, "indexes": table.indexes(), "form": form,
            "error": None, "run": None, "page": None, "rows": [],
        }
        if any(form[k] for k in ("filter", "sort", "fields")):
            try:
                spec = data.parse_query(form["filter"], form["sort"], form["fields"], form["limit"] or None)
                run = data.run_query(table, spec)
            except MicroDBError as exc:
                context["error"] = str(exc)  # shown beside the query box, never as a trace
            else:
                context["run"] = {"count": run.count, "ms": run.ms, "plan": values.to_text(_plain(run.plan), indent=2)}
                context["rows"] = [(d.doc_id, values.html(dict(d))) for d in run.documents]
            context["export_query"] = urllib.parse.urlencode({k: form[k] for k in ("filter", "sort", "fields") if form[k]})
            return context
        try:
            page = data.page(self.state.db, table, after=_int(q.get("after")), before=_int(q.get("before")),
                             limit=form["limit"] or data.DEFAULT_LIMIT)
        except MicroDBError as exc:
            context["error"] = str(exc)
            return context
        context["page"] = page
        context["rows"] = [(d.doc_id, values.html(dict(d), open=False)) for d in page.documents]
        context["export_query"] = ""
        return context

    async def table(self, request: Request) -> Response:
        return await self.page(request, "table.html", self._table_context)

    def _document_context(self, request: Request) -> dict[str, Any]:
        table = self.state.table(request)
        doc_id = _int(request.path_params["doc_id"])
        doc = None if doc_id is None else table.get(doc_id=doc_id)
        if doc is None:
            raise NotFound(f"no document {request.path_params['doc_id']} in table {table.name!r}")
        return {"table": table.name, "doc_id": doc_id, "tree": values.html(dict(doc)),
                "text": values.to_text(dict(doc), indent=2)}

    async def document(self, request: Request) -> Response:
        return await self.page(request, "document.html", self._document_context)

    async def new(self, request: Request) -> Response:
        return await self.page(request, "new.html", lambda r: {"table": r.path_params["table"]})

    async def login(self, request: Request) -> Response:
        access = self.state.access
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # never send a browser on to another site
        if request.method == "GET":
            return self.render(request, "login.html", target=target, failed=False)
        refusal = access.csrf_refusal(request) if request.headers.get("origin") else None
        if refusal is not None and "another site" in refusal:
            return self.render(request, "error.html", status=403, title="Refused", message=refusal)
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        if not access.accepts((form.get("password") or [""])[0]):
            return self.render(request, "login.html", status=401, target=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        _set_session(response, access.new_session())
        return response


def _plain(value: Any) -> Any:
    """``explain()``'s dict with anything unusual turned into text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _int(text: str | None) -> int | None:
    try:
        return api.parse_id(text)
    except DocumentError:
        raise NotFound(f"no document {text!r:.40}") from None


def _set_session(response: Response, key: str) -> None:
    response.set_cookie(SESSION_COOKIE, key, httponly=True, samesite="strict", path="/")


def create_app(db: MicroDB, *, write: bool = False, token: str | None = None, password: str | None = None,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI application showing ``db``.

    Read-only unless ``write``. With a ``token`` or a ``password``, every request must be
    signed in (see :mod:`microdb.web.security`); without either, anyone who reaches the
    server may read (and, with ``write``, change) the data. ``allowed_hosts`` refuses
    requests whose ``Host`` header names another host (a defence against DNS rebinding).
    """
    state = State(db=db, write=write, access=Access(token=token, password=password))
    pages = _Pages(state, _environment())
    routes = [
        Route("/", pages.tables, name="tables"),
        Route("/login", pages.login, methods=["GET", "POST"], name="login"),
        Route("/t/{table}", pages.table, name="table"),
        Route("/t/{table}/new", pages.new, name="new"),
        Route("/t/{table}/doc/{doc_id}", pages.document, name="document"),
        *api.routes(state),
        *events.routes(state),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(HeadersMiddleware)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.microdb = state
    return app
