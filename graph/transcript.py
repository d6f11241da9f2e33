"""The stored conversation as every surface shows it: the chat after a reload, a ticket's transcript, the
prompt's history. One reading of the messages, so they never disagree."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage

from tools.sources import PublicSource, all_shown

SHOWN_KEYS = ("sources", "ticket_id", "refused", "offered", "verified")  # verified: graph/verified.py


def text_of(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


def transcript(messages: list[AnyMessage]) -> list[dict[str, Any]]:
    """[{message_id, role, content, at, interrupted, sources?, ticket_id?, refused?, offered?}] of the messages;
    a lead's turn adds {by: "human", name}, and role "event" with `event` is a lead joining, handing back or
    resolving."""
    entries = []
    for message in messages:
        if not isinstance(message, HumanMessage | AIMessage):
            continue
        meta = message.response_metadata or {}
        entry: dict[str, Any] = {
            "message_id": message.id,
            "role": "user" if isinstance(message, HumanMessage) else "assistant",
            "content": text_of(message),
            "at": meta.get("at"),
            "interrupted": bool(meta.get("interrupted")),
        }
        entry |= {key: meta[key] for key in SHOWN_KEYS if meta.get(key)}
        if meta.get("by") == "human":  # a support lead's reply, or who joined / handed back (graph/live.py)
            entry |= {"by": "human", "name": meta.get("name")}
            if meta.get("live_event"):
                entry |= {"role": "event", "event": meta["live_event"]}
        entries.append(entry)
    return entries


def shown_sources(messages: list[AnyMessage], current: list[dict[str, Any]] | None = None) -> list[PublicSource]:
    """Every source the customer was shown in the conversation, once each (what a ticket lists)."""
    earlier = [(m.response_metadata or {}).get("sources", []) for m in messages if isinstance(m, AIMessage)]
    return all_shown(earlier, current or [])


def last_question(messages: list[AnyMessage]) -> str:
    return next((text_of(m) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
