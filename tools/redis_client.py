"""Redis clients that ride out a Redis restart or a Sentinel failover: a dropped connection is retried with
backoff instead of failing the customer's turn. Measured by tests/test_reliability.py and tests/test_sentinel.py.

`REDIS_URL` is a plain `redis://`, `rediss://` or `unix://` URL, or a Sentinel URL (docs/configuration.md):

    redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db][?sentinel_password=…]

With a Sentinel URL every client asks the sentinels for the service's current primary on each new connection
(redis-py's `SentinelConnectionPool`), so after a failover the retried command lands on the promoted replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_EXAMPLE = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
# Plain Redis: ~3 s of retries covers a restart. Sentinel: ~10 s covers the sentinels noticing the primary is gone
# (down-after-milliseconds) and promoting a replica when that is set to a few seconds (docs/deployment.md).
PLAIN_RETRIES = 6
SENTINEL_RETRIES = 14


@dataclass(frozen=True)
class SentinelURL:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a `redis+sentinel://` URL; ValueError saying what is wrong (settings.py shows it)."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"must start with {SENTINEL_SCHEME}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for host_port in hosts.split(","):
        host, sep, port = host_port.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{host_port!r} is not host:port (every sentinel needs its port, e.g. :26379)")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("the path must be /service or /service/db, e.g. /mymaster/0")
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r} (only sentinel_password)")
    return SentinelURL(
        sentinels=sentinels,
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=query.get("sentinel_password", [None])[0],
    )


def sentinel_url_problem(url: str) -> str | None:
    try:
        parse_sentinel_url(url)
    except ValueError as error:
        return f"is not a Sentinel URL: {error}; e.g. {SENTINEL_EXAMPLE}"
    return None


def resilient(retries: int = PLAIN_RETRIES, **options: Any) -> dict[str, Any]:
    """Connection options with retries on connection errors; pass to `from_url` or a pool."""
    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=retries),
        "retry_on_error": [ConnectionError, TimeoutError],
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        **options,
    }


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's master-following pool that, like `pool`, waits for a free connection instead of failing."""


def _sentinel_pool(url: str, pool_class: type[SentinelConnectionPool], **options: Any) -> SentinelConnectionPool:
    parsed = parse_sentinel_url(url)
    settings = resilient(SENTINEL_RETRIES, **options)
    sentinel_kwargs = {k: v for k, v in settings.items() if k.startswith("socket_")}
    if parsed.sentinel_password:
        sentinel_kwargs["password"] = parsed.sentinel_password
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=sentinel_kwargs)
    credentials = {"username": parsed.username, "password": parsed.password, "db": parsed.db}
    return pool_class(parsed.service, sentinel, is_master=True, **credentials, **settings)


def connect(url: str, **options: Any) -> aioredis.Redis:
    if is_sentinel(url):
        return aioredis.Redis(connection_pool=_sentinel_pool(url, SentinelConnectionPool, **options))
    return aioredis.Redis.from_url(url, **resilient(**options))


def pool(url: str, max_connections: int, **options: Any) -> aioredis.ConnectionPool:
    """A pool that waits for a free connection instead of failing: redis-py's default pool raises
    `MaxConnectionsError` beyond 100 connections, which 100 concurrent answers reached (bench/load_bench.py)."""
    if is_sentinel(url):
        return _sentinel_pool(url, BlockingSentinelPool, max_connections=max_connections, timeout=10, **options)
    return aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, **resilient(**options)
    )


async def replicated(client: aioredis.Redis, replicas: int, timeout_ms: int) -> int:
    """`WAIT replicas timeout_ms` on `client`'s own connection (WAIT covers that connection's writes only): how
    many replicas acknowledged them. 0 replicas asked: no round trip."""
    return await client.wait(replicas, timeout_ms) if replicas > 0 else 0
