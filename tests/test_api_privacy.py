"""Every chat turn is logged redacted; erasing the session erases its log (real app, real Redis)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis

from helpers.sse import chat_events, payload
from helpers.wait import eventually

pytestmark = pytest.mark.slow


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


def test_a_turn_is_logged_with_personal_data_redacted_and_erased_with_its_session(app_server: Any) -> None:
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        message = "I am bob@example.org, phone +44 20 7946 0958: how do I reset my password?"
        events = chat_events(client, {"message": message, "session_id": None})
        session_id = payload(events, "session")["session_id"]
        (record,) = eventually(lambda: logged(app_server, session_id))
        assert record["message_id"] == payload(events, "done")["message_id"]
        assert "bob@example.org" not in json.dumps(record) and "7946" not in json.dumps(record)
        assert "[EMAIL]" in record["question"] and "[PHONE]" in record["question"]
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        assert logged(app_server, session_id) == []


def test_erasing_a_session_leaves_no_key_or_entry_of_it_in_redis_but_its_ticket(app_server: Any) -> None:
    """Answer, rating, review item, ticket pointer, log record, rate-limit counter, checkpoints: after the erase,
    no Redis key names the session and no shared hash or queue holds its entries. The ticket stays."""
    store = redis.Redis.from_url(app_server.env["REDIS_URL"], decode_responses=True)
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        answered = chat_events(client, {"message": "How do I reset my password?"})
        session_id = payload(answered, "session")["session_id"]
        message_id = payload(answered, "done")["message_id"]
        rate = {"rating": "down", "comment": "not what I asked"}
        assert eventually(lambda: client.post(f"/api/messages/{message_id}/feedback", json=rate).status_code == 201)
        escalated = chat_events(client, {"message": "I need a person", "session_id": session_id, "escalate": True})
        ticket_id = payload(escalated, "escalated")["ticket_id"]
        assert eventually(lambda: len(logged(app_server, session_id)) == 2)

        def traces() -> dict[str, list[str]]:
            return {
                "keys": [k for k in store.scan_iter(match="*") if session_id in k or message_id in k],
                "feedback": [f for f in store.hkeys("feedback") if f == message_id],
                "review": [m for m in store.zrange("review:queue", 0, -1) if session_id in m],
                "log": [v for k in store.scan_iter(match="log:day:*") for v in store.hvals(k) if session_id in v],
            }

        before = traces()
        assert before["feedback"] and before["review"] and before["log"]
        assert any(k.startswith("ticket:open:") for k in before["keys"]) and any(
            "ratelimit" in k for k in before["keys"]
        )
        assert any(k.startswith("chat") for k in before["keys"]) and any(
            k.startswith("answer:") for k in before["keys"]
        )
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        assert traces() == {"keys": [], "feedback": [], "review": [], "log": []}
        admin = {"Authorization": f"Bearer {app_server.env['ADMIN_TOKEN']}"}
        assert client.get(f"/api/tickets/{ticket_id}", headers=admin).json()["session_id"] == session_id
    store.close()
