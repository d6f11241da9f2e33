"""Response security headers, the request-size limit, and the support-lead token check.

Headers are added by a plain ASGI middleware (not `BaseHTTPMiddleware`) so streamed answers pass through
unbuffered and client disconnects reach the SSE response at once.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import settings_of
from settings import Settings

MAX_BODY_BYTES = 64 * 1024  # a chat message is at most MAX_MESSAGE_CHARS (2000) characters; JSON bodies are small

PAGE_CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors {frame_ancestors}"
)
# LangServe's playground is a prebuilt React app with inline styles and scripts; it is a developer tool.
PLAYGROUND_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
)
PLAYGROUND_PREFIX = "/agent/playground"
CONSOLE_PATHS = ("/console", "/api/")  # never framed by other sites, whatever FRAME_ANCESTORS says


def content_security_policy(path: str, frame_ancestors: str) -> str:
    """The CSP for one path: strict everywhere, looser for the playground, never frameable for the console."""
    if path.startswith(PLAYGROUND_PREFIX):
        return PLAYGROUND_CSP
    if path.startswith(CONSOLE_PATHS):
        frame_ancestors = "'self'"
    return PAGE_CSP.format(frame_ancestors=frame_ancestors)


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff and Referrer-Policy to every response, and refuses bodies over MAX_BODY_BYTES."""

    def __init__(self, app: ASGIApp, frame_ancestors: str = "'self'") -> None:
        self.app = app
        self.frame_ancestors = frame_ancestors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "0")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            detail = f"The request body is too large: {length} bytes, the limit is {MAX_BODY_BYTES}."
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        csp = content_security_policy(scope["path"], self.frame_ancestors)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
            await send(message)

        await self.app(scope, receive, send_with_headers)


_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Support-lead routes: 503 when ADMIN_TOKEN is not set, 401 without a token, 403 with a wrong one."""
    settings: Settings = settings_of(request)
    if not settings.admin_token:
        raise HTTPException(503, "The support-lead API is disabled: set ADMIN_TOKEN on the server to enable it.")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "Send the admin token as 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    if not secrets.compare_digest(credentials.credentials.encode(), settings.admin_token.encode()):
        raise HTTPException(403, "The admin token is wrong.")
