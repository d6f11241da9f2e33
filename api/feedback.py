"""Thumbs up / down on an answer, kept for the support leads' console (records: tools/answers.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import RedisDep, SettingsDep
from api.security import require_admin
from tools.answers import AnswerNotFound, AnswerRecords
from tools.review import ReviewQueue
from tools.text import strip_controls

MAX_COMMENT_CHARS = 2000
router = APIRouter(prefix="/api", tags=["feedback"])


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


@router.post("/messages/{message_id}/feedback", status_code=201)
async def give_feedback(message_id: str, body: FeedbackIn, redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    """Rate one answer (id from the `done` event or the history). Unknown or expired answers → 404."""
    if len(message_id) > 200:
        raise HTTPException(404, "No such answer.")
    comment = strip_controls(body.comment).strip() if body.comment else None
    try:
        item = await AnswerRecords(redis, settings.session_ttl_seconds).rate(message_id, body.rating, comment or None)
    except AnswerNotFound:
        raise HTTPException(404, "No such answer (it may belong to a conversation that expired).") from None
    if body.rating == "down":
        await ReviewQueue(redis).add("thumbs_down", item)
    return {"message_id": message_id, "rating": body.rating}


@router.get("/feedback", dependencies=[Depends(require_admin)])
async def list_feedback(
    redis: RedisDep,
    settings: SettingsDep,
    rating: Literal["up", "down"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Rated answers, newest first (support leads only)."""
    return {"feedback": await AnswerRecords(redis, settings.session_ttl_seconds).ratings(rating, limit)}
