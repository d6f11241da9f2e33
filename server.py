"""The HTTP server: `create_app(settings)` builds the FastAPI app; `uvicorn server:app` or
`uvicorn --factory server:create_app` serve it (the launcher, `./run`, calls `create_app` itself).

Routes are grouped by resource in `api/` (chat, search, sessions, tickets, feedback, health, metrics);
the web pages (`api/frontend.py`), the help pages (`api/help.py`) and LangServe at `/agent`
(`api/agent.py`) are added when their modules are present.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import chat, feedback, health, metrics, review, search, sessions, tickets
from api.deps import Services, build_agent, redis_pool
from api.errors import add_error_handlers
from api.limits import RateLimits
from api.security import SecurityHeadersMiddleware
from settings import Settings, get_settings

log = logging.getLogger("server")


def _optional(module: str) -> Any | None:
    """A module written by another part of the project, if it is present in this tree (and importable)."""
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return importlib.import_module(module)
    except ImportError as error:
        log.error("%s is not served: %s", module, error)
        return None


async def _warm_knowledge_base(state: Services) -> None:
    """Load the embedding model and BM25 index before the first question (≈10 s), without delaying start-up."""
    from tools.retrieval import get_knowledge_base

    try:
        state.knowledge_base = await asyncio.to_thread(get_knowledge_base, state.settings)
    except Exception as error:  # Chroma down: /api/search and /ready say so, and retry on demand
        log.warning("knowledge base not loaded at start: %s", error)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for `settings` (default: from the environment). Needs REDIS_URL."""
    settings = settings or get_settings()
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: start the product with ./run (which starts Redis) or set REDIS_URL")
    agent = build_agent(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = aioredis.Redis(connection_pool=redis_pool(settings, decode_responses=True, health_check_interval=30))
        state = Services(settings=settings, redis=redis, graph=agent)
        app.state.services = state
        app.state.limits = RateLimits(settings)
        state.spawn(_warm_knowledge_base(state))
        try:
            yield
        finally:
            for task in list(state.background):
                task.cancel()
            await redis.aclose()
            saver = getattr(agent, "checkpointer", None)
            if hasattr(saver, "aclose"):
                await saver.aclose()

    app = FastAPI(
        title="Support chatbot",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN, which the CSP (and offline installs) forbid
        redoc_url=None,
    )
    add_error_handlers(app)
    for router in (health.router, metrics.router, search.router, chat.router, sessions.router, tickets.router):
        app.include_router(router)
    app.include_router(feedback.router)
    app.include_router(review.router)

    if agent_module := _optional("api.agent"):
        agent_module.add_agent_routes(app, agent)
    if help_module := _optional("api.help"):
        app.include_router(help_module.router)
    if frontend := _optional("api.frontend"):
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
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=settings.frame_ancestors)
    app.add_middleware(metrics.MetricsMiddleware)
    return app


def __getattr__(name: str) -> FastAPI:
    """`server.app` is built on first access (PEP 562), so importing `create_app` alone needs no settings."""
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
