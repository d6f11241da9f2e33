"""Quality review: a queue of turns for a person to read, and the questions the knowledge base could not answer.

What enters the queue: a random QUALITY_SAMPLE_RATE share of answered turns ("sampled"), every escalation
("escalation") and every thumbs-down ("thumbs_down"). Texts are redacted when written. The "unanswered questions"
report groups escalated and low-relevance questions by meaning (embedding similarity), largest groups first:
the gaps in the documentation.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import redis.asyncio as aioredis

from tools.redact import redact

Kind = Literal["sampled", "escalation", "thumbs_down", "low_relevance"]
QUEUE_KEY = "review:queue"
MAX_QUEUE = 10_000  # oldest items beyond this are dropped
GROUP_SIMILARITY = 0.6  # cosine similarity for two questions to be "the same gap"


class ReviewQueue:
    def __init__(self, redis: aioredis.Redis, key: str = QUEUE_KEY) -> None:
        self.redis = redis
        self.key = key

    async def add(self, kind: Kind, record: dict[str, Any]) -> None:
        item = {
            k: redact(v) if isinstance(v, str) and k in ("question", "answer", "comment") else v
            for k, v in record.items()
        }
        item |= {"kind": kind, "queued_at": datetime.now(UTC).isoformat(timespec="seconds")}
        pipe = self.redis.pipeline()
        pipe.zadd(self.key, {json.dumps(item, ensure_ascii=False, sort_keys=True): datetime.now(UTC).timestamp()})
        pipe.zremrangebyrank(self.key, 0, -MAX_QUEUE - 1)
        await pipe.execute()

    async def list(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        items = [json.loads(raw) for raw in await self.redis.zrevrange(self.key, 0, MAX_QUEUE)]
        return [item for item in items if kind is None or item["kind"] == kind][:limit]

    async def erase_session(self, session_id: str) -> int:
        """Remove a session's items (erasing a conversation erases its review items too)."""
        doomed = [
            raw async for raw, _ in self.redis.zscan_iter(self.key) if json.loads(raw).get("session_id") == session_id
        ]
        return await self.redis.zrem(self.key, *doomed) if doomed else 0


def should_sample(rate: float) -> bool:
    return random.random() < rate


def unanswered_report(
    items: list[dict[str, Any]], embed: Callable[[list[str]], list[list[float]]], similarity: float = GROUP_SIMILARITY
) -> list[dict[str, Any]]:
    """Group the questions of escalation / low-relevance items by meaning; largest groups first."""
    questions = [i["question"] for i in items if i["kind"] in ("escalation", "low_relevance") and i.get("question")]
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
