"""Query embeddings of concurrent questions computed together: one `encode` call for every question that arrives
while the previous call runs (issue 14).

Why: under a burst each question's own `encode` on the CPU (~5-25 ms) ran one after another in worker threads, so
100 questions queued for seconds before their first token. A batch of 32 costs far less than 32 single calls.

How: no timer. A question that finds the encoder idle is encoded at once, alone (a lone question waits for
nothing); questions that arrive while a call runs wait for it and then go together, up to `max_batch` per call.
The model runs in one worker thread of its own, never on the event loop. `calls` counts encode calls (the tests
observe the sharing through it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MAX_BATCH = 64  # texts per encode call; larger batches pad to the longest text and stop paying off

Encode = Callable[[list[str]], list[list[float]]]


class QueryBatcher:
    """Embeds query texts in shared calls of `encode` (texts → vectors, in order). One per event loop."""

    def __init__(self, encode: Encode, max_batch: int = MAX_BATCH) -> None:
        self._encode = encode
        self.max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-encode")
        self.calls = 0  # encode calls made
        self.texts = 0  # texts encoded

    async def embed(self, text: str) -> np.ndarray:
        """The vector of `text`, computed in a call shared with the questions waiting at the same time."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if not self._running:
            self._running = True
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Encode the waiting texts batch after batch until none is left."""
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                texts = [text for text, _ in batch]
                self.calls += 1
                self.texts += len(texts)
                try:
                    vectors = await loop.run_in_executor(self._executor, self._encode, texts)
                except BaseException as error:  # every waiter hears of it, the next batch still runs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error if isinstance(error, Exception) else RuntimeError(error))
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (_, future), vector in zip(batch, vectors, strict=True):
                    if not future.done():  # a cancelled question has gone
                        future.set_result(np.asarray(vector, dtype=np.float32))
        finally:
            self._running = False
