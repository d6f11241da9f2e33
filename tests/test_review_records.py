"""The support leads' records in a real Redis: one review item per message, ratings and review items redacted,
expiring and erased with their session — also those an older version left in its never-expiring keys."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from api.sessions import new_session_id
from launcher.services import Service
from tools.answers import AnswerNotFound, AnswerRecords
from tools.review import ReviewQueue

PII = "ana@example.com, card 4111 1111 1111 1111."
RAW = ("ana@example.com", "4111 1111", "1111 1111.")


@pytest.fixture
async def redis(redis_service: Service) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_service.url, decode_responses=True)
    yield client
    await client.aclose()


def queue(redis: aioredis.Redis, retention_days: float = 30) -> ReviewQueue:
    """A queue under its own prefix, so tests running beside the app's never meet."""
    return ReviewQueue(redis, prefix=f"review{secrets.token_hex(4)}", retention_days=retention_days)


def turn(session_id: str | None = None) -> dict[str, str]:
    return {
        "session_id": session_id or new_session_id(),
        "message_id": f"m_{secrets.token_hex(16)}",
        "question": f"I am {PII}",
        "answer": "From the sign-in page [1].",
    }


async def everything_under(redis: aioredis.Redis, pattern: str) -> dict[str, tuple[str, int]]:
    """key → (its whole value as text, its TTL in seconds)."""
    found = {}
    async for key in redis.scan_iter(match=pattern):
        kind = await redis.type(key)
        if kind == "string":  # may be binary (a HyperLogLog): read undecoded, shown with replacements
            value = (await redis.execute_command("GET", key, NEVER_DECODE=True)).decode(errors="replace")
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1)
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "hash":
            value = await redis.hgetall(key)
        else:
            value = kind
        found[key] = (json.dumps(value), await redis.ttl(key))
    return found


async def test_a_second_thumbs_down_on_a_message_updates_its_one_item(redis: aioredis.Redis) -> None:
    review, record = queue(redis), turn()
    await review.add("thumbs_down", record | {"comment": "too vague"})
    await review.add("thumbs_down", record | {"comment": "still vague, mail me at bob@example.org"})
    (item,) = await review.list()
    assert item["message_id"] == record["message_id"] and item["count"] == 2
    assert item["comment"] == "still vague, mail me at [EMAIL]"


async def test_another_reason_for_the_same_message_joins_its_item(redis: aioredis.Redis) -> None:
    review, record, other = queue(redis), turn(), turn()
    await review.add("low_relevance", record | {"best_score": 0.2})
    await review.add("sampled", other)
    await review.add("thumbs_down", record | {"comment": "wrong"})
    items = await review.list()
    assert [i["message_id"] for i in items] == [record["message_id"], other["message_id"]]  # newest update first
    assert items[0]["kind"] == "thumbs_down" and items[0]["kinds"] == ["low_relevance", "thumbs_down"]
    assert items[0]["best_score"] == 0.2
    assert [i["message_id"] for i in await review.list("low_relevance")] == [record["message_id"]]
    assert [i["message_id"] for i in await review.list("sampled")] == [other["message_id"]]


async def test_concurrent_reports_of_one_message_make_one_item_counting_each(redis: aioredis.Redis) -> None:
    review, record = queue(redis), turn()
    await asyncio.gather(*(review.add("thumbs_down", record) for _ in range(20)))
    (item,) = await review.list()
    assert item["count"] == 20


async def test_review_items_are_redacted_expire_and_are_erased_with_their_session(redis: aioredis.Redis) -> None:
    review = queue(redis, retention_days=30)
    gone, kept = turn(), turn()
    await review.add("sampled", gone)
    await review.add("escalation", kept | {"ticket_id": "T-ABC"})
    stored = await everything_under(redis, f"{review.prefix}:*")
    assert stored and not [k for k, (value, _) in stored.items() if any(raw in value for raw in RAW)]
    assert all(0 < ttl <= 30 * 86400 for _, ttl in stored.values()), stored
    assert await review.erase_session(gone["session_id"]) == 1
    assert [i["message_id"] for i in await review.list()] == [kept["message_id"]]
    left = json.dumps(await everything_under(redis, f"{review.prefix}:*"))
    assert gone["session_id"] not in left and gone["message_id"] not in left


async def test_review_items_are_gone_after_the_retention(redis: aioredis.Redis) -> None:
    review = queue(redis, retention_days=1 / 86400)  # one second
    await review.add("sampled", turn())
    assert len(await review.list()) == 1
    await asyncio.sleep(2.1)
    assert await review.list() == []
    assert await everything_under(redis, f"{review.prefix}:*") == {}


async def test_an_older_versions_review_queue_is_moved_into_expiring_items(redis: aioredis.Redis) -> None:
    """The old sorted set held one JSON member per report, duplicates included, and never expired."""
    review, record = queue(redis), turn()
    now = time.time()
    legacy = [
        record | {"kind": "low_relevance", "queued_at": "2026-01-01T00:00:00+00:00"},
        record | {"kind": "thumbs_down", "comment": "call 030 1234 5678."},
        turn() | {"kind": "sampled"} | {"queued_at": "ancient"},
    ]
    await redis.zadd(review.legacy, {json.dumps(m): now - 10 + n for n, m in enumerate(legacy[:2])})
    await redis.zadd(review.legacy, {json.dumps(legacy[2]): now - 40 * 86400})  # past the retention
    items = await review.list()
    assert not await redis.exists(review.legacy)
    assert [i["message_id"] for i in items] == [record["message_id"]]
    assert items[0]["kinds"] == ["low_relevance", "thumbs_down"] and items[0]["comment"] == "call [PHONE]."
    assert all(ttl > 0 for _, ttl in (await everything_under(redis, f"{review.prefix}:*")).values())


async def test_ratings_are_redacted_expire_and_are_erased_with_their_session(redis: aioredis.Redis) -> None:
    records = AnswerRecords(redis, ttl_seconds=3600, retention_days=30)
    session_id, message_id = new_session_id(), f"m_{secrets.token_hex(16)}"
    await records.remember(
        session_id=session_id, message_id=message_id, question=f"I am {PII}", answer="Hello", sources=[]
    )
    item = await records.rate(message_id, "down", f"reach me: {PII}")
    assert item["comment"] == "reach me: [EMAIL], card [CARD]."
    stored = {k: v for k, v in (await everything_under(redis, "*")).items() if session_id in v[0] or message_id in k}
    assert {k.split(":")[0] for k in stored} == {"answer", "feedback"}
    assert not [k for k, (value, _) in stored.items() if any(raw in value for raw in RAW)]
    assert all(0 < ttl <= 30 * 86400 for _, ttl in stored.values()), stored
    assert [r["message_id"] for r in await records.ratings("down") if r["message_id"] == message_id]
    await records.erase_session(session_id)
    with pytest.raises(AnswerNotFound):
        await records.answer(message_id)
    assert not [r for r in await records.ratings() if r["message_id"] == message_id]
    assert not [k for k, v in (await everything_under(redis, "*")).items() if session_id in v[0] or message_id in k]


async def test_an_older_versions_feedback_hash_is_moved_redacted_into_expiring_keys(redis: aioredis.Redis) -> None:
    """The old hash `feedback` kept question and answer as typed, with no expiry."""
    records = AnswerRecords(redis, ttl_seconds=3600, retention_days=30)
    session_id, message_id = new_session_id(), f"m_{secrets.token_hex(16)}"
    old = {"session_id": session_id, "message_id": message_id, "rating": "down", "question": f"I am {PII}"}
    fresh = old | {"at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
    expired = old | {"message_id": f"m_{secrets.token_hex(16)}", "at": "2020-01-01T00:00:00+00:00"}
    await redis.hset("feedback", mapping={message_id: json.dumps(fresh), expired["message_id"]: json.dumps(expired)})
    rated = [r for r in await records.ratings() if r["session_id"] == session_id]
    assert not await redis.exists("feedback")
    assert [r["message_id"] for r in rated] == [message_id] and rated[0]["question"] == "I am [EMAIL], card [CARD]."
    assert 0 < await redis.ttl(f"feedback:msg:{message_id}") <= 30 * 86400


async def test_a_later_turn_keeps_the_earlier_answers_of_its_conversation_ratable(redis: aioredis.Redis) -> None:
    records = AnswerRecords(redis, ttl_seconds=3)
    session_id, first, second = new_session_id(), "m_first" + secrets.token_hex(8), "m_second" + secrets.token_hex(8)
    await records.remember(session_id=session_id, message_id=first, question="q", answer="a", sources=[])
    await asyncio.sleep(2)
    await records.remember(session_id=session_id, message_id=second, question="q", answer="a", sources=[])
    await asyncio.sleep(1.5)
    assert (await records.answer(first))["session_id"] == session_id  # 3.5 s after it was written
    await records.erase_session(session_id)
