"""Requests at the edges of HTTP get a clear 4xx JSON answer with the security headers, never a 500: bodies over
the limit however they are sent, bytes that are not UTF-8, characters that cannot be stored, URLs that are too
long, ids that are not ticket ids. Operator routes and wrong admin tokens are guarded."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest

from api.security import MAX_BODY_BYTES, MAX_URL_CHARS
from conftest import API_ADMIN_TOKEN
from helpers.app_process import AppProcess

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}


@pytest.fixture
def client(app_server) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=app_server.url, timeout=60) as client:
        yield client


def assert_json_refusal(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    detail = response.json()["detail"]
    assert isinstance(detail, str) and len(detail) > 10
    return detail


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(client: httpx.Client) -> None:
    """No Content-Length to trust: the bytes are counted as they arrive."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"message": "'
        for _ in range(20 * 1024):  # 20 MiB in 1 KiB pieces
            sent += 1024
            yield b"a" * 1024
        yield b'"}'

    response = client.post("/chat", content=chunks(), headers={"Content-Type": "application/json"})
    detail = assert_json_refusal(response, 413)
    assert str(MAX_BODY_BYTES) in detail
    assert "content-length" not in {k.lower() for k in response.request.headers}


def test_a_declared_content_length_over_the_limit_is_refused_at_once(client: httpx.Client) -> None:
    response = client.post("/chat", content=b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}")
    assert_json_refusal(response, 413)


def test_a_body_that_is_not_utf8_is_a_422(client: httpx.Client) -> None:
    response = client.post("/chat", content=b'{"message": "caf\xe9"}', headers={"Content-Type": "application/json"})
    assert "UTF-8" in assert_json_refusal(response, 422)


def test_a_lone_surrogate_in_a_message_is_a_422_and_nothing_is_answered(client: httpx.Client) -> None:
    response = client.post(
        "/chat", content=b'{"message": "hello \\ud800 there"}', headers={"Content-Type": "application/json"}
    )
    assert "surrogate" in assert_json_refusal(response, 422)


@pytest.mark.parametrize("chars", [MAX_URL_CHARS + 100, 60_000])
def test_a_url_over_the_limit_is_a_414_in_json(client: httpx.Client, chars: int) -> None:
    response = client.get("/api/search", params={"q": "x" * chars})
    assert str(MAX_URL_CHARS) in assert_json_refusal(response, 414)


@pytest.mark.parametrize("ticket_id", ["open:some-session", "T-123", "../x"])
def test_a_ticket_id_of_the_wrong_shape_is_a_422(client: httpx.Client, ticket_id: str) -> None:
    response = client.get(f"/api/tickets/{ticket_id}", headers=ADMIN)
    assert response.status_code in (404, 422), response.text
    assert response.json()["detail"]


def test_the_open_ticket_pointer_of_a_session_is_not_readable_as_a_ticket(client: httpx.Client) -> None:
    """`ticket:open:<session>` holds a ticket id: read as a ticket it was a 500."""
    session = client.post("/chat", json={"message": "please talk to a person", "escalate": True})
    session_id = next(line for line in session.text.splitlines() if '"session_id"' in line).split('"session_id": "')[1]
    session_id = session_id.split('"')[0]
    response = client.get(f"/api/tickets/open:{session_id}", headers=ADMIN)
    assert response.status_code == 422
    assert "ticket_id" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json"])
def test_operator_routes_need_the_admin_token(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=ADMIN).status_code == 200


@pytest.fixture(scope="module")
def throttled_app(start_app: Callable[..., AbstractContextManager[AppProcess]], llm_service) -> Iterator[AppProcess]:  # type: ignore[no-untyped-def]
    env = {"LLM_BASE_URL": llm_service.url, "ADMIN_TOKEN": API_ADMIN_TOKEN, "RATE_LIMIT_ADMIN_FAILURES": "3/minute"}
    with start_app("admin-throttle", "throttle", env) as app:
        yield app


def test_wrong_admin_tokens_are_throttled_per_address(throttled_app: AppProcess) -> None:
    with httpx.Client(base_url=throttled_app.url, timeout=30) as client:
        wrong = [client.get("/api/tickets", headers={"Authorization": f"Bearer guess-{n}"}) for n in range(3)]
        assert [r.status_code for r in wrong] == [403, 403, 403]
        refused = client.get("/api/tickets", headers={"Authorization": "Bearer guess-4"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "wrong admin tokens" in refused.json()["detail"]
        # Past the limit even the right token waits: otherwise guessing could go on, each miss a 429.
        assert client.get("/api/tickets", headers=ADMIN).status_code == 429


def test_a_url_of_100_kb_is_refused_in_json_too(app_server) -> None:  # type: ignore[no-untyped-def]
    """Beyond what httpx will send; written on a socket as any client could."""
    host, port = app_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(f"GET /api/search?q={'x' * 100_000} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head[:200]  # refused by the HTTP parser (80 KiB), before the app
    assert b"content-security-policy" in head.lower() and b"application/json" in head.lower()
    assert "80 KiB" in json.loads(body)["detail"]
