"""Tickets: customers open one from a conversation; support leads list, read and update them.

`POST /api/tickets` uses the same `TicketStore.open_or_update` as the agent's escalate step, so a session has
at most one open ticket: a second request (double click, or the bot having escalated already) returns that
ticket (200) with the newer transcript instead of creating another (201).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field, field_validator

from api import sessions
from api.deps import GraphDep, RedisDep, ServicesDep
from api.security import require_admin
from api.text import strip_controls
from api.webhook import announce_ticket, ticket_json
from graph.turns import get_history
from tools.tickets import TicketStore

MAX_REASON_CHARS = 1000
MAX_NOTE_CHARS = 4000
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"  # a plausibility check; the helpdesk verifies
router = APIRouter(prefix="/api/tickets", tags=["tickets"])


class TicketIn(BaseModel):
    session_id: str
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    contact_email: str | None = Field(default=None, max_length=254)

    @field_validator("contact_email")
    @classmethod
    def _plausible_email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(EMAIL_PATTERN, value.strip()):
            raise ValueError("must be an email address like name@example.com")
        return value.strip() if value else None


class TicketUpdate(BaseModel):
    status: str | None = Field(default=None, max_length=40)
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


def store_of(redis: RedisDep) -> TicketStore:
    return TicketStore(redis)


StoreDep = Annotated[TicketStore, Depends(store_of)]


def transcript_sources(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every distinct source shown in the conversation, in order of first appearance."""
    seen: dict[str, dict[str, Any]] = {}
    for message in messages:
        for source in message.get("sources") or []:
            seen.setdefault(source.get("url") or source.get("title", ""), source)
    return list(seen.values())


@router.post("", status_code=201)
async def open_ticket(
    body: TicketIn,
    response: Response,
    state: ServicesDep,
    store: StoreDep,
    agent: GraphDep,
) -> dict[str, Any]:
    """Open a ticket for a session (201), or update and return its open one (200). Unknown session → 404."""
    if not await sessions.known(state.redis, body.session_id):
        raise HTTPException(404, "No such session (it may have expired or been deleted).")
    messages = await get_history(agent, body.session_id)
    reason = strip_controls(body.reason).strip() if body.reason else ""
    ticket, created = await store.open_or_update(
        body.session_id,
        reason=reason or "Customer asked for a person",
        transcript=messages,
        sources=transcript_sources(messages),
        contact_email=str(body.contact_email) if body.contact_email else None,
    )
    data = ticket_json(ticket)
    if created:
        state.spawn(announce_ticket(state, data["ticket_id"]))
    else:
        response.status_code = 200
    return data


@router.get("", dependencies=[Depends(require_admin)])
async def list_tickets(store: StoreDep, status: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, Any]:
    """Tickets, optionally of one status (open, in_progress, resolved…), newest first."""
    tickets = [ticket_json(t) for t in await store.list(status)]
    tickets.sort(key=lambda t: str(t.get("created_at", "")), reverse=True)
    return {"tickets": tickets}


@router.get("/{ticket_id}", dependencies=[Depends(require_admin)])
async def get_ticket(ticket_id: str, store: StoreDep) -> dict[str, Any]:
    ticket = await store.get(ticket_id)
    if ticket is None:
        raise HTTPException(404, f"No ticket {ticket_id!r}.")
    return ticket_json(ticket)


@router.patch("/{ticket_id}", dependencies=[Depends(require_admin)])
async def update_ticket(ticket_id: str, body: TicketUpdate, store: StoreDep) -> dict[str, Any]:
    """Change the status and/or add a note."""
    if body.status is None and not body.note:
        raise HTTPException(422, "Send a status, a note, or both.")
    if await store.get(ticket_id) is None:
        raise HTTPException(404, f"No ticket {ticket_id!r}.")
    try:
        ticket = await store.update(ticket_id, status=body.status, note=body.note)
    except ValueError as error:  # e.g. an unknown status
        raise HTTPException(422, str(error)) from error
    return ticket_json(ticket)
