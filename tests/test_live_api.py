"""Live takeover through the HTTP API, on two real app processes sharing one real Redis (docs/api.md#live-takeover).

The lead works on `app_server` (tests/conftest.py: SmolLM2 through llama.cpp). The customer talks to a second
app process on the same Redis whose LLM is the scripted stand-in (tests/helpers/scripted_llm.py), so that "no
LLM call" is counted exactly: every completion the app asks for is in `llm.requests`. A conversation held by a
lead on one process is therefore seen, written to and handed back across processes.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from httpx_sse import connect_sse
from test_api_privacy import CARD, CONVERSATION, EMAIL, RAW, dump, holding

from conftest import API_ADMIN_TOKEN
from graph import prompts
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from helpers.sse import chat_events, names, payload
from helpers.wait import eventually

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}
BOT_WORDS = "Open the sign-in page and choose Reset password [1]."
# Office hours that exclude now: a one-hour window on the day after tomorrow (UTC).
LATER = datetime.now(UTC) + timedelta(days=2)
CLOSED_HOURS = f"{LATER:%a} 09:00-10:00"


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as stand_in:
        stand_in.script(BOT_WORDS)
        yield stand_in


@pytest.fixture(scope="module")
def customer_app(start_app: Callable[..., Any], llm: ScriptedLLM) -> Iterator[Any]:
    """The second app process: same Redis as `app_server`, the scripted stand-in as its LLM, office closed now."""
    env = {
        "LLM_BASE_URL": llm.url,
        "LLM_MODEL": "scripted",
        "ADMIN_TOKEN": API_ADMIN_TOKEN,
        "OFFICE_HOURS": CLOSED_HOURS,
        "OFFICE_TIMEZONE": "UTC",
    }
    with start_app("live-customer", "live", env) as app:
        yield app


@pytest.fixture
def customer(customer_app: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=customer_app.url, timeout=60) as client:
        yield client


@pytest.fixture
def lead(app_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_server.url, timeout=60, headers=ADMIN) as client:
        yield client


@pytest.fixture
def escalated(customer: httpx.Client) -> Iterator[dict[str, Any]]:
    """A conversation the customer escalated (no LLM call: a request for a person); erased after the test."""
    events = chat_events(customer, {"message": "I would like to talk to a person", "escalate": True})
    session_id = payload(events, "session")["session_id"]
    yield {"session_id": session_id, "ticket_id": payload(events, "escalated")["ticket_id"], "events": events}
    customer.delete(f"/api/sessions/{session_id}")


class Listener:
    """Reads one SSE stream (GET) in a thread, collecting (event, data, id) until the server ends it."""

    def __init__(self, base_url: str, path: str, headers: dict[str, str] | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any], str]] = []
        self.status: int | None = None
        self._thread = threading.Thread(target=self._run, args=(base_url, path, headers or {}), daemon=True)
        self._thread.start()

    def _run(self, base_url: str, path: str, headers: dict[str, str]) -> None:
        with (
            httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=None)) as client,
            connect_sse(client, "GET", path, headers=headers) as source,
        ):
            self.status = source.response.status_code
            for event in source.iter_sse():
                self.events.append((event.event, json.loads(event.data), event.id))

    def wait(self, kind: str, count: int = 1, timeout: float = 15.0) -> list[tuple[dict[str, Any], str]]:
        found = eventually(lambda: len(self.of(kind)) >= count or None, timeout)
        assert found, f"no {kind} event within {timeout} s; got {[e[0] for e in self.events]}"
        return self.of(kind)

    def of(self, kind: str) -> list[tuple[dict[str, Any], str]]:
        return [(data, event_id) for name, data, event_id in self.events if name == kind]

    def ended(self, timeout: float = 10.0) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def ticket(lead: httpx.Client, ticket_id: str) -> dict[str, Any]:
    return lead.get(f"/api/tickets/{ticket_id}").json()


def history(client: httpx.Client, session_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/sessions/{session_id}/history")
    assert answer.status_code == 200, answer.text
    return answer.json()


# ------------------------------------------------------------------------------------------ the state machine


def test_while_a_lead_holds_the_chat_the_customers_message_reaches_them_and_not_the_bot(
    customer: httpx.Client, lead: httpx.Client, escalated: dict[str, Any], llm: ScriptedLLM
) -> None:
    session_id = escalated["session_id"]
    joined = lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"})
    assert joined.status_code == 200, joined.text
    assert joined.json()["live"]["mode"] == "human" and joined.json()["live"]["lead"] == "Alex"
    asked = len(llm.requests)

    events = chat_events(customer, {"message": "My parcel 4711 never arrived", "session_id": session_id})

    assert names(events) == ["session", "live", "done"]  # no sources, no tokens
    done = payload(events, "done")
    assert done["live"] is True and done["message_id"] is None and done["text"] == ""
    assert len(llm.requests) == asked, "no LLM call while a lead holds the conversation"
    stored = history(customer, session_id)
    assert stored["live"]["mode"] == "human" and stored["live"]["lead"] == "Alex"
    last = stored["messages"][-1]
    assert last["role"] == "user" and last["content"] == "My parcel 4711 never arrived"
    seen_by_lead = lead.get(f"/api/live/{session_id}").json()["messages"]
    assert seen_by_lead[-1]["content"] == "My parcel 4711 never arrived"
    transcript = ticket(lead, escalated["ticket_id"])["transcript"]
    assert transcript[-1]["role"] == "user" and transcript[-1]["content"] == "My parcel 4711 never arrived"


def test_a_leads_reply_is_stored_marked_as_a_persons_and_the_ticket_says_who_joined_when(
    customer: httpx.Client, lead: httpx.Client, escalated: dict[str, Any]
) -> None:
    session_id = escalated["session_id"]
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    sent = lead.post(f"/api/live/{session_id}/reply", json={"lead": "Alex", "text": "Hi, I'm looking at it now."})
    assert sent.status_code == 201, sent.text

    turns = history(customer, session_id)["messages"]
    bot, joined, reply = turns[-3], turns[-2], turns[-1]
    assert bot["role"] == "assistant" and "by" not in bot  # the bot's escalation notice
    assert joined["role"] == "event" and joined["event"] == "joined" and joined["name"] == "Alex" and joined["at"]
    assert reply == reply | {
        "role": "assistant",
        "by": "human",
        "name": "Alex",
        "content": "Hi, I'm looking at it now.",
    }
    assert reply["message_id"] == sent.json()["message_id"]

    transcript = ticket(lead, escalated["ticket_id"])["transcript"]
    assert [(t["role"], t["by"], t["event"]) for t in transcript] == [
        ("user", None, None),
        ("assistant", None, None),
        ("event", "human", "joined"),
        ("assistant", "human", None),
    ]
    assert transcript[2]["name"] == "Alex" and transcript[2]["at"]
    assert transcript[3]["content"] == "Hi, I'm looking at it now."


def test_after_hand_back_the_bot_answers_again_and_the_ticket_stays_open(
    customer: httpx.Client, lead: httpx.Client, escalated: dict[str, Any], llm: ScriptedLLM
) -> None:
    session_id = escalated["session_id"]
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    back = lead.post(f"/api/live/{session_id}/hand-back", json={"lead": "Alex"})
    assert back.status_code == 200 and back.json()["live"]["mode"] == "bot"
    asked = len(llm.requests)

    events = chat_events(customer, {"message": "How do I reset my password?", "session_id": session_id})

    assert len(llm.requests) == asked + 1
    assert "token" in names(events) and not payload(events, "done")["live"]
    turns = history(customer, session_id)["messages"]
    assert turns[-3]["event"] == "handed_back" and turns[-1]["role"] == "assistant" and "by" not in turns[-1]
    record = ticket(lead, escalated["ticket_id"])
    assert record["status"] == "open"
    assert [t["event"] for t in record["transcript"] if t["role"] == "event"] == ["joined", "handed_back"]


def test_resolve_resolves_the_ticket_and_gives_the_chat_back_to_the_bot(
    customer: httpx.Client, lead: httpx.Client, escalated: dict[str, Any]
) -> None:
    session_id = escalated["session_id"]
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    resolved = lead.post(f"/api/live/{session_id}/resolve", json={"lead": "Alex"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["live"]["mode"] == "bot"
    record = ticket(lead, escalated["ticket_id"])
    assert record["status"] == "resolved" and "Alex" in record["notes"][-1]["note"]
    assert record["transcript"][-1]["event"] == "resolved"
    assert history(customer, session_id)["live"]["mode"] == "bot"
    listed = [c["session_id"] for c in lead.get("/api/live").json()["conversations"]]
    assert session_id not in listed


def test_a_second_lead_cannot_join_a_held_chat_and_is_told_who_holds_it(
    lead: httpx.Client, escalated: dict[str, Any]
) -> None:
    session_id = escalated["session_id"]
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200  # a second tab
    refused = lead.post(f"/api/live/{session_id}/join", json={"lead": "Blake"})
    assert refused.status_code == 409 and "Alex holds this conversation" in refused.json()["detail"]
    for action, body in (("reply", {"text": "hello"}), ("hand-back", {}), ("resolve", {}), ("typing", {})):
        answer = lead.post(f"/api/live/{session_id}/{action}", json={"lead": "Blake", **body})
        assert answer.status_code == 409 and "Alex" in answer.json()["detail"], (action, answer.text)


def test_the_list_shows_waiting_conversations_first_with_reason_and_wait_then_the_held_ones(
    customer: httpx.Client, lead: httpx.Client
) -> None:
    made = []
    for text in ("First: I need a person", "Second: I need a person"):
        events = chat_events(customer, {"message": text, "escalate": True})
        made.append(payload(events, "session")["session_id"])
    try:
        assert lead.post(f"/api/live/{made[1]}/join", json={"lead": "Alex"}).status_code == 200
        listed = lead.get("/api/live").json()["conversations"]
        mine = [c for c in listed if c["session_id"] in made]
        assert [(c["session_id"], c["status"]) for c in mine] == [(made[0], "waiting"), (made[1], "live")]
        waiting, held = mine
        assert waiting["reason"] == "caller_request" and waiting["wait_seconds"] >= 0 and waiting["ticket_id"]
        assert held["lead"] == "Alex" and held["joined_at"]
        statuses = [c["status"] for c in listed]
        assert statuses == sorted(statuses, key=lambda s: s != "waiting"), "every waiting one before the held ones"
        waits = [c["wait_seconds"] for c in listed if c["status"] == "waiting"]
        assert waits == sorted(waits, reverse=True), "longest wait first"
    finally:
        for session_id in made:
            customer.delete(f"/api/sessions/{session_id}")


# ------------------------------------------------------------------------------------- live events, two processes


def test_a_join_on_one_process_reaches_the_customer_listening_on_another_and_nothing_is_missed(
    customer_app: Any, app_server: Any, customer: httpx.Client, lead: httpx.Client, escalated: dict[str, Any]
) -> None:
    session_id = escalated["session_id"]
    page = Listener(customer_app.url, f"/chat/live?session_id={session_id}")
    console = Listener(app_server.url, f"/api/live/{session_id}/events", ADMIN)
    eventually(lambda: page.status and console.status)  # answered: each listens after the newest event now
    assert page.status == 200 and console.status == 200

    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    (joined, joined_id), *_ = page.wait("joined")
    assert joined["name"] == "Alex" and joined["event_id"] == joined_id
    assert lead.post(f"/api/live/{session_id}/typing", json={"lead": "Alex"}).status_code == 204
    assert page.wait("typing")[0][0]["from"] == "lead"
    sent = lead.post(f"/api/live/{session_id}/reply", json={"lead": "Alex", "text": "Hello from a person"})
    (message, _), *_ = page.wait("message")
    assert message | {"from": "lead", "name": "Alex", "text": "Hello from a person"} == message
    assert message["message_id"] == sent.json()["message_id"]

    assert customer.post("/chat/live/typing", json={"session_id": session_id}).status_code == 204
    assert [d["from"] for d, _ in console.wait("typing", 2)] == ["lead", "customer"]
    chat_events(customer, {"message": "Thanks, it is order 4711", "session_id": session_id})
    from_customer = [d for d, _ in console.wait("message", 2) if d["from"] == "customer"]
    assert from_customer[0]["text"] == "Thanks, it is order 4711"

    # A page that reconnects with the last id it saw (the join's) gets what came since, and only that.
    again = Listener(customer_app.url, f"/chat/live?session_id={session_id}&after={joined_id}")
    replayed = [d["from"] for d, _ in again.wait("message", 2)]
    assert replayed == ["lead", "customer"] and again.of("joined") == []

    assert customer.delete(f"/api/sessions/{session_id}").status_code == 204
    assert page.ended() and console.ended() and again.ended(), "the streams end when the conversation is erased"
    assert page.events[-1][0] == "gone"


def test_the_customer_sees_hand_back_and_resolve(
    customer_app: Any, lead: httpx.Client, escalated: dict[str, Any]
) -> None:
    session_id = escalated["session_id"]
    page = Listener(customer_app.url, f"/chat/live?session_id={session_id}")
    assert eventually(lambda: page.status) == 200
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    assert lead.post(f"/api/live/{session_id}/hand-back", json={"lead": "Alex"}).status_code == 200
    assert page.wait("handed_back")[0][0]["name"] == "Alex"
    assert lead.post(f"/api/live/{session_id}/resolve", json={"lead": "Alex"}).status_code == 200
    resolved = page.wait("resolved")[0][0]
    assert resolved["ticket_id"] == escalated["ticket_id"]


# ------------------------------------------------------------------------------------------------- bad input


def test_unknown_sessions_bad_cursors_and_missing_tokens_get_clear_answers(
    customer: httpx.Client, lead: httpx.Client, app_server: Any, escalated: dict[str, Any]
) -> None:
    unknown = "s_" + "A" * 22
    for path in (f"/api/live/{unknown}/join", f"/api/live/{unknown}/reply", f"/api/live/{unknown}/hand-back"):
        answer = lead.post(path, json={"lead": "Alex", "text": "hi"})
        assert answer.status_code == 404 and "No such session" in answer.json()["detail"], path
    assert lead.get(f"/api/live/{unknown}").status_code == 404
    assert customer.get("/chat/live", params={"session_id": unknown}).status_code == 404
    assert customer.get("/chat/live", params={"session_id": "../etc"}).status_code == 404
    assert customer.post("/chat/live/typing", json={"session_id": unknown}).status_code == 404
    session_id = escalated["session_id"]
    bad = customer.get("/chat/live", params={"session_id": session_id, "after": "yesterday"})
    assert bad.status_code == 422 and "event id" in bad.json()["detail"]
    with httpx.Client(base_url=app_server.url, timeout=30) as anonymous:
        assert anonymous.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 401
        assert anonymous.get("/api/live").status_code == 401
    blank = lead.post(f"/api/live/{session_id}/join", json={"lead": "   "})
    assert blank.status_code == 422 and "display name" in blank.json()["detail"]
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    too_long = lead.post(f"/api/live/{session_id}/reply", json={"lead": "Alex", "text": "x" * 4001})
    assert too_long.status_code == 422 and "4000" in too_long.json()["detail"]
    lead.post(f"/api/live/{session_id}/hand-back", json={"lead": "Alex"})
    not_held = lead.post(f"/api/live/{session_id}/reply", json={"lead": "Alex", "text": "hi"})
    assert not_held.status_code == 409 and "join it first" in not_held.json()["detail"]


def test_a_takeovers_personal_data_stays_in_the_conversation_its_events_and_ticket_and_goes_with_the_erase(
    customer: httpx.Client, lead: httpx.Client, app_server: Any
) -> None:
    """docs/privacy.md: typed text only in the checkpoints, the live events and the ticket; every live key of the
    session expires with it; after DELETE nothing of it is left but the ticket."""
    word = f"zebra{secrets.token_hex(4)}"
    events = chat_events(customer, {"message": f"I need a person. {word}", "escalate": True})
    session_id = payload(events, "session")["session_id"]
    ticket_key = f"ticket:{payload(events, 'escalated')['ticket_id']}".encode()
    assert lead.post(f"/api/live/{session_id}/join", json={"lead": "Alex"}).status_code == 200
    chat_events(customer, {"message": f"I am {EMAIL}, card {CARD}. {word}", "session_id": session_id})
    reply = {"lead": "Alex", "text": f"Thanks {word}"}
    assert lead.post(f"/api/live/{session_id}/reply", json=reply).status_code == 201
    store = redis.Redis.from_url(app_server.env["REDIS_URL"])
    try:
        found = dump(store)
        mine = holding(found, word, session_id)
        raw = sorted(key for key in holding(found, *RAW) if key in mine)
        assert raw and all(key == ticket_key or key.startswith((*CONVERSATION, b"live:events:")) for key in raw), raw
        assert f"live:events:{session_id}".encode() in raw
        live_keys = sorted(key for key in mine if key.startswith(b"live:"))
        assert live_keys == [f"live:events:{session_id}".encode(), b"live:held", f"live:state:{session_id}".encode()]
        assert all(0 < found[key][1] <= 3600 for key in live_keys), "they expire with the session"
        assert customer.delete(f"/api/sessions/{session_id}").status_code == 204
        assert list(holding(dump(store), word, session_id)) == [ticket_key]
    finally:
        store.close()


# ------------------------------------------------------------------------------------------------ office hours


def test_outside_office_hours_the_bot_says_when_a_person_answers_and_keeps_the_ticket(
    customer: httpx.Client, escalated: dict[str, Any], lead: httpx.Client
) -> None:
    escalation = payload(escalated["events"], "escalated")
    opens = datetime.fromisoformat(escalation["person_from"])
    assert (opens.date(), opens.hour, opens.minute) == (LATER.date(), 9, 0)
    text = payload(escalated["events"], "done")["text"]
    assert f"{opens:%A} {opens.day} {opens:%B}, 09:00" in text and prompts.PERSON_FETCHED not in text
    assert ticket(lead, escalated["ticket_id"])["status"] == "open"


def test_inside_office_hours_the_bot_says_a_person_is_being_fetched(app_server: Any) -> None:
    with httpx.Client(base_url=app_server.url, timeout=60) as client:  # OFFICE_HOURS unset: always inside
        events = chat_events(client, {"message": "I need a person", "escalate": True})
        assert payload(events, "escalated")["person_from"] is None
        assert prompts.PERSON_FETCHED in payload(events, "done")["text"]
        client.delete(f"/api/sessions/{payload(events, 'session')['session_id']}")
