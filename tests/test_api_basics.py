"""The HTTP API's plumbing over real HTTP: health and readiness, metrics, security headers, search, and
refusals of bad input (clear 4xx with a message, never a 500)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import API_ADMIN_TOKEN

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}


@pytest.fixture
def client(app_server) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=app_server.url, timeout=60) as client:
        yield client


def test_health_answers_while_the_process_runs(client: httpx.Client) -> None:
    """Liveness needs nothing but the process."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_every_part_by_name_to_operators(client: httpx.Client) -> None:
    """Redis, Chroma and each LLM endpoint are probed; all up → 200 "ready"."""
    response = client.get("/ready", headers=ADMIN)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    names = [part["name"] for part in body["parts"]]
    assert names[:2] == ["redis", "chroma"]
    assert any(name.startswith("llm:") for name in names)
    assert all(part["status"] == "up" for part in body["parts"])
    assert body["degraded"] == []


def test_ready_tells_the_public_its_status_and_nothing_inside(client: httpx.Client) -> None:
    """The parts' internal URLs and error texts are for operators; a probe needs only the status and code."""
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        response = client.get("/ready", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"status": "ready"}


def test_every_response_carries_the_security_headers(client: httpx.Client) -> None:
    """Strict CSP (same-origin only), nosniff and a referrer policy, on JSON and on errors alike."""
    for path in ("/health", "/api/search?q=", "/no-such-page"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_no_page_loosens_the_policy_not_even_the_old_playground_path(client: httpx.Client) -> None:
    """The LangServe playground (inline scripts) is not served, so no path needs 'unsafe-inline'."""
    for path in ("/", "/console", "/agent/playground/"):
        assert "'unsafe-inline'" not in client.get(path).headers["content-security-policy"]


def test_metrics_expose_the_chat_counters_to_operators(client: httpx.Client) -> None:
    client.get("/health")
    text = client.get("/metrics", headers=ADMIN).text
    for name in (
        "http_requests_total",
        "chat_time_to_first_token_seconds",
        "chat_tokens_streamed_total",
        "chat_escalations_total",
        "chat_errors_total",
        "rate_limited_requests_total",
    ):
        assert name in text
    assert 'route="/health"' in text


def test_search_returns_ranked_results_with_every_field(client: httpx.Client) -> None:
    response = client.get("/api/search", params={"q": "how long is the password reset link valid?", "k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "how long is the password reset link valid?"
    assert [r["rank"] for r in body["results"]] == [1, 2]
    first = body["results"][0]
    assert set(first) == {"rank", "title", "url", "score", "snippet", "chunk_id"}
    assert first["url"] == "https://help.example.com/account/password-reset"
    assert 0 <= first["score"] <= 1 and first["snippet"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"q": ""}, "q must contain some text"),
        ({"q": "   \t "}, "q must contain some text"),
        ({"q": "x" * 501}, "at most 500 characters"),
        ({"q": "refund", "k": 0}, "greater than or equal to 1"),
        ({"q": "refund", "k": 51}, "less than or equal to 50"),
        ({"q": "refund", "k": "many"}, "valid integer"),
        ({}, "q: Field required"),
    ],
)
def test_search_refuses_bad_input_with_a_message(client: httpx.Client, params: dict, says: str) -> None:
    response = client.get("/api/search", params=params)
    assert response.status_code == 422
    assert says in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "JSON"),
        (b'{"message": 42}', "message: Input should be a valid string"),
        (b'{"message": "hi", "session_id": 7}', "session_id"),
        (b'{"message": "hi", "escalate": "perhaps"}', "escalate"),
        (b'{"session_id": null}', "message: Field required"),
        (b'{"message": ""}', "must contain some text"),
        (b'{"message": " \\n\\t "}', "must contain some text"),
        (b'{"message": "\\u0000\\u001b\\u0007"}', "must contain some text"),
        (b"[]", "valid dictionary"),
    ],
)
def test_chat_refuses_malformed_messages_with_422_and_a_message(
    client: httpx.Client, content: bytes, says: str
) -> None:
    """Bad JSON, wrong types, missing, empty, whitespace-only or control-character-only messages."""
    response = client.post("/chat", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


def test_a_message_over_the_length_limit_is_refused_before_any_work(client: httpx.Client) -> None:
    response = client.post("/chat", json={"message": "a" * 2001})
    assert response.status_code == 422
    assert "the limit is 2000" in response.json()["detail"]


def test_an_oversized_body_is_refused_with_413(client: httpx.Client) -> None:
    response = client.post("/chat", json={"message": "a" * 100_000})
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic dGVzdDp0ZXN0"}, 401)],
)
def test_the_support_lead_api_needs_the_admin_token(client: httpx.Client, headers: dict, status: int) -> None:
    for path in ("/api/tickets", "/api/tickets/T-1", "/api/feedback?rating=down"):
        response = client.get(path, headers=headers)
        assert response.status_code == status, path
        assert response.json()["detail"]
    assert client.patch("/api/tickets/T-1", json={"status": "resolved"}, headers=headers).status_code == status
