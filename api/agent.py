"""The public LangServe surface at `/agent`: one customer message in, the answer out — the turn `/chat` runs.

What is served is not the raw graph but `PublicAgent`, a small Runnable in front of it. Its input is
`{"messages": [exactly one human message]}` (plus optional `escalate`); the server keeps the conversation, so a
client cannot write history, replies or system messages. It runs `graph.turns.Turn` through the very events
`/chat` streams (`api.chat.public_events`): `stream` sends them as chunks, `invoke` folds them into one result.
Nothing else of the run (prompt, sources' texts, node states) leaves the server; the whole event stream is a
developer tool, served by `langgraph dev` (docs/studio.md), not here.

Every turn request is admitted by `admit` (a FastAPI dependency, so its refusals are real 4xx answers before
any response starts): the message is checked as `/chat` checks it, the session must be a live one from
`POST /api/sessions` (header `X-Session-Id`), the same rate limits count it and the same per-session lock is
taken (409 while another answer streams in the session, from `/chat` or `/agent`). The turn releases the lock
when it ends; the dependency's exit, after the response, releases it should the turn never have started.
`invoke` watches the connection: when the client goes away the turn is cancelled and its partial answer stored
marked interrupted, as `/chat` does. Batch, stream_log, stream_events and the playground are not served.

    remote = RemoteRunnable("http://127.0.0.1:8000/agent/", headers={"X-Session-Id": session_id})
    remote.invoke({"messages": [HumanMessage("How do I reset my password?")]})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from langchain_core.runnables import Runnable, RunnableConfig
from langserve import add_routes
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio.lock import Lock

from api import sessions
from api.chat import Clock, message_problem, public_events, release
from api.deps import Services, services
from api.limits import client_ip
from graph.turns import Turn

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
ADMITTED = "agent_turn"  # the key of the admitted turn in the run's `configurable`
SERVED = "POST /agent/invoke, POST /agent/stream, GET /agent/input_schema and GET /agent/output_schema"


@router.post("", status_code=201)
async def new_session(request: Request) -> dict[str, str]:
    """A fresh conversation id, for clients of `/agent` (the chat page gets one from `/chat`)."""
    state = services(request)
    await state.limits.check_new_session(request)  # RATE_LIMIT_SESSIONS_IP: 429 + Retry-After
    return {"session_id": await sessions.issue(state.redis, state.settings.session_ttl_seconds)}


class AgentMessage(BaseModel):
    """The customer's new message. Only `content` is read: RemoteRunnable also sends `id`, `name`,
    `additional_kwargs` and `response_metadata`, which are ignored (the server stamps its own)."""

    type: Literal["human"]
    content: str
    model_config = ConfigDict(extra="allow")


class AgentInput(BaseModel):
    """One new human message; the conversation so far is the server's, named by `X-Session-Id`."""

    messages: Annotated[list[AgentMessage], Field(min_length=1, max_length=1)]
    escalate: bool = Field(default=False, description="Ask for a person: the turn opens a ticket")
    model_config = ConfigDict(extra="forbid")


class AgentSource(BaseModel):
    n: int
    title: str
    url: str
    snippet: str


class AgentResult(BaseModel):
    """What `invoke` returns: `/chat`'s events folded into one answer."""

    session_id: str
    message_id: str | None = Field(description="The stored reply's id (for POST /api/messages/{id}/feedback)")
    text: str = Field(description="The stored reply, as /chat's `done.text`")
    sources: list[AgentSource] = Field(default_factory=list)
    ticket_id: str | None = Field(default=None, description="The ticket this turn opened or updated")
    offered: str | None = Field(default=None, description="Why a person was offered (a yes opens a ticket)")
    refused: bool = False
    interrupted: bool = False
    error: str | None = Field(default=None, description="Error code when the answer failed (llm_unavailable, …)")


@dataclass
class Admitted:
    """A turn let in: its message checked, counted against the limits, its session locked."""

    request: Request
    state: Services
    session_id: str
    message: str
    escalate: bool
    lock: Lock
    clock: Clock


def _invalid(detail: str) -> HTTPException:
    return HTTPException(422, f"Invalid request — {detail}")


def _read_input(raw: bytes, limit: int) -> AgentInput:
    """The body's `input`, with a sentence for each way a client gets it wrong."""
    try:
        body = json.loads(raw)
    except ValueError:  # not JSON, truncated, empty, or not UTF-8
        raise _invalid(
            'the body is not valid JSON in UTF-8; send {"input": {"messages": [{"type": "human", "content": "…"}]}}.'
        ) from None
    value = body.get("input") if isinstance(body, dict) else None
    messages = value.get("messages") if isinstance(value, dict) else None
    if not isinstance(messages, list):
        raise _invalid(
            'input.messages must be a list with the new message, e.g. [{"type": "human", "content": "..."}] '
            "(RemoteRunnable sends HumanMessage objects in this form)."
        )
    if len(messages) != 1:
        raise _invalid(
            f"input.messages has {len(messages)} messages; send exactly one, the customer's new message "
            "(the server keeps the conversation: history and replies are not accepted)."
        )
    message = messages[0]
    if not isinstance(message, dict) or message.get("type") != "human":
        kind = message.get("type") if isinstance(message, dict) else type(message).__name__
        raise _invalid(
            f'input.messages[0] must be a human message ({{"type": "human", "content": "..."}}), not {kind!r}: '
            "the server writes the replies."
        )
    if not isinstance(message.get("content"), str):
        raise _invalid("input.messages[0].content must be the message's text, a string.")
    if problem := message_problem(message["content"], limit):
        raise _invalid(f"input.messages[0].content: {problem}")
    try:
        return AgentInput.model_validate(value)  # what LangServe validates after us: it cannot fail there
    except ValidationError as error:
        raise RequestValidationError([e | {"loc": ("input", *e["loc"])} for e in error.errors()]) from None


async def _admit_turn(request: Request) -> Admitted:
    clock = Clock(time.perf_counter())
    state = services(request)
    settings = state.settings
    agent_input = _read_input(await request.body(), settings.max_message_chars)
    session_id = request.headers.get("x-session-id")
    if not await sessions.known(state.redis, session_id, settings.session_ttl_seconds):
        raise HTTPException(
            422, "Send the header X-Session-Id with an id from POST /api/sessions (it may have expired)."
        )
    assert session_id is not None
    await state.limits.check_ip(request)
    await state.limits.check_session(session_id)
    lock = sessions.streaming_lock(state.redis, session_id, settings.chat_lock_seconds)
    if not await lock.acquire():
        raise HTTPException(409, "An answer is still being written in this conversation; wait for it to finish.")
    message = agent_input.messages[0].content
    return Admitted(request, state, session_id, message, agent_input.escalate, lock, clock)


async def admit(request: Request) -> AsyncIterator[None]:
    """Every `/agent` POST runs a turn: admit it before LangServe reads the body. Ends after the response."""
    if request.method != "POST":
        yield
        return
    admitted = await _admit_turn(request)
    request.state.agent_turn = admitted
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await release(admitted.lock)  # already released by the turn: nothing happens


async def _run_config(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """LangServe's per-request hook: hand the admitted turn to the Runnable. The client's `configurable` is
    dropped: nothing of the run is the client's to set."""
    admitted = getattr(request.state, "agent_turn", None)
    if admitted is None:
        raise RuntimeError("an /agent run without its admission (api.agent.admit)")
    return {**config, "configurable": {ADMITTED: admitted}}


async def _until_disconnected(request: Request) -> None:
    """The body has been read, so the next message the server delivers is the client leaving."""
    while True:
        if (await request.receive())["type"] == "http.disconnect":
            return
        await asyncio.sleep(0.1)  # a stray body message: never spin


def fold(result: dict[str, Any], name: str, data: dict[str, Any]) -> None:
    """One public event into the invoke result."""
    if name == "sources":
        result["sources"] = data["sources"]
    elif name == "escalated":
        result["ticket_id"] = data["ticket_id"]
    elif name == "offer":
        result["offered"] = data["reason"]
    elif name == "error":
        result["error"] = data["code"]
    elif name == "done":
        result |= {key: data[key] for key in ("message_id", "text", "refused", "interrupted")}


def _admitted(config: RunnableConfig | None) -> Admitted:
    admitted = ((config or {}).get("configurable") or {}).get(ADMITTED)
    if not isinstance(admitted, Admitted):
        raise RuntimeError("PublicAgent runs only for requests admitted by api.agent.admit")
    return admitted


class PublicAgent(Runnable[dict[str, Any], dict[str, Any]]):
    """What `/agent` serves: one checked message in, the public events (stream) or their result (invoke) out."""

    name = "support-agent"

    def __init__(self, graph: Any, context: Any) -> None:
        self.graph, self.context = graph, context

    @property
    def InputType(self) -> type[AgentInput]:  # LangChain's names
        return AgentInput

    @property
    def OutputType(self) -> type[AgentResult]:
        return AgentResult

    def invoke(self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError("The public agent runs on the server's event loop: use ainvoke or astream.")

    def _events(self, admitted: Admitted) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        turn = Turn(
            self.graph,
            self.context,
            session_id=admitted.session_id,
            message=admitted.message,
            escalate=admitted.escalate,
            client=client_ip(admitted.request),
        )
        return public_events(admitted.state, turn, admitted.lock, admitted.clock)

    async def astream(  # type: ignore[override]
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """The events `/chat` sends, each as `{"event": name, …}`. A disconnect cancels this generator (the
        SSE response does), which stops the turn; the turn keeps its partial answer marked interrupted."""
        async with contextlib.aclosing(self._events(_admitted(config))) as events:
            async for name, data in events:
                yield {"event": name, **data}

    async def ainvoke(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """The turn's result. Nothing cancels a plain request when its client leaves, so the connection is
        watched: a disconnect cancels the turn as it does on `/chat`."""
        admitted = _admitted(config)
        events = self._events(admitted)
        result: dict[str, Any] = {"session_id": admitted.session_id, "message_id": None, "text": ""}

        async def answer() -> None:
            async with contextlib.aclosing(events):
                async for name, data in events:
                    fold(result, name, data)

        turn = asyncio.create_task(answer())
        watch = asyncio.create_task(_until_disconnected(admitted.request))
        try:
            await asyncio.wait({turn, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not turn.done():  # the client left (or the server stops): stop the turn, let it store its partial
                turn.cancel()
                await asyncio.wait({turn})
                result["interrupted"] = True
        if not turn.cancelled() and (error := turn.exception()) is not None:
            raise error
        return AgentResult.model_validate(result).model_dump()


NOT_SERVED = {
    "batch": "Batch is not served: send one message per request to POST /agent/invoke.",
    "stream_events": (
        "The full event stream is not public (it carries the prompt and the run's internals): POST /agent/stream "
        "sends the answer's events. Developers run the graph with `langgraph dev` (docs/studio.md)."
    ),
    "playground": "The playground is not served; developers use LangGraph Studio (`langgraph dev`, docs/studio.md).",
}
NOT_SERVED["stream_log"] = NOT_SERVED["stream_events"]

not_served = APIRouter(prefix="/agent", include_in_schema=False)


@not_served.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def no_such_agent_endpoint(rest: str) -> None:
    """404 with the way forward, for everything under /agent that is not served (LangServe's defaults included)."""
    first = rest.split("/", 1)[0]
    raise HTTPException(404, NOT_SERVED.get(first, f"No such endpoint under /agent; it serves {SERVED}."))


def add_agent_routes(app: FastAPI, graph: Any, context: Any) -> None:
    """`POST /api/sessions` and the public agent (the app's graph and run context, as `/chat` runs them)."""
    app.include_router(router)
    add_routes(
        app,
        PublicAgent(graph, context),
        path="/agent",
        per_req_config_modifier=_run_config,
        dependencies=[Depends(admit, scope="request")],
        enabled_endpoints=["invoke", "stream", "input_schema", "output_schema"],
    )
    app.include_router(not_served)
