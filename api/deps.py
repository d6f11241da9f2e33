"""What every route needs, built once per app (server.py) and reached through `request.app.state.services`.

One `redis.asyncio.Redis` client (a blocking connection pool) serves sessions, tickets, limits, locks, logs and
feedback; the checkpointer has its own because it needs bytes. The agent's parts are the graph's run context
(graph/configuration.py), so a route and a graph step use the very same objects.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Request

from api.admission import Gate
from settings import Settings

if TYPE_CHECKING:
    from api.limits import RateLimits
    from graph.configuration import Context

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The app's long-lived parts."""

    settings: Settings
    redis: aioredis.Redis
    context: Context
    graph: Any
    limits: RateLimits
    gate: Gate  # PREPARE_CONCURRENCY (api/admission.py)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)  # name → (time.monotonic(), value)

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


def graph_of(request: Request) -> Any:
    return services(request).graph


async def knowledge_base(request: Request) -> Any:
    """The hybrid search; 503 with the reason when Chroma cannot be reached."""
    try:
        return await services(request).context.knowledge_base()
    except Exception as error:
        log.warning("knowledge base unavailable: %s", error)
        raise HTTPException(503, f"The knowledge base is unavailable: {error}") from error


# Typed dependencies, as in FastAPI's full-stack template: `redis: RedisDep` in a route's signature.
ServicesDep = Annotated[Services, Depends(services)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
RedisDep = Annotated[aioredis.Redis, Depends(redis_of)]
GraphDep = Annotated[Any, Depends(graph_of)]
KnowledgeBaseDep = Annotated[Any, Depends(knowledge_base)]
