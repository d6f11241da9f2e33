"""Nobody floods the support leads: an app with low limits answers 429 + Retry-After + a JSON sentence for new
conversations (`POST /api/sessions`) and ratings beyond the per-address limits, also for a burst at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from launcher.services import free_port

pytestmark = pytest.mark.slow

SESSIONS_PER_MINUTE = 5
RATINGS_PER_MINUTE = 3


@pytest.fixture(scope="module")
def app(start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[Any]]) -> Iterator[Any]:
    env = {
        "LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # no answers needed here
        "RATE_LIMIT_SESSIONS_IP": f"{SESSIONS_PER_MINUTE}/minute",
        "RATE_LIMIT_FEEDBACK_IP": f"{RATINGS_PER_MINUTE}/minute",
    }
    with start_app("flood-app", "flood", env) as process:
        yield process


def assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.json()["detail"].startswith(f"Too many {what} from this address")


def test_a_burst_of_new_conversations_gets_only_the_allowed_number(app: Any) -> None:
    """The report: 100 POST /api/sessions in 0.4 s all succeeded."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=app.url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/api/sessions") for _ in range(100)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses].count(201) == SESSIONS_PER_MINUTE
    refused = [r for r in responses if r.status_code != 201]
    assert len(refused) == 100 - SESSIONS_PER_MINUTE
    for response in refused:
        assert_refused(response, "new conversations")


def test_ratings_beyond_the_limit_are_refused_whatever_they_rate(app: Any) -> None:
    """Counted before the answer is looked up: guessing message ids costs the same as rating."""
    with httpx.Client(base_url=app.url, timeout=60) as client:
        rate = {"rating": "down", "comment": "spam"}
        answers = [client.post(f"/api/messages/m_{n:032x}/feedback", json=rate) for n in range(RATINGS_PER_MINUTE)]
        assert [r.status_code for r in answers] == [404] * RATINGS_PER_MINUTE
        assert_refused(client.post("/api/messages/m_0/feedback", json=rate), "ratings")
