"""The agent as the server holds it — compiled graph, Redis checkpointer, run context — for tests that drive
turns directly (no HTTP)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from graph.checkpointer import make_checkpointer
from graph.configuration import Context, build_context
from graph.graph import build_graph
from graph.turns import Turn, get_history
from settings import Settings


class Agent:
    """The compiled graph with its Redis checkpointer and the run context, as the server holds them."""

    def __init__(self, settings: Settings) -> None:
        self.saver = make_checkpointer(settings.redis_url, settings.session_ttl_seconds)  # type: ignore[arg-type]
        self.graph = build_graph(self.saver)
        self.context: Context = build_context(settings)

    async def turn(self, session_id: str, message: str, **kwargs: Any) -> list[dict[str, Any]]:
        return [
            event
            async for event in Turn(self.graph, self.context, session_id=session_id, message=message, **kwargs).events()
        ]

    async def history(self, session_id: str) -> list[dict[str, Any]]:
        return await get_history(self.graph, session_id)

    async def close(self) -> None:
        await self.saver.aclose()
        await self.context.redis.aclose()


@contextlib.asynccontextmanager
async def agent_for(settings: Settings) -> AsyncIterator[Agent]:
    agent = Agent(settings)
    try:
        yield agent
    finally:
        await agent.close()


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in events if e["event"] == "token")


def first(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in events if e["event"] == kind)
