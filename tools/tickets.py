"""Support tickets, durable in Redis (no expiry): what a human picks up when the bot cannot help.

One open ticket per session: a later escalation, or a second click on "Talk to a person", updates that ticket
with the newer transcript instead of opening another, so support leads are not flooded. The per-session
pointer is claimed with SET NX, so concurrent requests still make exactly one ticket.

Keys: `ticket:{id}` (JSON), `tickets:by_created` (sorted set, score = creation time),
`ticket:open:{session_id}` (the session's open ticket id).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from base64 import b32encode
from datetime import UTC, datetime
from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, EmailStr, Field

from tools.redis_client import replicated
from tools.sources import PublicSource, public

log = logging.getLogger(__name__)

Status = Literal["open", "pending", "resolved", "closed"]
ACTIVE: set[str] = {"open", "pending"}  # a session with such a ticket adds to it instead of opening another


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


TICKET_ID_PATTERN = r"^T-[A-Z2-7]{8}$"  # what new_ticket_id makes: 40 random bits in base32


def new_ticket_id() -> str:
    return "T-" + b32encode(secrets.token_bytes(5)).decode()


class TranscriptEntry(BaseModel):
    role: Literal["user", "assistant", "event"]  # "event": a lead joined, handed back or resolved (graph/live.py)
    content: str
    at: str | None = None
    interrupted: bool = False
    by: Literal["human"] | None = None  # a support lead wrote it (live takeover), not the bot
    name: str | None = None  # that lead's display name
    event: str | None = None  # joined | handed_back | resolved


class Note(BaseModel):
    at: str
    status: Status
    note: str | None = None


class Ticket(BaseModel):
    ticket_id: str
    session_id: str
    reason: str = Field(max_length=1000)
    detail: str | None = None
    status: Status = "open"
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    sources: list[PublicSource] = Field(default_factory=list)
    contact_email: EmailStr | None = None
    notes: list[Note] = Field(default_factory=list)
    created_at: str = Field(default_factory=_now)
    updated_at: str = Field(default_factory=_now)


class TicketNotFound(LookupError):
    pass


# A new ticket's record and its index entry in one atomic step that runs on the caller's connection (a pipeline
# would take another connection from the pool, and WAIT only covers its own connection's writes).
SAVE_NEW = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]); return 1"


class TicketStore:
    """`wait_replicas` > 0 (REDIS_WAIT_REPLICAS): each ticket write is followed by WAIT, so a failover right after
    it does not lose the ticket (docs/deployment.md, tests/test_sentinel.py)."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str = "ticket", wait_replicas: int = 0, wait_timeout_ms: int = 500
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms

    async def _replicate(self, client: aioredis.Redis, ticket_id: str) -> None:
        acked = await replicated(client, self.wait_replicas, self.wait_timeout_ms)
        if acked < self.wait_replicas:
            log.warning(
                "ticket %s reached %d of %d replicas within %d ms: a failover now could lose it",
                ticket_id,
                acked,
                self.wait_replicas,
                self.wait_timeout_ms,
            )

    def _key(self, ticket_id: str) -> str:
        return f"{self.prefix}:{ticket_id}"

    def _open_key(self, session_id: str) -> str:
        return f"{self.prefix}:open:{session_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}s:by_created"

    async def _save(self, ticket: Ticket) -> None:
        if not self.wait_replicas:
            await self.redis.set(self._key(ticket.ticket_id), ticket.model_dump_json())
            return
        async with self.redis.client() as connection:  # one connection: WAIT covers this write
            await connection.set(self._key(ticket.ticket_id), ticket.model_dump_json())
            await self._replicate(connection, ticket.ticket_id)

    async def _save_new(self, ticket: Ticket) -> None:
        keys_and_args = [self._key(ticket.ticket_id), self._index, ticket.model_dump_json()]
        keys_and_args += [datetime.now(UTC).timestamp(), ticket.ticket_id]
        async with self.redis.client() as connection:
            await connection.eval(SAVE_NEW, 2, *keys_and_args)
            await self._replicate(connection, ticket.ticket_id)

    async def get(self, ticket_id: str) -> Ticket | None:
        raw = await self.redis.get(self._key(ticket_id))
        return Ticket.model_validate_json(raw) if raw else None

    async def open_ticket_for(self, session_id: str) -> Ticket | None:
        ticket_id = await self.redis.get(self._open_key(session_id))
        if not ticket_id:
            return None
        ticket = await self.get(ticket_id if isinstance(ticket_id, str) else ticket_id.decode())
        return ticket if ticket and ticket.status in ACTIVE else None

    async def open_or_update(
        self,
        session_id: str,
        *,
        reason: str,
        detail: str | None = None,
        transcript: list[dict] | list[TranscriptEntry],
        sources: list[dict] | list[PublicSource],
        contact_email: str | None = None,
    ) -> tuple[Ticket, bool]:
        """The session's open ticket, updated, or a new one; the flag says whether it was created."""
        fields = {
            "transcript": [TranscriptEntry.model_validate(t) for t in transcript],
            "sources": public(sources),
        }
        candidate = Ticket(
            ticket_id=new_ticket_id(),
            session_id=session_id,
            reason=reason,
            detail=detail,
            contact_email=contact_email or None,
            **fields,
        )
        for _ in range(50):
            if await self.redis.set(self._open_key(session_id), candidate.ticket_id, nx=True):
                await self._save_new(candidate)
                return candidate, True
            existing = await self.open_ticket_for(session_id)
            if existing is None:
                # The pointer names a closed ticket, or its creator has not saved it yet.
                pointed = await self.redis.get(self._open_key(session_id))
                if pointed and await self.get(pointed if isinstance(pointed, str) else pointed.decode()):
                    await self.redis.delete(self._open_key(session_id))
                else:
                    await asyncio.sleep(0.01)
                continue
            update = {**fields, "updated_at": _now()}
            if detail:
                update["detail"] = detail
            if candidate.contact_email:
                update["contact_email"] = candidate.contact_email
            if not transcript:
                update.pop("transcript")
            if not sources:
                update.pop("sources")
            updated = existing.model_copy(update=update)
            await self._save(updated)
            return updated, False
        raise RuntimeError(f"could not claim a ticket for session {session_id}")

    async def forget_session(self, session_id: str) -> None:
        """Drop the session's open-ticket pointer (the ticket itself is a support record and stays)."""
        await self.redis.delete(self._open_key(session_id))

    async def list(self, status: str | None = None, limit: int = 100) -> list[Ticket]:
        """Newest first; filtered by status when given."""
        tickets: list[Ticket] = []
        start = 0
        while len(tickets) < limit:
            ids = await self.redis.zrevrange(self._index, start, start + 199)
            if not ids:
                break
            start += len(ids)
            raws = await self.redis.mget([self._key(i if isinstance(i, str) else i.decode()) for i in ids])
            for raw in raws:
                if raw:
                    ticket = Ticket.model_validate_json(raw)
                    if status is None or ticket.status == status:
                        tickets.append(ticket)
        return tickets[:limit]

    async def update(self, ticket_id: str, *, status: Status, note: str | None = None) -> Ticket:
        ticket = await self.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        now = _now()
        ticket = ticket.model_copy(
            update={
                "status": status,
                "updated_at": now,
                "notes": [*ticket.notes, Note(at=now, status=status, note=note)],
            }
        )
        await self._save(ticket)
        if status not in ACTIVE:
            # Free the session to open a new ticket later, unless the pointer already moved on.
            open_key = self._open_key(ticket.session_id)
            pointed = await self.redis.get(open_key)
            if pointed and (pointed if isinstance(pointed, str) else pointed.decode()) == ticket_id:
                await self.redis.delete(open_key)
        return ticket
