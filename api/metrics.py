"""`/metrics` (Prometheus; every series is defined in metrics.py), `/openapi.json`, and the middleware counting
HTTP requests. Both routes are for operators (api/security.py: require_ops)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security import require_ops
from metrics import REQUEST_SECONDS, REQUESTS

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_ops)])
async def prometheus_metrics() -> Response:
    """Behind ADMIN_TOKEN unless OPS_ROUTES_PUBLIC (Prometheus sends it with `authorization: credentials`)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_ops)])
async def openapi_schema(request: Request) -> JSONResponse:
    """The API schema, for operators and client generators: it maps every route, so not public by default."""
    return JSONResponse(request.app.openapi())


class MetricsMiddleware:
    """Counts requests by route template (not raw path, which would explode label cardinality)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                REQUESTS.labels(scope["method"], route, str(message["status"])).inc()
                REQUEST_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, send_counted)
