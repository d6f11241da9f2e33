"""What every route needs, built once per app in the lifespan and reached through `request.app.state`.

One `redis.asyncio.Redis` client (a connection pool) serves sessions, tickets, limits, locks and feedback.
The knowledge base and the graph are built lazily the first time they are needed when the lifespan could not
build them (a part that was down at start), so one down part never stops the app from starting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Request

from settings import Settings
from tools.redis_client import resilient

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The app's long-lived parts."""

    settings: Settings
    redis: aioredis.Redis
    graph: Any = None
    knowledge_base: Any = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coroutine: Any) -> None:
        """Run a coroutine beside requests, keeping a reference so it is not garbage-collected mid-way."""
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def services(request: Request) -> Services:
    return request.app.state.services


def settings_of(request: Request) -> Settings:
    return services(request).settings


def redis_of(request: Request) -> aioredis.Redis:
    return services(request).redis


async def knowledge_base(request: Request) -> Any:
    """The hybrid search; 503 with the reason when Chroma cannot be reached."""
    state = services(request)
    if state.knowledge_base is None:
        from tools.retrieval import get_knowledge_base

        try:
            state.knowledge_base = await asyncio.to_thread(get_knowledge_base, state.settings)
        except Exception as error:
            log.warning("knowledge base unavailable: %s", error)
            raise HTTPException(503, f"The knowledge base is unavailable: {error}") from error
    return state.knowledge_base


async def graph(request: Request) -> Any:
    """The compiled LangGraph agent (checkpointed to Redis)."""
    state = services(request)
    if state.graph is None:
        state.graph = build_agent(state.settings)
    return state.graph


def build_agent(settings: Settings) -> Any:
    """`graph.graph.build_graph` with the Redis checkpointer; imported late because it loads LangChain."""
    from graph.checkpointer import make_checkpointer
    from graph.graph import build_graph

    client = aioredis.Redis(connection_pool=redis_pool(settings, decode_responses=False))  # the saver needs bytes
    checkpointer = make_checkpointer(settings.redis_url, settings.session_ttl_seconds, client=client)
    return build_graph(checkpointer, settings)


def redis_pool(settings: Settings, **options: Any) -> aioredis.BlockingConnectionPool:
    """A pool that waits for a free connection instead of failing: redis-py's default pool raises
    `MaxConnectionsError` beyond 100 connections, which 100 concurrent answers reached (bench/load_bench.py)."""
    return aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=10,
        **resilient(**options),  # retried across a Redis restart
    )


# Typed dependencies, as in FastAPI's full-stack template: `redis: RedisDep` in a route's signature.
ServicesDep = Annotated[Services, Depends(services)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
RedisDep = Annotated[aioredis.Redis, Depends(redis_of)]
GraphDep = Annotated[Any, Depends(graph)]
KnowledgeBaseDep = Annotated[Any, Depends(knowledge_base)]
