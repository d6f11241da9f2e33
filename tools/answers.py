"""The answers customers can rate, and their ratings, for the support leads' console.

After each turn the recorder keeps `answer:<message_id>` (question, answer, sources — redacted like the log)
for SESSION_TTL_SECONDS, refreshed with every turn of its conversation, so feedback needs only the message id.
A rating is `feedback:msg:<message_id>` (that record plus rating and comment, all redacted), kept
LOG_RETENTION_DAYS like the conversation log; `feedback:by_at` orders them for the console. `answer:session:<id>`
and `feedback:session:<id>` list a session's message ids so that erasing it finds them. Every one of these keys
expires; nothing here holds customer text unredacted.

Older versions kept every rating in one hash, `feedback`, without expiry: the first rating or listing after an
upgrade moves its entries (redacted, with the expiry their age leaves) and deletes it.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from tools.redact import redact

LEGACY_FEEDBACK_KEY = "feedback"
FEEDBACK_INDEX = "feedback:by_at"
REDACTED_FIELDS = ("question", "answer", "comment")


def _rating_key(message_id: str) -> str:
    return f"feedback:msg:{message_id}"


class AnswerNotFound(LookupError):
    pass


class AnswerRecords:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int, retention_days: float = 30.0) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.retention = max(1, int(retention_days * 86400))  # LOG_RETENTION_DAYS: how long a rating is kept

    async def remember(
        self, *, session_id: str, message_id: str, question: str, answer: str, sources: list[dict[str, Any]]
    ) -> None:
        record = {
            "session_id": session_id,
            "question": redact(question),
            "answer": redact(answer),
            "sources": sources,
        }
        index = f"answer:session:{session_id}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(f"answer:{message_id}", json.dumps(record, ensure_ascii=False), ex=self.ttl)
        pipe.sadd(index, message_id)
        pipe.expire(index, self.ttl)
        pipe.smembers(index)
        *_, earlier = await pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for other in earlier:  # the conversation goes on: its earlier answers stay ratable as long as it does
            pipe.expire(f"answer:{other}", self.ttl)
        await pipe.execute()

    async def answer(self, message_id: str) -> dict[str, Any]:
        """The recorded answer; AnswerNotFound when it expired, was erased or never existed."""
        stored = await self.redis.get(f"answer:{message_id}")
        if stored is None:
            raise AnswerNotFound(message_id)
        return json.loads(stored)

    async def rate(self, message_id: str, rating: str, comment: str | None) -> dict[str, Any]:
        """One rating per answer; a later one replaces an earlier one."""
        await self._adopt_legacy()
        item = await self.answer(message_id) | {
            "message_id": message_id,
            "rating": rating,
            "comment": redact(comment) if comment else None,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        await self._store(item, time.time(), self.retention)
        return item

    async def _store(self, item: dict[str, Any], at: float, keep: int) -> None:
        session_key = f"feedback:session:{item['session_id']}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(_rating_key(item["message_id"]), json.dumps(item, ensure_ascii=False), ex=keep)
        pipe.zadd(FEEDBACK_INDEX, {item["message_id"]: at})
        pipe.zremrangebyscore(FEEDBACK_INDEX, "-inf", time.time() - self.retention)
        pipe.expire(FEEDBACK_INDEX, self.retention)
        pipe.sadd(session_key, item["message_id"])
        pipe.expire(session_key, self.retention)
        await pipe.execute()

    async def ratings(self, rating: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first; expired ratings are skipped."""
        await self._adopt_legacy()
        await self.redis.zremrangebyscore(FEEDBACK_INDEX, "-inf", time.time() - self.retention)
        items: list[dict[str, Any]] = []
        start = 0
        while len(items) < limit:
            ids = await self.redis.zrevrange(FEEDBACK_INDEX, start, start + 499)
            if not ids:
                break
            start += len(ids)
            for raw in await self.redis.mget([_rating_key(i) for i in ids]):
                item = json.loads(raw) if raw else None
                if item and (rating is None or item.get("rating") == rating):
                    items.append(item)
        return items[:limit]

    async def _adopt_legacy(self) -> None:
        """Move the ratings of the old never-expiring hash into expiring keys, redacted, and delete it."""
        if await self.redis.type(LEGACY_FEEDBACK_KEY) not in ("hash", b"hash"):
            return
        for raw in (await self.redis.hgetall(LEGACY_FEEDBACK_KEY)).values():
            item = json.loads(raw)
            item |= {k: redact(item[k]) for k in REDACTED_FIELDS if isinstance(item.get(k), str)}
            try:
                at = datetime.fromisoformat(item["at"]).timestamp()
            except (KeyError, TypeError, ValueError):
                at = time.time()
            keep = math.ceil(at + self.retention - time.time())
            if keep > 0 and item.get("message_id") and item.get("session_id"):
                await self._store(item, at, keep)
        await self.redis.delete(LEGACY_FEEDBACK_KEY)

    async def erase_session(self, session_id: str) -> None:
        answers = await self.redis.smembers(f"answer:session:{session_id}")
        rated = await self.redis.smembers(f"feedback:session:{session_id}")
        pipe = self.redis.pipeline(transaction=False)
        for message_id in answers:
            pipe.delete(f"answer:{message_id}")
        for message_id in rated:
            pipe.delete(_rating_key(message_id))
        if rated:
            pipe.zrem(FEEDBACK_INDEX, *rated)
            pipe.hdel(LEGACY_FEEDBACK_KEY, *rated)
        pipe.delete(f"answer:session:{session_id}", f"feedback:session:{session_id}")
        await pipe.execute()
