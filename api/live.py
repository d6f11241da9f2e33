"""Live takeover: a support lead joins a customer's chat, the two write to each other, the lead hands back to the
bot or resolves the ticket (docs/api.md#live-takeover).

Lead routes (`/api/live…`, behind the admin token): the list of waiting and held conversations, one
conversation with its thread, join, reply, typing, hand back, resolve, and an SSE stream of the session's live
events. Customer routes: `GET /chat/live` (SSE, what the chat page listens to) and `POST /chat/live/typing`.
Everything goes through Redis (tools/live.py), so the lead and the customer may be served by different app
processes. Writes into the conversation take the session's streaming lock (api/sessions.py), the one a turn
holds, so a lead's reply and a customer's turn never overwrite each other's checkpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, field_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from api import sessions, sse
from api.chat import release
from api.deps import Services, ServicesDep
from api.security import require_admin
from api.tickets import MAX_NOTE_CHARS
from api.webhook import ticket_json
from graph.live import add_to_conversation, lead_message, update_ticket
from graph.transcript import transcript
from tools.live import EVENT_ID, MAX_NAME_CHARS, MAX_REPLY_CHARS, LiveChannel, LiveState, conversations
from tools.text import strip_controls
from tools.tickets import TicketStore

router = APIRouter(tags=["live"])
LOCK_WAIT_SECONDS = 15.0  # a lead's write waits this long for a bot answer in progress to finish
LOCK_SECONDS = 30  # a lead's write holds the session's lock at most this long (a dead process frees it then)
POLL_SECONDS = 0.5  # new events are looked for this often; no Redis connection is held in between
GONE = "This conversation has expired or was deleted."


def _clean(value: str) -> str:
    return strip_controls(value).strip()


class Lead(BaseModel):
    lead: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="The lead's display name")

    @field_validator("lead")
    @classmethod
    def _named(cls, value: str) -> str:
        if not _clean(value):
            raise ValueError("give the lead's display name (it was empty or only whitespace)")
        return " ".join(_clean(value).split())


class Reply(Lead):
    text: str = Field(min_length=1, max_length=MAX_REPLY_CHARS)

    @field_validator("text")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not _clean(value):
            raise ValueError("the reply must contain some text (it was empty or only whitespace)")
        return _clean(value)


class Resolve(Lead):
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class CustomerTyping(BaseModel):
    session_id: str


def channel(state: Services) -> LiveChannel:
    return LiveChannel(state.redis, state.settings.session_ttl_seconds)


async def existing(state: Services, session_id: str) -> str:
    """404 for an id we did not issue or that expired; a lead's action keeps the session alive like a turn."""
    return await sessions.require_session(state.redis, session_id, state.settings.session_ttl_seconds)


def held_elsewhere(live: LiveState, lead: str) -> None:
    if live.human and live.lead != lead:
        raise HTTPException(
            409, f"{live.lead} holds this conversation (since {live.joined_at}); ask them to hand it back."
        )


def must_hold(live: LiveState, lead: str) -> None:
    if not live.human:
        raise HTTPException(409, "Nobody holds this conversation: join it first.")
    held_elsewhere(live, lead)


@asynccontextmanager
async def conversation_lock(state: Services, session_id: str) -> AsyncIterator[None]:
    """The session's streaming lock, waited for: a bot answer in progress finishes before the lead writes."""
    lock = sessions.streaming_lock(state.redis, session_id, LOCK_SECONDS)
    if not await lock.acquire(blocking=True, blocking_timeout=LOCK_WAIT_SECONDS):
        raise HTTPException(409, "The bot is still answering in this conversation; try again when its answer is done.")
    try:
        yield
    finally:
        await release(lock)


async def record(state: Services, session_id: str, text: str, lead: str, event: str | None = None) -> dict[str, Any]:
    """Store the lead's reply or event record in the conversation and the open ticket's transcript (a join opens
    a ticket when there is none: every takeover leaves a support record)."""
    message = lead_message(text, lead, event)
    messages = await add_to_conversation(state.graph, session_id, message)
    reason = "lead_joined" if event == "joined" else None
    ticket = await update_ticket(TicketStore(state.redis), session_id, messages, reason)
    return {"message_id": message.id, "at": message.response_metadata["at"], "ticket_id": ticket and ticket.ticket_id}


# --------------------------------------------------------------------------------------------------- lead

lead_routes = APIRouter(prefix="/api/live", dependencies=[Depends(require_admin)])


@lead_routes.get("")
async def list_conversations(state: ServicesDep) -> dict[str, Any]:
    """Waiting conversations (open ticket, nobody holding it; longest wait first), then the ones held now."""

    async def alive(session_id: str) -> bool:
        return await sessions.known(state.redis, session_id)

    return {"conversations": await conversations(channel(state), TicketStore(state.redis), alive)}


@lead_routes.get("/{session_id}")
async def conversation(session_id: str, state: ServicesDep) -> dict[str, Any]:
    """One conversation: who holds it, its thread (lead turns marked), its open ticket, and the event id to
    listen after (read before the thread, so nothing falls in between)."""
    await sessions.require_session(state.redis, session_id)
    live = channel(state)
    cursor = await live.cursor(session_id)
    snapshot = await state.graph.aget_state({"configurable": {"thread_id": session_id}})
    ticket = await TicketStore(state.redis).open_ticket_for(session_id)
    return {
        "session_id": session_id,
        "live": (await live.state(session_id)).public(),
        "cursor": cursor,
        "messages": transcript((snapshot.values or {}).get("messages", [])),
        "ticket": ticket.model_dump(mode="json", include={"ticket_id", "reason", "status", "created_at"})
        if ticket
        else None,
    }


@lead_routes.post("/{session_id}/join")
async def join(session_id: str, body: Lead, state: ServicesDep) -> dict[str, Any]:
    """The lead holds the conversation: the bot stops answering it. 409 when another lead holds it."""
    await existing(state, session_id)
    live = channel(state)
    held_elsewhere(await live.state(session_id), body.lead)
    async with conversation_lock(state, session_id):
        current = await live.state(session_id)
        held_elsewhere(current, body.lead)
        if current.human:  # the same lead again (a second tab, a reload): nothing new to record
            return {"live": current.public(), "ticket_id": None}
        taken = await live.take_over(session_id, body.lead)
        stored = await record(state, session_id, "", body.lead, "joined")
    await live.publish(session_id, "joined", {"name": body.lead, "message_id": stored["message_id"]})
    return {"live": taken.public(), "ticket_id": stored["ticket_id"]}


@lead_routes.post("/{session_id}/reply", status_code=201)
async def reply(session_id: str, body: Reply, state: ServicesDep) -> dict[str, Any]:
    """The lead's message, stored in the conversation (marked as a person's) and sent to the customer."""
    await existing(state, session_id)
    live = channel(state)
    async with conversation_lock(state, session_id):
        must_hold(await live.state(session_id), body.lead)
        stored = await record(state, session_id, body.text, body.lead)
    data = {"message_id": stored["message_id"], "from": "lead", "name": body.lead, "text": body.text}
    event_id = await live.publish(session_id, "message", data)
    return {"message_id": stored["message_id"], "event_id": event_id, "at": stored["at"], "text": body.text}


@lead_routes.post("/{session_id}/typing", status_code=204)
async def lead_typing(session_id: str, body: Lead, state: ServicesDep) -> Response:
    """Shown to the customer for a few seconds (sent at most every TYPING_EVERY_SECONDS)."""
    await existing(state, session_id)
    live = channel(state)
    must_hold(await live.state(session_id), body.lead)
    await live.typing(session_id, "lead", {"name": body.lead})
    return Response(status_code=204)


@lead_routes.post("/{session_id}/hand-back")
async def hand_back(session_id: str, body: Lead, state: ServicesDep) -> dict[str, Any]:
    """The bot answers the next message again; the ticket stays open."""
    await existing(state, session_id)
    live = channel(state)
    async with conversation_lock(state, session_id):
        current = await live.state(session_id)
        if not current.human:
            return {"live": current.public()}
        must_hold(current, body.lead)
        await live.release(session_id)
        stored = await record(state, session_id, "", body.lead, "handed_back")
    await live.publish(session_id, "handed_back", {"name": body.lead, "message_id": stored["message_id"]})
    return {"live": LiveState().public()}


@lead_routes.post("/{session_id}/resolve")
async def resolve(session_id: str, body: Resolve, state: ServicesDep) -> dict[str, Any]:
    """Resolve the open ticket (TicketStore.update) and give the conversation back to the bot."""
    await existing(state, session_id)
    live = channel(state)
    store = TicketStore(state.redis)
    async with conversation_lock(state, session_id):
        held_elsewhere(await live.state(session_id), body.lead)
        stored = await record(state, session_id, "", body.lead, "resolved")
        await live.release(session_id)
        ticket = None
        if stored["ticket_id"]:
            note = _clean(body.note or "") or f"Resolved in the live chat by {body.lead}."
            ticket = await store.update(stored["ticket_id"], status="resolved", note=note)
    data = {"name": body.lead, "message_id": stored["message_id"], "ticket_id": stored["ticket_id"]}
    await live.publish(session_id, "resolved", data)
    return {"live": LiveState().public(), "ticket": ticket_json(ticket) if ticket else None}


def start_after(after: str | None, last_event_id: str | None) -> str | None:
    """`after` (or the Last-Event-ID header a reconnecting EventSource sends); 422 for anything but an event id."""
    value = after if after is not None else last_event_id
    if value is not None and not EVENT_ID.fullmatch(value):
        raise HTTPException(422, f"after must be an event id such as 1700000000000-0 (got {value[:40]!r}).")
    return value


AfterQuery = Annotated[str | None, Query(max_length=41, description="Send events after this id (the SSE id)")]
LastEventId = Annotated[str | None, Header(max_length=41)]


async def stream(
    request: Request, live: LiveChannel, session_id: str, cursor: str, alive: Callable[[], Awaitable[bool]]
) -> AsyncIterator[ServerSentEvent]:
    """The session's live events after `cursor` as SSE (each with its id) until the client goes or the session does."""
    while not await request.is_disconnected():
        cursor, events = await live.read(session_id, cursor)
        for event_id, kind, data in events:  # the id also in the data, for pages that parse fetch streams
            body = json.dumps(data | {"event_id": event_id}, ensure_ascii=False)
            yield ServerSentEvent(data=body, event=kind, id=event_id)
        if events:
            continue
        if not await alive():
            yield ServerSentEvent(data=json.dumps({"detail": GONE}), event="gone")
            return
        await asyncio.sleep(POLL_SECONDS)  # polled, not a blocking XREAD: a waiting page holds no pooled connection


@lead_routes.get("/{session_id}/events", response_class=EventSourceResponse)
async def lead_events(
    request: Request,
    session_id: str,
    state: ServicesDep,
    after: AfterQuery = None,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """What the console shows live: the customer's messages and typing, and the other side's events."""
    return await events_response(request, state, session_id, after, last_event_id)


async def events_response(
    request: Request, state: Services, session_id: str, after: str | None, last_event_id: str | None
) -> EventSourceResponse:
    """The session's live events from `after` (or Last-Event-ID), else from now, until the client leaves or the
    session is gone. One stream for both sides; each side reads the events the other wrote."""
    await sessions.require_session(state.redis, session_id)
    live = channel(state)
    start = start_after(after, last_event_id) or await live.cursor(session_id)  # fixed before the answer starts

    async def alive() -> bool:
        return await sessions.known(state.redis, session_id)

    return sse.stream(stream(request, live, session_id, start, alive), state.settings.sse_ping_seconds)


# ----------------------------------------------------------------------------------------------- customer


@router.get("/chat/live", response_class=EventSourceResponse)
async def customer_events(
    request: Request,
    state: ServicesDep,
    session_id: Annotated[str, Query(max_length=64)],
    after: AfterQuery = None,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """What the chat page listens to after an escalation: a lead joining, their messages and typing, hand-back
    and resolve. Send `after` (the last event id seen) when reconnecting, so nothing is missed."""
    return await events_response(request, state, session_id, after, last_event_id)


@router.post("/chat/live/typing", status_code=204)
async def customer_typing(body: CustomerTyping, state: ServicesDep) -> Response:
    """The customer is typing: shown to the lead who holds the conversation (nothing is sent otherwise)."""
    await sessions.require_session(state.redis, body.session_id)
    live = channel(state)
    if (await live.state(body.session_id)).human:
        await live.typing(body.session_id, "customer", {})
    return Response(status_code=204)


router.include_router(lead_routes)
