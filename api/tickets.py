"""Tickets: customers open one from a conversation; support leads list, read and update them.

`POST /api/tickets` uses the same `TicketStore.open_or_update`, transcript and source list (graph/transcript.py)
as the agent's escalate step, so a session has at most one open ticket: a second request (double click, or
the bot having escalated already) returns that ticket (200) with the newer transcript instead of another (201).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, EmailStr, Field

from api import sessions
from api.deps import GraphDep, ServicesDep
from api.security import require_admin
from api.webhook import announce_ticket, ticket_json
from graph.transcript import last_question, shown_sources, transcript
from tools.review import ReviewQueue
from tools.text import strip_controls
from tools.tickets import TICKET_ID_PATTERN, Status, TicketStore

MAX_REASON_CHARS = 1000
MAX_NOTE_CHARS = 4000
router = APIRouter(prefix="/api/tickets", tags=["tickets"])


class TicketIn(BaseModel):
    session_id: str
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    contact_email: EmailStr | None = Field(default=None, max_length=254)


class TicketUpdate(BaseModel):
    status: Status | None = None
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


def store_of(state: ServicesDep) -> TicketStore:
    return state.context.tickets  # REDIS_WAIT_REPLICAS applied (graph/configuration.py)


StoreDep = Annotated[TicketStore, Depends(store_of)]
# Only ids the store issues: `open:<session>` names a pointer key, not a ticket (422, never a 500).
TicketId = Annotated[str, Path(pattern=TICKET_ID_PATTERN, description="e.g. T-ABCDEFGH")]


@router.post("", status_code=201)
async def open_ticket(
    request: Request,
    body: TicketIn,
    response: Response,
    state: ServicesDep,
    store: StoreDep,
    agent: GraphDep,
) -> dict[str, Any]:
    """Open a ticket for a session (201), or update and return its open one (200). Unknown session → 404."""
    if not await sessions.known(state.redis, body.session_id):
        raise HTTPException(404, "No such session (it may have expired or been deleted).")
    if await store.open_ticket_for(body.session_id) is None:
        await state.limits.check_ticket(request, body.session_id)
    snapshot = await agent.aget_state({"configurable": {"thread_id": body.session_id}})
    messages = (snapshot.values or {}).get("messages", [])
    reason = strip_controls(body.reason).strip() if body.reason else ""
    ticket, created = await store.open_or_update(
        body.session_id,
        reason=reason or "customer_request",
        transcript=transcript(messages),
        sources=shown_sources(messages),
        contact_email=str(body.contact_email) if body.contact_email else None,
    )
    data = ticket_json(ticket)
    if created:
        state.spawn(announce_ticket(state, data["ticket_id"]))
        record = {"session_id": body.session_id, "ticket_id": ticket.ticket_id, "question": last_question(messages)}
        await ReviewQueue(state.redis, retention_days=state.settings.log_retention_days).add(
            "escalation",
            record | {"answer": f"Ticket {ticket.ticket_id} opened by the customer: {reason or 'no reason given'}"},
        )
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
async def get_ticket(ticket_id: TicketId, store: StoreDep) -> dict[str, Any]:
    ticket = await store.get(ticket_id)
    if ticket is None:
        raise HTTPException(404, f"No ticket {ticket_id!r}.")
    return ticket_json(ticket)


@router.patch("/{ticket_id}", dependencies=[Depends(require_admin)])
async def update_ticket(ticket_id: TicketId, body: TicketUpdate, store: StoreDep) -> dict[str, Any]:
    """Change the status and/or add a note."""
    if body.status is None and not body.note:
        raise HTTPException(422, "Send a status, a note, or both.")
    ticket = await store.get(ticket_id)
    if ticket is None:
        raise HTTPException(404, f"No ticket {ticket_id!r}.")
    note = strip_controls(body.note).strip() if body.note else None
    updated = await store.update(ticket_id, status=body.status or ticket.status, note=note or None)
    return ticket_json(updated)
