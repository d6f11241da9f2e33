"""Rate limits per client IP and per chat session, counted in Redis (moving window, `limits` library).

Counting in Redis means every app process behind a load balancer shares one count. A refused request gets
429, a `Retry-After` header (seconds until the window has room) and a JSON message.
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

import metrics
from settings import Settings
from tools.redis_client import pool


class RateLimits:
    """The two limits of the chat API; `check` raises 429 when one is spent."""

    def __init__(self, settings: Settings) -> None:
        url = (
            (settings.redis_url or "")
            .replace("redis://", "async+redis://", 1)
            .replace("rediss://", "async+rediss://", 1)
        )
        # limits defaults to coredis for async Redis; redis-py (already a dependency) works as well.
        # Our blocking pool: the library's own pool raised MaxConnectionsError under 200 concurrent requests.
        connections = pool(settings.redis_url or "", settings.redis_max_connections)
        self.storage = RedisStorage(url, implementation="redispy", key_prefix="ratelimit", connection_pool=connections)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_session: RateLimitItem = parse(settings.rate_limit_session)
        self.per_ip: RateLimitItem = parse(settings.rate_limit_ip)
        self.tickets_per_session: RateLimitItem = parse(settings.rate_limit_tickets_session)
        self.tickets_per_ip: RateLimitItem = parse(settings.rate_limit_tickets_ip)
        self.sessions_per_ip: RateLimitItem = parse(settings.rate_limit_sessions_ip)
        self.feedback_per_ip: RateLimitItem = parse(settings.rate_limit_feedback_ip)
        self.admin_failures: RateLimitItem = parse(settings.rate_limit_admin_failures)

    async def check(self, scope: str, item: RateLimitItem, key: str, what: str | None = None) -> None:
        """Count one request for `key`; 429 with Retry-After when the window is full. `what` names the requests
        in the message ("new conversations from this address") when `key` is a client address."""
        if not await self.limiter.hit(item, scope, key):
            too_many = f"Too many {what} from this address" if what else f"Too many requests for this {scope}"
            await self.refuse(scope, item, key, too_many)

    async def refuse(self, scope: str, item: RateLimitItem, key: str, too_many: str) -> None:
        """The 429: `too_many` (a sentence's start), the limit, and when its window has room again."""
        stats = await self.limiter.get_window_stats(item, scope, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        metrics.RATE_LIMITED.labels(scope=scope).inc()
        raise HTTPException(
            429,
            f"{too_many} (limit {item}). Try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )

    async def check_new_session(self, request: Request) -> None:
        """POST /api/sessions: each new conversation is a key in Redis, so an address may not mint them by the
        hundred."""
        await self.check("sessions", self.sessions_per_ip, client_ip(request), "new conversations")

    async def check_feedback(self, request: Request) -> None:
        """Ratings reach the support leads' console and review queue: counted per address."""
        await self.check("feedback", self.feedback_per_ip, client_ip(request), "ratings")

    async def check_ip(self, request: Request) -> None:
        await self.check("client", self.per_ip, client_ip(request))

    async def check_session(self, session_id: str) -> None:
        await self.check("session", self.per_session, session_id)

    async def allow_ticket(self, session_id: str, client: str | None) -> bool:
        """A new ticket for this session and address? Counted when allowed (updates of an open one are free)."""
        address = client or "unknown"
        if not await self.limiter.test(self.tickets_per_session, "tickets", session_id):
            return False
        if not await self.limiter.test(self.tickets_per_ip, "tickets-client", address):
            return False
        await self.limiter.hit(self.tickets_per_session, "tickets", session_id)
        await self.limiter.hit(self.tickets_per_ip, "tickets-client", address)
        return True

    async def check_ticket(self, request: Request, session_id: str) -> None:
        address = client_ip(request)
        if not await self.allow_ticket(session_id, address):
            metrics.RATE_LIMITED.labels(scope="tickets").inc()
            windows = [
                await self.limiter.get_window_stats(self.tickets_per_session, "tickets", session_id),
                await self.limiter.get_window_stats(self.tickets_per_ip, "tickets-client", address),
            ]
            retry_after = max(1, math.ceil(max(w.reset_time for w in windows if w.remaining == 0) - time.time()))
            raise HTTPException(
                429,
                f"Too many new tickets (limits {self.tickets_per_session} per conversation, "
                f"{self.tickets_per_ip} per address). A person will answer the open ones.",
                headers={"Retry-After": str(retry_after)},
            )

    async def check_admin_failures(self, request: Request) -> None:
        """429 once this address has sent too many wrong admin tokens (counted by `count_admin_failure`)."""
        address = client_ip(request)
        if not await self.limiter.test(self.admin_failures, "admin-failures", address):
            await self.refuse(
                "admin-failures", self.admin_failures, address, "Too many wrong admin tokens from this address"
            )

    async def count_admin_failure(self, request: Request) -> None:
        await self.limiter.hit(self.admin_failures, "admin-failures", client_ip(request))

    async def forget_session(self, session_id: str) -> None:
        """Erasing a session erases its counters too (their keys name the session)."""
        await self.limiter.clear(self.per_session, "session", session_id)
        await self.limiter.clear(self.tickets_per_session, "tickets", session_id)


def client_ip(request: Request) -> str:
    """The client's address: the peer, or behind a TRUSTED_PROXIES proxy the right-most untrusted hop of
    X-Forwarded-For (uvicorn's ProxyHeadersMiddleware, installed by server.py, rewrites the peer to it)."""
    return request.client.host if request.client else "unknown"
