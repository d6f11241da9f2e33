"""Chat sessions: server-issued ids, the per-session streaming lock, and the history / erase routes.

A session exists when the server issued its id: a marker key `api:session:<id>` (sliding expiry, the same
SESSION_TTL_SECONDS as the conversation). An id the client made up, or one that expired, is never adopted:
/chat issues a new one. Ids that do not even look like ours are 404 here, so no request can reach another
session's data by guessing a key pattern.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Response
from redis.asyncio.lock import Lock

from api.deps import GraphDep, RedisDep, SettingsDep
from graph.checkpointer import is_valid_session_id, new_session_id
from graph.turns import delete_session, get_history
from settings import Settings
from tools.conversation_log import ConversationLog

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


def _marker(session_id: str) -> str:
    return f"api:session:{session_id}"


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
    return redis.lock(f"api:lock:{session_id}", timeout=seconds, blocking=False)


async def require_session(session_id: str, redis: aioredis.Redis, settings: Settings) -> str:
    if not await known(redis, session_id):
        raise HTTPException(404, "No such session (it may have expired or been deleted).")
    return session_id


@router.get("/{session_id}/history")
async def history(
    session_id: str,
    redis: RedisDep,
    settings: SettingsDep,
    agent: GraphDep,
) -> dict[str, Any]:
    """The conversation so far, to restore the chat after a page reload."""
    await require_session(session_id, redis, settings)
    messages = await get_history(agent, session_id)
    return {"session_id": session_id, "messages": messages}


@router.delete("/{session_id}", status_code=204)
async def erase(
    session_id: str,
    redis: RedisDep,
    settings: SettingsDep,
    agent: GraphDep,
) -> Response:
    """Erase the conversation and its logs on the customer's request. Tickets stay (they are support records)."""
    await require_session(session_id, redis, settings)
    await delete_session(agent, session_id)
    await ConversationLog(redis, settings.log_retention_days).delete_session(session_id)
    await redis.delete(_marker(session_id))
    return Response(status_code=204)
