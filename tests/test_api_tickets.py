"""Tickets over real HTTP: a customer opens one (once per session, however often they click), support leads
list, read and update them, and each new ticket is posted to TICKET_WEBHOOK_URL with retries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from helpers.app_process import AppProcess, run_app
from helpers.sse import chat_events, payload
from launcher.services import free_port

pytestmark = [pytest.mark.llm, pytest.mark.slow]
ADMIN = {"Authorization": "Bearer tickets-admin"}


class FlakyReceiver:
    """A tiny real webhook receiver on localhost: answers 500 to the first `failures` posts, then 200."""

    def __init__(self, failures: int = 2) -> None:
        self.failures = failures
        self.attempts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts.append(body)
                status = 500 if len(receiver.attempts) <= receiver.failures else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[FlakyReceiver]:
    receiver = FlakyReceiver(failures=2)
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def app(app_server, receiver: FlakyReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:  # type: ignore[no-untyped-def]
    """A second app instance on the same services, with the webhook configured and fast backoff."""
    env = {
        **app_server.env,
        "ADMIN_TOKEN": "tickets-admin",
        "TICKET_WEBHOOK_URL": receiver.url,
        "TICKET_WEBHOOK_BACKOFF_SECONDS": "0.05",
    }
    with run_app(tmp_path_factory.mktemp("tickets-app"), env) as process:
        yield process


@pytest.fixture
def client(app: AppProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, timeout=120) as client:
        yield client


def new_session(client: httpx.Client, message: str = "How long is the password reset link valid?") -> str:
    return payload(chat_events(client, {"message": message}), "session")["session_id"]


def test_a_double_click_opens_one_ticket_with_the_transcript(client: httpx.Client) -> None:
    """Two requests at once for the same session: one 201, one 200, the same ticket."""
    session_id = new_session(client)
    body = {"session_id": session_id, "reason": "Link expired", "contact_email": "ann@example.com"}
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda _: client.post("/api/tickets", json=body), range(2)))
    assert sorted(r.status_code for r in responses) == [200, 201], [r.text for r in responses]
    assert len({r.json()["ticket_id"] for r in responses}) == 1
    ticket = client.get(f"/api/tickets/{responses[0].json()['ticket_id']}", headers=ADMIN).json()
    assert ticket["session_id"] == session_id and ticket["contact_email"] == "ann@example.com"
    assert [turn["role"] for turn in ticket["transcript"]][:2] == ["user", "assistant"]


def test_a_later_request_updates_the_open_ticket_with_the_newer_transcript(client: httpx.Client) -> None:
    session_id = new_session(client)
    first = client.post("/api/tickets", json={"session_id": session_id})
    assert first.status_code == 201
    chat_events(client, {"message": "Where is my invoice?", "session_id": session_id})
    second = client.post("/api/tickets", json={"session_id": session_id, "reason": "Still stuck"})
    assert second.status_code == 200
    assert second.json()["ticket_id"] == first.json()["ticket_id"]
    assert len(second.json()["transcript"]) > len(first.json()["transcript"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"session_id": "no-such-session"}, 404),
        ({}, 422),
        ({"session_id": 5}, 422),
        ({"session_id": "x", "contact_email": "not an email"}, 422),
        ({"session_id": "x", "reason": "r" * 1001}, 422),
    ],
)
def test_bad_ticket_requests_are_refused(client: httpx.Client, body: dict, status: int) -> None:
    response = client.post("/api/tickets", json=body)
    assert response.status_code == status
    assert response.json()["detail"]


def test_support_leads_list_read_and_update_tickets(client: httpx.Client) -> None:
    session_id = new_session(client)
    ticket_id = client.post("/api/tickets", json={"session_id": session_id, "reason": "Refund"}).json()["ticket_id"]
    listed = client.get("/api/tickets", params={"status": "open"}, headers=ADMIN).json()["tickets"]
    assert ticket_id in [t["ticket_id"] for t in listed]
    updated = client.patch(f"/api/tickets/{ticket_id}", json={"status": "resolved", "note": "Refunded"}, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "resolved"
    assert "Refunded" in json.dumps(updated.json()["notes"])
    open_now = client.get("/api/tickets", params={"status": "open"}, headers=ADMIN).json()["tickets"]
    assert ticket_id not in [t["ticket_id"] for t in open_now]
    assert client.get("/api/tickets/T-AAAAAAAA", headers=ADMIN).status_code == 404  # the shape of an id, no ticket
    assert client.patch("/api/tickets/T-AAAAAAAA", json={"status": "resolved"}, headers=ADMIN).status_code == 404
    assert client.get("/api/tickets/NOPE-1", headers=ADMIN).status_code == 422  # not the shape of a ticket id
    assert client.patch(f"/api/tickets/{ticket_id}", json={}, headers=ADMIN).status_code == 422


def test_a_new_ticket_reaches_the_webhook_after_two_failures(client: httpx.Client, receiver: FlakyReceiver) -> None:
    """The receiver fails twice; the third try delivers. The ticket was stored all along."""
    receiver.attempts.clear()
    session_id = new_session(client)
    ticket_id = client.post("/api/tickets", json={"session_id": session_id}).json()["ticket_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(receiver.attempts) < 3:
        time.sleep(0.1)
    time.sleep(0.5)  # no fourth post after the success
    ids = [attempt["ticket"]["ticket_id"] for attempt in receiver.attempts]
    assert ids == [ticket_id] * 3
    assert receiver.attempts[-1]["event"] == "ticket.created"
    assert client.get(f"/api/tickets/{ticket_id}", headers=ADMIN).status_code == 200
