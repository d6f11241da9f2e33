"""A support lead in the conversation (tools/live.py holds who, and carries the events between the two sides).

While a lead holds the session, guard_input routes the customer's message here instead of to the search: it is
kept in the conversation (guard_input already put it in the state, so a reload shows it), sent to the lead and
added to the ticket — no retrieval, no LLM call. The lead's replies and the join / hand-back / resolve records are
written into the same checkpointed conversation by `add_to_conversation` (api/live.py), as AI messages marked
`{"by": "human", "name": …}` (records also carry `live_event`), so every surface that reads the conversation —
the reloaded chat, the ticket's transcript — shows who wrote what. The prompt never gets the records
(prompts.recent_turns); a lead's reply is history like any other answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from graph import prompts
from graph.configuration import Context, context_of
from graph.state import State
from graph.transcript import shown_sources, text_of, transcript
from settings import Settings
from tools.live import LiveChannel, next_opening
from tools.tickets import Ticket, TicketStore

EVENT_TEXT = {
    "joined": "{name} joined the conversation.",
    "handed_back": "{name} handed the conversation back to the bot.",
    "resolved": "{name} marked the conversation as resolved.",
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def channel_of(context: Context) -> LiveChannel:
    return LiveChannel(context.redis, context.settings.session_ttl_seconds)


async def held_by_lead(context: Context, config: RunnableConfig) -> bool:
    """Does a lead hold this conversation now (so the bot must not answer)?"""
    session_id = (config.get("configurable") or {}).get("thread_id")
    return bool(session_id) and (await channel_of(context).state(session_id)).human


async def to_lead(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict[str, Any]:
    """The customer's message goes to the lead who holds the conversation: published, added to the ticket."""
    context = context_of(runtime)
    session_id = config["configurable"]["thread_id"]
    channel = channel_of(context)
    message = state["messages"][-1]
    data = {"message_id": message.id, "from": "customer", "text": text_of(message)}
    await channel.publish(session_id, "message", data)
    await update_ticket(context.tickets, session_id, state["messages"])
    holder = await channel.state(session_id)
    runtime.stream_writer({"event": "live", "lead": holder.lead})
    return {"live": True, "next_step": "end"}


def lead_message(text: str, name: str, event: str | None = None) -> AIMessage:
    """A lead's reply (or, with `event`, the record that they joined, handed back or resolved)."""
    from graph.nodes import new_message_id  # graph.nodes imports this module

    meta: dict[str, Any] = {"by": "human", "name": name, "at": _now()}
    if event:
        meta["live_event"] = event
        text = EVENT_TEXT[event].format(name=name)
    return AIMessage(text, id=new_message_id(), response_metadata=meta)


async def add_to_conversation(graph: CompiledStateGraph, session_id: str, message: AIMessage) -> list[AnyMessage]:
    """Store `message` in the checkpointed conversation (the caller holds the session's lock, so no turn writes
    at the same time) and return the whole conversation."""
    config: RunnableConfig = {"configurable": {"thread_id": session_id}}
    await graph.aupdate_state(config, {"messages": [message]}, as_node="live")
    snapshot = await graph.aget_state(config)
    return list((snapshot.values or {}).get("messages", []))


async def update_ticket(
    tickets: TicketStore, session_id: str, messages: list[AnyMessage], reason: str | None = None
) -> Ticket | None:
    """The open ticket with the conversation as it is now; with `reason`, one is opened when there is none."""
    if reason is None and await tickets.open_ticket_for(session_id) is None:
        return None
    ticket, _ = await tickets.open_or_update(
        session_id, reason=reason or "lead_joined", transcript=transcript(messages), sources=shown_sources(messages)
    )
    return ticket


def availability(settings: Settings, now: datetime | None = None) -> tuple[str, datetime | None]:
    """What the escalation adds about when a person answers (OFFICE_HOURS), and when the office opens (None: now)."""
    opening = next_opening(settings.office_hours, settings.office_timezone, now)
    if opening is None:
        return prompts.PERSON_FETCHED, None
    when = f"{opening:%A} {opening.day} {opening:%B}, {opening:%H:%M}"
    text = prompts.PERSON_LATER.format(hours=settings.office_hours, zone=settings.office_timezone, opening=when)
    return text, opening
