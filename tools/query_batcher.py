"""Concurrent questions served together: one call of a batch function for every question that arrives while the
previous call runs (issue 14).

Why: under a burst each question paid its own query `encode` on the CPU (~5-25 ms), its own Chroma round trips
and its own thread hand-offs, one after another, so 100 questions queued for seconds before their first token.
A batch of 32 costs far less than 32 single calls. `KnowledgeBase.asearch` (tools/retrieval.py) submits
(query, k) pairs here; its batch function does the whole retrieval of the batch (one `encode`, one Chroma `query`,
one `get`, BM25 and fusion per question).

How: no timer. A question that finds the batcher idle is served at once, alone (a lone question waits for
nothing); questions that arrive while a call runs wait for it and then go together, up to `max_batch` per call.
The batch function runs in one worker thread of its own, never on the event loop. `calls` counts batch calls and
`items` the questions in them (the tests observe the sharing through them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

MAX_BATCH = 64  # questions per call; larger batches pad to the longest text and stop paying off

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueryBatcher(Generic[Item, Result]):
    """Runs `process` (items → one result per item, in order) over the items waiting together. One per event
    loop (its futures belong to one). An exception raised by `process` reaches every item of that call."""

    def __init__(
        self, process: Callable[[list[Item]], list[Result]], max_batch: int = MAX_BATCH, name: str = "query-batch"
    ) -> None:
        self._process = process
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.calls = 0  # calls of `process` made
        self.items = 0  # items passed to them

    async def submit(self, item: Item) -> Result:
        """The result for `item`, computed in a call shared with the items waiting at the same time."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._running:
            self._running = True
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Process the waiting items batch after batch until none is left."""
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                items = [item for item, _ in batch]
                self.calls += 1
                self.items += len(items)
                try:
                    results = await loop.run_in_executor(self._executor, self._process, items)
                except BaseException as error:  # every waiter hears of it, the next batch still runs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error if isinstance(error, Exception) else RuntimeError(error))
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # a cancelled question has gone
                        future.set_result(result)
        finally:
            self._running = False
