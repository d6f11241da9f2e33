"""Resumable answers: a /chat answer outlives its connection, and a client that reconnects gets the rest.

Each answer's public events (api/chat.py `public_events`) are appended to a Redis stream `api:answer:<answer_id>`
with explicit entry ids `0-1`, `0-2`, … (the SSE `id:` of each event), so ids are known before the write and the
live connection never waits for Redis; consecutive events are written in one pipelined round trip (a batch is
whatever arrived while the previous write was in flight). `api:answers:<session_id>` points at the session's latest
answer: it is the ownership check (a resume names the session) and what erasing the session deletes.

The answer runs in a task of its own on the process that started it. It is stopped only by `POST
/chat/stream/{id}/stop` or when nobody has read it for RESUME_GRACE_SECONDS (neither the first connection nor a
resume on any process, which keeps `api:answer:<id>:watch` alive). Both are checked in the same pipeline as the
writes and with the heartbeat, so a stop takes effect at the answer's next event, or within HEARTBEAT_SECONDS
while no event comes (a long prompt read). The generating process refreshes
`api:answer:<id>:alive` every HEARTBEAT_SECONDS; a resume that finds it gone (the process died) ends the answer
itself: an `error` (`answer_lost`) carrying the fallback text, then `done` with the text written so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from graph.prompts import FALLBACK  # a lost answer ends in the words of an LLM failing mid-answer (graph/nodes.py)

log = logging.getLogger(__name__)

ANSWER_RESUME_SECONDS = 300  # a finished answer stays resumable this long
RESUME_GRACE_SECONDS = 10.0  # an answer nobody reads for this long is stopped (stored, marked interrupted)
MAXLEN = 20_000  # entries per answer at most (approximate trim): a bound on memory, far above LLM_MAX_TOKENS
EXPIRE_EVERY_SECONDS = 5.0  # a running answer's stream TTL (the lock's, minutes) is refreshed this often at most
READ_BLOCK_MS = 1000  # a resume's XREAD BLOCK; each round also refreshes the watch key
HEARTBEAT_SECONDS = 2.0  # the generating process says it is alive this often ...
ALIVE_SECONDS = 6  # ... and a resume that has not heard from it for this long ends the answer as lost
LOST = "answer_lost"  # the process writing the answer died: a resume ends with the partial text and the fallback
_ANSWER_ID = re.compile(r"^a_[A-Za-z0-9_-]{22}$")
_EVENT_ID = re.compile(r"^\d{1,19}-\d{1,19}$")


def new_answer_id() -> str:
    return "a_" + secrets.token_urlsafe(16)


def is_event_id(value: str) -> bool:
    return _EVENT_ID.fullmatch(value) is not None


def stream_key(answer_id: str) -> str:
    return f"api:answer:{answer_id}"


def pointer_key(session_id: str) -> str:
    return f"api:answers:{session_id}"


def watch_key(answer_id: str) -> str:
    return f"api:answer:{answer_id}:watch"


def stop_key(answer_id: str) -> str:
    return f"api:answer:{answer_id}:stop"


def alive_key(answer_id: str) -> str:
    return f"api:answer:{answer_id}:alive"


def question_key(answer_id: str) -> str:
    return f"api:answer:{answer_id}:question"


class AnswerWriter:
    """Appends one answer's events to its stream, batching those that arrive while a write is in flight."""

    def __init__(self, redis: aioredis.Redis, answer_id: str, running_ttl: int, on_stop: Callable[[], None]) -> None:
        self.redis, self.answer_id, self.running_ttl, self.on_stop = redis, answer_id, running_ttl, on_stop
        self.sequence = 0
        self.pending: list[tuple[str, str, str]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.readers = 0  # connections of this process reading the answer live
        self.unread_since: float | None = None
        self.erased = False  # the session was erased mid-answer: write nothing more
        self.expires_at = 0.0  # monotonic time of the stream's TTL refresh due next (EXPIRE_EVERY_SECONDS)

    async def begin(self, session_id: str, session_ttl: int, question: str) -> None:
        """Point the session at this answer (the session's previous answer stream goes) and keep the question until
        the answer ends: the conversation stores a turn only when it ends (graph/turns.py), so if this process dies
        mid-answer, the resume that ends the answer stores the question and the partial reply (`follow`)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(alive_key(self.answer_id), "1", ex=ALIVE_SECONDS)
        pipe.set(question_key(self.answer_id), question, ex=self.running_ttl)
        pipe.set(pointer_key(session_id), self.answer_id, ex=session_ttl, get=True)
        *_, old = await pipe.execute()
        if old and old != self.answer_id:
            await self.redis.delete(stream_key(old))

    def add(self, name: str, payload: str) -> str:
        """The event's id at once; the write follows in the background. `payload` is the event's data as JSON,
        serialised once by the caller for both this stream and the SSE frame."""
        self.sequence += 1
        event_id = f"0-{self.sequence}"
        self.pending.append((event_id, name, payload))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.create_task(self._flush())
        return event_id

    async def drain(self) -> None:
        while self.flushing is not None and not self.flushing.done():
            await asyncio.shield(self.flushing)

    async def finish(self) -> None:
        """Everything written; the stream then lives ANSWER_RESUME_SECONDS."""
        await self.drain()
        with contextlib.suppress(RedisError):
            pipe = self.redis.pipeline(transaction=False).delete(question_key(self.answer_id))
            if not self.erased:
                pipe.expire(stream_key(self.answer_id), ANSWER_RESUME_SECONDS)
            await pipe.execute()

    async def heartbeat(self) -> None:
        """Until cancelled: a resume on another process tells a slow answer (a long prompt read) from a dead one.
        The same round trip reads the stop key (and the watch key, while nobody here reads the answer), so a stop
        or the grace period acts within HEARTBEAT_SECONDS even while no event is written — during the seconds a
        local model reads its prompt before the first token."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            pipe = self.redis.pipeline(transaction=False).set(alive_key(self.answer_id), "1", ex=ALIVE_SECONDS)
            unread = self._queue_checks(pipe)
            try:
                replies = await pipe.execute()
            except RedisError:
                continue
            await self._act(replies, unread)

    def reading(self, delta: int) -> None:
        self.readers += delta
        self.unread_since = time.monotonic() if self.readers == 0 else None

    async def _flush(self) -> None:
        """One pipelined round trip per batch: its XADDs and the stop check; the running TTL is refreshed at most
        every EXPIRE_EVERY_SECONDS and the watch key is read only while nobody here reads the answer (the two
        were a third of the commands per token, for a TTL of minutes and a check that needs no reader)."""
        while self.pending and not self.erased:
            batch, self.pending = self.pending, []
            key = stream_key(self.answer_id)
            now = time.monotonic()
            refresh = now >= self.expires_at
            pipe = self.redis.pipeline(transaction=False)
            for event_id, name, data in batch:
                pipe.xadd(key, {"e": name, "d": data}, id=event_id, maxlen=MAXLEN, approximate=True)
            if refresh:
                pipe.expire(key, self.running_ttl)
            unread = self._queue_checks(pipe)
            try:
                replies = await pipe.execute()
            except RedisError:
                log.exception("could not store answer events (resuming this answer may miss them)")
                continue
            if refresh:
                self.expires_at = now + EXPIRE_EVERY_SECONDS
            await self._act(replies, unread)

    def _queue_checks(self, pipe: Any) -> bool:
        """Put the stop check last in `pipe`, and after it the watch check once nobody on this process has read the
        answer for RESUME_GRACE_SECONDS (a resume elsewhere may be); True when the watch check is in."""
        unread = self.unread_since is not None and time.monotonic() - self.unread_since > RESUME_GRACE_SECONDS
        pipe.get(stop_key(self.answer_id))
        if unread:
            pipe.exists(watch_key(self.answer_id))
        return unread

    async def _act(self, replies: list[Any], unread: bool) -> None:
        """On the replies of `_queue_checks`: stop the answer when asked to (`stop` key) or when nobody anywhere
        reads it; an erase also drops its stream."""
        stopped, watched = (replies[-2], replies[-1]) if unread else (replies[-1], None)
        if stopped == "erase" and not self.erased:
            self.erased = True
            with contextlib.suppress(RedisError):
                await self.redis.delete(stream_key(self.answer_id))
        if stopped or (unread and not watched):
            self.on_stop()


async def owned(redis: aioredis.Redis, answer_id: str, session_id: str | None) -> bool:
    """True when `answer_id` is the session's latest answer and is still stored."""
    if not session_id or not _ANSWER_ID.fullmatch(answer_id):
        return False
    pointer, exists = (
        await redis.pipeline(transaction=False).get(pointer_key(session_id)).exists(stream_key(answer_id)).execute()
    )
    return pointer == answer_id and bool(exists)


async def request_stop(redis: aioredis.Redis, answer_id: str) -> None:
    await redis.set(stop_key(answer_id), "1", ex=60)


StoreLost = Callable[[str, str, list[Any]], Awaitable[None]]  # (question, partial text, sources shown) → history


async def follow(
    redis: aioredis.Redis, answer_id: str, after: str, store_lost: StoreLost | None = None
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """(id, name, data) of the events after `after`: what is stored, then live until `done`. An answer whose
    process died ends here, and `store_lost` keeps its turn in the conversation (once, whoever resumes first)."""
    key = stream_key(answer_id)
    while True:
        await redis.set(watch_key(answer_id), "1", ex=int(RESUME_GRACE_SECONDS))
        reply = await redis.xread({key: after}, count=500, block=READ_BLOCK_MS)
        if not reply:
            stored, alive = await redis.pipeline(transaction=False).exists(key).exists(alive_key(answer_id)).execute()
            if not stored:
                yield "", "error", {"code": "answer_gone", "message": "This answer is no longer available."}
                return
            if not alive:  # its process died mid-answer: what it had written, marked interrupted, and the fallback
                async for event in lost(redis, answer_id, store_lost):
                    yield event
                return
            continue
        for event_id, fields in reply[0][1]:
            after = event_id
            yield event_id, fields["e"], json.loads(fields["d"])
            if fields["e"] == "done":
                return


async def lost(
    redis: aioredis.Redis, answer_id: str, store_lost: StoreLost | None = None
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """The ending the dead process could not send: an error carrying the fallback, then `done` with the text shown.
    The first resume to get here takes the question (GETDEL, so the turn is stored once) and stores the turn."""
    events = [(fields["e"], json.loads(fields["d"])) for _, fields in await redis.xrange(stream_key(answer_id))]
    text = "".join(data["text"] for name, data in events if name == "token")
    sources = next((data["sources"] for name, data in events if name == "sources"), [])
    question = await redis.getdel(question_key(answer_id))
    if question is not None and store_lost is not None:
        try:
            await store_lost(question, text, sources)
        except Exception:
            log.exception("could not store the turn of a lost answer")
    yield "", "error", {"code": LOST, "message": FALLBACK}
    yield "", "done", {"message_id": None, "text": text, "interrupted": True, "refused": False}


async def erase(redis: aioredis.Redis, session_id: str) -> None:
    """The session's answer stream and pointer. An answer still running is stopped and told to write no more
    (its `stop` key says "erase": no customer text, 60 s)."""
    answer_id = await redis.get(pointer_key(session_id))
    keys = [pointer_key(session_id)]
    if answer_id:
        await redis.set(stop_key(answer_id), "erase", ex=60)
        keys += [stream_key(answer_id), watch_key(answer_id), alive_key(answer_id), question_key(answer_id)]
    await redis.delete(*keys)
