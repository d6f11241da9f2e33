"""`POST /chat`: one answer streamed as Server-Sent Events.

Order of events: `session`, `sources` (before any token), `token`…, optionally `escalated`, then `done`; on a
failure `error` comes first and the fallback text follows as tokens, then `done`. Nothing buffers: tokens are
written as the graph yields them, sse-starlette sends `X-Accel-Buffering: no`, no compression middleware.

The graph's turn runs in a task of its own and hands events over through a queue. When the client goes away,
sse-starlette cancels this generator; its `finally` (shielded, as every await in a cancelled task group would
be cancelled again) cancels the turn's task once, which closes the upstream LLM request and lets the turn store
the partial answer marked interrupted, then releases the session's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, field_validator
from redis.exceptions import LockError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from api import metrics, sessions
from api.deps import GraphDep, Services, services
from api.feedback import remember_answer
from api.webhook import announce_ticket
from graph.turns import Escalated, Failed, Finished, Sources, Token, run_turn
from tools.conversation_log import ConversationLog
from tools.review import ReviewQueue, should_sample
from tools.text import strip_controls

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])
CLOSE_SECONDS = 5.0  # longest wait for the turn to store its partial answer after a disconnect


class ChatRequest(BaseModel):
    message: str = Field(description="The customer's message (control characters are removed)")
    session_id: str | None = Field(default=None, description="From an earlier `session` event; null to start")
    escalate: bool = Field(default=False, description="Ask for a person: the turn opens a ticket")

    model_config = {"extra": "ignore", "strict": False}

    @field_validator("message")
    @classmethod
    def _clean(cls, value: str) -> str:
        value = strip_controls(value)
        if not value.strip():
            raise ValueError("message must contain some text (it was empty or only whitespace)")
        return value


def source_list(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`[{n, title, url, snippet}]`: what the client is shown of the graph's sources (scores stay inside)."""
    return [{key: source.get(key, "") for key in ("n", "title", "url", "snippet")} for source in sources]


def sse(event: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data, ensure_ascii=False), event=event)


_END = object()


async def pump(turn: AsyncIterator[Any], queue: asyncio.Queue[Any]) -> None:
    """Iterate the graph's turn in a task of its own. On a disconnect the SSE response's task group cancels
    its task again at every await; a turn driven from there could not even store its partial answer. Here
    the turn gets one plain cancellation (or GeneratorExit) and can clean up."""
    try:
        async with contextlib.aclosing(turn):  # type: ignore[type-var]
            async for event in turn:
                queue.put_nowait(event)
    except Exception as error:
        log.exception("chat turn failed")
        queue.put_nowait(error)
    finally:
        queue.put_nowait(_END)


async def stop(producer: asyncio.Task[None]) -> None:
    """Cancel the turn (closing the upstream LLM request) and wait, briefly, for it to store what it had."""
    if not producer.done():
        producer.cancel()
        await asyncio.wait([producer], timeout=CLOSE_SECONDS)


async def answer_events(
    state: Services, agent: Any, request: ChatRequest, session_id: str, lock: Any, started: float
) -> AsyncIterator[ServerSentEvent]:
    """Translate the graph's turn events into SSE events, measuring what the client sees."""
    yield sse("session", {"session_id": session_id})
    turn = run_turn(agent, session_id=session_id, message=request.message, escalate=request.escalate)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    producer = asyncio.create_task(pump(turn, queue))
    outcome, first_token, sources_sent, answer, sources = "interrupted", None, False, [], []
    escalated_to: str | None = None
    best: float | None = None  # best source score: low-relevance answers go to review
    metrics.STREAMS.inc()
    try:
        while (event := await queue.get()) is not _END:
            if isinstance(event, Token) and not sources_sent:  # the contract: `sources` before the first token
                sources_sent = True
                yield sse("sources", {"sources": []})
            if isinstance(event, Sources):
                sources, sources_sent = source_list(event.sources), True
                best = max((float(s.get("score", 0)) for s in event.sources), default=None)
                metrics.SOURCES_SECONDS.observe(time.perf_counter() - started)
                yield sse("sources", {"sources": sources})
            elif isinstance(event, Token):
                if first_token is None:
                    first_token = time.perf_counter()
                    metrics.FIRST_TOKEN_SECONDS.observe(first_token - started)
                answer.append(event.text)
                metrics.TOKENS.inc()
                yield sse("token", {"text": event.text})
            elif isinstance(event, Escalated):
                escalated_to = event.ticket_id
                metrics.ESCALATIONS.inc()
                state.spawn(announce_ticket(state, event.ticket_id))
                yield sse("escalated", {"ticket_id": event.ticket_id, "reason": event.reason})
            elif isinstance(event, Failed):
                outcome = "failed"
                metrics.ERRORS.labels(code=event.code).inc()
                yield sse("error", {"code": event.code, "message": event.message})
            elif isinstance(event, Finished):
                outcome = "done" if outcome != "failed" else outcome
                done = finished_payload(event, started, first_token)
                text = "".join(answer)
                ttl = state.settings.session_ttl_seconds
                await remember_answer(state.redis, event.message_id, session_id, request.message, text, sources, ttl)
                await ConversationLog(state.redis, state.settings.log_retention_days).log_turn(
                    session_id=session_id,
                    message_id=event.message_id or "",
                    question=request.message,
                    answer=text,
                    sources=sources,
                    timings=done["timings"],
                    flags={"outcome": outcome, "escalated": escalated_to, **event.flags},
                )
                await queue_for_review(state, session_id, event.message_id, request.message, text, escalated_to, best)
                yield sse("done", done)
            elif isinstance(event, Exception):  # a bug or an unexpected outage: say so, end the stream properly
                outcome = "failed"
                metrics.ERRORS.labels(code="internal_error").inc()
                yield sse("error", {"code": "internal_error", "message": "Something went wrong; please try again."})
                yield sse("done", finished_payload(None, started, first_token))
    finally:
        metrics.STREAMS.dec()
        metrics.CHATS.labels(outcome=outcome).inc()
        with anyio.CancelScope(shield=True):
            await stop(producer)
            await release(lock)


async def queue_for_review(
    state: Services,
    session_id: str,
    message_id: str | None,
    question: str,
    answer: str,
    ticket: str | None,
    best: float | None,
) -> None:
    """Every escalation, every low-relevance answer and a QUALITY_SAMPLE_RATE share of the rest."""
    record = {"session_id": session_id, "message_id": message_id, "question": question, "answer": answer}
    queue = ReviewQueue(state.redis)
    if ticket:
        await queue.add("escalation", record | {"ticket_id": ticket})
    elif best is not None and best < state.settings.low_relevance_score:
        await queue.add("low_relevance", record | {"best_score": best})
    elif should_sample(state.settings.quality_sample_rate):
        await queue.add("sampled", record)


def finished_payload(event: Any, started: float, first_token: float | None) -> dict[str, Any]:
    """`done` data: the graph's timings, with first-token and total time measured here (what the client sees)."""
    now = time.perf_counter()
    timings = dict(getattr(event, "timings", None) or {})
    timings["first_token_ms"] = round((first_token - started) * 1000, 1) if first_token else None
    timings["total_ms"] = round((now - started) * 1000, 1)
    timings.setdefault("retrieve_ms", None)
    payload: dict[str, Any] = {"message_id": getattr(event, "message_id", None), "timings": timings}
    if getattr(event, "usage", None):
        payload["usage"] = event.usage
    return payload


async def release(lock: Any) -> None:
    """Free the session's lock; already freed (or expired) is fine."""
    try:
        await lock.release()
    except LockError:
        pass


@router.post("/chat", response_class=EventSourceResponse)
async def chat(request: Request, body: ChatRequest, agent: GraphDep) -> EventSourceResponse:
    """Answer one message as a stream. 409 while another answer streams in the same session; 429 over a limit."""
    started = time.perf_counter()
    state: Services = services(request)
    settings = state.settings
    if len(body.message) > settings.max_message_chars:
        raise HTTPException(
            422, f"message is too long: {len(body.message)} characters, the limit is {settings.max_message_chars}."
        )
    await request.app.state.limits.check_ip(request)
    ttl = settings.session_ttl_seconds
    session_id = body.session_id
    if not await sessions.known(state.redis, session_id, ttl):
        session_id = await sessions.issue(state.redis, ttl)
    await request.app.state.limits.check_session(session_id)
    lock = sessions.streaming_lock(state.redis, session_id, settings.chat_lock_seconds)
    if not await lock.acquire():
        raise HTTPException(409, "An answer is still being written in this conversation; wait for it to finish.")
    return EventSourceResponse(
        answer_events(state, agent, body, session_id, lock, started),
        ping=settings.sse_ping_seconds,
        background=BackgroundTask(release, lock),  # if the stream never started, the generator's finally won't run
    )
