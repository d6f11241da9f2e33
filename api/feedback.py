"""Thumbs up / down on an answer, kept for the support leads' console.

When /chat finishes an answer it remembers it under `api:answer:<message_id>` (question, answer, sources;
same sliding expiry as the conversation), so feedback needs only the message id, and the console shows
what was rated. Ratings live in the Redis hash `feedback` (message id → JSON, no expiry): one rating per
answer, a later click replaces an earlier one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import RedisDep
from api.security import require_admin
from tools.review import ReviewQueue
from tools.text import strip_controls

MAX_COMMENT_CHARS = 2000
FEEDBACK_KEY = "feedback"
router = APIRouter(prefix="/api", tags=["feedback"])


def _answer_key(message_id: str) -> str:
    return f"api:answer:{message_id}"


async def remember_answer(
    redis: aioredis.Redis, message_id: str, session_id: str, question: str, answer: str, sources: list, ttl: int
) -> None:
    record = {"session_id": session_id, "question": question, "answer": answer, "sources": sources}
    await redis.set(_answer_key(message_id), json.dumps(record, ensure_ascii=False), ex=ttl)


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


@router.post("/messages/{message_id}/feedback", status_code=201)
async def give_feedback(message_id: str, body: FeedbackIn, redis: RedisDep) -> dict[str, Any]:
    """Rate one answer (id from the `done` event or the history). Unknown or expired answers → 404."""
    if len(message_id) > 200:
        raise HTTPException(404, "No such answer.")
    stored = await redis.get(_answer_key(message_id))
    if stored is None:
        raise HTTPException(404, "No such answer (it may belong to a conversation that expired).")
    comment = strip_controls(body.comment).strip() if body.comment else None
    item = json.loads(stored) | {
        "message_id": message_id,
        "rating": body.rating,
        "comment": comment or None,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    await redis.hset(FEEDBACK_KEY, message_id, json.dumps(item, ensure_ascii=False))
    if body.rating == "down":
        await ReviewQueue(redis).add("thumbs_down", item)
    return {"message_id": message_id, "rating": body.rating}


@router.get("/feedback", dependencies=[Depends(require_admin)])
async def list_feedback(
    redis: RedisDep,
    rating: Literal["up", "down"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Rated answers, newest first (support leads only)."""
    items = [json.loads(value) for value in (await redis.hvals(FEEDBACK_KEY))]
    items = [item for item in items if rating is None or item.get("rating") == rating]
    items.sort(key=lambda item: item.get("at", ""), reverse=True)
    return {"feedback": items[:limit]}
