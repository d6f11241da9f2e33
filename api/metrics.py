"""Prometheus metrics of the HTTP API, served at `/metrics` with everything else in the default registry
(including `llm_errors_total` from graph/metrics.py)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time to the response headers",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FIRST_TOKEN_SECONDS = Histogram(
    "chat_time_to_first_token_seconds",
    "From /chat request to the first answer token sent",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
SOURCES_SECONDS = Histogram(
    "chat_time_to_sources_seconds",
    "From /chat request to the sources event",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TOKENS = Counter("chat_tokens_streamed_total", "Answer tokens (stream chunks) sent to clients")
STREAMS = Gauge("chat_streams_in_progress", "Answers being streamed now")
CHATS = Counter("chat_turns_total", "Chat turns by outcome", ["outcome"])  # done | interrupted | failed
ESCALATIONS = Counter("chat_escalations_total", "Conversations handed to a person (ticket opened or updated)")
ERRORS = Counter("chat_errors_total", "Error events sent in chat streams", ["code"])
RATE_LIMITED = Counter("rate_limited_requests_total", "Requests refused with 429", ["scope"])
WEBHOOK = Counter("ticket_webhook_deliveries_total", "Ticket webhook deliveries", ["result"])

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


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
