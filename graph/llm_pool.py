"""Several LLM instances (LLM_BASE_URL="http://a/v1,http://b/v1"): a conversation stays on one, with failover.

LLM_ROUTING=session (the default): a request that names its session goes to that session's instance, chosen by
rendezvous (highest-random-weight) hashing of the session over the instance URLs. Every turn of a conversation
then lands where its earlier turns were, and the server re-reads only the new part of the prompt (vLLM's prefix
cache; llama-cpp-python keeps the prompt it served last, or several with `--cache True`). When that instance is
down, or already has LLM_MAX_IN_FLIGHT_PER_INSTANCE requests in flight, the request goes to the session's next
instance in the same ranking — so only the sessions of a down instance move, each to the same place every time.
Requests without a session (the injection classifier) and LLM_ROUTING=least_busy go to the healthy instance with
the fewest requests in flight (ties: round robin).

Either way: a failure before the first token — connection refused, timeout, 5xx — marks the instance down for a
while and the request moves to the next one, so the customer never notices. A dropped connection (not a timeout)
is first tried once more on the same instance: under a burst it is mostly a pooled keep-alive connection that the
server closed as idle just as the request went out on it, no fault of the instance (`reconnect`). After the first
token a failure is the caller's (the answer node sends the fallback text). A down instance is tried again once its
cool-down passed.

Upstream, each request carries LLM_SESSION_HEADER (X-Session-ID) so that a fleet router in front of the servers
can route on it too. Its value is an HMAC of the session id, never the id itself: the session id authorises
access to the conversation (api/sessions.py), and the model servers, routers and their logs must not hold it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig

log = logging.getLogger(__name__)
COOL_DOWN_SECONDS = 10.0
FAILOVER_ERRORS = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, ConnectionError)
Routing = Literal["session", "least_busy"]


class AllInstancesDown(ConnectionError):
    """No LLM instance answered."""


@dataclass
class Instance:
    url: str
    model: BaseChatModel
    in_flight: int = 0
    served: int = 0
    spilled: int = 0  # answers for sessions whose own instance was down or saturated (failover and spill-over)
    down_until: float = 0.0
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until


def rendezvous_weight(session: str, url: str) -> int:
    """The session's score for one instance; the highest wins. Depends on nothing else, so adding or removing an
    instance moves only the sessions that gain or lose it."""
    digest = hashlib.blake2b(f"{session}\x00{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def session_key(secret: bytes, session: str) -> str:
    """What the upstream sees instead of the session id: stable per session (routers can hash it), useless as a
    credential, and not reversible without `secret`."""
    return hmac.new(secret, session.encode(), hashlib.sha256).hexdigest()[:32]


def describe(error: BaseException) -> str:
    """The error and what caused it: openai says only "Connection error." and keeps the httpx error as the cause."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 4:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)


def reconnect(error: BaseException) -> bool:
    """Worth one more attempt on the same instance at once: the connection failed, but not by a timeout. Under a
    burst the usual cause is a pooled keep-alive connection the server closed as idle just as the request went
    out on it (openai's "Connection error." from a ReadError, connection reset, or "Server disconnected without
    sending a response"); the next attempt gets another connection. Not the instance's fault, so not marked down.
    A timeout is not retried: it would double the wait on a server that hangs."""
    return isinstance(error, openai.APIConnectionError | ConnectionError) and not isinstance(
        error, openai.APITimeoutError
    )


class LLMPool:
    def __init__(
        self,
        base_urls: Sequence[str],
        make_model: Callable[[str], BaseChatModel],
        cool_down: float = COOL_DOWN_SECONDS,
        *,
        routing: Routing = "session",
        max_in_flight: int = 0,
        session_header: str = "X-Session-ID",
        session_secret: str | None = None,
    ) -> None:
        """`max_in_flight` 0: no spill-over; `session_header` "": none sent; `session_secret` None: a random one
        for this process (then app replicas send different keys for one session — set LLM_SESSION_KEY_SECRET)."""
        self.instances = [Instance(url, make_model(url)) for url in base_urls]
        self.cool_down = cool_down
        self.routing = routing
        self.max_in_flight = max_in_flight
        self.session_header = session_header
        self._secret = (session_secret or secrets.token_urlsafe(32)).encode()
        self._turn = itertools.count()

    def ranking(self, session: str) -> list[Instance]:
        """All instances in the session's order of preference (rendezvous hashing), health and load aside."""
        return sorted(self.instances, key=lambda i: rendezvous_weight(session, i.url), reverse=True)

    def _saturated(self, instance: Instance) -> bool:
        return self.max_in_flight > 0 and instance.in_flight >= self.max_in_flight

    def _order(self, session: str | None = None) -> list[Instance]:
        """Healthy instances first — the session's own ranking (saturated ones after the others), or by load
        with rotating ties — then the down ones as a last resort."""
        if session and self.routing == "session":
            ranked = self.ranking(session)
            healthy = sorted((i for i in ranked if i.healthy), key=self._saturated)  # stable: keeps the ranking
            down = [i for i in ranked if not i.healthy]
            return healthy + sorted(down, key=lambda i: i.down_until)
        start = next(self._turn)
        n = len(self.instances)
        rotated = [self.instances[(start + i) % n] for i in range(n)]
        healthy = sorted((i for i in rotated if i.healthy), key=lambda i: i.in_flight)
        return healthy + sorted((i for i in rotated if not i.healthy), key=lambda i: i.down_until)

    def upstream_headers(self, session: str | None) -> dict[str, str]:
        if not session or not self.session_header:
            return {}
        return {self.session_header: session_key(self._secret, session)}

    async def astream(
        self, messages: list[BaseMessage], config: RunnableConfig | None = None, *, session: str | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        """`session`: the conversation's id (LangGraph's thread_id); it picks the instance and is sent keyed."""
        errors = []
        order = self._order(session)
        preferred = self.ranking(session)[0] if session and self.routing == "session" else None
        headers = self.upstream_headers(session)
        extra: dict[str, Any] = {"extra_headers": headers} if headers else {}
        for instance in order:
            for attempt in range(2):  # a second one only after a dropped connection (`reconnect`)
                instance.in_flight += 1
                try:
                    # aclosing: a client that goes away closes the upstream request at once, not at garbage collection
                    async with contextlib.aclosing(instance.model.astream(messages, config, **extra)) as stream:
                        try:
                            first = await anext(stream)
                        except StopAsyncIteration:
                            return
                        except FAILOVER_ERRORS as error:
                            if attempt == 0 and reconnect(error):
                                log.info(
                                    "LLM instance %s dropped the connection (%s); once more",
                                    instance.url,
                                    describe(error),
                                )
                                continue
                            instance.down_until = time.monotonic() + self.cool_down
                            instance.last_error = describe(error)
                            errors.append(f"{instance.url}: {instance.last_error}")
                            log.warning(
                                "LLM instance %s failed before its first token (%s); trying the next",
                                instance.url,
                                instance.last_error,
                            )
                            break
                        instance.down_until, instance.last_error = 0.0, None
                        instance.served += 1
                        if preferred is not None and instance is not preferred:
                            instance.spilled += 1
                        yield first  # type: ignore[misc]
                        async for chunk in stream:
                            yield chunk  # type: ignore[misc]
                        return
                finally:
                    instance.in_flight -= 1
        raise AllInstancesDown("; ".join(errors) or "no LLM instance configured")

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "url": i.url,
                "healthy": i.healthy,
                "in_flight": i.in_flight,
                "served": i.served,
                "spilled": i.spilled,
                "last_error": i.last_error,
            }
            for i in self.instances
        ]
