"""Several LLM instances (LLM_BASE_URL="http://a/v1,http://b/v1"): least busy healthy one first, failover.

A request goes to the healthy instance with the fewest requests in flight (ties: round robin). If it fails
before its first token — connection refused, timeout, 5xx — the instance is marked down for a while and the
request moves to the next one, so the customer never notices. After the first token a failure is the caller's
(the answer node sends the fallback text). A down instance is tried again once its cool-down has passed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig

log = logging.getLogger(__name__)
COOL_DOWN_SECONDS = 10.0
FAILOVER_ERRORS = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, ConnectionError)


class AllInstancesDown(ConnectionError):
    """No LLM instance answered."""


@dataclass
class Instance:
    url: str
    model: BaseChatModel
    in_flight: int = 0
    served: int = 0
    down_until: float = 0.0
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until


class LLMPool:
    def __init__(
        self, base_urls: Sequence[str], make_model: Callable[[str], BaseChatModel], cool_down: float = COOL_DOWN_SECONDS
    ) -> None:
        self.instances = [Instance(url, make_model(url)) for url in base_urls]
        self.cool_down = cool_down
        self._turn = itertools.count()

    def _order(self) -> list[Instance]:
        """Healthy instances by load (rotating ties), then the down ones as a last resort."""
        start = next(self._turn)
        n = len(self.instances)
        rotated = [self.instances[(start + i) % n] for i in range(n)]
        healthy = sorted((i for i in rotated if i.healthy), key=lambda i: i.in_flight)
        return healthy + sorted((i for i in rotated if not i.healthy), key=lambda i: i.down_until)

    async def astream(
        self, messages: list[BaseMessage], config: RunnableConfig | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        errors = []
        for instance in self._order():
            instance.in_flight += 1
            try:
                # aclosing: a client that goes away closes the upstream request at once, not at garbage collection
                async with contextlib.aclosing(instance.model.astream(messages, config)) as stream:
                    try:
                        first = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except FAILOVER_ERRORS as error:
                        instance.down_until = time.monotonic() + self.cool_down
                        instance.last_error = f"{type(error).__name__}: {error}"
                        errors.append(f"{instance.url}: {instance.last_error}")
                        log.warning("LLM instance %s failed before its first token; trying the next", instance.url)
                        continue
                    instance.down_until, instance.last_error = 0.0, None
                    instance.served += 1
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
                "last_error": i.last_error,
            }
            for i in self.instances
        ]
