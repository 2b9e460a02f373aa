"""Who may use the page, and how writes are protected.

- **Access.** With a token or a password, every request needs a session cookie, which
  ``?token=...`` (the URL printed at start, as Jupyter does) or the login form hands out;
  API clients may send ``Authorization: Bearer <token>`` instead.
- **Writes** need the server started with ``write=True``, and, from a browser session, the
  session's CSRF token in the ``X-CSRF-Token`` header and an ``Origin`` (when the browser
  sends one) naming this server. A page on another site can neither read the token nor
  pass the Origin check.
- **Every response** carries a Content-Security-Policy that allows only this server's own
  scripts and styles (no inline script, no eval), and refuses framing.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SESSION_COOKIE", "Access", "HeadersMiddleware"]

SESSION_COOKIE = "microdb_session"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # The token may be in the address; it must never leave in a Referer header.
    (b"referrer-policy", b"no-referrer"),
]
#: Sessions kept at most (the oldest is forgotten first).
_MAX_SESSIONS = 1000


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Access:
    """The server's secrets and its open sessions."""

    token: str | None = None
    password: str | None = None
    #: session key -> that session's CSRF token.
    sessions: MutableMapping[str, str] = field(default_factory=dict)
    #: The CSRF token of an open server (no token, no password).
    open_csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def required(self) -> bool:
        """Whether requests must prove who they are."""
        return self.token is not None or self.password is not None

    def accepts(self, secret: str | None) -> bool:
        """Whether ``secret`` is the token or the password."""
        return _same(secret, self.token) or _same(secret, self.password)

    def new_session(self) -> str:
        """Open a session; its key goes in the session cookie."""
        while len(self.sessions) >= _MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]
        key = secrets.token_urlsafe(32)
        self.sessions[key] = secrets.token_urlsafe(32)
        return key

    def bearer(self, request: Request) -> bool:
        """Whether the request carries ``Authorization: Bearer <token or password>``."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and self.accepts(value.strip())

    def session(self, request: Request) -> str | None:
        """The request's session key, when it is an open session."""
        key = request.cookies.get(SESSION_COOKIE)
        return key if key is not None and key in self.sessions else None

    def allowed(self, request: Request) -> bool:
        """Whether the request may read."""
        return not self.required or self.session(request) is not None or self.bearer(request)

    def csrf_token(self, request: Request) -> str:
        """The CSRF token the page of this request must send back with a write."""
        if not self.required:
            return self.open_csrf
        key = self.session(request)
        return self.sessions[key] if key is not None else ""

    def csrf_refusal(self, request: Request) -> str | None:
        """Why a write request is refused as cross-site, or ``None`` when it may go on."""
        origin = request.headers.get("origin")
        if origin is not None and origin != _own_origin(request):
            return f"refused: the request comes from another site ({origin:.80})"
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return "refused: the request comes from another site"
        if self.required and self.bearer(request):
            return None  # not a browser session: nothing sends this header by itself
        if not _same(request.headers.get("x-csrf-token"), self.csrf_token(request) or None):
            return "refused: missing or wrong CSRF token (reload the page)"
        return None


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


class HeadersMiddleware:
    """Adds the security headers to every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.extend((n, v) for n, v in _HEADERS if n not in names)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
