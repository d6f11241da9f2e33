"""The HTTP server: `create_app(settings)` builds the FastAPI app; `uvicorn server:app` or
`uvicorn --factory server:create_app` serve it (the launcher, `./run`, calls `create_app` itself).

Routes are grouped by resource in `api/` (chat, search, sessions, tickets, feedback, review, health, metrics),
plus the web pages (`api/frontend.py`), the help pages (`api/help.py`) and LangServe at `/agent`
(`api/agent.py`). One request flows one way: api → graph → tools → LLM, and back out as events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import access_log, agent, chat, feedback, frontend, health, metrics, review, search, sessions, tickets
from api import analytics as analytics_routes
from api import help as help_pages
from api import live as live_takeover
from api import starters as starter_questions
from api import verified as verified_answers
from api.admission import Gate
from api.deps import Services
from api.errors import add_error_handlers
from api.limits import RateLimits
from api.loop_lag import watch_loop_lag
from api.security import MAX_BODY_BYTES, SecurityHeadersMiddleware
from graph.checkpointer import make_checkpointer
from graph.configuration import build_context
from graph.graph import build_graph
from settings import Settings, SettingsError, get_settings
from tools.redis_client import pool

log = logging.getLogger("server")


async def _warm_knowledge_base(state: Services) -> None:
    """Load the embedding model and BM25 index before the first question (≈10 s), without delaying start-up."""
    try:
        await state.context.knowledge_base()
    except Exception as error:  # Chroma down: /api/search and /ready say so, and retry on demand
        log.warning("knowledge base not loaded at start: %s", error)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for `settings` (default: from the environment). Needs REDIS_URL."""
    if settings is None:
        try:
            settings = get_settings()
        except SettingsError as error:  # `uvicorn --factory`: one line per bad variable, no traceback, exit 1
            raise SystemExit(str(error)) from None
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: start the product with ./run (which starts Redis) or set REDIS_URL")
    redis = aioredis.Redis(
        connection_pool=pool(
            settings.redis_url, settings.redis_max_connections, decode_responses=True, health_check_interval=30
        )
    )
    saver_client = aioredis.Redis(connection_pool=pool(settings.redis_url, settings.redis_max_connections))
    graph = build_graph(make_checkpointer(settings.redis_url, settings.session_ttl_seconds, client=saver_client))
    limits = RateLimits(settings)
    context = build_context(settings, redis, ticket_quota=limits.allow_ticket)
    gate = Gate(settings.prepare_concurrency)  # turns preparing at once (api/admission.py)
    state = Services(settings=settings, redis=redis, context=context, graph=graph, limits=limits, gate=gate)
    if settings.ticket_webhook_url and not settings.ticket_webhook_secret:
        log.warning("TICKET_WEBHOOK_SECRET is not set: the ticket webhook is sent unsigned")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = state
        state.spawn(_warm_knowledge_base(state))
        # event_loop_lag_seconds on /metrics; awaited when cancelled, so no task is left pending as the loop closes
        app.state.loop_lag_probe = probe = asyncio.create_task(watch_loop_lag(), name="event-loop-lag-probe")
        try:
            yield
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            for task in list(state.background):
                task.cancel()
            await redis.aclose()
            await saver_client.aclose()

    app = FastAPI(
        title="Support chatbot",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN, which the CSP (and offline installs) forbid
        redoc_url=None,
        openapi_url=None,  # served by api/metrics.py behind require_ops: the schema maps every route
    )
    add_error_handlers(app)
    access_log.install()  # no query strings (customers' text) in uvicorn's access log
    for module in (health, metrics, search, chat, sessions, tickets, feedback, review, help_pages):
        app.include_router(module.router)
    app.include_router(starter_questions.router)  # starter questions on the empty chat (api/starters.py)
    app.include_router(analytics_routes.router)  # the console's charts and CSV (api/analytics.py)
    app.include_router(live_takeover.router)  # a support lead takes over the chat (api/live.py)
    app.include_router(verified_answers.router)  # curated answers sent without the LLM (api/verified.py)
    agent.add_agent_routes(app, graph, state.context)
    frontend.add_frontend_routes(app)

    # Outermost last: metrics see every answer, including CORS preflights and refusals by the headers layer.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    # Bytes counted as they arrive (chunked bodies too): past the limit, reading raises a 413 (api/errors.py says
    # it in JSON). Inside the headers layer, which refuses a declared Content-Length over it before any reading.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=settings.frame_ancestors)
    app.add_middleware(metrics.MetricsMiddleware)
    if settings.trusted_proxies:  # outermost: every layer and route sees the real client address
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def __getattr__(name: str) -> FastAPI:
    """`server.app` is built on first access (PEP 562), so importing `create_app` alone needs no settings."""
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
