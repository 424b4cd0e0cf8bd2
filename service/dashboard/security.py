"""What keeps the dashboard safe to open: response headers on every response, and the control token.

- Every response (pages, JSON, events, static files, errors) carries a strict
  ``Content-Security-Policy`` (no inline script or style, no framing), ``X-Content-Type-Options:
  nosniff`` and ``Referrer-Policy: no-referrer``; API and event responses are never cached.
- State changes need ``--allow-control`` and the token, sent as ``Authorization: Bearer TOKEN`` or
  ``X-Caviar-Token: TOKEN`` (a cross-site form can set neither), compared in constant time. The token is
  ``CAVIAR_DASHBOARD_TOKEN`` or generated at start and printed once; it is never rendered into a page
  (the page asks for it and keeps it in the tab's ``sessionStorage``).
"""

from __future__ import annotations

import hmac
import os
import secrets

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSP", "TOKEN_ENV", "SecurityHeaders", "resolve_token", "request_token", "token_matches",
]

#: The one Content-Security-Policy of every response.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
#: Environment variable holding the control token (else one is generated at start).
TOKEN_ENV = "CAVIAR_DASHBOARD_TOKEN"
#: Shortest token accepted from the environment.
MIN_TOKEN_LENGTH = 16

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response; ``no-store`` for the API, events,
    metrics and health."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        dynamic = path.startswith(("/api/", "/events", "/metrics", "/healthz"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
                if dynamic:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def resolve_token(given: str | None) -> tuple[str, bool]:
    """The control token and whether it was generated: ``given``, else ``CAVIAR_DASHBOARD_TOKEN``, else a
    new ``secrets.token_urlsafe(24)``.

    Raises:
        BadInput: a given or configured token shorter than 16 characters.
    """
    from core.errors import BadInput

    for source, value in (("token", given), (TOKEN_ENV, os.environ.get(TOKEN_ENV))):
        if value is None or value.strip() == "":
            continue
        if len(value.strip()) < MIN_TOKEN_LENGTH:
            raise BadInput(source, "(hidden)", f"expected a token of at least {MIN_TOKEN_LENGTH} characters")
        return value.strip(), False
    return secrets.token_urlsafe(24), True


def request_token(request: Request) -> str | None:
    """The token a request carries (``Authorization: Bearer`` first, then ``X-Caviar-Token``)."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    other = request.headers.get("x-caviar-token", "").strip()
    return other or None


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the request's token with the dashboard's."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
