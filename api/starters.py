"""Starter questions: what the empty chat offers to ask (tools/starters.py keeps them).

`GET /api/starters` is public and cached for STARTER_CACHE_SECONDS (10) in each process and by browsers, since
every page load asks for it; the lead's writes clear this process's copy at once, other processes' copies run out.
The lead configures the list (`PUT`), sees the suggestions with their counts and hides the ones that should not
show (`GET /suggestions`, `PATCH /suggestions/{id}`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, Field, field_validator

from api.deps import Services, ServicesDep
from api.security import require_admin
from tools.starters import DIGEST_PATTERN, MAX_CHARS, MAX_QUESTIONS, Starters, normalised, tidy

router = APIRouter(prefix="/api/starters", tags=["starters"])
CACHE_KEY = "starters"  # in Services.cache


def starters_of(state: Services) -> Starters:
    settings = state.settings
    return Starters(
        state.redis,
        min_sessions=settings.starter_min_sessions,
        retention_seconds=int(settings.log_retention_days * 86400),
    )


class StartersIn(BaseModel):
    questions: list[str] = Field(max_length=MAX_QUESTIONS, description=f"at most {MAX_QUESTIONS}; [] clears")

    @field_validator("questions")
    @classmethod
    def _each_a_short_question(cls, questions: list[str]) -> list[str]:
        tidied, seen = [], set()
        for n, question in enumerate(questions, 1):
            text = tidy(question)
            if not text:
                raise ValueError(f"question {n} is empty")
            if len(text) > MAX_CHARS:
                raise ValueError(f"question {n} has {len(text)} characters, the limit is {MAX_CHARS}")
            if normalised(text) in seen:
                raise ValueError(f"question {n} repeats an earlier one")
            seen.add(normalised(text))
            tidied.append(text)
        return tidied


class HiddenIn(BaseModel):
    hidden: bool


@router.get("")
async def starter_questions(state: ServicesDep, response: Response) -> dict[str, Any]:
    """The questions the empty chat offers: `source` says whether the lead chose them or they were asked most."""
    seconds = state.settings.starter_cache_seconds
    response.headers["Cache-Control"] = f"public, max-age={int(seconds)}" if seconds >= 1 else "no-cache"
    cached = state.cache.get(CACHE_KEY)
    if cached and time.monotonic() - cached[0] < seconds:
        return cached[1]
    answer = await starters_of(state).public(state.settings.starter_count)
    state.cache[CACHE_KEY] = (time.monotonic(), answer)
    return answer


@router.put("", dependencies=[Depends(require_admin)])
async def configure_starters(body: StartersIn, state: ServicesDep) -> dict[str, Any]:
    """Replace the lead's list (at most 8 questions of at most 120 characters); [] goes back to suggestions."""
    await starters_of(state).configure(body.questions)
    state.cache.pop(CACHE_KEY, None)
    return await starters_of(state).public(state.settings.starter_count)


@router.get("/suggestions", dependencies=[Depends(require_admin)])
async def suggestions(state: ServicesDep) -> dict[str, Any]:
    """The lead's list and every suggestion (asked in ≥ STARTER_MIN_SESSIONS sessions), most asked first."""
    store = starters_of(state)
    return {
        "configured": await store.configured(),
        "suggestions": await store.suggestions(),
        "min_sessions": store.min_sessions,
        "shown": state.settings.starter_count,
    }


@router.patch("/suggestions/{suggestion_id}", dependencies=[Depends(require_admin)])
async def hide_suggestion(
    suggestion_id: Annotated[str, Path(pattern=DIGEST_PATTERN, description="the `id` of a suggestion")],
    body: HiddenIn,
    state: ServicesDep,
) -> dict[str, Any]:
    """Hide a suggestion from the chat page (or show it again)."""
    if not await starters_of(state).set_hidden(suggestion_id, body.hidden):
        raise HTTPException(404, f"No suggestion {suggestion_id!r} (it may have been dropped as rarely asked).")
    state.cache.pop(CACHE_KEY, None)
    return {"id": suggestion_id, "hidden": body.hidden}
