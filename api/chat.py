"""`POST /chat`: one answer streamed as Server-Sent Events.

Order of events: `session`, `sources` (before any token), `token`…, optionally `escalated`, then `done`, whose
`text` is the stored reply — what the page shows at the end. An `error` event carries a notice shown apart
from the answer (the LLM failed; the partial answer, if any, stays marked interrupted). Every token was checked
before it was sent (graph/answer_check.py). Nothing buffers: sse-starlette sends `X-Accel-Buffering: no`.

The graph's turn runs in a task of its own and hands events over through a queue. A /chat answer outlives its
connection (`Answer`, api/answer_stream.py): every event has an SSE `id:` and is appended to a Redis stream, the
`session` event carries the `answer_id`, and `GET /chat/stream/{answer_id}` (any process) replays what a client
missed, then the rest live. The answer stops only on `POST /chat/stream/{answer_id}/stop` or when nobody has read
it for RESUME_GRACE_SECONDS: then `public_events`' `finally` (shielded, as every await in a cancelled task group
would be cancelled again) cancels the turn's task once, which closes the upstream LLM request and lets the turn
store the partial answer marked interrupted, then releases the session's lock and records the turn. `/agent`
(api/agent.py) iterates `public_events` itself: there a disconnect still stops the turn.
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
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, field_validator
from redis.exceptions import LockError
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

import metrics
from api import answer_stream, sessions
from api.after_turn import record_turn
from api.deps import Services, services
from api.limits import client_ip
from api.sse import frame, sse, stream
from graph.turns import Turn
from graph.turns import store_lost as store_lost_turn
from tools.injection import sanitize_input

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])
CLOSE_SECONDS = 5.0  # longest wait for the turn to store its partial answer after a disconnect
INTERNAL_ERROR = "Something went wrong; please try again."


class ChatRequest(BaseModel):
    message: str = Field(description="The customer's message (control characters are removed when stored)")
    session_id: str | None = Field(default=None, description="From an earlier `session` event; null to start")
    escalate: bool = Field(default=False, description="Ask for a person: the turn opens a ticket")

    model_config = {"extra": "ignore", "strict": False}

    @field_validator("message")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if problem := message_problem(value):
            raise ValueError(problem)
        return value


def message_problem(value: str, limit: int | None = None) -> str | None:
    """Why a customer's message cannot be answered, as a sentence (None: it can). /chat and /agent both ask."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800" in the JSON: no character, storable nowhere
        return "message contains an invalid character (a lone UTF-16 surrogate escape)"
    if not sanitize_input(value).strip():
        return "message must contain some text (it was empty or only whitespace)"
    if limit is not None and len(value) > limit:
        return f"message is too long: {len(value)} characters, the limit is {limit}."
    return None


_END = object()


async def pump(turn: Turn, queue: asyncio.Queue[Any]) -> None:
    """Iterate the graph's turn in a task of its own. On a disconnect the SSE response's task group cancels
    its task again at every await; a turn driven from there could not even store its partial answer. Here
    the turn gets one plain cancellation (or GeneratorExit) and can clean up."""
    events = turn.events()
    try:
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
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


class Clock:
    """What the client sees, in milliseconds from the request: sources, first token, the end."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.timings: dict[str, float | None] = {"sources_ms": None, "first_token_ms": None, "total_ms": None}

    def mark(self, name: str) -> float:
        elapsed = time.perf_counter() - self.started
        if self.timings.get(name) is None or name == "total_ms":
            self.timings[name] = round(elapsed * 1000, 1)
        return elapsed


RUNNING: dict[str, Answer] = {}  # answers this process is generating, by answer id (a local stop is immediate)


class Answer:
    """One /chat answer, run in a task of its own so that it outlives its connection: each public event gets its
    id, goes to the Redis stream (api/answer_stream.py) and to this process's live connections."""

    def __init__(self, state: Services, turn: Turn, lock: Any, clock: Clock) -> None:
        self.state, self.turn, self.lock, self.clock = state, turn, lock, clock
        self.answer_id = answer_stream.new_answer_id()
        self.writer = answer_stream.AnswerWriter(
            state.redis, self.answer_id, state.settings.chat_lock_seconds, self.stop
        )
        self.published: list[bytes] = []  # the SSE frames sent so far, each encoded once (Answer.publish)
        self.listeners: list[asyncio.Queue[Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.finished = False

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())
        self.state.background.add(self.task)
        self.task.add_done_callback(self.state.background.discard)
        RUNNING[self.answer_id] = self

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Serialise the event once: the same JSON goes to the Redis stream and into the SSE frame."""
        payload = json.dumps(data, ensure_ascii=False)
        item = frame(name, payload, self.writer.add(name, payload))
        self.published.append(item)
        for queue in self.listeners:
            queue.put_nowait(item)

    async def run(self) -> None:
        shown: list[str] = []
        ended = False
        heartbeat: asyncio.Task[None] | None = None
        try:
            question = sanitize_input(self.turn.message)  # as guard_input stores it
            await self.writer.begin(self.turn.session_id, self.state.settings.session_ttl_seconds, question)
            heartbeat = asyncio.create_task(self.writer.heartbeat())
            async with contextlib.aclosing(public_events(self.state, self.turn, self.lock, self.clock)) as events:
                async for name, data in events:
                    if name == "session":
                        data = data | {"answer_id": self.answer_id}
                    elif name == "token":
                        shown.append(data["text"])
                    elif name == "done":
                        # The lock goes before `done` is sent: a client may send its next message the moment it
                        # reads `done`, and must not get a 409. What came before is stored first
                        await self.writer.drain()
                        await release(self.lock)
                    self.publish(name, data)
                    if name == "done":
                        ended = True
                        await self.writer.drain()  # stored before the next answer of the session replaces it
        except asyncio.CancelledError:
            pass  # stopped: public_events' finally stopped the turn, which stored its partial answer
        except Exception:
            log.exception("chat answer failed")
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            with anyio.CancelScope(shield=True):
                if not ended:  # every reader ends with `done`; the lock goes first, as above
                    await release(self.lock)
                    result = self.turn.result
                    done = {"message_id": result.message_id if result else None, "text": "".join(shown)}
                    self.publish("done", done | {"interrupted": True, "refused": False, "timings": self.clock.timings})
                self.finished = True
                for queue in self.listeners:
                    queue.put_nowait(None)
                await self.writer.finish()
                await release(self.lock)  # when writing the stream failed before the turn began
                RUNNING.pop(self.answer_id, None)

    async def events(self) -> AsyncIterator[bytes]:
        """This connection's view: everything published so far, then live. Leaving does not stop the answer.
        Frames already waiting when the connection is ready go out as one write (the same bytes on the wire): a
        busy process sends a backlog in one ASGI message instead of one per token."""
        if self.task is None:
            self.start()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in self.published:
            queue.put_nowait(item)
        if self.finished:
            queue.put_nowait(None)
        self.listeners.append(queue)
        self.writer.reading(+1)
        try:
            while (item := await queue.get()) is not None:
                frames = [item]
                while not queue.empty() and (item := queue.get_nowait()) is not None:
                    frames.append(item)
                yield b"".join(frames)
                if item is None:  # the end came in the same run
                    break
        finally:
            self.listeners.remove(queue)
            self.writer.reading(-1)

    async def release_unless_started(self) -> None:
        """The response's background task: if the stream never started, nothing else frees the lock."""
        if self.task is None:
            await release(self.lock)


async def public_events(
    state: Services, turn: Turn, lock: Any, clock: Clock
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The turn's events in the contract's order, and nothing else; bookkeeping waits for the end. What /chat
    sends as SSE and /agent (api/agent.py) as LangServe chunks: one way for every answer."""
    yield "session", {"session_id": turn.session_id}
    metrics.STREAMS.inc()
    admitted = None
    producer: asyncio.Task[None] | None = None
    try:
        admitted = await state.gate.enter()  # first come, first served (api/admission.py)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        producer = asyncio.create_task(pump(turn, queue))
        sources_sent, shown = False, []
        while (event := await queue.get()) is not _END:
            if isinstance(event, Exception):  # a bug or an unexpected outage: say so, end the stream properly
                metrics.ERRORS.labels(code="internal_error").inc()
                yield "error", {"code": "internal_error", "message": INTERNAL_ERROR}
                clock.mark("total_ms")
                done = {"message_id": None, "text": "".join(shown), "interrupted": True, "refused": False}
                yield "done", done | {"timings": clock.timings}
                continue
            name, data = event["event"], {k: v for k, v in event.items() if k != "event"}
            if name in ("sources", "token"):  # prepared: the LLM reads its prompt outside the gate
                admitted.leave()
            if name == "token" and not sources_sent:  # the contract: `sources` before the first token
                sources_sent = True
                yield "sources", {"sources": []}
            if name == "sources":
                sources_sent = True
                metrics.SOURCES_SECONDS.observe(clock.mark("sources_ms"))
            elif name == "token":
                if clock.timings["first_token_ms"] is None:
                    metrics.FIRST_TOKEN_SECONDS.observe(clock.mark("first_token_ms"))
                shown.append(data["text"])
                metrics.TOKENS.inc()
            elif name == "escalated":
                metrics.ESCALATIONS.inc()
            elif name == "error":
                metrics.ERRORS.labels(code=data["code"]).inc()
            elif name == "done":
                clock.mark("total_ms")
                data["timings"] = clock.timings
            yield name, data
    finally:
        if admitted is not None:
            admitted.leave()
        metrics.STREAMS.dec()
        with anyio.CancelScope(shield=True):
            if producer is not None:
                await stop(producer)
            await release(lock)
        result = turn.result
        metrics.CHATS.labels(outcome=result.outcome if result else "interrupted").inc()
        if result is not None:
            state.spawn(record_turn(state, result, dict(clock.timings)))


async def release(lock: Any) -> None:
    """Free the session's lock; already freed (or expired) is fine."""
    try:
        await lock.release()
    except LockError:
        pass


@router.post("/chat", response_class=EventSourceResponse)
async def chat(request: Request, body: ChatRequest) -> EventSourceResponse:
    """Answer one message as a stream. 409 while another answer streams in the same session; 429 over a limit."""
    clock = Clock(time.perf_counter())
    state = services(request)
    settings = state.settings
    if problem := message_problem(body.message, settings.max_message_chars):
        raise HTTPException(422, problem)
    await state.limits.check_ip(request)
    ttl = settings.session_ttl_seconds
    session_id = body.session_id
    if not await sessions.known(state.redis, session_id, ttl):
        session_id = await sessions.issue(state.redis, ttl)
    await state.limits.check_session(session_id)
    lock = sessions.streaming_lock(state.redis, session_id, settings.chat_lock_seconds)
    if not await lock.acquire():
        raise HTTPException(409, "An answer is still being written in this conversation; wait for it to finish.")
    client = client_ip(request)
    turn = Turn(
        state.graph, state.context, session_id=session_id, message=body.message, escalate=body.escalate, client=client
    )
    answer = Answer(state, turn, lock, clock)
    return stream(answer.events(), settings.sse_ping_seconds, background=BackgroundTask(answer.release_unless_started))


NO_ANSWER = "No such answer (it may have finished too long ago, or belong to another session)."


async def _owned_answer(request: Request, answer_id: str, session_id: str | None) -> str:
    """404 unless `answer_id` is the latest answer of the session named (query `session_id` or `X-Session-Id`)."""
    session_id = session_id or request.headers.get("x-session-id")
    if not await answer_stream.owned(services(request).redis, answer_id, session_id):
        raise HTTPException(404, NO_ANSWER)
    return answer_id


@router.get("/chat/stream/{answer_id}", response_class=EventSourceResponse)
async def resume(
    request: Request,
    answer_id: str,
    session_id: str | None = Query(default=None, description="The session the answer belongs to"),
    last_event_id: str | None = Query(default=None, description="As the `Last-Event-ID` header (which wins)"),
) -> EventSourceResponse:
    """An answer's events after `Last-Event-ID` (all of them without it), then the rest live until `done`, from
    any app process. 404 for an unknown, expired or someone else's answer."""
    after = request.headers.get("last-event-id") or last_event_id or "0-0"
    if not answer_stream.is_event_id(after):
        raise HTTPException(422, "Last-Event-ID must be an event id this stream sent, such as 0-12.")
    await _owned_answer(request, answer_id, session_id)
    session_id = session_id or request.headers.get("x-session-id") or ""
    state = services(request)

    async def store_lost(question: str, text: str, sources: list[Any]) -> None:
        await store_lost_turn(state.graph, session_id, question, text, sources)

    async def events() -> AsyncIterator[bytes]:
        async for event_id, name, data in answer_stream.follow(state.redis, answer_id, after, store_lost):
            yield sse(name, data, event_id)

    return stream(events(), state.settings.sse_ping_seconds)


@router.post("/chat/stream/{answer_id}/stop", status_code=202)
async def stop_answer(request: Request, answer_id: str, session_id: str | None = Query(default=None)) -> dict[str, Any]:
    """Stop an answer (the page's Stop button) wherever it runs: at its next event or heartbeat, stored interrupted."""
    await _owned_answer(request, answer_id, session_id)
    await answer_stream.request_stop(services(request).redis, answer_id)
    if (local := RUNNING.get(answer_id)) is not None:
        local.stop()
    return {"answer_id": answer_id, "stopping": True}
