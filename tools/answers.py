"""The answers customers can rate, and their ratings, for the support leads' console.

After each turn the recorder keeps `answer:<message_id>` (question, answer, sources — redacted like the log;
sliding expiry with the conversation) so feedback needs only the message id. Ratings live in the hash
`feedback` (message id → JSON) until the session is erased; `answer:session:<id>` and `feedback:session:<id>`
list a session's message ids so that erasing it finds them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from tools.redact import redact

FEEDBACK_KEY = "feedback"


class AnswerNotFound(LookupError):
    pass


class AnswerRecords:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds

    async def remember(
        self, *, session_id: str, message_id: str, question: str, answer: str, sources: list[dict[str, Any]]
    ) -> None:
        record = {
            "session_id": session_id,
            "question": redact(question),
            "answer": redact(answer),
            "sources": sources,
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(f"answer:{message_id}", json.dumps(record, ensure_ascii=False), ex=self.ttl)
        pipe.sadd(f"answer:session:{session_id}", message_id)
        pipe.expire(f"answer:session:{session_id}", self.ttl)
        await pipe.execute()

    async def rate(self, message_id: str, rating: str, comment: str | None) -> dict[str, Any]:
        """One rating per answer; a later one replaces an earlier one."""
        stored = await self.redis.get(f"answer:{message_id}")
        if stored is None:
            raise AnswerNotFound(message_id)
        item = json.loads(stored) | {
            "message_id": message_id,
            "rating": rating,
            "comment": redact(comment) if comment else None,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(FEEDBACK_KEY, message_id, json.dumps(item, ensure_ascii=False))
        pipe.sadd(f"feedback:session:{item['session_id']}", message_id)
        await pipe.execute()
        return item

    async def ratings(self, rating: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        items = [json.loads(value) for value in await self.redis.hvals(FEEDBACK_KEY)]
        items = [item for item in items if rating is None or item.get("rating") == rating]
        items.sort(key=lambda item: item.get("at", ""), reverse=True)
        return items[:limit]

    async def erase_session(self, session_id: str) -> None:
        answers = await self.redis.smembers(f"answer:session:{session_id}")
        rated = await self.redis.smembers(f"feedback:session:{session_id}")
        pipe = self.redis.pipeline(transaction=False)
        for message_id in answers:
            pipe.delete(f"answer:{message_id}")
        if rated:
            pipe.hdel(FEEDBACK_KEY, *rated)
        pipe.delete(f"answer:session:{session_id}", f"feedback:session:{session_id}")
        await pipe.execute()
