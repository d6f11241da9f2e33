"""Verified answers for the support leads (behind the admin token): list, create — from fields, from an answer
(message id) or from a resolved ticket —, edit, enable/disable, delete. The store and the matcher: tools/verified.py.

Made from a customer's turn, the question and answer are redacted (tools/redact.py) before they are stored;
fields the lead sends are kept as written.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, Field

from api.deps import RedisDep, SettingsDep
from api.security import require_admin
from graph import guard
from tools.answers import AnswerNotFound, AnswerRecords
from tools.redact import redact
from tools.tickets import TICKET_ID_PATTERN, Ticket, TicketStore
from tools.verified import (
    ID_PATTERN,
    MAX_ANSWER_CHARS,
    MAX_ANSWERS,
    MAX_SOURCES,
    MAX_VARIANT_CHARS,
    MAX_VARIANTS,
    Origin,
    VerifiedLimit,
    VerifiedProblem,
    VerifiedSource,
    VerifiedStore,
    answer_json,
)

router = APIRouter(prefix="/api/verified", tags=["verified"], dependencies=[Depends(require_admin)])
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # as api/feedback.py: no ":" that could reach another key
LIMITS = {
    "max_answers": MAX_ANSWERS,
    "max_variants": MAX_VARIANTS,
    "max_variant_chars": MAX_VARIANT_CHARS,
    "max_answer_chars": MAX_ANSWER_CHARS,
    "max_sources": MAX_SOURCES,
}
VerifiedId = Annotated[str, Path(pattern=ID_PATTERN, description="e.g. v_0123456789abcdef")]


class VerifiedIn(BaseModel):
    """Fields, or a message id / ticket id to take them from; fields sent beside one of those replace its."""

    questions: list[str] | None = None
    answer: str | None = None
    sources: list[VerifiedSource] | None = None
    enabled: bool = True
    from_message: str | None = Field(default=None, description="An answer's message id (done.message_id)")
    from_ticket: str | None = Field(default=None, description="A resolved ticket's id")


class VerifiedUpdate(BaseModel):
    questions: list[str] | None = None
    answer: str | None = None
    sources: list[VerifiedSource] | None = None
    enabled: bool | None = None


def store_of(redis: RedisDep) -> VerifiedStore:
    return VerifiedStore(redis)


StoreDep = Annotated[VerifiedStore, Depends(store_of)]


def draft_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """questions/answer/sources of an answer record, a rating or a review item (all redacted already; again here)."""
    question, answer = str(record.get("question") or ""), str(record.get("answer") or "")
    if not question.strip() or not answer.strip():
        raise VerifiedProblem("That answer has no question or no answer text to make a verified answer from.")
    sources = [
        {"title": str(s.get("title") or ""), "url": str(s.get("url") or "")} for s in record.get("sources") or []
    ]
    return {"questions": [redact(question)], "answer": redact(answer), "sources": sources}


def draft_from_ticket(ticket: Ticket) -> dict[str, Any]:
    """The customer's last real question (not the request for a person) and the lead's last note as the answer."""
    if ticket.status not in ("resolved", "closed"):
        raise VerifiedProblem(
            f"Ticket {ticket.ticket_id} is {ticket.status}: resolve it with the answer as its note first."
        )
    asked = [e.content for e in ticket.transcript if e.role == "user" and e.content.strip()]
    questions = [q for q in asked if not (guard.asks_for_person(q) or guard.small_talk(q))] or asked
    notes = [n.note for n in ticket.notes if n.note and n.note.strip()]
    if not questions or not notes:
        missing = "no question from the customer" if not questions else "no note with the answer"
        raise VerifiedProblem(f"Ticket {ticket.ticket_id} has {missing}; create the verified answer from fields.")
    sources = [{"title": s["title"], "url": s["url"]} for s in ticket.sources]
    return {"questions": [redact(questions[-1])], "answer": redact(notes[-1]), "sources": sources}


async def _from_message(redis: Any, settings: Any, message_id: str) -> dict[str, Any]:
    """The answer record (kept SESSION_TTL_SECONDS), else its rating or review item (LOG_RETENTION_DAYS)."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise HTTPException(404, f"No answer {message_id[:100]!r}.")
    try:
        record = await AnswerRecords(redis, settings.session_ttl_seconds).answer(message_id)
    except AnswerNotFound:
        raw = await redis.get(f"feedback:msg:{message_id}") or await redis.get(f"review:item:{message_id}")
        if raw is None:
            raise HTTPException(
                404,
                f"No answer {message_id!r}: its record expired or was erased; create the verified answer from fields.",
            ) from None
        record = json.loads(raw)
    return draft_from_record(record)


async def _draft(body: VerifiedIn, redis: Any, settings: Any) -> tuple[dict[str, Any], Origin]:
    if body.from_message and body.from_ticket:
        raise HTTPException(422, "Send from_message or from_ticket, not both.")
    if body.from_message:
        draft, origin = (
            await _from_message(redis, settings, body.from_message),
            Origin(kind="message", id=body.from_message),
        )
    elif body.from_ticket:
        if not re.fullmatch(TICKET_ID_PATTERN, body.from_ticket):
            raise HTTPException(422, f"{body.from_ticket[:40]!r} is not a ticket id (e.g. T-ABCDEFGH).")
        ticket = await TicketStore(redis).get(body.from_ticket)
        if ticket is None:
            raise HTTPException(404, f"No ticket {body.from_ticket!r}.")
        draft, origin = draft_from_ticket(ticket), Origin(kind="ticket", id=body.from_ticket)
    else:
        if body.questions is None or body.answer is None:
            raise HTTPException(422, "Send questions and answer, or from_message / from_ticket to take them from.")
        draft, origin = {}, Origin()
    given = {"questions": body.questions, "answer": body.answer, "sources": body.sources}
    return draft | {key: value for key, value in given.items() if value is not None}, origin


@router.get("")
async def list_verified(store: StoreDep) -> dict[str, Any]:
    """Every verified answer, newest first, and the limits."""
    return {"verified": [answer_json(item) for item in await store.list()], "limits": LIMITS}


@router.post("", status_code=201)
async def create_verified(body: VerifiedIn, store: StoreDep, redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    """201 with the new verified answer; 422 for bad fields, 404 for an unknown message or ticket, 409 at the limit."""
    try:
        draft, origin = await _draft(body, redis, settings)
        item = await store.create(**draft, enabled=body.enabled, created_from=origin)
    except VerifiedLimit as error:
        raise HTTPException(409, str(error)) from None
    except VerifiedProblem as error:
        raise HTTPException(422, str(error)) from None
    return answer_json(item)


@router.get("/{answer_id}")
async def get_verified(answer_id: VerifiedId, store: StoreDep) -> dict[str, Any]:
    item = await store.get(answer_id)
    if item is None:
        raise HTTPException(404, f"No verified answer {answer_id!r}.")
    return answer_json(item)


@router.patch("/{answer_id}")
async def update_verified(answer_id: VerifiedId, body: VerifiedUpdate, store: StoreDep) -> dict[str, Any]:
    """Change any of questions, answer, sources, enabled; the others stay."""
    if not body.model_fields_set or all(getattr(body, name) is None for name in body.model_fields_set):
        raise HTTPException(422, "Send at least one of questions, answer, sources, enabled.")
    try:
        item = await store.update(
            answer_id, questions=body.questions, answer=body.answer, sources=body.sources, enabled=body.enabled
        )
    except VerifiedProblem as error:
        raise HTTPException(422, str(error)) from None
    if item is None:
        raise HTTPException(404, f"No verified answer {answer_id!r}.")
    return answer_json(item)


@router.delete("/{answer_id}", status_code=204)
async def delete_verified(answer_id: VerifiedId, store: StoreDep) -> Response:
    if not await store.delete(answer_id):
        raise HTTPException(404, f"No verified answer {answer_id!r}.")
    return Response(status_code=204)
