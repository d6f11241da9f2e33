"""The event-loop lag probe (api/loop_lag.py): `event_loop_lag_seconds` on /metrics, fed by the app's lifespan.

Two views of the real app. The uvicorn subprocess (tests/helpers/app_process.py) shows the histogram on /metrics
with a count that grows by itself. The block is done in-process: `server.create_app` on the real Redis and
Chroma, its own lifespan entered on the test's event loop and requests sent through httpx's ASGI transport, plus
one route added by this test only that `time.sleep()`s on that loop — the way a synchronous call in a coroutine
blocks it in production.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_ADMIN_TOKEN
from helpers.app_process import AppProcess
from launcher.services import Service
from server import create_app
from settings import Settings

ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}
BLOCK_SECONDS = 1.0  # the probe sleeps 0.25 s, so it wakes at least 0.75 s late whenever the block starts


def lag_histogram(text: str) -> tuple[float, dict[float, float]]:
    """(observation count, cumulative count per bucket bound) of event_loop_lag_seconds in a /metrics text."""
    for family in text_string_to_metric_families(text):
        if family.name == "event_loop_lag_seconds":
            count = next(s.value for s in family.samples if s.name.endswith("_count"))
            buckets = {float(s.labels["le"]): s.value for s in family.samples if s.name.endswith("_bucket")}
            return count, buckets
    raise AssertionError("event_loop_lag_seconds is not on /metrics")


def late_over(text: str, seconds: float) -> float:
    """How many wake-ups were later than `seconds` (a bucket bound)."""
    count, buckets = lag_histogram(text)
    return count - buckets[seconds]


def test_the_app_process_exposes_a_growing_loop_lag_histogram(
    start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]],
) -> None:
    with (
        start_app("loop-lag", "lag", {"ADMIN_TOKEN": API_ADMIN_TOKEN}) as app,
        httpx.Client(base_url=app.url) as client,
    ):
        assert client.get("/metrics").status_code == 401  # an operator series like the others: behind the token
        first, buckets = lag_histogram(client.get("/metrics", headers=ADMIN).text)
        assert set(buckets) >= {0.001, 0.01, 0.1, 1.0, float("inf")}  # fine enough for 1 ms - 1 s
        time.sleep(1.5)  # ~6 wake-ups of the 0.25 s probe
        second, _ = lag_histogram(client.get("/metrics", headers=ADMIN).text)
        assert second >= first + 3, (first, second)


async def test_a_blocked_loop_shows_in_the_histogram_and_the_lifespan_stops_the_probe(
    tmp_path: Path, redis_service: Service, chroma_service: Service
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        redis_url=redis_service.url,
        chroma_url=chroma_service.url,
        kb_collection=f"lag-{tmp_path.name}"[-60:],
        admin_token=API_ADMIN_TOKEN,
    )
    app = create_app(settings)

    async def block() -> dict[str, bool]:
        time.sleep(BLOCK_SECONDS)  # noqa: ASYNC251 - on purpose: synchronous work on the event loop
        return {"blocked": True}

    app.add_api_route("/test-only/block", block)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),  # the app's own lifespan, on this test's event loop
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        probe = app.state.loop_lag_probe
        if warming := set(app.state.services.background):  # the knowledge base warm-up ends before the
            await asyncio.wait(warming, timeout=120)  # baseline, so its start-up cost is not taken for the block
        await asyncio.sleep(0.6)
        before = late_over((await client.get("/metrics", headers=ADMIN)).text, 0.5)
        assert (await client.get("/test-only/block")).json() == {"blocked": True}
        after, waited = before, time.monotonic() + 5
        while after == before and time.monotonic() < waited:  # observed as soon as the probe runs again
            await asyncio.sleep(0.05)
            after = late_over((await client.get("/metrics", headers=ADMIN)).text, 0.5)
        assert after >= before + 1, (before, after)
        assert not probe.done()
    assert probe.cancelled()  # by the lifespan's shutdown, while this loop still runs
