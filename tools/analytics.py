"""Daily figures for the support leads' charts, in Redis, in bounded memory, with no customer text.

Per UTC day `D` (YYYY-MM-DD):

- `analytics:day:D` — one hash of counters whose field names come from fixed lists only (never from a message):
  `turns`, `outcome:<outcome>`, `conversations` (sessions with at least one turn that day, each counted once),
  `answered_conversations`, `escalated_conversations`, `deflected` (answered — generated or verified — and no
  ticket that day), `escalated:<reason>` (tickets per escalation reason, each ticket once a day), `thumbs_up`,
  `thumbs_down` (the latest rating of each answer rated that day) and `ftt:<upper bound>` / `ftt:inf`, the
  first-token-time histogram. At most ~70 fields; kept ANALYTICS_RETENTION_DAYS after the day ends (EXPIREAT),
  so at most that many day hashes exist.
- `analytics:day:D:sessions`, `analytics:day:D:tickets`, `analytics:day:D:ratings` — what makes "once a day"
  exact: a 16-hex one-way digest (BLAKE2b) of the session id, ticket id or message id → its state that day.
  They hold one short field per conversation, ticket or rated answer of the day and expire an hour after the
  day ends (or after the write, for a back-filled past day), so they never outlive the day they count.

Each update is one Lua script (atomic: concurrent turns of the same session count once). Percentiles are
estimated from the histogram: the estimate lies in the bucket of the true value, whose bounds are at most 4/3
apart (10 ms … 100 s: 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 per decade), so it is within a third of the true value
(0-10 ms: within 10 ms); beyond 100 s it reads 100 s.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from time import time as clock
from typing import Any

import redis.asyncio as aioredis

PREFIX = "analytics"
OUTCOMES = (
    "answered",
    "escalated",
    "offered",
    "small_talk",
    "ticket_limited",
    "refused",
    "failed",
    "interrupted",
    "live",
    "verified",
)  # graph/turns.py TurnResult.outcome; anything else is counted as "other"
ANSWERED = ("answered", "verified")  # the bot answered (a verified answer too): what deflection counts
RATINGS = ("up", "down")
DECADE = (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
BOUNDS_MS: tuple[float, ...] = (*(step * 10**power for power in range(1, 5) for step in DECADE), 100_000)
SCRATCH_GRACE_SECONDS = 3600  # the once-a-day markers outlive their day by this much (a turn at 23:59:59)
CONVERSATION_FIELDS = ("conversations", "answered_conversations", "escalated_conversations", "deflected")

# A session's state that day: 1 = had an answered turn, 2 = had a ticket. `deflected` counts state 1 exactly.
_TURN = """
local day, sessions, tickets = KEYS[1], KEYS[2], KEYS[3]
local session, outcome, answered, ticket, reason, bucket = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('HINCRBY', day, 'turns', 1)
redis.call('HINCRBY', day, 'outcome:' .. outcome, 1)
local old = tonumber(redis.call('HGET', sessions, session) or '-1')
local was = math.max(old, 0)
local now = was
if answered == '1' and now % 2 == 0 then now = now + 1 end
if ticket ~= '' and now < 2 then now = now + 2 end
if old < 0 then redis.call('HINCRBY', day, 'conversations', 1) end
if now ~= old then
  redis.call('HSET', sessions, session, now)
  redis.call('HINCRBY', day, 'answered_conversations', now % 2 - was % 2)
  redis.call('HINCRBY', day, 'escalated_conversations', math.floor(now / 2) - math.floor(was / 2))
  redis.call('HINCRBY', day, 'deflected', (now == 1 and 1 or 0) - (was == 1 and 1 or 0))
end
if ticket ~= '' and redis.call('HSETNX', tickets, ticket, 1) == 1 then
  redis.call('HINCRBY', day, 'escalated:' .. reason, 1)
  redis.call('EXPIREAT', tickets, ARGV[8])
end
if bucket ~= '' then redis.call('HINCRBY', day, bucket, 1) end
redis.call('EXPIREAT', day, ARGV[7])
redis.call('EXPIREAT', sessions, ARGV[8])
return 1
"""

# An answer's latest rating that day: a second click on the same thumb changes nothing, the other thumb moves it.
_RATING = """
local day, ratings = KEYS[1], KEYS[2]
local old = redis.call('HGET', ratings, ARGV[1])
if old ~= ARGV[2] then
  redis.call('HSET', ratings, ARGV[1], ARGV[2])
  if old then redis.call('HINCRBY', day, 'thumbs_' .. old, -1) end
  redis.call('HINCRBY', day, 'thumbs_' .. ARGV[2], 1)
end
redis.call('EXPIREAT', day, ARGV[3])
redis.call('EXPIREAT', ratings, ARGV[4])
return 1
"""


def digest(value: str) -> str:
    """A one-way 16-hex stand-in for an id: enough to count it once, useless for finding it."""
    return hashlib.blake2b(value.encode(), digest_size=8, person=b"analytics").hexdigest()


def bucket_of(milliseconds: float) -> str:
    """The histogram field of a first-token time: the first upper bound at or above it."""
    index = bisect.bisect_left(BOUNDS_MS, milliseconds)
    return "ftt:inf" if index == len(BOUNDS_MS) else f"ftt:{BOUNDS_MS[index]:g}"


def percentile(counts: list[int], share: float) -> float | None:
    """Estimate a percentile (share 0..1) from histogram counts (one per BOUNDS_MS bucket, then the overflow),
    interpolating linearly inside the bucket that holds it. None without data."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(share * total, 1e-9)
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index == len(BOUNDS_MS):  # beyond the last bound: all we know is "more than that"
                return BOUNDS_MS[-1]
            lower = BOUNDS_MS[index - 1] if index else 0.0
            return round(lower + (BOUNDS_MS[index] - lower) * (rank - seen) / count, 1)
        seen += count
    return BOUNDS_MS[-1]


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class Day:
    """One day's counters as read back."""

    date: date
    fields: dict[str, int]

    def get(self, name: str) -> int:
        return self.fields.get(name, 0)

    def histogram(self) -> list[int]:
        return [self.get(f"ftt:{bound:g}") for bound in BOUNDS_MS] + [self.get("ftt:inf")]


class Analytics:
    """Counts turns and ratings per UTC day; reads them back as series for the console."""

    def __init__(
        self,
        redis: aioredis.Redis,
        retention_days: int = 400,
        reasons: Iterable[str] = (),
        prefix: str = PREFIX,
    ) -> None:
        self.redis = redis
        self.retention_days = retention_days
        self.reasons = tuple(reasons)  # graph/state.py EscalationReason, passed in (tools do not import graph)
        self.prefix = prefix

    def day_key(self, day: date) -> str:
        return f"{self.prefix}:day:{day.isoformat()}"

    def _expiries(self, day: date) -> tuple[int, int]:
        """When the day's counters go (retention after the day ends) and when its once-a-day markers go (an hour
        after the day, or after this write when it counts a past day: back-filled days count once too)."""
        end = datetime.combine(day + timedelta(1), time(), UTC).timestamp()
        return int(end + self.retention_days * 86400), int(max(end, clock()) + SCRATCH_GRACE_SECONDS)

    async def record_turn(
        self,
        *,
        session_id: str,
        outcome: str,
        ticket_id: str | None = None,
        escalation_reason: str | None = None,
        first_token_ms: float | None = None,
        at: datetime | None = None,
    ) -> None:
        """Count one finished turn on its UTC day."""
        day = (at or datetime.now(UTC)).astimezone(UTC).date()
        keep, scratch = self._expiries(day)
        key = self.day_key(day)
        reason = escalation_reason if escalation_reason in self.reasons else "other"
        bucket = bucket_of(first_token_ms) if first_token_ms is not None and first_token_ms >= 0 else ""
        await self.redis.eval(
            _TURN,
            3,
            key,
            f"{key}:sessions",
            f"{key}:tickets",
            digest(session_id),
            outcome if outcome in OUTCOMES else "other",
            "1" if outcome in ANSWERED else "0",
            digest(ticket_id) if ticket_id else "",
            reason,
            bucket,
            keep,
            scratch,
        )

    async def record_rating(self, message_id: str, rating: str, at: datetime | None = None) -> None:
        """Count an answer's thumbs up or down once that day (its latest rating)."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}")
        day = (at or datetime.now(UTC)).astimezone(UTC).date()
        keep, scratch = self._expiries(day)
        key = self.day_key(day)
        await self.redis.eval(_RATING, 2, key, f"{key}:ratings", digest(message_id), rating, keep, scratch)

    async def read(self, first: date, last: date) -> list[Day]:
        """Every day from `first` to `last` (inclusive), zeros where nothing was counted."""
        wanted = days(first, last)
        pipe = self.redis.pipeline(transaction=False)
        for day in wanted:
            pipe.hgetall(self.day_key(day))
        found = await pipe.execute()
        return [Day(day, {k: int(v) for k, v in (raw or {}).items()}) for day, raw in zip(wanted, found, strict=True)]

    async def report(self, first: date, last: date) -> dict[str, Any]:
        """Per-day series and totals for the console and the CSV."""
        series = await self.read(first, last)
        histogram = [sum(counts) for counts in zip(*(day.histogram() for day in series), strict=True)]
        totals = self._figures(sum_fields(series), histogram)
        return {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "reasons": [*self.reasons, "other"],
            "days": [{"date": day.date.isoformat(), **self._figures(day.fields, day.histogram())} for day in series],
            "totals": totals,
        }

    def _figures(self, fields: dict[str, int], histogram: list[int]) -> dict[str, Any]:
        count = {name: fields.get(name, 0) for name in CONVERSATION_FIELDS}
        conversations = count["conversations"]
        return {
            **count,
            "deflection": round(count["deflected"] / conversations, 4) if conversations else None,
            "turns": fields.get("turns", 0),
            "outcomes": {name: fields.get(f"outcome:{name}", 0) for name in (*OUTCOMES, "other")},
            "escalations": {reason: fields.get(f"escalated:{reason}", 0) for reason in (*self.reasons, "other")},
            "thumbs_up": fields.get("thumbs_up", 0),
            "thumbs_down": fields.get("thumbs_down", 0),
            "first_token_ms": {
                "count": sum(histogram),
                "p50": percentile(histogram, 0.50),
                "p95": percentile(histogram, 0.95),
            },
        }


def sum_fields(series: list[Day]) -> dict[str, int]:
    total: dict[str, int] = {}
    for day in series:
        for name, value in day.fields.items():
            total[name] = total.get(name, 0) + value
    return total


def bucket_ratio() -> float:
    """The widest bucket's upper / lower bound (beyond the first): the estimate's worst relative spread."""
    return max(upper / lower for lower, upper in pairwise(BOUNDS_MS))


__all__ = ["BOUNDS_MS", "OUTCOMES", "Analytics", "Day", "bucket_of", "bucket_ratio", "digest", "percentile"]
