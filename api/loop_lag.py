"""The event loop's lag, measured in production: how late a task that sleeps a fixed interval wakes up.

Everything the app does for a request runs on one event loop per process; synchronous work on it (CPU in a
coroutine, a blocking call) delays every other request and stream by as long. The probe is a background task
of the app's lifespan (server.py): it sleeps `INTERVAL_SECONDS`, observes how much later than asked it woke into
`event_loop_lag_seconds` (metrics.py), and does it again. Cheap (4 wake-ups a second), and on /metrics an
operator sees a blocked loop as a histogram shifted to the right, before customers report slow answers.
"""

from __future__ import annotations

import asyncio

from metrics import EVENT_LOOP_LAG

INTERVAL_SECONDS = 0.25  # the lag of a block shorter than this is seen only if the block overlaps a wake-up


async def watch_loop_lag(interval: float = INTERVAL_SECONDS) -> None:
    """Forever (until cancelled): sleep `interval`, observe the lateness of the wake-up in seconds."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        EVENT_LOOP_LAG.observe(max(0.0, loop.time() - asked))
