"""Support leads' quality review (behind the admin token): the review queue, the unanswered-questions report and
the chunks ingestion quarantined."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from api.deps import RedisDep, SettingsDep
from api.security import require_admin
from settings import Settings
from tools.review import ReviewQueue, unanswered_report

router = APIRouter(prefix="/api/review", tags=["review"], dependencies=[Depends(require_admin)])
KINDS = "^(sampled|escalation|thumbs_down|low_relevance)$"


@router.get("")
async def review_queue(
    redis: RedisDep,
    settings: SettingsDep,
    kind: Annotated[str | None, Query(pattern=KINDS)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Sampled turns, escalations, thumbs-down and low-relevance answers, newest first."""
    return {"items": await ReviewQueue(redis, retention_days=settings.log_retention_days).list(kind, limit)}


UNANSWERED_ITEMS = 2000  # the newest review items the report groups


async def unanswered_groups(
    redis: Any, settings: Settings, first_day: str = "", last_day: str = ""
) -> list[dict[str, Any]]:
    """The unanswered-questions report over the newest UNANSWERED_ITEMS review items, of those queued between
    `first_day` and `last_day` (YYYY-MM-DD, inclusive) when given. One place for the review tab and analytics."""
    from tools.embeddings import get_embeddings

    items = await ReviewQueue(redis, retention_days=settings.log_retention_days).list(limit=UNANSWERED_ITEMS)
    if first_day or last_day:
        items = [i for i in items if first_day <= str(i.get("queued_at", ""))[:10] <= (last_day or "9999")]
    if not items:
        return []
    embed = get_embeddings(settings).embed_documents
    return await asyncio.to_thread(unanswered_report, items, embed)


@router.get("/unanswered")
async def unanswered(redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    """Escalated and low-relevance questions grouped by meaning, largest groups first: the documentation's gaps."""
    return {"groups": await unanswered_groups(redis, settings)}


@router.get("/quarantine")
async def quarantine(settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> dict[str, Any]:
    """Chunks ingestion kept out of the index because they carry injected instructions, newest first
    (tools/quarantine.py): where each came from, why, and a short excerpt. 503 when Chroma is unreachable."""
    from tools.quarantine import list_quarantined

    try:
        chunks = await asyncio.to_thread(list_quarantined, settings, limit)
    except Exception as error:  # Chroma went away
        raise HTTPException(503, f"The knowledge base is unavailable: {type(error).__name__}") from error
    return {"chunks": chunks}
