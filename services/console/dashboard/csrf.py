"""CSRF protection for what a browser sends with the session cookie.

The dashboard's cookie is SameSite=Strict and httponly; on top of that every unsafe
request authenticated by the cookie must carry a token derived from the session
token (a form field ``csrf`` or an ``X-CSRF-Token`` header). A foreign page can
neither read the cookie nor compute the token, and no server-side state is needed,
so every replica checks it alike. Requests with ``Authorization: Bearer`` are not
sent automatically by browsers and need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar.connection import ASGIConnection, Request
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from services.console.auth import COOKIE

HEADER = "x-csrf-token"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def token_for(session: str) -> str:
    return hashlib.sha256(b"vigil-csrf:" + session.encode()).hexdigest()


def cookie_session(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The session token when this request is authenticated by the cookie only."""
    if connection.headers.get("authorization"):
        return None
    return connection.cookies.get(COOKIE) or None


def verify(connection: ASGIConnection[Any, Any, Any, Any], given: str | None) -> None:
    session = cookie_session(connection)
    if session is None:
        return
    if not given or not hmac.compare_digest(given, token_for(session)):
        raise PermissionDeniedException("missing or wrong CSRF token; reload the page")


class CSRFHeaderMiddleware(ASGIMiddleware):
    """API calls made by the dashboard's script: cookie-authenticated unsafe requests
    must send the CSRF header (dashboard forms check their field in the handler)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        connection: Request[Any, Any, Any] = Request(scope)
        if connection.method not in SAFE and scope["path"].startswith("/api/"):
            verify(connection, connection.headers.get(HEADER))
        await next_app(scope, receive, send)
