"""The ticket hand-off: each new ticket is POSTed once, signed, to TICKET_WEBHOOK_URL and as a Slack message to
TICKET_SLACK_WEBHOOK_URL, retried on network errors, 5xx and 429 only.

Receivers are real HTTP servers in this process (http.server on free ports) that record every request as it
arrived and answer with the statuses a test scripts. The app is the real one (uvicorn subprocess) with a
scripted stand-in for the model's words (tests/helpers/scripted_llm.py), so a turn takes milliseconds. The
signature is checked with the verification snippet of docs/helpdesk.md itself.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from api.webhook import sign, signed_headers
from conftest import ROOT
from helpers.app_process import AppProcess
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from helpers.sse import chat_events, payload
from helpers.wait import eventually

pytestmark = pytest.mark.slow
SECRET = "whsec-test-3f9a"
PUBLIC_URL = "https://support.example.com"
ADMIN = {"Authorization": "Bearer webhook-admin"}


@dataclass
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records each POST (headers, raw body, time) and answers the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    receiver.requests.append(Received(headers, body, time.monotonic()))
                    status, reply_headers = receiver.statuses.pop(0) if receiver.statuses else (200, {})
                self.send_response(status)
                for name, value in reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def script(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        with self.lock:
            self.requests.clear()
            self.statuses = [s if isinstance(s, tuple) else (s, {}) for s in statuses]

    def for_ticket(self, ticket_id: str) -> list[Received]:
        return [r for r in list(self.requests) if ticket_id.encode() in r.body]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def generic() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def slack() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as words:
        words.script("Request a reset link from the sign-in page [1].")
        yield words


@pytest.fixture(scope="module")
def app(
    start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]],
    llm: ScriptedLLM,
    generic: Receiver,
    slack: Receiver,
) -> Iterator[AppProcess]:
    env = {
        "LLM_BASE_URL": llm.url,
        "ADMIN_TOKEN": ADMIN["Authorization"].split()[1],
        "TICKET_WEBHOOK_URL": generic.url,
        "TICKET_WEBHOOK_SECRET": SECRET,
        "TICKET_SLACK_WEBHOOK_URL": slack.url,
        "PUBLIC_URL": PUBLIC_URL,
        "TICKET_WEBHOOK_BACKOFF_SECONDS": "0.05",
    }
    with start_app("webhook-app", "webhook", env) as app:
        yield app


@pytest.fixture
def client(app: AppProcess, generic: Receiver, slack: Receiver) -> Iterator[httpx.Client]:
    generic.script()
    slack.script()
    with httpx.Client(base_url=app.url, timeout=60) as client:
        yield client


def docs_verifier() -> Callable[..., bool]:
    """`verify_support_signature` from docs/helpdesk.md's Python snippet, run as a receiver would run it."""
    text = (ROOT / "docs" / "helpdesk.md").read_text()
    (code,) = [
        block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify_support_signature" in block
    ]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["verify_support_signature"]


def open_ticket(client: httpx.Client, reason: str = "The link expired", **extra: Any) -> tuple[str, str]:
    """A conversation and a ticket for it through POST /api/tickets: (session id, ticket id)."""
    events = chat_events(client, {"message": "How do I reset my password?"})
    session_id = payload(events, "session")["session_id"]
    response = client.post("/api/tickets", json={"session_id": session_id, "reason": reason, **extra})
    assert response.status_code == 201, response.text
    return session_id, response.json()["ticket_id"]


def test_the_ticket_is_posted_signed_and_the_signature_verifies_only_with_the_secret(
    client: httpx.Client, generic: Receiver
) -> None:
    _, ticket_id = open_ticket(client, contact_email="ann@example.com")
    (received,) = eventually(lambda: generic.for_ticket(ticket_id))
    headers = received.headers
    timestamp = headers["x-support-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    assert headers["x-support-signature"] == sign(SECRET, timestamp, received.body)  # the body as it arrived
    assert headers["x-support-event"] == "ticket.created" and headers["x-support-delivery"] == ticket_id
    assert received.json()["event"] == "ticket.created" and received.json()["ticket"]["ticket_id"] == ticket_id

    verify = docs_verifier()
    assert verify(SECRET, received.body, timestamp, headers["x-support-signature"])
    assert not verify("another-secret", received.body, timestamp, headers["x-support-signature"])
    assert not verify(SECRET, received.body.replace(b"expired", b"EXPIRED"), timestamp, headers["x-support-signature"])
    old = str(int(timestamp) - 600)  # a replay ten minutes later, re-signed or not, is refused
    assert not verify(SECRET, received.body, old, sign(SECRET, old, received.body))


def test_without_a_secret_the_post_carries_a_timestamp_but_no_signature() -> None:
    headers = signed_headers(None, b"{}", "ticket.created", "T-AAAAAAAA")
    assert "X-Support-Timestamp" in headers and "X-Support-Signature" not in headers


def test_slack_gets_a_short_message_without_the_conversation_or_contact(client: httpx.Client, slack: Receiver) -> None:
    _, ticket_id = open_ticket(
        client, reason="Call me on +44 161 496 0123 <now> & soon", contact_email="ann@example.com"
    )
    (received,) = eventually(lambda: slack.for_ticket(ticket_id))
    message = received.json()
    assert set(message) == {"text", "unfurl_links", "unfurl_media"}
    text = message["text"]
    assert ticket_id in text and f"<{PUBLIC_URL}/console|" in text
    assert "[PHONE]" in text and "496 0123" not in text, text  # the reason, redacted
    assert "&lt;now&gt; &amp; soon" in text, text  # Slack's control characters escaped
    assert "ann@example.com" not in text and "reset" not in text.lower(), text  # no contact, no transcript


@pytest.mark.parametrize(
    ("statuses", "attempts"),
    [
        ((503, 503), 3),  # two failures, then the receiver's 200
        ((429,), 2),
        ((400,), 1),  # refused for good: not retried
        ((404,), 1),
    ],
)
def test_failed_posts_are_retried_on_5xx_and_429_only(
    client: httpx.Client, generic: Receiver, statuses: tuple[int, ...], attempts: int
) -> None:
    generic.script(*statuses)
    _, ticket_id = open_ticket(client)
    assert eventually(lambda: len(generic.for_ticket(ticket_id)) >= attempts, timeout=10)
    time.sleep(1)  # no further try
    tries = generic.for_ticket(ticket_id)
    assert len(tries) == attempts
    assert all(
        r.headers["x-support-signature"] == sign(SECRET, r.headers["x-support-timestamp"], r.body) for r in tries
    )


def test_a_429_with_retry_after_is_retried_no_sooner(client: httpx.Client, generic: Receiver) -> None:
    generic.script((429, {"Retry-After": "1"}))
    _, ticket_id = open_ticket(client)
    first, second = eventually(
        lambda: generic.for_ticket(ticket_id) if len(generic.for_ticket(ticket_id)) == 2 else None
    )
    assert second.at - first.at >= 0.9


def test_a_ticket_is_announced_once_whether_opened_by_the_customer_or_the_agent(
    client: httpx.Client, generic: Receiver, slack: Receiver
) -> None:
    """POST /api/tickets twice (the second updates the open ticket), and the agent escalating in a conversation
    that then also POSTs /api/tickets and escalates again: one post per ticket to each receiver."""
    session_id, by_customer = open_ticket(client)
    again = client.post("/api/tickets", json={"session_id": session_id, "reason": "Still stuck"})
    assert again.status_code == 200 and again.json()["ticket_id"] == by_customer

    escalated = chat_events(client, {"message": "I want to talk to a person", "escalate": True})
    by_agent = payload(escalated, "escalated")["ticket_id"]
    agent_session = payload(escalated, "session")["session_id"]
    same = client.post("/api/tickets", json={"session_id": agent_session})
    assert same.status_code == 200 and same.json()["ticket_id"] == by_agent
    chat_events(client, {"message": "Still there?", "session_id": agent_session, "escalate": True})  # escalates again

    for ticket_id in (by_customer, by_agent):
        assert eventually(lambda ticket_id=ticket_id: generic.for_ticket(ticket_id) and slack.for_ticket(ticket_id))
    time.sleep(1)
    for ticket_id in (by_customer, by_agent):
        assert len(generic.for_ticket(ticket_id)) == 1 and len(slack.for_ticket(ticket_id)) == 1
    assert client.get(f"/api/tickets/{by_agent}", headers=ADMIN).status_code == 200
