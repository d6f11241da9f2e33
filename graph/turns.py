"""One chat turn as a stream of plain events — the bridge between the graph and `/chat`.

Order: `Sources` first (before any token), `Token`s (only the answer's, or the escalation/fallback text),
`Failed` before a fallback, `Escalated` when a ticket was opened or updated, `Finished` last. If the consumer
stops early (the client went away), the graph's stream is closed — which closes the upstream LLM request — and
the partial answer is stored marked `interrupted`, so the conversation stays coherent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langgraph.graph.state import CompiledStateGraph

from tools.injection import sanitize_input


@dataclass
class Sources:
    sources: list[dict[str, Any]]


@dataclass
class Token:
    text: str


@dataclass
class Escalated:
    ticket_id: str
    reason: str


@dataclass
class Failed:
    code: str
    message: str


@dataclass
class Finished:
    message_id: str | None
    timings: dict[str, float | None] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)  # for the conversation log: unsupported sentences, …


TurnEvent = Sources | Token | Escalated | Failed | Finished


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


async def run_turn(
    graph: CompiledStateGraph, *, session_id: str, message: str, escalate: bool = False
) -> AsyncIterator[TurnEvent]:
    config = {"configurable": {"thread_id": session_id}}
    now = datetime.now(UTC).isoformat()
    message = sanitize_input(message)
    question = HumanMessage(message, id=f"m_{uuid.uuid4().hex}", response_metadata={"at": now})
    started = time.perf_counter()
    timings: dict[str, float | None] = {"retrieve_ms": None, "first_token_ms": None}
    partial: list[str] = []
    flags: dict[str, Any] = {}
    message_id: str | None = None
    answered = False
    stream = graph.astream(
        {"messages": [question], "escalate": escalate},
        config,
        stream_mode=["updates", "messages"],
        durability="async",  # checkpoints are written while the next step runs: the LLM call starts sooner
    )
    try:
        async with contextlib.aclosing(stream):
            async for mode, chunk in stream:
                if mode == "messages":
                    piece, meta = chunk
                    if meta.get("langgraph_node") == "answer" and isinstance(piece, AIMessageChunk) and piece.content:
                        if timings["first_token_ms"] is None:
                            timings["first_token_ms"] = _ms(started)
                        partial.append(str(piece.content))
                        yield Token(str(piece.content))
                    continue
                for node, update in (chunk or {}).items():
                    if node == "retrieve":
                        timings["retrieve_ms"] = _ms(started)
                        yield Sources([{k: v for k, v in s.items() if k != "text"} for s in update.get("sources", [])])
                    elif node == "answer":
                        answered = True
                        message_id = update["messages"][-1].id
                        if unsupported := update["messages"][-1].response_metadata.get("unsupported"):
                            flags["unsupported_sentences"] = unsupported
                        if update.get("failed"):
                            yield Failed(update["failed"], "The answering service is unavailable; this is a fallback.")
                            yield Token(str(update["messages"][-1].content))
                        elif update.get("correction"):
                            yield Token(f"\n\n{update['correction']}")
                    elif node == "refuse":
                        message_id = update["messages"][-1].id
                        yield Token(str(update["messages"][-1].content))
                    elif node == "escalate":
                        reply = update["messages"][-1]
                        message_id = reply.id
                        yield Token(("\n\n" if answered else "") + str(reply.content))
                        yield Escalated(update["ticket_id"], reply.response_metadata.get("escalation_reason", ""))
    except (GeneratorExit, asyncio.CancelledError):
        if partial and not answered:
            await _store_interrupted(graph, config, "".join(partial))
        raise
    timings["total_ms"] = _ms(started)
    yield Finished(message_id, timings, flags)


async def _store_interrupted(graph: CompiledStateGraph, config: dict[str, Any], text: str) -> None:
    """Keep what the customer already saw, marked as cut off, as the turn's answer."""
    meta = {"interrupted": True, "at": datetime.now(UTC).isoformat()}
    message = AIMessage(text, id=f"m_{uuid.uuid4().hex}", response_metadata=meta)
    with contextlib.suppress(Exception):
        await asyncio.shield(graph.aupdate_state(config, {"messages": [message], "route": "answer"}, as_node="answer"))


async def get_history(graph: CompiledStateGraph, session_id: str) -> list[dict[str, Any]]:
    """The stored conversation for restoring the chat after a reload."""
    snapshot = await graph.aget_state({"configurable": {"thread_id": session_id}})
    history = []
    for message in (snapshot.values or {}).get("messages", []):
        if not isinstance(message, HumanMessage | AIMessage):
            continue
        meta = message.response_metadata or {}
        entry: dict[str, Any] = {
            "message_id": message.id,
            "role": "user" if isinstance(message, HumanMessage) else "assistant",
            "content": message.content if isinstance(message.content, str) else str(message.content),
            "at": meta.get("at"),
        }
        for key in ("sources", "interrupted", "ticket_id"):
            if meta.get(key):
                entry[key] = meta[key]
        history.append(entry)
    return history


async def delete_session(graph: CompiledStateGraph, session_id: str) -> None:
    if graph.checkpointer is not None:
        await graph.checkpointer.adelete_thread(session_id)  # type: ignore[union-attr]
