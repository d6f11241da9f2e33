"""At most PREPARE_CONCURRENCY turns per process prepare their answer at once (checks, search, prompt), first come
first served; the others wait their turn.

Why: preparing is CPU work on one event loop. A burst of 100 questions started together interleaves all of them,
so each reaches its sources, and its first token, only when nearly all of them do (measured: p50 close to p95). Taken
in arrival order, the first questions are answered while the last still wait, and the median wait halves; the last
question waits as long as before. A turn leaves the gate with its sources or its first word (the LLM then reads its
prompt outside it, so the number of requests in flight to the LLM is not limited here), or when it ends.
"""

from __future__ import annotations

import asyncio

import metrics


class Pass:
    """One turn's place in the gate; `leave` is idempotent, so every way out may call it."""

    def __init__(self, semaphore: asyncio.Semaphore | None) -> None:
        self._semaphore = semaphore

    def leave(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None
            metrics.PREPARING.dec()


class Gate:
    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit) if limit > 0 else None  # 0: no limit

    async def enter(self) -> Pass:
        if self._semaphore is None:
            return Pass(None)
        metrics.PREPARE_WAITING.inc()
        try:
            await self._semaphore.acquire()
        finally:
            metrics.PREPARE_WAITING.dec()
        metrics.PREPARING.inc()
        return Pass(self._semaphore)
