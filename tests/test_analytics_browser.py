"""The console's Analytics tab in headless Chromium against the real app: the charts are drawn (Chart.js served
from /vendor/, each canvas a chart with the days' data and non-blank pixels), the range selector redraws them,
and the CSV button saves the file fetched with the token in a header. Leaves test-artifacts/console-analytics.png
(copied by hand to docs/screenshots/ when the tab changes).

Today's figures come from a real turn and rating through the app; the 29 days before are seeded through
tools/analytics.py itself (the app's counting code, on the app's Redis) so the picture shows a month.
"""

from __future__ import annotations

import asyncio
import csv
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from api.analytics import REASONS
from helpers.browser import ROOT, needs_chromium, open_page, poll
from helpers.sse import chat_events, payload
from helpers.wait import eventually
from tools.analytics import Analytics

pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.llm, pytest.mark.slow, needs_chromium]

SCREENSHOT = ROOT / "test-artifacts" / "console-analytics.png"  # docs/screenshots/ holds a reviewed copy
CHARTS = ("chart-conversations", "chart-deflection", "chart-escalations", "chart-ratings", "chart-first-token")


async def seed_past_days(redis_url: str, days: int = 29) -> None:
    """A month of plausible traffic before today, counted by the product's own code (fixed seed)."""
    rng = random.Random(7)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    stats = Analytics(client, 400, REASONS)
    try:
        for back in range(days, 0, -1):
            at = datetime.now(UTC).replace(hour=12) - timedelta(days=back)
            for n in range(rng.randint(8, 30)):
                session = f"seed-{back}-{n}"
                ticket = rng.random() < 0.25
                reason = rng.choice(REASONS)
                outcome = "escalated" if ticket else rng.choice(["answered"] * 6 + ["offered", "small_talk"])
                ms = rng.lognormvariate(7.2, 0.5)
                await stats.record_turn(
                    session_id=session,
                    outcome=outcome,
                    ticket_id=f"seed-{back}-{n}" if ticket else None,
                    escalation_reason=reason if ticket else None,
                    first_token_ms=ms,
                    at=at,
                )
                if rng.random() < 0.4:
                    await stats.record_rating(f"m-{session}", "up" if rng.random() < 0.75 else "down", at=at)
    finally:
        await client.aclose()


def charts_drawn(page: Any) -> dict[str, Any]:
    """Per canvas: the Chart.js instance's label count, the sum of its first dataset, and how many pixels are
    painted."""
    return page.evaluate(
        """(ids) => Object.fromEntries(ids.map((id) => {
            const canvas = document.getElementById(id);
            const chart = window.Chart && window.Chart.getChart(canvas);
            if (!chart) return [id, null];
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
            const sum = chart.data.datasets.flatMap((d) => d.data).reduce((a, b) => a + (b || 0), 0);
            return [id, { labels: chart.data.labels.length, sum, painted }];
        }))""",
        list(CHARTS),
    )


def test_the_lead_sees_charts_changes_the_range_and_downloads_the_csv(
    browser: Any, app_server: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        thread.submit(asyncio.run, seed_past_days(app_server.env["REDIS_URL"])).result()
    with httpx.Client(base_url=app_server.url, timeout=180) as client:
        done = payload(chat_events(client, {"message": "How long is the password reset link valid?"}), "done")
        rate = f"/api/messages/{done['message_id']}/feedback"  # 404 until the after-turn recorder kept the answer
        assert eventually(lambda: client.post(rate, json={"rating": "up"}).status_code == 201, timeout=15)

    viewport = {"width": 1200, "height": 900}
    with open_page(browser, app_server.url + "/console", request.node.name, viewport=viewport) as lead:
        lead.fill("#token", app_server.env["ADMIN_TOKEN"])
        lead.keyboard.press("Enter")
        poll(lead, "!document.getElementById('workspace').hidden", timeout=30)
        lead.click("#tab-analytics")
        poll(lead, "document.getElementById('analytics-view').dataset.loaded", timeout=60)
        drawn = charts_drawn(lead)
        for chart in CHARTS:
            assert drawn[chart] is not None, f"{chart} is not a chart: {drawn}"
            assert drawn[chart]["labels"] == 30 and drawn[chart]["painted"] > 2000, drawn
        for chart in ("chart-conversations", "chart-escalations", "chart-ratings", "chart-first-token"):
            assert drawn[chart]["sum"] > 0, drawn
        assert "Conversations" in lead.inner_text("#analytics-totals")

        with lead.expect_download() as saved:
            lead.click("#analytics-csv")
        rows = list(csv.DictReader(Path(saved.value.path()).read_text().splitlines()))
        assert [row["date"] for row in rows][-1] == "total" and len(rows) == 31
        assert int(rows[-1]["conversations"]) > 0
        assert not saved.value.url.count("token") and "Saved" in lead.inner_text("#analytics-status")

        shown = lead.evaluate("document.getElementById('analytics-view').dataset.loaded")
        lead.select_option("#analytics-days", "7")
        poll(lead, f"document.getElementById('analytics-view').dataset.loaded !== {shown!r}", timeout=60)
        assert all(chart["labels"] == 7 for chart in charts_drawn(lead).values())

        lead.select_option("#analytics-days", "30")
        poll(lead, f"document.getElementById('analytics-view').dataset.loaded === {shown!r}", timeout=60)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        lead.locator("#workspace").screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size < 400_000
