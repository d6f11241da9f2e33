"""Thumbs up / down on an answer, kept for the support leads' console (records: tools/answers.py)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api import sessions
from api.analytics import count_rating
from api.deps import RedisDep, ServicesDep, SettingsDep
from api.security import require_admin
from tools.answers import AnswerNotFound, AnswerRecords
from tools.review import ReviewQueue
from tools.text import strip_controls

MAX_COMMENT_CHARS = 2000
NO_SUCH_ANSWER = "No such answer: it may belong to a conversation that expired or was deleted."
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # ours are m_<hex>; no ":" that could reach another key
router = APIRouter(prefix="/api", tags=["feedback"])


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


@router.post("/messages/{message_id}/feedback", status_code=201)
async def give_feedback(message_id: str, body: FeedbackIn, request: Request, state: ServicesDep) -> dict[str, Any]:
    """Rate one answer (id from the `done` event or the history). Unknown, expired or erased answers → 404."""
    await state.limits.check_feedback(request)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise HTTPException(404, NO_SUCH_ANSWER)
    settings = state.settings
    records = AnswerRecords(state.redis, settings.session_ttl_seconds, settings.log_retention_days)
    try:
        answer = await records.answer(message_id)
        if not await sessions.known(state.redis, answer.get("session_id")):  # erased (or expired) meanwhile
            raise AnswerNotFound(message_id)
        comment = strip_controls(body.comment).strip() if body.comment else None
        item = await records.rate(message_id, body.rating, comment or None)
    except AnswerNotFound:
        raise HTTPException(404, NO_SUCH_ANSWER) from None
    await count_rating(state, message_id, body.rating)  # never raises
    if body.rating == "down":
        await ReviewQueue(state.redis, retention_days=settings.log_retention_days).add("thumbs_down", item)
    return {"message_id": message_id, "rating": body.rating}


@router.get("/feedback", dependencies=[Depends(require_admin)])
async def list_feedback(
    redis: RedisDep,
    settings: SettingsDep,
    rating: Literal["up", "down"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Rated answers, newest first (support leads only)."""
    records = AnswerRecords(redis, settings.session_ttl_seconds, settings.log_retention_days)
    return {"feedback": await records.ratings(rating, limit)}
