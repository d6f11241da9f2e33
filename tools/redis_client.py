"""Redis clients that ride out a Redis restart: a dropped connection is retried with backoff (~3 s in all)
instead of failing the customer's turn. Measured by tests/test_reliability.py."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError


def resilient(**options: Any) -> dict[str, Any]:
    """Connection options with retries on connection errors; pass to `from_url` or a pool."""
    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=6),
        "retry_on_error": [ConnectionError, TimeoutError],
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        **options,
    }


def connect(url: str, **options: Any) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, **resilient(**options))


def pool(url: str, max_connections: int, **options: Any) -> aioredis.BlockingConnectionPool:
    """A pool that waits for a free connection instead of failing: redis-py's default pool raises
    `MaxConnectionsError` beyond 100 connections, which 100 concurrent answers reached (bench/load_bench.py)."""
    return aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, **resilient(**options)
    )
