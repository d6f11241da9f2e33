"""Quality review: a queue of turns for a person to read, and the questions the knowledge base could not answer.

What enters the queue: a random QUALITY_SAMPLE_RATE share of answered turns ("sampled"), every escalation
("escalation"), every thumbs-down ("thumbs_down") and answers from weak sources ("low_relevance"). Texts are
redacted when written. One item per message: a second thumbs-down, or another reason, for the same answer updates
its item (`kinds` lists every reason, `kind` is the latest, `count` how often it was queued) instead of adding one.

Keys: `review:item:<id>` (JSON; id = the message id, or `ticket-<id>` for a ticket opened without a chat turn),
`review:order` (sorted set, score = last update) and `review:session:<session_id>` (the session's item ids, so
that erasing it finds them). All expire LOG_RETENTION_DAYS after their last update; beyond MAX_QUEUE items the
oldest are dropped. Older versions kept JSON members in the sorted set `review:queue` without expiry: the first
write or read after an upgrade moves them and deletes it.

The "unanswered questions" report groups escalated and low-relevance questions by meaning (embedding similarity),
largest groups first: the gaps in the documentation.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import redis.asyncio as aioredis

from tools.redact import redact

Kind = Literal["sampled", "escalation", "thumbs_down", "low_relevance"]
PREFIX = "review"
MAX_QUEUE = 10_000  # oldest items beyond this are dropped
GROUP_SIMILARITY = 0.6  # cosine similarity for two questions to be "the same gap"
REDACTED_FIELDS = ("question", "answer", "comment")


def _item_id(record: dict[str, Any]) -> str:
    if record.get("message_id"):
        return str(record["message_id"])
    if record.get("ticket_id"):
        return f"ticket-{record['ticket_id']}"
    return secrets.token_hex(8)


def kinds_of(item: dict[str, Any]) -> list[str]:
    return item.get("kinds") or [item["kind"]]


class ReviewQueue:
    def __init__(self, redis: aioredis.Redis, prefix: str = PREFIX, retention_days: float = 30.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.order = f"{prefix}:order"
        self.legacy = f"{prefix}:queue"
        self.retention = max(1, int(retention_days * 86400))  # LOG_RETENTION_DAYS

    def _item_key(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    async def add(self, kind: Kind, record: dict[str, Any]) -> None:
        """Queue the record's message for review, or update its item when it is queued already."""
        await self._adopt_legacy()
        fresh = {k: redact(v) if isinstance(v, str) and k in REDACTED_FIELDS else v for k, v in record.items()}
        await self._put(kind, fresh, time.time())
        await self._prune()

    async def _put(self, kind: str, fresh: dict[str, Any], at: float) -> None:
        item_id = _item_id(fresh)
        key = self._item_key(item_id)
        keep = math.ceil(at + self.retention - time.time())
        if keep <= 0:
            return

        async def merge(pipe: Any) -> None:  # under WATCH on the item: concurrent updates retry, none is lost
            raw = await pipe.get(key)
            old = json.loads(raw) if raw else {}
            item = {**old, **fresh}
            item["review_id"], item["kind"] = item_id, kind
            item["kinds"] = list(dict.fromkeys([*(kinds_of(old) if old else []), kind]))
            item["count"] = int(old.get("count", 1)) + 1 if old else 1
            item["queued_at"] = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
            pipe.multi()
            pipe.set(key, json.dumps(item, ensure_ascii=False, sort_keys=True), ex=keep)
            pipe.zadd(self.order, {item_id: at})
            pipe.expire(self.order, self.retention)
            if item.get("session_id"):
                pipe.sadd(self._session_key(item["session_id"]), item_id)
                pipe.expire(self._session_key(item["session_id"]), self.retention)

        await self.redis.transaction(merge, key)

    async def _prune(self) -> None:
        """Drop items older than the retention and beyond MAX_QUEUE (their keys expire anyway; the order not)."""
        old = await self.redis.zrangebyscore(self.order, "-inf", time.time() - self.retention)
        over = await self.redis.zrange(self.order, 0, -MAX_QUEUE - 1)
        doomed = list({*old, *over})
        if doomed:
            await self.redis.zrem(self.order, *doomed)
            await self.redis.delete(*[self._item_key(i) for i in doomed])

    async def list(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first (by last update); `kind` matches any of an item's reasons."""
        await self._adopt_legacy()
        ids = await self.redis.zrevrange(self.order, 0, MAX_QUEUE - 1)
        items: list[dict[str, Any]] = []
        for start in range(0, len(ids), 500):
            for raw in await self.redis.mget([self._item_key(i) for i in ids[start : start + 500]]):
                item = json.loads(raw) if raw else None
                if item and (kind is None or kind in kinds_of(item)):
                    items.append(item)
            if len(items) >= limit:
                break
        return items[:limit]

    async def erase_session(self, session_id: str) -> int:
        """Remove a session's items (erasing a conversation erases its review items too)."""
        await self._adopt_legacy()
        ids = list(await self.redis.smembers(self._session_key(session_id)))
        if not ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(*[self._item_key(i) for i in ids])
        pipe.zrem(self.order, *ids)
        pipe.delete(self._session_key(session_id))
        removed, *_ = await pipe.execute()
        return int(removed)

    async def _adopt_legacy(self) -> None:
        """Move the items of the old never-expiring sorted set into expiring keys and delete it."""
        if await self.redis.type(self.legacy) not in ("zset", b"zset"):
            return
        for member, score in await self.redis.zrange(self.legacy, 0, -1, withscores=True):
            item = json.loads(member)
            kind = item.pop("kind", "sampled")
            item.pop("queued_at", None)
            item |= {k: redact(item[k]) for k in REDACTED_FIELDS if isinstance(item.get(k), str)}
            await self._put(kind, item, float(score))
        await self.redis.delete(self.legacy)


def should_sample(rate: float) -> bool:
    return random.random() < rate


def unanswered_report(
    items: list[dict[str, Any]], embed: Callable[[list[str]], list[list[float]]], similarity: float = GROUP_SIMILARITY
) -> list[dict[str, Any]]:
    """Group the questions of escalation / low-relevance items by meaning; largest groups first."""
    gaps = ("escalation", "low_relevance")
    questions = [i["question"] for i in items if set(kinds_of(i)) & set(gaps) and i.get("question")]
    if not questions:
        return []
    vectors = np.asarray(embed(questions), dtype=float)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    groups: list[list[int]] = []
    centroids: list[np.ndarray] = []
    for index, vector in enumerate(vectors):  # greedy: join the most similar group if close enough
        scores = [float(vector @ c) for c in centroids]
        best = int(np.argmax(scores)) if scores else -1
        if best >= 0 and scores[best] >= similarity:
            groups[best].append(index)
            mean = vectors[groups[best]].mean(axis=0)
            centroids[best] = mean / (np.linalg.norm(mean) + 1e-12)
        else:
            groups.append([index])
            centroids.append(vector)
    report = [
        {"size": len(members), "example": questions[members[0]], "questions": [questions[m] for m in members][:10]}
        for members in groups
    ]
    return sorted(report, key=lambda group: -group["size"])
