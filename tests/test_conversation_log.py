"""Conversation logs in a real Redis: redacted when written, expired after the retention, erased with the session."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from api.sessions import new_session_id
from launcher.services import Service
from tools.conversation_log import ConversationLog


@pytest.fixture
async def client(redis_service: Service) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_service.url, decode_responses=True)
    yield redis
    await redis.aclose()


async def test_personal_data_never_reaches_storage(client: aioredis.Redis) -> None:
    prefix = f"log{secrets.token_hex(4)}"
    log = ConversationLog(client, retention_days=30, prefix=prefix)
    await log.log_turn(
        session_id=new_session_id(),
        message_id="m_1",
        question="I'm ana@example.com, card 4111 1111 1111 1111. Call +44 20 7946 0958.",
        answer="Thanks ana@example.com",
        sources=[{"url": "https://help.example.com/billing"}],
    )
    stored = " ".join(
        [str(v) async for key in client.scan_iter(match=f"{prefix}:*") for v in await _values(client, key)]
    )
    assert "ana@example.com" not in stored and "4111" not in stored and "7946" not in stored
    assert "1111" not in stored and "0958" not in stored  # no tail of a number left before the full stop
    assert "[EMAIL]" in stored and "card [CARD]. Call [PHONE]." in stored
    (record,) = await log.recent()
    assert record["sources"] == ["https://help.example.com/billing"]


async def _values(client: aioredis.Redis, key: str) -> list[str]:
    kind = await client.type(key)
    return list(await client.hvals(key)) if kind == "hash" else list(await client.smembers(key))


async def test_records_expire_after_the_retention(client: aioredis.Redis) -> None:
    log = ConversationLog(client, retention_days=1 / 86400, prefix=f"log{secrets.token_hex(4)}")  # one second
    await log.log_turn(session_id=new_session_id(), message_id="m_1", question="q", answer="a", sources=[])
    assert len(await log.recent()) == 1
    await asyncio.sleep(2.1)
    assert await log.recent() == []


async def test_erasing_a_session_erases_its_log_and_only_its_log(client: aioredis.Redis) -> None:
    log = ConversationLog(client, retention_days=30, prefix=f"log{secrets.token_hex(4)}")
    gone, kept = new_session_id(), new_session_id()
    for n, session in enumerate([gone, gone, kept]):
        await log.log_turn(session_id=session, message_id=f"m_{n}", question="q", answer="a", sources=[])
    assert await log.delete_session(gone) == 2
    assert [r["session_id"] for r in await log.recent()] == [kept]
