"""The run's context: the settings and the long-lived parts every step uses, built once per app.

Passed as LangGraph's runtime context (`graph.astream(..., context=ctx)`; nodes read `runtime.context`).
One Redis client (the app's pool) serves tickets here and sessions, limits and logs in the API; the knowledge
base loads its embedding model on first use (~10 s), shared with `/api/search`.
Callers that cannot pass a context — LangGraph Studio (`langgraph dev`) — get `default_context()`, built from
the environment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import redis.asyncio as aioredis
from langgraph.runtime import Runtime

from graph.llm import chat_model
from graph.llm_pool import LLMPool
from settings import Settings, get_settings
from tools.redis_client import pool
from tools.tickets import TicketStore


class TicketQuota(Protocol):
    """May this session (from this client address) open a new ticket now? Counts the ticket when it may."""

    async def __call__(self, session_id: str, client: str | None) -> bool: ...


@dataclass(kw_only=True)
class Context:
    settings: Settings
    redis: aioredis.Redis  # decode_responses=True
    llm: LLMPool
    classifier: LLMPool  # the same instances, asked for a one-word verdict (INJECTION_LLM_CHECK)
    tickets: TicketStore
    ticket_quota: TicketQuota | None = None  # the API's rate limits; none in Studio
    _knowledge_base: Any = field(default=None, repr=False)
    _loading: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    verified_matcher: Any = field(default=None, repr=False)  # graph/verified.py builds it on first use

    async def knowledge_base(self) -> Any:
        """The hybrid search, loaded once (off the event loop: it reads the embedding model)."""
        if self._knowledge_base is None:
            async with self._loading:
                if self._knowledge_base is None:
                    from tools.retrieval import get_knowledge_base

                    self._knowledge_base = await asyncio.to_thread(get_knowledge_base, self.settings)
        return self._knowledge_base


def pool_options(settings: Settings) -> dict[str, Any]:
    """LLM_ROUTING and its companions (docs/configuration.md#llm-routing)."""
    return {
        "routing": settings.llm_routing,
        "max_in_flight": settings.llm_max_in_flight_per_instance,
        "session_header": settings.llm_session_header,
        "session_secret": settings.llm_session_key_secret,
    }


def build_context(
    settings: Settings, redis: aioredis.Redis | None = None, ticket_quota: TicketQuota | None = None
) -> Context:
    """The parts for `settings`; `redis` is the app's client (one is made from REDIS_URL when not given)."""
    if redis is None:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set: tickets need Redis")
        redis = aioredis.Redis(
            connection_pool=pool(settings.redis_url, settings.redis_max_connections, decode_responses=True)
        )
    terse = settings.model_copy(update={"llm_max_tokens": 3, "llm_temperature": 0.0})
    return Context(
        settings=settings,
        redis=redis,
        llm=LLMPool(settings.llm_base_url, lambda url: chat_model(settings, url), **pool_options(settings)),
        classifier=LLMPool(settings.llm_base_url, lambda url: chat_model(terse, url), **pool_options(settings)),
        tickets=TicketStore(
            redis, wait_replicas=settings.redis_wait_replicas, wait_timeout_ms=settings.redis_wait_timeout_ms
        ),
        ticket_quota=ticket_quota,
    )


@lru_cache
def default_context() -> Context:
    return build_context(get_settings())


def context_of(runtime: Runtime[Context]) -> Context:
    return runtime.context if isinstance(runtime.context, Context) else default_context()
