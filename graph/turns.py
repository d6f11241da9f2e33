"""One chat turn, run for a caller that streams it: the graph's custom events as they happen, then `done`.

The steps write their own events (graph/nodes.py); this adapter only starts the run with the context, ends it
with `done` — whose `text` is the stored reply, the one truth the page shows — and keeps a turn whose consumer
went away coherent: the text the customer already saw is stored as the reply, marked interrupted.
`result` (a `TurnResult`) is what an after-turn recorder needs, read from the final state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph.state import CompiledStateGraph

from graph.configuration import Context
from graph.nodes import new_message_id
from graph.transcript import last_question, text_of, transcript
from tools.sources import PublicSource, best_score


@dataclass
class TurnResult:
    """What one turn left behind, as every store records it."""

    session_id: str
    message_id: str | None
    question: str
    answer: str
    outcome: str  # answered | escalated | offered | small_talk | ticket_limited | refused | failed | interrupted | live
    # | verified
    sources: list[PublicSource] = field(default_factory=list)
    best_score: float | None = None
    ticket_id: str | None = None
    escalation_reason: str | None = None
    failed: str | None = None
    unsupported: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    verified: str | None = None  # the verified answer's id when the reply is one (graph/verified.py)

    @property
    def interrupted(self) -> bool:
        return self.outcome == "interrupted"


class Turn:
    def __init__(
        self,
        graph: CompiledStateGraph,
        context: Context,
        *,
        session_id: str,
        message: str,
        escalate: bool = False,
        client: str | None = None,
    ) -> None:
        self.graph, self.context, self.session_id, self.message = graph, context, session_id, message
        self.config: dict[str, Any] = {"configurable": {"thread_id": session_id, "client": client}}
        at = datetime.now(UTC).isoformat()
        self.input = {
            "messages": [HumanMessage(message, id=new_message_id(), response_metadata={"at": at})],
            "escalate": escalate,
        }
        self.result: TurnResult | None = None

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        final: dict[str, Any] = {}
        shown: list[str] = []
        shown_sources: list[PublicSource] = []  # as the page shows them, though a step has not returned yet
        stream = self.graph.astream(
            self.input,
            self.config,
            context=self.context,
            stream_mode=["custom", "values"],
            # The turn is stored once, when it ends (cancelled or failed included): a checkpoint per step cost 9
            # checkpoint writes and ~230 of a turn's ~370 Redis commands. A process killed mid-turn stores nothing;
            # the resume that ends its answer stores the question and the partial reply (`store_lost`).
            durability="exit",
        )
        try:
            async with contextlib.aclosing(stream):
                async for mode, chunk in stream:
                    if mode == "values":
                        final = chunk
                        continue
                    if chunk.get("event") == "token":
                        shown.append(chunk["text"])
                    elif chunk.get("event") == "sources":
                        shown_sources = chunk["sources"]
                    yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            if not self._replied(final) and "".join(shown).strip():
                reply = await self._store_interrupted("".join(shown), shown_sources)
                self.result = self._result(final | {"messages": [*final.get("messages", []), reply]})
            raise
        self.result = self._result(final)
        yield {
            "event": "done",
            "message_id": self.result.message_id,
            "text": self.result.answer,
            "interrupted": self.result.interrupted,
            "refused": self.result.outcome == "refused",
            "live": self.result.outcome == "live",  # a support lead has it (graph/live.py): no bot reply
            "verified": self.result.verified,  # a verified answer's id: sent as written, no LLM call
        }

    def _replied(self, state: dict[str, Any]) -> bool:
        messages = state.get("messages") or []
        return bool(messages) and isinstance(messages[-1], AIMessage)

    async def _store_interrupted(self, text: str, sources: list[PublicSource]) -> AIMessage:
        """Keep what the customer already saw — its words and sources — marked as cut off, as the turn's reply."""
        meta = {
            "interrupted": True,
            "sources": sources,
            "at": datetime.now(UTC).isoformat(),
        }
        reply = AIMessage(text, id=new_message_id(), response_metadata=meta)
        with contextlib.suppress(Exception):
            update = {"messages": [reply], "next_step": "end"}
            await asyncio.shield(self.graph.aupdate_state(self.config, update, as_node="check_answer"))
        return reply

    def _result(self, state: dict[str, Any]) -> TurnResult:
        messages = state.get("messages") or []
        reply = messages[-1] if self._replied(state) else None
        meta = (reply.response_metadata or {}) if reply is not None else {}
        signs = {
            "live": state.get("live"),
            "refused": meta.get("refused"),
            "escalated": state.get("ticket_id"),
            "offered": state.get("offered"),
            "small_talk": meta.get("small_talk"),
            "ticket_limited": meta.get("ticket_limited"),
            "interrupted": meta.get("interrupted"),
            "failed": state.get("failed"),
            "verified": meta.get("verified"),
        }
        outcome = next((name for name, sign in signs.items() if sign), "answered")  # the first sign decides
        return TurnResult(
            session_id=self.session_id,
            message_id=reply.id if reply is not None else None,
            question=last_question(messages),
            answer=text_of(reply) if reply is not None else "",
            outcome=outcome,
            sources=meta.get("sources") or [],
            best_score=best_score(state.get("sources") or []),
            ticket_id=state.get("ticket_id"),
            escalation_reason=state.get("escalation_reason"),
            failed=state.get("failed"),
            unsupported=meta.get("unsupported") or [],
            checks=meta.get("checks") or [],
            verified=meta.get("verified"),
        )


async def store_lost(
    graph: CompiledStateGraph, session_id: str, question: str, text: str, sources: list[PublicSource]
) -> None:
    """The turn of an answer whose process died mid-way (api/answer_stream.py `lost`): the question, and what the
    customer saw of the reply marked interrupted, as a cancelled turn keeps them."""
    at = datetime.now(UTC).isoformat()
    messages: list[Any] = [HumanMessage(question, id=new_message_id(), response_metadata={"at": at})]
    if text.strip():
        meta = {"interrupted": True, "lost": True, "sources": sources, "at": at}
        messages.append(AIMessage(text, id=new_message_id(), response_metadata=meta))
    config = {"configurable": {"thread_id": session_id}}
    await graph.aupdate_state(config, {"messages": messages, "next_step": "end"}, as_node="check_answer")


async def get_history(graph: CompiledStateGraph, session_id: str) -> list[dict[str, Any]]:
    """The stored conversation for restoring the chat after a reload."""
    snapshot = await graph.aget_state({"configurable": {"thread_id": session_id}})
    return transcript((snapshot.values or {}).get("messages", []))
