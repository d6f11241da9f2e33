"""Verified answers over real HTTP on the real app: a matching question gets the verified answer streamed with its
sources and the `verified` flag and no LLM request; a near-miss, a disabled or deleted answer and a follow-up go
the usual way; an edit made through one app process is used by another; the support-lead API refuses bad input
with a clear 4xx; answers and resolved tickets become verified answers, redacted.

Two app processes share a Redis database of their own (verified answers are global, so other tests' apps must not
see them): `app` talks to a scripted OpenAI-compatible server (tests/helpers/scripted_llm.py, a stand-in for the
model's words that counts the requests it gets), `other` to the real llama.cpp server with SmolLM2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from httpx_sse import connect_sse

from conftest import API_ADMIN_TOKEN
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from helpers.sse import answer_text, chat_events, names, payload
from helpers.wait import eventually
from tools.verified import MAX_ANSWER_CHARS, MAX_ANSWERS, MAX_VARIANTS

pytestmark = [pytest.mark.llm, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}
REFUND = {
    "questions": ["How do I request a refund?", "Can I get my money back?"],
    "answer": "Write to billing@example.com within 30 days of the charge; the refund goes back to your card.",
    "sources": [{"title": "Refund policy", "url": "https://help.example.com/billing/refunds"}],
}
PARAPHRASE = "How can I ask for a refund?"
NEAR_MISS = "How long does a refund take to reach my card?"  # same words, another question: the docs answer it
SCRIPTED = "Refunds take 5-10 business days to reach your card [1]."


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as server:
        server.script(SCRIPTED)
        yield server


@pytest.fixture(scope="module")
def redis_url(redis_service: Any) -> Iterator[str]:
    """A database of its own on the session's Redis server, emptied after the module."""
    url = redis_service.url.rsplit("/", 1)[0] + "/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def apps(start_app: Any, llm: ScriptedLLM, llm_service: Any, redis_url: str) -> Iterator[tuple[Any, Any]]:
    env = {"REDIS_URL": redis_url, "ADMIN_TOKEN": API_ADMIN_TOKEN, "LLM_TEMPERATURE": "0", "LLM_MAX_TOKENS": "48"}
    with (
        start_app("verified-a", "verified", env | {"LLM_BASE_URL": llm.url}) as app,
        start_app("verified-b", "verified", env | {"LLM_BASE_URL": llm_service.url}) as other,
    ):
        yield app, other


@pytest.fixture(scope="module")
def client(apps: tuple[Any, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=apps[0].url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def other(apps: tuple[Any, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=apps[1].url, timeout=300) as client:
        yield client


@pytest.fixture
def refund(client: httpx.Client) -> Iterator[dict[str, Any]]:
    """The refund answer, verified for one test."""
    created = client.post("/api/verified", json=REFUND, headers=ADMIN)
    assert created.status_code == 201, created.text
    yield created.json()
    client.delete(f"/api/verified/{created.json()['id']}", headers=ADMIN)


def ask(client: httpx.Client, message: str, session_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    return chat_events(client, {"message": message, "session_id": session_id})


# ------------------------------------------------------------------------------------------------ answers


def test_a_matching_question_streams_the_verified_answer_without_an_llm_call(
    client: httpx.Client, llm: ScriptedLLM, refund: dict[str, Any]
) -> None:
    before = len(llm.requests)
    events = ask(client, PARAPHRASE)
    assert names(events) == ["session", "sources", "token", "done"]
    assert payload(events, "sources")["sources"] == [
        {"n": 1, "title": "Refund policy", "url": "https://help.example.com/billing/refunds", "snippet": ""}
    ]
    assert sum(name == "token" for name, _ in events) > 1, "streamed in pieces"
    done = payload(events, "done")
    assert answer_text(events) == done["text"] == REFUND["answer"]
    assert done["verified"] == refund["id"] and done["message_id"]
    assert len(llm.requests) == before, "no request reached the LLM"
    session_id = payload(events, "session")["session_id"]
    reply = client.get(f"/api/sessions/{session_id}/history").json()["messages"][-1]
    assert reply["verified"] == refund["id"] and reply["content"] == REFUND["answer"]


def test_a_verified_answer_stopped_mid_way_keeps_the_sources_the_page_showed(client: httpx.Client) -> None:
    """Stop pressed while a long verified answer streams: the words seen so far are stored, marked interrupted,
    with the sources the page already shows — a reload shows the same (the step had not returned its state)."""
    long = REFUND | {"questions": ["What is the full refund procedure?"], "answer": "Step by step, as follows. " * 150}
    created = client.post("/api/verified", json=long, headers=ADMIN).json()
    try:
        with connect_sse(client, "POST", "/chat", json={"message": "What is the full refund procedure?"}) as source:
            seen: dict[str, Any] = {}
            for event in source.iter_sse():
                seen.setdefault(event.event, json.loads(event.data))
                if event.event == "token":
                    break  # the customer stops after the first words (~250 pieces, 10 ms apart, are still to come)
        session_id = seen["session"]["session_id"]
        # Leaving alone no longer stops an answer (it stays resumable): Stop is POST /chat/stream/{id}/stop.
        stop = f"/chat/stream/{seen['session']['answer_id']}/stop"
        assert client.post(stop, params={"session_id": session_id}).status_code == 202

        def stored() -> dict[str, Any] | None:
            messages = client.get(f"/api/sessions/{session_id}/history").json()["messages"]
            return messages[-1] if messages[-1]["role"] == "assistant" else None

        assert eventually(stored, 10), "the partial answer was stored"
        reply = stored()
        assert reply is not None and reply["interrupted"] is True
        assert reply["sources"] == seen["sources"]["sources"] != []
    finally:
        client.delete(f"/api/verified/{created['id']}", headers=ADMIN)


def test_a_near_miss_gets_a_generated_answer(client: httpx.Client, llm: ScriptedLLM, refund: dict[str, Any]) -> None:
    before = len(llm.requests)
    events = ask(client, NEAR_MISS)
    done = payload(events, "done")
    assert done["verified"] is None
    assert len(llm.requests) == before + 1 and done["text"] == SCRIPTED
    assert payload(events, "sources")["sources"][0]["url"] == "https://help.example.com/billing"


def test_a_follow_up_leaning_on_the_conversation_is_not_matched(
    client: httpx.Client, llm: ScriptedLLM, refund: dict[str, Any]
) -> None:
    session_id = payload(ask(client, "Where can I download my invoices?"), "session")["session_id"]
    before = len(llm.requests)
    done = payload(ask(client, "How do I request a refund for it?", session_id), "done")
    assert done["verified"] is None and len(llm.requests) == before + 1


def test_a_disabled_or_deleted_verified_answer_is_not_used(client: httpx.Client, refund: dict[str, Any]) -> None:
    path = f"/api/verified/{refund['id']}"
    assert client.patch(path, json={"enabled": False}, headers=ADMIN).json()["enabled"] is False
    assert payload(ask(client, PARAPHRASE), "done")["verified"] is None
    assert client.patch(path, json={"enabled": True}, headers=ADMIN).status_code == 200
    assert payload(ask(client, PARAPHRASE), "done")["verified"] == refund["id"]
    assert client.delete(path, headers=ADMIN).status_code == 204
    assert payload(ask(client, PARAPHRASE), "done")["verified"] is None
    assert client.get(path, headers=ADMIN).status_code == 404


def test_an_edit_made_through_one_app_process_is_used_by_another(
    client: httpx.Client, other: httpx.Client, refund: dict[str, Any]
) -> None:
    """`other` has the variants' vectors cached from its first question; the version counter in Redis makes it
    reload them after the edit made through `client`."""
    assert payload(ask(other, PARAPHRASE), "done")["text"] == REFUND["answer"]
    edited = {"answer": "Refunds: open Billing > Refund within 30 days.", "questions": ["What is your refund policy?"]}
    assert client.patch(f"/api/verified/{refund['id']}", json=edited, headers=ADMIN).status_code == 200
    done = payload(ask(other, "Tell me your refund policy"), "done")
    assert done["verified"] == refund["id"] and done["text"] == edited["answer"]


def test_a_question_no_verified_answer_matches_is_answered_by_the_model(
    other: httpx.Client, refund: dict[str, Any]
) -> None:
    """The real model (SmolLM2) answers from the knowledge base as before: sources, tokens, no verified flag."""
    events = ask(other, "How long is the password reset link valid?")
    assert names(events) == ["session", "sources", "token", "done"]
    assert payload(events, "sources")["sources"][0]["url"] == "https://help.example.com/account/password-reset"
    done = payload(events, "done")
    assert done["verified"] is None and done["text"].strip()


# ----------------------------------------------------------------------------------------------- creation


def test_an_answer_becomes_a_verified_answer_redacted(client: httpx.Client, llm: ScriptedLLM, redis_url: str) -> None:
    events = ask(client, "I am ann.lee@example.com: how long does a refund take to reach my card?")
    message_id = payload(events, "done")["message_id"]
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    assert eventually(lambda: store.exists(f"answer:{message_id}"))
    created = client.post("/api/verified", json={"from_message": message_id}, headers=ADMIN)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["questions"] == ["I am [EMAIL]: how long does a refund take to reach my card?"]
    assert item["answer"] == SCRIPTED
    assert item["sources"][0] == {"title": "Billing and invoices", "url": "https://help.example.com/billing"}
    assert item["created_from"] == {"kind": "message", "id": message_id}
    assert "ann.lee" not in str(store.get(f"verified:item:{item['id']}"))
    before = len(llm.requests)
    assert payload(ask(client, "How long does a refund take to reach my card?"), "done")["verified"] == item["id"]
    assert len(llm.requests) == before
    assert client.delete(f"/api/verified/{item['id']}", headers=ADMIN).status_code == 204
    store.close()


def test_a_resolved_ticket_becomes_a_verified_answer(client: httpx.Client) -> None:
    session_id = payload(
        ask(client, "I am ann.lee@example.com. How do I change the e-mail address of my account?"), "session"
    )["session_id"]
    escalated = chat_events(
        client, {"message": "I want to talk to a person", "session_id": session_id, "escalate": True}
    )
    ticket_id = payload(escalated, "escalated")["ticket_id"]
    refused = client.post("/api/verified", json={"from_ticket": ticket_id}, headers=ADMIN)
    assert refused.status_code == 422 and "resolve it" in refused.json()["detail"]
    note = {"status": "resolved", "note": "Open Settings > Profile and enter the new address."}
    assert client.patch(f"/api/tickets/{ticket_id}", json=note, headers=ADMIN).status_code == 200
    created = client.post("/api/verified", json={"from_ticket": ticket_id}, headers=ADMIN)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["questions"] == ["I am [EMAIL]. How do I change the e-mail address of my account?"], "redacted"
    assert item["answer"] == note["note"] and item["created_from"] == {"kind": "ticket", "id": ticket_id}
    assert client.delete(f"/api/verified/{item['id']}", headers=ADMIN).status_code == 204


# -------------------------------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"questions": [], "answer": "A."}, 422, "at least one question"),
        ({"questions": ["  "], "answer": "A."}, 422, "at least one question"),
        ({"questions": [f"q{i}?" for i in range(MAX_VARIANTS + 1)], "answer": "A."}, 422, f"limit is {MAX_VARIANTS}"),
        ({"questions": ["x" * 301], "answer": "A."}, 422, "limit is 300"),
        ({"questions": ["Q?"], "answer": " "}, 422, "answer text is empty"),
        ({"questions": ["Q?"], "answer": "a" * (MAX_ANSWER_CHARS + 1)}, 422, f"limit is {MAX_ANSWER_CHARS}"),
        ({"questions": ["Q?"], "answer": "A.", "sources": [{"url": "javascript:alert(1)"}]}, 422, "http://"),
        ({"questions": ["Q?"]}, 422, "Send questions and answer"),
        ({"questions": "Q?", "answer": "A."}, 422, "questions"),
        ({"from_message": "m_0000"}, 404, "No answer"),
        ({"from_message": "a:b"}, 404, "No answer"),
        ({"from_ticket": "T-AAAAAAAA"}, 404, "No ticket"),
        ({"from_ticket": "ticket:1"}, 422, "not a ticket id"),
        ({"from_message": "m_1", "from_ticket": "T-AAAAAAAA"}, 422, "not both"),
    ],
)
def test_bad_input_is_refused_with_a_sentence(client: httpx.Client, body: dict, status: int, says: str) -> None:
    response = client.post("/api/verified", json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_edits_and_ids_are_checked(client: httpx.Client, refund: dict[str, Any]) -> None:
    path = f"/api/verified/{refund['id']}"
    assert client.patch(path, json={}, headers=ADMIN).status_code == 422
    assert client.patch(path, json={"questions": []}, headers=ADMIN).status_code == 422
    assert client.get(path, headers=ADMIN).json()["questions"] == REFUND["questions"], "a refused edit changes nothing"
    assert client.get("/api/verified/v_0000000000000000", headers=ADMIN).status_code == 404
    assert client.patch("/api/verified/v_0000000000000000", json={"enabled": 0}, headers=ADMIN).status_code == 404
    assert client.delete("/api/verified/v_0000000000000000", headers=ADMIN).status_code == 404
    assert client.get("/api/verified/verified:version", headers=ADMIN).status_code == 422
    listed = client.get("/api/verified", headers=ADMIN).json()
    assert [item["id"] for item in listed["verified"]] == [refund["id"]]
    assert listed["limits"]["max_answers"] == MAX_ANSWERS


def test_the_api_needs_the_admin_token(client: httpx.Client) -> None:
    assert client.get("/api/verified").status_code == 401
    assert client.post("/api/verified", json=REFUND, headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_no_more_than_the_limit_can_be_created(client: httpx.Client, redis_url: str) -> None:
    store = redis.Redis.from_url(redis_url)
    store.zadd("verified:order", {f"v_{i:016x}": i for i in range(MAX_ANSWERS)})  # ids without items
    try:
        response = client.post("/api/verified", json=REFUND, headers=ADMIN)
        assert response.status_code == 409 and f"already {MAX_ANSWERS}" in response.json()["detail"]
    finally:
        store.delete("verified:order")
        store.close()
