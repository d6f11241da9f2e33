"""Chat sessions: server-issued ids, the per-session streaming lock, history, and erasing everything a session
left behind.

A session exists when the server issued its id: a marker key `api:session:<id>` (sliding expiry, the same
SESSION_TTL_SECONDS as the conversation). An id the client made up, or one that expired, is never adopted:
/chat issues a new one. Ids that do not even look like ours are 404 here, so no request can reach another
session's data by guessing a key pattern (the checkpointer's keys are not escaped, another reason for
server-made ids).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Response
from redis.asyncio.lock import Lock

from api import answer_stream
from api.deps import GraphDep, RedisDep, Services, ServicesDep
from graph.turns import get_history
from tools.answers import AnswerRecords
from tools.conversation_log import ConversationLog
from tools.live import LiveChannel
from tools.review import ReviewQueue
from tools.tickets import TicketStore

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
_SESSION_ID = re.compile(r"^s_[A-Za-z0-9_-]{22}$")


def new_session_id() -> str:
    """128 random bits, URL-safe; the only kind of id the server accepts."""
    return "s_" + secrets.token_urlsafe(16)


def is_valid_session_id(value: object) -> bool:
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def _marker(session_id: str) -> str:
    return f"api:session:{session_id}"


def _lock_key(session_id: str) -> str:
    return f"api:lock:{session_id}"


async def issue(redis: aioredis.Redis, ttl: int) -> str:
    """A fresh server-made session id, registered in Redis."""
    session_id = new_session_id()
    await redis.set(_marker(session_id), "1", ex=ttl)
    return session_id


async def known(redis: aioredis.Redis, session_id: str | None, ttl: int | None = None) -> bool:
    """True when `session_id` is well-formed and was issued by us and has not expired; refreshes its expiry."""
    if not session_id or not is_valid_session_id(session_id):
        return False
    if ttl is None:
        return bool(await redis.exists(_marker(session_id)))
    return bool(await redis.expire(_marker(session_id), ttl))


def streaming_lock(redis: aioredis.Redis, session_id: str, seconds: int) -> Lock:
    """Held while one answer streams, so a second message in the same session gets 409. The timeout frees it
    even if the process dies mid-answer."""
    return redis.lock(_lock_key(session_id), timeout=seconds, blocking=False)


async def erase_session(state: Services, session_id: str) -> None:
    """Everything the session left: checkpoints, answer records and their ratings, review items, the open-ticket
    pointer, log records, its rate-limit counter, its live-takeover state and events, its resumable answer stream
    (api/answer_stream.py), its lock and marker. Tickets stay: they are support records."""
    redis, settings = state.redis, state.settings
    await state.graph.checkpointer.adelete_thread(session_id)
    await AnswerRecords(redis, settings.session_ttl_seconds).erase_session(session_id)
    await ReviewQueue(redis, retention_days=settings.log_retention_days).erase_session(session_id)
    await TicketStore(redis).forget_session(session_id)
    await ConversationLog(redis, settings.log_retention_days).delete_session(session_id)
    await LiveChannel(redis, settings.session_ttl_seconds).erase(session_id)
    await state.limits.forget_session(session_id)
    await answer_stream.erase(redis, session_id)
    await redis.delete(_marker(session_id), _lock_key(session_id))


async def require_session(redis: aioredis.Redis, session_id: str, ttl_seconds: int | None = None) -> str:
    """404 for an id we did not issue or that expired; `ttl_seconds` also keeps the session alive (a lead's action)."""
    if not await known(redis, session_id, ttl_seconds):
        raise HTTPException(404, "No such session (it may have expired or been deleted).")
    return session_id


@router.get("/{session_id}/history")
async def history(session_id: str, redis: RedisDep, agent: GraphDep) -> dict[str, Any]:
    """The conversation so far, to restore the chat after a page reload; `live` says whether a support lead
    holds it, whether an open ticket waits for one (`waiting`: opened by the bot or the page's dialog), and
    `live.cursor` is the live event to listen after (read first: nothing falls in between)."""
    await require_session(redis, session_id)
    channel = LiveChannel(redis, 0)  # reads only
    cursor = await channel.cursor(session_id)
    waiting = await TicketStore(redis).open_ticket_for(session_id) is not None
    live = (await channel.state(session_id)).public() | {"cursor": cursor, "waiting": waiting}
    return {"session_id": session_id, "messages": await get_history(agent, session_id), "live": live}


@router.delete("/{session_id}", status_code=204)
async def erase(session_id: str, state: ServicesDep) -> Response:
    """Erase the conversation and everything it left, on the customer's request (tickets stay)."""
    await require_session(state.redis, session_id)
    await erase_session(state, session_id)
    return Response(status_code=204)
