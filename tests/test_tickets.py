"""Support tickets in a real Redis server: one open ticket per session, durable, listed newest first."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from api.sessions import new_session_id
from launcher.services import Service, free_port, start_redis
from tools.tickets import TicketStore

TRANSCRIPT = [{"role": "user", "content": "My invoice is wrong"}, {"role": "assistant", "content": "Sorry!"}]
SOURCES = [{"n": 1, "title": "Billing", "url": "https://docs.example.com/billing", "snippet": "Invoices…"}]


@pytest.fixture
async def store(redis_service: Service) -> AsyncIterator[TicketStore]:
    client = aioredis.Redis.from_url(redis_service.url, decode_responses=True)
    yield TicketStore(client, prefix=f"t{secrets.token_hex(4)}")
    await client.aclose()


async def test_an_escalation_opens_a_ticket_with_the_whole_conversation(store: TicketStore) -> None:
    session = new_session_id()
    ticket, created = await store.open_or_update(
        session, reason="customer_request", transcript=TRANSCRIPT, sources=SOURCES, contact_email="ana@example.com"
    )
    assert created
    assert ticket.ticket_id.startswith("T-")
    assert ticket.status == "open"
    stored = await store.get(ticket.ticket_id)
    assert stored is not None
    assert [t.content for t in stored.transcript] == ["My invoice is wrong", "Sorry!"]
    assert stored.sources[0]["url"] == SOURCES[0]["url"]
    assert stored.contact_email == "ana@example.com"
    assert stored.created_at and stored.updated_at


async def test_a_second_escalation_updates_the_open_ticket_instead_of_opening_another(store: TicketStore) -> None:
    session = new_session_id()
    first, _ = await store.open_or_update(session, reason="no_relevant_answer", transcript=TRANSCRIPT, sources=[])
    longer = [*TRANSCRIPT, {"role": "user", "content": "Still wrong"}]
    second, created = await store.open_or_update(session, reason="customer_request", transcript=longer, sources=[])
    assert not created
    assert second.ticket_id == first.ticket_id
    assert len(second.transcript) == 3
    assert [t.ticket_id for t in await store.list()] == [first.ticket_id]


async def test_concurrent_escalations_of_one_session_make_exactly_one_ticket(store: TicketStore) -> None:
    session = new_session_id()
    results = await asyncio.gather(
        *[store.open_or_update(session, reason="manual", transcript=TRANSCRIPT, sources=[]) for _ in range(10)]
    )
    assert len({ticket.ticket_id for ticket, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_closing_a_ticket_lets_the_session_open_a_new_one_later(store: TicketStore) -> None:
    session = new_session_id()
    first, _ = await store.open_or_update(session, reason="manual", transcript=TRANSCRIPT, sources=[])
    closed = await store.update(first.ticket_id, status="resolved", note="refunded")
    assert closed.status == "resolved"
    assert closed.notes[-1].note == "refunded"
    assert await store.open_ticket_for(session) is None
    second, created = await store.open_or_update(session, reason="manual", transcript=TRANSCRIPT, sources=[])
    assert created and second.ticket_id != first.ticket_id


async def test_tickets_are_listed_newest_first_and_filtered_by_status(store: TicketStore) -> None:
    made = []
    for _ in range(3):
        ticket, _ = await store.open_or_update(new_session_id(), reason="manual", transcript=TRANSCRIPT, sources=[])
        made.append(ticket.ticket_id)
        await asyncio.sleep(0.01)
    await store.update(made[0], status="closed")
    assert [t.ticket_id for t in await store.list()] == made[::-1]
    assert [t.ticket_id for t in await store.list(status="open")] == made[:0:-1]
    assert [t.ticket_id for t in await store.list(status="closed")] == [made[0]]


async def test_a_malformed_contact_email_is_refused(store: TicketStore) -> None:
    with pytest.raises(ValidationError):
        await store.open_or_update(
            new_session_id(), reason="manual", transcript=[], sources=[], contact_email="not-an-email"
        )


async def test_tickets_survive_a_redis_restart_with_aof(tmp_path: Path) -> None:
    """Redis started with AOF (as the launcher does), stopped, started again on the same folder."""
    port = free_port()
    server = start_redis(tmp_path / "redis", port, tmp_path / "logs", prefer="redis")
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    ticket, _ = await TicketStore(client).open_or_update(
        new_session_id(), reason="manual", transcript=TRANSCRIPT, sources=[]
    )
    await client.aclose()
    server.stop()
    server = start_redis(tmp_path / "redis", port, tmp_path / "logs", prefer="redis")
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        restored = await TicketStore(client).get(ticket.ticket_id)
        assert restored is not None and restored.transcript[0].content == TRANSCRIPT[0]["content"]
        assert await client.ttl(f"ticket:{ticket.ticket_id}") == -1  # no expiry
    finally:
        await client.aclose()
        server.stop()
