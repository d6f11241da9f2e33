"""Support leads' quality review (behind the admin token): the review queue, the unanswered-questions report and
the chunks ingestion quarantined."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from api.deps import RedisDep, SettingsDep
from api.security import require_admin
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


@router.get("/unanswered")
async def unanswered(redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    """Escalated and low-relevance questions grouped by meaning, largest groups first: the documentation's gaps."""
    from tools.embeddings import get_embeddings

    items = await ReviewQueue(redis, retention_days=settings.log_retention_days).list(limit=2000)
    embed = get_embeddings(settings).embed_documents
    return {"groups": await asyncio.to_thread(unanswered_report, items, embed)}


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
