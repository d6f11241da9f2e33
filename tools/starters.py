"""Starter questions on the empty chat: the lead's list, or the most asked answered questions.

Suggestions are counted per question (normalised: case, spacing and end punctuation ignored) in distinct
sessions, and a question's text is stored only once `min_sessions` different sessions asked it — before that,
Redis holds a digest of it and a HyperLogLog of hashed session ids, never customer text or a session id. So no
one conversation can put words on every visitor's page, and what is stored is what several customers typed.

Only answered turns count, and only questions that redaction leaves unchanged (no e-mail, phone, card, IBAN,
address or key in them), no longer than MAX_CHARS and without a link.

Keys (all expire `retention` seconds after the last write, except the lead's own choices):
`starters:configured` (JSON list, the lead's; no expiry), `starters:asked` (sorted set: digest → sessions, the
top MAX_TRACKED kept), `starters:sessions:<digest>` (HyperLogLog of sha256(session id)), `starters:text` (hash:
digest → the question, for digests asked by ≥ min_sessions sessions), `starters:hidden` (set of digests the lead
hid; no expiry).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

import redis.asyncio as aioredis

from tools.redact import redact
from tools.text import one_line

MAX_CHARS = 120  # a starter is a button: a short question
MAX_QUESTIONS = 8  # the most the lead may configure (and the page shows)
MAX_TRACKED = 500  # distinct questions counted at once; the least asked beyond this are dropped
DIGEST_PATTERN = r"^[0-9a-f]{16}$"
PREFIX = "starters"
_LINK = re.compile(r"https?://|www\.|\b[\w-]+\.(?:com|net|org|io|co|info|biz|xyz|ru|de|uk)\b", re.IGNORECASE)
_END_PUNCTUATION = " ?!.,;:¿¡…"


tidy = one_line  # how a starter is shown


def normalised(text: str) -> str:
    """What makes two questions the same one: case, width, spacing and end punctuation do not count."""
    return unicodedata.normalize("NFKC", tidy(text)).casefold().strip(_END_PUNCTUATION)


def digest(text: str) -> str:
    return hashlib.sha256(normalised(text).encode()).hexdigest()[:16]


def suggestible(question: str) -> str | None:
    """The question as a suggestion would show it, or None when it may not become one."""
    text = tidy(question)
    if not 3 <= len(normalised(text)) <= MAX_CHARS or len(text) > MAX_CHARS:
        return None
    if redact(text) != text or _LINK.search(text) or "[" in text:  # personal data, links, placeholders
        return None
    return text


class Starters:
    def __init__(self, redis: aioredis.Redis, *, min_sessions: int, retention_seconds: int) -> None:
        self.redis = redis
        self.min_sessions = max(1, min_sessions)
        self.retention = max(1, retention_seconds)
        self.configured_key = f"{PREFIX}:configured"
        self.asked = f"{PREFIX}:asked"
        self.texts = f"{PREFIX}:text"
        self.hidden = f"{PREFIX}:hidden"

    def _sessions_key(self, key: str) -> str:
        return f"{PREFIX}:sessions:{key}"

    async def configured(self) -> list[str]:
        raw = await self.redis.get(self.configured_key)
        return list(json.loads(raw)) if raw else []

    async def configure(self, questions: list[str]) -> list[str]:
        """Replace the lead's list; an empty list goes back to suggestions."""
        if questions:
            await self.redis.set(self.configured_key, json.dumps(questions, ensure_ascii=False))
        else:
            await self.redis.delete(self.configured_key)
        return questions

    async def record(self, session_id: str, question: str) -> None:
        """Count an answered question once per session; keep its text once `min_sessions` sessions asked it."""
        text = suggestible(question)
        if text is None:
            return
        key = digest(text)
        asker = hashlib.sha256(session_id.encode()).hexdigest()
        if not await self.redis.pfadd(self._sessions_key(key), asker):
            return  # this session asked it already
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zincrby(self.asked, 1, key)
            pipe.expire(self._sessions_key(key), self.retention)
            pipe.expire(self.asked, self.retention)
            sessions, *_ = await pipe.execute()
        if sessions >= self.min_sessions:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hsetnx(self.texts, key, text)
                pipe.expire(self.texts, self.retention)
                await pipe.execute()
        await self._trim()

    async def _trim(self) -> None:
        """Keep the MAX_TRACKED most asked questions, and drop the others' texts and session counters."""
        extra = await self.redis.zcard(self.asked) - MAX_TRACKED
        if extra <= 0:
            return
        dropped = await self.redis.zrange(self.asked, 0, extra - 1)
        if dropped:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.asked, *dropped)
                pipe.hdel(self.texts, *dropped)
                pipe.delete(*(self._sessions_key(key) for key in dropped))
                await pipe.execute()

    async def suggestions(self, limit: int = MAX_TRACKED) -> list[dict[str, object]]:
        """Questions asked by ≥ min_sessions sessions, most asked first, hidden ones included (marked)."""
        ranked = await self.redis.zrevrangebyscore(self.asked, "+inf", self.min_sessions, withscores=True)
        if not ranked:
            return []
        keys = [key for key, _ in ranked]
        texts = await self.redis.hmget(self.texts, keys)
        hidden = set(await self.redis.smembers(self.hidden))
        found = [
            {"id": key, "question": text, "sessions": int(score), "hidden": key in hidden}
            for (key, score), text in zip(ranked, texts, strict=True)
            if text
        ]
        return found[:limit]

    async def shown_suggestions(self, count: int) -> list[str]:
        return [str(item["question"]) for item in await self.suggestions() if not item["hidden"]][:count]

    async def set_hidden(self, key: str, hidden: bool) -> bool:
        """Hide (or show again) a suggestion; False when no suggestion has this id."""
        if not await self.redis.hexists(self.texts, key):
            return False
        if hidden:
            await self.redis.sadd(self.hidden, key)
        else:
            await self.redis.srem(self.hidden, key)
        return True

    async def public(self, count: int) -> dict[str, object]:
        """What the chat page shows: the lead's list when there is one, else the suggestions."""
        configured = await self.configured()
        if configured:
            return {"questions": configured, "source": "configured"}
        return {"questions": await self.shown_suggestions(count), "source": "suggested"}
