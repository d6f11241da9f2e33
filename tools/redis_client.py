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
