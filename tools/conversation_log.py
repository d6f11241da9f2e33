"""Each chat turn logged as structured JSON for quality review, with personal data redacted when written.

Nothing unredacted is ever stored. Records live in one Redis hash per day (`log:day:YYYY-MM-DD`, field = message
id) that expires LOG_RETENTION_DAYS after the day's last write; `log:session:{id}` lists a session's records so
that erasing a session erases its log too. Each record also goes to the `conversation` logger as one JSON line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from tools.redact import redact

logger = logging.getLogger("conversation")


class ConversationLog:
    def __init__(self, redis: aioredis.Redis, retention_days: float, prefix: str = "log") -> None:
        self.redis = redis
        self.retention_seconds = max(1, int(retention_days * 86400))
        self.prefix = prefix

    def _day_key(self, day: str) -> str:
        return f"{self.prefix}:day:{day}"

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    async def log_turn(
        self,
        *,
        session_id: str,
        message_id: str,
        question: str,
        answer: str,
        sources: list[dict[str, Any]],
        timings: dict[str, Any] | None = None,
        flags: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        record = {
            "at": now.isoformat(timespec="seconds"),
            "session_id": session_id,
            "message_id": message_id,
            "question": redact(question),
            "answer": redact(answer),
            "sources": [s.get("url", "") for s in sources],
            "timings": timings or {},
            "flags": flags or {},
        }
        line = json.dumps(record, ensure_ascii=False)
        day_key = self._day_key(now.date().isoformat())
        pipe = self.redis.pipeline()
        pipe.hset(day_key, message_id, line)
        pipe.expire(day_key, self.retention_seconds)
        pipe.sadd(self._session_key(session_id), f"{day_key}|{message_id}")
        pipe.expire(self._session_key(session_id), self.retention_seconds)
        await pipe.execute()
        logger.info(line)
        return record

    async def delete_session(self, session_id: str) -> int:
        """Erase every logged turn of a session; returns how many were removed."""
        entries = await self.redis.smembers(self._session_key(session_id))
        removed = 0
        for entry in entries:
            day_key, message_id = (entry.decode() if isinstance(entry, bytes) else entry).split("|", 1)
            removed += await self.redis.hdel(day_key, message_id)
        await self.redis.delete(self._session_key(session_id))
        return removed

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, across the retained days."""
        keys = sorted([k async for k in self.redis.scan_iter(match=self._day_key("*"))], reverse=True)
        records: list[dict[str, Any]] = []
        for key in keys:
            values = await self.redis.hvals(key)
            records.extend(json.loads(v) for v in values)
            if len(records) >= limit:
                break
        records.sort(key=lambda r: r["at"], reverse=True)
        return records[:limit]
