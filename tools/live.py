"""The live channel between a support lead and a customer, in Redis (never process memory), so any app process
serves either side: the lead joins on one replica, the customer's page listens on another.

Per session:
- `live:state:<session id>` (hash): `mode` ("human" while a lead holds the conversation, "bot" after), `lead`
  (the lead's display name), `joined_at`; expires with the session (SESSION_TTL_SECONDS, refreshed by every
  live action and every customer message).
- `live:events:<session id>` (stream): joined, message, typing, handed_back, resolved — what both sides'
  pages read, each entry's id being the SSE event id, so a page that reconnects asks for what came after the
  last id it saw. At most MAX_EVENTS entries (older ones are trimmed), same expiry.
- `live:held` (sorted set: session id → joined time): the conversations being held now, for the console's list.

Office hours (OFFICE_HOURS, OFFICE_TIMEZONE) are parsed here too: the escalation text says when a person answers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis.asyncio as aioredis

from tools.tickets import TicketStore

EventType = Literal["joined", "message", "typing", "handed_back", "resolved"]
MAX_EVENTS = 500  # per session stream (approximate trimming: Redis keeps at least this many)
MAX_REPLY_CHARS = 4000  # a lead's reply
MAX_NAME_CHARS = 60  # a lead's display name
TYPING_EVERY_SECONDS = 2.0  # one typing event per side at most this often
TYPING_FRESH_SECONDS = 8.0  # older typing events are not replayed to a page that reconnects
EVENT_ID = re.compile(r"^\d{1,19}-\d{1,19}$")  # a Redis stream id; Redis refuses parts above 2^64 - 1
HELD_INDEX = "live:held"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LiveState:
    """Who answers the session now: the bot, or a named lead since `joined_at`."""

    mode: Literal["bot", "human"] = "bot"
    lead: str | None = None
    joined_at: str | None = None

    @property
    def human(self) -> bool:
        return self.mode == "human"

    def public(self) -> dict[str, Any]:
        return {"mode": self.mode, "lead": self.lead, "joined_at": self.joined_at}


class LiveChannel:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self.redis = redis  # decode_responses=True
        self.ttl = ttl_seconds

    @staticmethod
    def _state_key(session_id: str) -> str:
        return f"live:state:{session_id}"

    @staticmethod
    def _events_key(session_id: str) -> str:
        return f"live:events:{session_id}"

    async def state(self, session_id: str) -> LiveState:
        raw = await self.redis.hgetall(self._state_key(session_id))
        if raw.get("mode") != "human":
            return LiveState()
        return LiveState("human", raw.get("lead") or None, raw.get("joined_at") or None)

    async def take_over(self, session_id: str, lead: str) -> LiveState:
        """The lead holds the session from now on (the caller checked that nobody else does)."""
        state = LiveState("human", lead, _now())
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._state_key(session_id), mapping={"mode": "human", "lead": lead, "joined_at": state.joined_at})
        pipe.expire(self._state_key(session_id), self.ttl)
        pipe.zadd(HELD_INDEX, {session_id: time.time()})
        pipe.expire(HELD_INDEX, self.ttl)
        await pipe.execute()
        return state

    async def release(self, session_id: str) -> None:
        """The bot answers again."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._state_key(session_id), mapping={"mode": "bot", "lead": "", "joined_at": ""})
        pipe.expire(self._state_key(session_id), self.ttl)
        pipe.zrem(HELD_INDEX, session_id)
        await pipe.execute()

    async def publish(self, session_id: str, kind: EventType, data: dict[str, Any]) -> str:
        """Append an event for both sides; its stream id (the SSE id) is returned. Refreshes the expiry."""
        key = self._events_key(session_id)
        payload = json.dumps({"at": _now(), **data}, ensure_ascii=False)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(key, {"type": kind, "data": payload}, maxlen=MAX_EVENTS, approximate=True)
        pipe.expire(key, self.ttl)
        pipe.expire(self._state_key(session_id), self.ttl)
        pipe.expire(HELD_INDEX, self.ttl)  # the index lives as long as its most recently active conversation
        event_id, *_ = await pipe.execute()
        return str(event_id)

    async def typing(self, session_id: str, side: str, data: dict[str, Any]) -> bool:
        """A typing event, at most one per side every TYPING_EVERY_SECONDS (a keystroke each would flood the stream)."""
        mark = f"live:typing:{session_id}:{side}"
        if not await self.redis.set(mark, "1", px=int(TYPING_EVERY_SECONDS * 1000), nx=True):
            return False
        await self.publish(session_id, "typing", {"from": side, **data})
        return True

    async def cursor(self, session_id: str) -> str:
        """The id of the newest event ("0-0" when none): read it before the history, listen after it."""
        newest = await self.redis.xrevrange(self._events_key(session_id), count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def read(self, session_id: str, after: str) -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
        """(the id to read after next time, the events after `after` as (id, type, data)), at once. Typing events
        older than TYPING_FRESH_SECONDS are skipped: a page catching up needs the messages, not old keystrokes."""
        found = await self.redis.xread({self._events_key(session_id): after}, count=100)
        events = []
        for _, entries in found or []:
            for event_id, fields in entries:
                after = str(event_id)
                kind, data = fields.get("type", ""), json.loads(fields.get("data") or "{}")
                if kind == "typing" and time.time() - int(after.split("-")[0]) / 1000 > TYPING_FRESH_SECONDS:
                    continue
                events.append((after, kind, data))
        return after, events

    async def held(self) -> list[tuple[str, LiveState]]:
        """Sessions a lead holds now (entries whose state expired or went back to the bot are dropped)."""
        found = []
        for session_id in await self.redis.zrange(HELD_INDEX, 0, -1):
            state = await self.state(session_id)
            if state.human:
                found.append((session_id, state))
            else:
                await self.redis.zrem(HELD_INDEX, session_id)
        return found

    async def erase(self, session_id: str) -> None:
        """Everything of the session (DELETE /api/sessions/{id})."""
        keys = [self._state_key(session_id), self._events_key(session_id)]
        keys += [f"live:typing:{session_id}:{side}" for side in ("customer", "lead")]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*keys)
        pipe.zrem(HELD_INDEX, session_id)
        await pipe.execute()


async def conversations(
    channel: LiveChannel, tickets: TicketStore, alive: Callable[[str], Awaitable[bool]], limit: int = 100
) -> list[dict[str, Any]]:
    """The console's list: conversations waiting for a person (an open ticket, nobody holding it), longest wait
    first, then those a lead holds now. Sessions that expired or were erased are left out: nobody is there."""
    held = dict(await channel.held())
    now = datetime.now(UTC)
    waiting, taken = [], []
    for ticket in await tickets.list("open", limit=limit):
        if ticket.session_id in held or not await alive(ticket.session_id):
            continue
        opened = datetime.fromisoformat(ticket.created_at)
        waiting.append(
            {
                "session_id": ticket.session_id,
                "status": "waiting",
                "ticket_id": ticket.ticket_id,
                "reason": ticket.reason,
                "waiting_since": ticket.created_at,
                "wait_seconds": max(0, int((now - opened).total_seconds())),
                "last_message": _last_question(ticket),
                "lead": None,
            }
        )
    waiting.sort(key=lambda c: -c["wait_seconds"])
    for session_id, state in held.items():
        if not await alive(session_id):
            continue
        ticket = await tickets.open_ticket_for(session_id)
        taken.append(
            {
                "session_id": session_id,
                "status": "live",
                "ticket_id": ticket.ticket_id if ticket else None,
                "reason": ticket.reason if ticket else None,
                "waiting_since": None,
                "wait_seconds": None,
                "last_message": _last_question(ticket) if ticket else "",
                "lead": state.lead,
                "joined_at": state.joined_at,
            }
        )
    return waiting + taken


def _last_question(ticket: Any) -> str:
    return next((t.content for t in reversed(ticket.transcript) if t.role == "user"), "")[:200]


# ------------------------------------------------------------------------------------------- office hours

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_GROUP = re.compile(r"^\s*([A-Za-z,\- ]+?)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Window:
    day: int  # 0 = Monday
    start: int  # minutes after midnight
    end: int


def _days(spec: str) -> list[int]:
    days: list[int] = []
    for part in spec.replace(" ", "").lower().split(","):
        first, _, last = part.partition("-")
        if first[:3] not in DAYS or (last and last[:3] not in DAYS):
            raise ValueError(f"{part!r} is not a day or a range of days (Mon, Tue, … Sun; e.g. Mon-Fri)")
        a, b = DAYS.index(first[:3]), DAYS.index((last or first)[:3])
        days += [d % 7 for d in range(a, b + 1 if b >= a else b + 8)]
    return days


def parse_office_hours(value: str) -> list[Window]:
    """Windows of "Mon-Fri 09:00-17:00; Sat 10:00-14:00"; "" → none (always inside). ValueError says what is wrong."""
    windows = []
    for group in filter(str.strip, value.split(";")):
        match = _GROUP.match(group)
        if not match:
            raise ValueError(f"{group.strip()!r} is not 'DAYS HH:MM-HH:MM' (e.g. Mon-Fri 09:00-17:00)")
        days, h1, m1, h2, m2 = match.groups()
        start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
        if int(m1) > 59 or int(m2) > 59 or start >= 24 * 60 or end > 24 * 60 or end <= start:
            raise ValueError(f"{group.strip()!r}: the hours must be 00:00-24:00 and end after they start")
        windows += [Window(day, start, end) for day in _days(days)]
    return windows


def office_hours_problem(value: str) -> str | None:
    try:
        parse_office_hours(value)
    except ValueError as error:
        return str(error)
    return None


def timezone_problem(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone name, e.g. Europe/Berlin or UTC"
    return None


def next_opening(hours: str, timezone: str, now: datetime | None = None) -> datetime | None:
    """None when a person is there now (inside the hours, or no hours set); else when the next window opens,
    in the office's time zone."""
    windows = parse_office_hours(hours)
    if not windows:
        return None
    zone = ZoneInfo(timezone)
    local = (now or datetime.now(UTC)).astimezone(zone)
    minute = local.hour * 60 + local.minute
    if any(w.day == local.weekday() and w.start <= minute < w.end for w in windows):
        return None
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = []
    for offset in range(8):
        day = midnight + timedelta(days=offset)
        for w in windows:
            if w.day == day.weekday():
                start = day + timedelta(minutes=w.start)  # wall-clock arithmetic: right across DST changes
                if start > local:
                    starts.append(start)
    return min(starts)
