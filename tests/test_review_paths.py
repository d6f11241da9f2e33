"""Which finished turns reach the support leads' review queue (api/after_turn.py), on a real Redis server:
every escalation, answers whose best source scored low, a sampled share of the rest; refusals and failures
never (they are counted, not reviewed); nothing of a conversation erased before the recorder ran."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.after_turn import queue_for_review, record_turn
from api.sessions import issue, new_session_id
from graph.turns import TurnResult
from launcher.services import Service
from settings import Settings
from tools.answers import AnswerRecords
from tools.conversation_log import ConversationLog
from tools.review import ReviewQueue


@pytest.fixture
async def redis(redis_service: Service) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_service.url, decode_responses=True)
    await forget_review_items(client)
    yield client
    await forget_review_items(client)
    await client.aclose()


async def forget_review_items(client: aioredis.Redis) -> None:
    keys = [key async for key in client.scan_iter(match="review:*")]
    if keys:
        await client.delete(*keys)


def app_state(redis: aioredis.Redis, **settings: Any) -> Any:
    """What `queue_for_review` reads of the app's services: its Redis client and settings."""
    return SimpleNamespace(redis=redis, settings=Settings(_env_file=None, **settings))  # type: ignore[call-arg]


def turn(outcome: str = "answered", best_score: float | None = 0.9, ticket_id: str | None = None) -> TurnResult:
    return TurnResult(
        session_id=new_session_id(),
        message_id=f"m_{secrets.token_hex(8)}",
        question="How do I reset my password?",
        answer="From the sign-in page [1].",
        outcome=outcome,
        best_score=best_score,
        ticket_id=ticket_id,
    )


async def queued(redis: aioredis.Redis) -> list[str]:
    return [item["kind"] for item in await ReviewQueue(redis).list()]


async def test_an_answer_from_weak_sources_is_queued_as_low_relevance(redis: aioredis.Redis) -> None:
    state = app_state(redis, low_relevance_score=0.4, quality_sample_rate=0.0)
    await queue_for_review(state, turn(best_score=0.35))
    await queue_for_review(state, turn(best_score=0.45))
    items = await ReviewQueue(redis).list()
    assert [i["kind"] for i in items] == ["low_relevance"] and items[0]["best_score"] == 0.35


@pytest.mark.parametrize(("rate", "expected"), [(1.0, ["sampled"]), (0.0, [])])
async def test_a_share_of_good_answers_is_sampled(redis: aioredis.Redis, rate: float, expected: list[str]) -> None:
    await queue_for_review(app_state(redis, quality_sample_rate=rate), turn(best_score=0.9))
    assert await queued(redis) == expected


async def test_every_escalation_is_queued_whatever_the_sample_rate(redis: aioredis.Redis) -> None:
    await queue_for_review(app_state(redis, quality_sample_rate=0.0), turn("escalated", None, "T-ABC"))
    items = await ReviewQueue(redis).list()
    assert [i["kind"] for i in items] == ["escalation"] and items[0]["ticket_id"] == "T-ABC"


@pytest.mark.parametrize("outcome", ["refused", "failed", "interrupted"])
async def test_refusals_and_failures_are_not_queued(redis: aioredis.Redis, outcome: str) -> None:
    await queue_for_review(app_state(redis, quality_sample_rate=1.0), turn(outcome, best_score=0.1))
    assert await queued(redis) == []


async def test_a_turn_erased_before_the_recorder_ran_leaves_nothing(redis: aioredis.Redis) -> None:
    """The recorder runs in the background after `done`; a DELETE /api/sessions/{id} that came first wins."""
    state = app_state(redis, quality_sample_rate=1.0)
    erased, live = turn(), turn()
    live.session_id = await issue(redis, 60)
    for finished in (erased, live):
        await record_turn(state, finished, {})
    assert await redis.exists(f"answer:{live.message_id}") and not await redis.exists(f"answer:{erased.message_id}")
    assert [i["session_id"] for i in await ReviewQueue(redis).list()] == [live.session_id]
    assert not [k async for k in redis.scan_iter(match="log:session:*") if erased.session_id in k]
    await AnswerRecords(redis, 60).erase_session(live.session_id)
    await ConversationLog(redis, 1).delete_session(live.session_id)
