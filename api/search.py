"""`GET /api/search`: the knowledge base's hybrid search, without the LLM (works while it is down)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import KnowledgeBaseDep

MAX_QUERY_CHARS = 500
MAX_K = 50
router = APIRouter(prefix="/api", tags=["search"])


class Result(BaseModel):
    rank: int
    title: str
    url: str
    score: float
    snippet: str
    chunk_id: str


class SearchResponse(BaseModel):
    query: str
    results: list[Result]


@router.get("/search", response_model=SearchResponse)
async def search(
    kb: KnowledgeBaseDep,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="What to look for")],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many results")] = 5,
) -> SearchResponse:
    """The k best chunks for `q` (score = cosine similarity, 0-1). Empty or whitespace-only `q` → 422."""
    query = " ".join(q.split())
    if not query:
        raise HTTPException(422, "q must contain some text (it was empty or only whitespace).")
    try:
        hits = await kb.asearch(query, k)
    except Exception as error:  # Chroma went away after start
        raise HTTPException(503, f"The knowledge base is unavailable: {type(error).__name__}") from error
    results = [
        Result(rank=h.rank, title=h.title, url=h.url, score=h.score, snippet=h.snippet, chunk_id=h.chunk_id)
        for h in hits
    ]
    return SearchResponse(query=query, results=results)
