"""Redis that fails over: the app on a Sentinel URL (a real primary with AOF, a replica, one sentinel), the
primary SIGKILLed mid-conversation, the conversation going on on the promoted replica.

What a failover loses is measured by bench/failover_loss.py (figures in docs/deployment.md)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from helpers.app_process import run_app
from helpers.sentinel import start_trio
from helpers.sse import chat_events, names, payload
from settings import setting_problem
from tools.redis_client import parse_sentinel_url

pytestmark = pytest.mark.slow  # needs Debian's redis-sentinel (.ci/run installs it): missing, the test fails
NO_RATE_LIMITS = {
    name: "100000/minute"
    for name in ("RATE_LIMIT_IP", "RATE_LIMIT_SESSION", "RATE_LIMIT_TICKETS_IP", "RATE_LIMIT_TICKETS_SESSION")
} | {"RATE_LIMIT_SESSIONS_IP": "100000/minute", "RATE_LIMIT_FEEDBACK_IP": "100000/minute"}


def test_a_conversation_goes_on_on_the_promoted_replica_and_keeps_its_ticket(tmp_path: Path) -> None:
    trio = start_trio(tmp_path / "redis")
    env = {"REDIS_URL": trio.url, "REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "2000", **NO_RATE_LIMITS}
    try:
        with run_app(tmp_path / "app", env) as app, httpx.Client(base_url=app.url, timeout=60) as client:
            # No LLM needed: escalation opens a ticket (a write that must survive the failover).
            first = chat_events(client, {"message": "I need a person about my refund", "escalate": True})
            session_id = payload(first, "session")["session_id"]
            ticket_id = payload(first, "escalated")["ticket_id"]
            primary = redis.Redis(port=trio.primary_port, decode_responses=True)
            waits = primary.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
            primary.close()
            trio.kill_primary()
            # At once, while the sentinel has not yet noticed (down-after 1 s): the app's retries carry the turn
            # over to the replica once it is promoted.
            second = chat_events(client, {"message": "Still there?", "session_id": session_id, "escalate": True})
            assert trio.master_port() == trio.replica_port
            assert names(second)[-1] == "done" and payload(second, "session")["session_id"] == session_id
            history = client.get(f"/api/sessions/{session_id}/history").json()["messages"]
            ready = client.get("/ready")
        assert [m["content"] for m in history if m["role"] == "user"] == [
            "I need a person about my refund",
            "Still there?",
        ]
        assert payload(second, "escalated")["ticket_id"] == ticket_id  # the same ticket, found on the new primary
        promoted = redis.Redis(port=trio.replica_port, decode_responses=True)
        assert promoted.exists(f"ticket:{ticket_id}") and promoted.info("replication")["role"] == "master"
        promoted.close()
        assert waits >= 1  # REDIS_WAIT_REPLICAS=1: the ticket write was followed by WAIT on the primary
        assert ready.status_code == 200 and ready.json()["status"] in ("ready", "degraded")  # no LLM: degraded
    finally:
        trio.stop()


def test_the_sentinel_url_form_is_parsed_and_bad_ones_are_explained() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:s3cret@10.0.0.1:26379,sentinel-b:26380/mymaster/2")
    assert parsed.sentinels == [("10.0.0.1", 26379), ("sentinel-b", 26380)]
    assert (parsed.service, parsed.db, parsed.password) == ("mymaster", 2, "s3cret")
    assert setting_problem("redis_url", "redis+sentinel://h:26379/mymaster") is None
    assert "host:port" in (setting_problem("redis_url", "redis+sentinel://h/mymaster") or "")
    assert "/service" in (setting_problem("redis_url", "redis+sentinel://h:26379") or "")
    assert "redis+sentinel://" in (setting_problem("redis_url", "sentinel://h:26379/m") or "")
