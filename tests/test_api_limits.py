"""An app instance with low rate limits, no ADMIN_TOKEN and an LLM that is down: 429 with Retry-After,
the lead API disabled with a message, and chat still answering with an `error` event and the fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.app_process import AppProcess, run_app
from helpers.sse import chat_events, names, payload
from launcher.services import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(app_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:  # type: ignore[no-untyped-def]
    env = {key: value for key, value in app_server.env.items() if key != "ADMIN_TOKEN"}
    env |= {
        "ADMIN_TOKEN": "",
        "LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        "RATE_LIMIT_SESSION": "2/minute",
        "RATE_LIMIT_IP": "5/minute",
        "OPS_ROUTES_PUBLIC": "true",  # no ADMIN_TOKEN here, and the tests read /metrics
    }
    with run_app(tmp_path_factory.mktemp("limits-app"), env) as process:
        yield process


@pytest.fixture
def client(app: AppProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, timeout=60) as client:
        yield client


def test_with_the_llm_down_chat_sends_error_then_the_fallback_then_done(client: httpx.Client) -> None:
    """Also uses 1 of the 2 messages this session may send per minute."""
    events = chat_events(client, {"message": "How long is the password reset link valid?"})
    order = names(events)
    assert order[0] == "session" and order[-1] == "done"
    assert "error" in order and order.index("error") < order.index("token")
    error = payload(events, "error")
    assert error["code"] and error["message"]


def test_search_and_ready_work_while_the_llm_is_down(client: httpx.Client) -> None:
    assert client.get("/api/search", params={"q": "refund"}).json()["results"]
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert [name for name in ready.json()["degraded"] if name.startswith("llm:")]


def test_the_per_session_limit_answers_429_with_retry_after(client: httpx.Client) -> None:
    session_id = payload(chat_events(client, {"message": "hello"}), "session")["session_id"]
    chat_events(client, {"message": "hello again", "session_id": session_id})
    refused = client.post("/chat", json={"message": "third", "session_id": session_id})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Too many requests for this session" in refused.json()["detail"]


def test_the_per_client_limit_answers_429_with_retry_after(client: httpx.Client) -> None:
    statuses = [client.post("/chat", json={"message": "hi"}).status_code for _ in range(6)]
    assert statuses[-1] == 429
    refused = client.post("/chat", json={"message": "hi"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "Too many requests for this client" in refused.json()["detail"]
    assert 'rate_limited_requests_total{scope="client"}' in client.get("/metrics").text


def test_without_admin_token_the_lead_api_says_how_to_enable_it(client: httpx.Client) -> None:
    response = client.get("/api/tickets", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 503
    assert "set ADMIN_TOKEN" in response.json()["detail"]


def test_new_tickets_are_limited_per_address_on_chat_and_on_the_ticket_api(app_server) -> None:  # type: ignore[no-untyped-def]
    """RATE_LIMIT_TICKETS_IP=2/hour: two conversations get tickets; the third is told so (chat) or 429 (API)."""
    from helpers.app_process import run_app

    env = app_server.env | {"RATE_LIMIT_TICKETS_IP": "2/hour", "RATE_LIMIT_TICKETS_SESSION": "5/hour"}
    with run_app(Path(app_server.log).parent / "ticket-quota", env) as app, httpx.Client(base_url=app.url) as client:
        opened = [chat_events(client, {"message": "I need a person", "escalate": True}) for _ in range(2)]
        assert all("escalated" in names(events) for events in opened)
        third = chat_events(client, {"message": "I need a person", "escalate": True})
        assert "escalated" not in names(third) and "several support tickets" in payload(third, "done")["text"]
        session_id = payload(third, "session")["session_id"]
        refused = client.post("/api/tickets", json={"session_id": session_id})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0 and refused.json()["detail"]
        again = client.post("/api/tickets", json={"session_id": payload(opened[0], "session")["session_id"]})
        assert again.status_code == 200, "the open ticket of a session is still updated"
