"""Response security headers, the URL-length limit, and the support-lead token check.

Headers are added by a plain ASGI middleware (not `BaseHTTPMiddleware`) so streamed answers pass through
unbuffered and client disconnects reach the SSE response at once. A declared `Content-Length` over the limit is
refused here; Starlette's `RequestBodyLimitMiddleware` (server.py) counts the bytes of the rest as they arrive,
so a chunked body without `Content-Length` is cut off at the limit too.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import services, settings_of
from settings import Settings

MAX_BODY_BYTES = 64 * 1024  # a chat message is at most MAX_MESSAGE_CHARS (2000) characters; JSON bodies are small
MAX_URL_CHARS = 8 * 1024  # path and query string; no route of the product needs more

PAGE_CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors {frame_ancestors}"
)
CONSOLE_PATHS = ("/console", "/api/")  # never framed by other sites, whatever FRAME_ANCESTORS says


def content_security_policy(path: str, frame_ancestors: str) -> str:
    """The CSP for one path: strict everywhere, and never frameable by other sites for the console."""
    if path.startswith(CONSOLE_PATHS):
        frame_ancestors = "'self'"
    return PAGE_CSP.format(frame_ancestors=frame_ancestors)


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff and Referrer-Policy to every response; refuses declared bodies over MAX_BODY_BYTES and
    URLs over MAX_URL_CHARS."""

    def __init__(self, app: ASGIApp, frame_ancestors: str = "'self'") -> None:
        self.app = app
        self.frame_ancestors = frame_ancestors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = content_security_policy(scope["path"], self.frame_ancestors)
        length = Headers(scope=scope).get("content-length", "0")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:  # declared too large: refused before reading, in JSON
            detail = f"The request body is too large: {length} bytes, the limit is {MAX_BODY_BYTES}."
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, self._with_headers(send, csp))
            return
        url_chars = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b""))
        if url_chars > MAX_URL_CHARS:
            detail = f"The URL is too long: {url_chars} characters, the limit is {MAX_URL_CHARS}."
            await JSONResponse({"detail": detail}, status_code=414)(scope, receive, self._with_headers(send, csp))
            return
        await self.app(scope, receive, self._with_headers(send, csp))

    @staticmethod
    def _with_headers(send: Send, csp: str) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
            await send(message)

        return send_with_headers


_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Support-lead routes: 503 when ADMIN_TOKEN is not set, 401 without a token, 403 with a wrong one. Wrong
    tokens are counted per address (RATE_LIMIT_ADMIN_FAILURES); past the limit every attempt from that address
    gets 429 until the window has room, the right token included, so the token cannot be guessed."""
    state = services(request)
    settings: Settings = state.settings
    if not settings.admin_token:
        raise HTTPException(503, "The support-lead API is disabled: set ADMIN_TOKEN on the server to enable it.")
    await state.limits.check_admin_failures(request)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "Send the admin token as 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    if not is_admin_token(settings, credentials):
        await state.limits.count_admin_failure(request)
        raise HTTPException(403, "The admin token is wrong.")


async def require_ops(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Operator routes (/metrics, /openapi.json): public only with OPS_ROUTES_PUBLIC=true, else the admin token."""
    if not settings_of(request).ops_routes_public:
        await require_admin(request, credentials)


async def is_operator(request: Request) -> bool:
    """May this request see internals (/ready's part details)? Never raises: a public probe still gets its status."""
    settings = settings_of(request)
    if settings.ops_routes_public:
        return True
    return is_admin_token(settings, await _bearer(request))


def is_admin_token(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """The one comparison with ADMIN_TOKEN, in constant time."""
    return bool(
        settings.admin_token
        and credentials is not None
        and secrets.compare_digest(credentials.credentials.encode(), settings.admin_token.encode())
    )
