"""Every chat turn is logged redacted; erasing the session erases its log (real app, real Redis)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis

from helpers.sse import chat_events, payload

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
        (record,) = logged(app_server, session_id)
        assert record["message_id"] == payload(events, "done")["message_id"]
        assert "bob@example.org" not in json.dumps(record) and "7946" not in json.dumps(record)
        assert "[EMAIL]" in record["question"] and "[PHONE]" in record["question"]
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        assert logged(app_server, session_id) == []
