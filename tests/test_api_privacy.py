"""What the app keeps of a customer's personal data, checked in the real Redis and the real access log
(docs/privacy.md): redacted everywhere but the live conversation and its ticket, every key expiring, and
nothing left but the ticket once the session is erased."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from langchain_core.messages import HumanMessage
from langserve import RemoteRunnable

from conftest import API_ADMIN_TOKEN, ROOT
from helpers.sse import chat_events, payload
from helpers.wait import eventually
from launcher.services import free_port

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}
EMAIL = "bob.privacy@example.org"
CARD = "4111 1111 1111 1111"
PHONE = "+44 20 7946 0958"
RAW = (EMAIL.encode(), b"4111 1111", b"1111 1111 1111", b"7946 0958", b"4111111111111111")
# The live conversation is kept as typed (a person may need it, via a ticket) until it expires or is erased.
# The conversation as typed: its checkpoints, and the resumable stream of its latest answer (api/answer_stream.py,
# what the page showed; erased with the session, gone ANSWER_RESUME_SECONDS after the answer).
CONVERSATION = (b"chat:", b"chat_", b"api:answer:")


def logged(app_server: Any, session_id: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(app_server.env["REDIS_URL"], decode_responses=True)
    try:
        return [
            json.loads(value)
            for key in client.scan_iter(match="log:day:*")
            for value in client.hvals(key)
            if json.loads(value)["session_id"] == session_id
        ]
    finally:
        client.close()


def dump(store: redis.Redis) -> dict[bytes, tuple[bytes, int]]:
    """Every key in Redis → (its name and whole value as bytes, its TTL: -1 = none)."""
    found: dict[bytes, tuple[bytes, int]] = {}
    for key in store.scan_iter(match="*", count=1000):
        kind = store.type(key)
        if kind == b"string":
            parts = [store.get(key) or b""]
        elif kind == b"hash":
            parts = [b for pair in store.hgetall(key).items() for b in pair]
        elif kind == b"set":
            parts = list(store.smembers(key))
        elif kind == b"zset":
            parts = list(store.zrange(key, 0, -1))
        elif kind == b"list":
            parts = list(store.lrange(key, 0, -1))
        elif kind == b"stream":  # live takeover events (tools/live.py)
            parts = [b for _, fields in store.xrange(key) for pair in fields.items() for b in pair]
        else:  # modules' types: this app writes none
            parts = [kind]
        found[key] = (key + b"\n" + b"\n".join(unpacked(part) for part in parts), store.ttl(key))
    return found


def unpacked(value: bytes) -> bytes:
    """The value, plus what its base64 blobs hold: the checkpointer keeps its msgpack as JSON {"t": …, "d": base64}."""
    blobs = [base64.b64decode(blob) for blob in re.findall(rb'"d": ?"([A-Za-z0-9+/=]+)"', value)]
    return b"\n".join([value, *blobs])


def holding(found: dict[bytes, tuple[bytes, int]], *needles: str | bytes) -> dict[bytes, int]:
    """The keys whose name or value holds any of `needles` → their TTL."""
    wanted = [n.encode() if isinstance(n, str) else n for n in needles]
    return {key: ttl for key, (text, ttl) in found.items() if any(n in text for n in wanted)}


def test_a_turn_is_logged_with_personal_data_redacted_and_erased_with_its_session(app_server: Any) -> None:
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        message = f"I am bob@example.org, phone {PHONE}, card {CARD}. How do I reset my password?"
        events = chat_events(client, {"message": message, "session_id": None})
        session_id = payload(events, "session")["session_id"]
        (record,) = eventually(lambda: logged(app_server, session_id))
        assert record["message_id"] == payload(events, "done")["message_id"]
        assert not [raw for raw in RAW if raw.decode() in json.dumps(record, ensure_ascii=False)], record
        assert "[EMAIL]" in record["question"] and "[PHONE]" in record["question"]
        assert "card [CARD]." in record["question"]  # not "card [PHONE] 1111."
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        assert logged(app_server, session_id) == []


def test_personal_data_stays_only_in_the_conversation_and_its_ticket_and_every_other_key_expires(
    app_server: Any,
) -> None:
    """A turn, a rating, a search and a ticket, each with an e-mail address and a card number in it: afterwards the
    raw values are only in the conversation's checkpoints and the ticket; every key of the session but the ticket
    expires; after DELETE the ticket is all that is left, and the answer can no longer be rated."""
    store = redis.Redis.from_url(app_server.env["REDIS_URL"])
    word = f"zebra{secrets.token_hex(4)}"  # marks every text of this customer, raw or redacted
    pii = f"I am {EMAIL}, card {CARD}. {word}"
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        answered = chat_events(client, {"message": f"{pii} How do I reset my password?"})
        session_id = payload(answered, "session")["session_id"]
        message_id = payload(answered, "done")["message_id"]
        assert eventually(lambda: logged(app_server, session_id))
        rating = {"rating": "down", "comment": f"Not helpful. {pii}"}
        assert client.post(f"/api/messages/{message_id}/feedback", json=rating).status_code == 201
        assert client.get("/api/search", params={"q": f"password {EMAIL} {CARD}"}).status_code == 200
        ticket = client.post(
            "/api/tickets", json={"session_id": session_id, "reason": f"Call me. {pii}", "contact_email": EMAIL}
        )
        assert ticket.status_code == 201, ticket.text
        ticket_key = f"ticket:{ticket.json()['ticket_id']}".encode()

        found = dump(store)
        raw = holding(found, *RAW)
        assert raw and all(key == ticket_key or key.startswith(CONVERSATION) for key in raw), sorted(raw)
        assert ticket_key in raw and any(key.startswith(CONVERSATION) for key in raw)
        texts = holding(found, word)
        kinds = {key.split(b":")[0] for key in texts}
        # b"api": the answer's resumable stream, when the model's words repeat the question's
        assert {b"answer", b"feedback", b"review", b"log", b"chat", b"ticket"} == kinds - {b"api"}, sorted(texts)
        assert [key for key, ttl in texts.items() if ttl < 0] == [ticket_key], sorted(texts.items())

        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        found = dump(store)
        assert list(holding(found, *RAW)) == [ticket_key]
        assert list(holding(found, word, session_id, message_id)) == [ticket_key]
        refused = client.post(f"/api/messages/{message_id}/feedback", json={"rating": "up"})
        assert refused.status_code == 404 and "expired or was deleted" in refused.json()["detail"]
        assert client.get(f"/api/tickets/{ticket_key.decode().split(':')[1]}", headers=ADMIN).status_code == 200
    store.close()


def test_an_agent_turn_keeps_personal_data_only_in_its_conversation_and_erases_it(app_server: Any) -> None:
    """/agent (LangServe) records its turns as /chat does: redacted outside the checkpoints, gone after DELETE."""
    store = redis.Redis.from_url(app_server.env["REDIS_URL"])
    word = f"zebra{secrets.token_hex(4)}"
    with httpx.Client(base_url=app_server.url, timeout=300) as client:
        session_id = client.post("/api/sessions").json()["session_id"]
        remote = RemoteRunnable(f"{app_server.url}/agent/", headers={"X-Session-Id": session_id}, timeout=300)
        reply = remote.invoke({"messages": [HumanMessage(f"I am {EMAIL}, card {CARD}. {word} reset password?")]})
        message_id = reply["message_id"]
        assert eventually(lambda: store.exists(f"answer:{message_id}", f"log:session:{session_id}") == 2)
        found = dump(store)
        texts = holding(found, word)
        assert {b"answer", b"log", b"chat"} <= {key.split(b":")[0] for key in texts}, sorted(texts)
        # This turn's keys (they hold its word): the raw values only in its checkpoints. Other tests' tickets, which
        # keep what was typed, share this Redis.
        raw_outside = sorted(key for key in holding(found, *RAW) if key in texts and not key.startswith(CONVERSATION))
        assert raw_outside == [], raw_outside
        assert all(ttl > 0 for ttl in texts.values()), sorted(texts.items())
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        assert holding(dump(store), word, session_id, message_id) == {}
    store.close()


def test_an_answer_recorded_after_its_conversation_was_erased_cannot_be_rated(app_server: Any) -> None:
    """The after-turn recorder runs in the background; an answer record that reached Redis after the erase (as a
    late recorder would write it) belongs to no conversation any more: 404, and no rating is kept."""
    store = redis.Redis.from_url(app_server.env["REDIS_URL"], decode_responses=True)
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        answered = chat_events(client, {"message": "How do I reset my password?"})
        session_id = payload(answered, "session")["session_id"]
        message_id = payload(answered, "done")["message_id"]
        record = eventually(lambda: store.get(f"answer:{message_id}"))
        assert record and client.delete(f"/api/sessions/{session_id}").status_code == 204
        store.set(f"answer:{message_id}", record, ex=60)
        refused = client.post(f"/api/messages/{message_id}/feedback", json={"rating": "down"})
        assert refused.status_code == 404 and refused.json()["detail"]
        assert not store.exists(f"feedback:msg:{message_id}")
        unknown = client.post("/api/messages/m_0000/feedback", json={"rating": "down"})
        assert unknown.status_code == 404 and "No such answer" in unknown.json()["detail"]
        assert client.post("/api/messages/a:b/feedback", json={"rating": "down"}).status_code == 404
    store.delete(f"answer:{message_id}")
    store.close()


def test_erasing_a_session_leaves_no_key_or_entry_of_it_in_redis_but_its_ticket(app_server: Any) -> None:
    """Answer, rating, review item, ticket pointer, log record, rate-limit counter, checkpoints: after the erase,
    no Redis key names the session and no value holds its ids. The ticket stays."""
    store = redis.Redis.from_url(app_server.env["REDIS_URL"])
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        answered = chat_events(client, {"message": "How do I reset my password?"})
        session_id = payload(answered, "session")["session_id"]
        message_id = payload(answered, "done")["message_id"]
        rate = {"rating": "down", "comment": "not what I asked"}
        assert eventually(lambda: client.post(f"/api/messages/{message_id}/feedback", json=rate).status_code == 201)
        escalated = chat_events(client, {"message": "I need a person", "session_id": session_id, "escalate": True})
        ticket_id = payload(escalated, "escalated")["ticket_id"]
        assert eventually(lambda: len(logged(app_server, session_id)) == 2)

        before = {key.decode() for key in holding(dump(store), session_id, message_id)}
        kinds = ("chat", "answer:", "feedback:", "review:", "log:", "ticket:open:", "ratelimit", "api:session:")
        for kind in (*kinds, "api:answer:", "api:answers:"):  # the latest answer's resumable stream and its pointer
            assert any(key.startswith(kind) for key in before), (kind, sorted(before))
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        assert [key.decode() for key in holding(dump(store), session_id, message_id)] == [f"ticket:{ticket_id}"]
        assert client.get(f"/api/tickets/{ticket_id}", headers=ADMIN).json()["session_id"] == session_id
    store.close()


def test_access_logs_keep_the_path_but_not_the_query_string(app_server: Any, tmp_path: Path) -> None:
    """uvicorn's access log at level info, as `./run` and the container run it: a search for an e-mail address and
    a card number is logged as `GET /api/search`, without what was searched."""
    port = free_port()
    log_path = tmp_path / "access.log"
    env = {**os.environ, **app_server.env, "HF_HUB_OFFLINE": "1", "INGEST_ON_START": "", "DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "uvicorn", "server:create_app", "--factory", "--host", "127.0.0.1"]
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--log-level", "info", "--no-proxy-headers"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert process.poll() is None, log_path.read_text()
        searched = httpx.get(url + "/api/search", params={"q": f"refund {EMAIL} {CARD}", "k": 2}, timeout=60)
        assert searched.status_code == 200
        lines = eventually(lambda: [line for line in log_path.read_text().splitlines() if "/api/search" in line])
    finally:
        process.terminate()
        process.wait(15)
    assert lines and all('"GET /api/search HTTP/1.1" 200' in line for line in lines), lines
    text = log_path.read_text()
    assert "example.org" not in text and "4111" not in text and "q=" not in text, text
