"""The analytics routes on the real app (`app_server`: uvicorn, Redis, SmolLM2 through llama.cpp, Chroma): turns
through /chat and ratings become the day's figures, the range is checked with a sentence, the CSV holds the same
figures, the unanswered questions are the review report's, and the analytics keys hold no customer text."""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from conftest import API_ADMIN_TOKEN
from helpers.sse import chat_events, payload
from helpers.wait import eventually
from tools.analytics import ANSWERED

pytestmark = [pytest.mark.slow, pytest.mark.llm]

ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}
TODAY = datetime.now(UTC).date().isoformat()
EMAIL = "dora.analytics@example.org"


def today(client: httpx.Client) -> dict[str, Any]:
    params = {"from": TODAY, "to": TODAY, "unanswered": "false"}  # the figures alone: no embedding per poll
    response = client.get("/api/analytics", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def outcomes(app_server: Any, session_id: str) -> list[str]:
    """What the conversation log (a separate store) says each turn of the session came to."""
    store = redis.Redis.from_url(app_server.env["REDIS_URL"], decode_responses=True)
    try:
        records = [json.loads(v) for key in store.scan_iter(match="log:day:*") for v in store.hvals(key)]
    finally:
        store.close()
    return [r["flags"]["outcome"] for r in records if r["session_id"] == session_id]


@pytest.fixture(scope="module")
def traffic(app_server: Any) -> dict[str, Any]:
    """Three turns in two conversations (one escalated by the caller; one LLM answer, the machine is shared) and
    four ratings, with personal data and a marker word in the texts; the day's report before and once everything
    was counted."""
    word = f"quokka{secrets.token_hex(4)}"
    with httpx.Client(base_url=app_server.url, timeout=180) as client:
        before = today(client)
        first = chat_events(client, {"message": f"I am {EMAIL}. How long is the password reset link valid? {word}"})
        session_id = payload(first, "session")["session_id"]
        second = chat_events(client, {"message": "Thanks!", "session_id": session_id})  # small talk: no LLM call
        call_me = f"Please call me about my invoice, {EMAIL} {word}"
        escalated = chat_events(client, {"message": call_me, "escalate": True})
        turns = [first, second, escalated]
        escalated_session = payload(escalated, "session")["session_id"]
        m1, m2 = payload(first, "done")["message_id"], payload(second, "done")["message_id"]
        for message_id, rating in ((m1, "up"), (m1, "down"), (m1, "down"), (m2, "up")):

            def rate(message_id: str = message_id, rating: str = rating) -> bool:  # 404 until the answer is recorded
                body = {"rating": rating, "comment": word}
                return client.post(f"/api/messages/{message_id}/feedback", json=body).status_code == 201

            assert eventually(rate, timeout=15)
        after = eventually(
            lambda: (r := today(client))["totals"]["turns"] - before["totals"]["turns"] >= 3 and r, timeout=30
        )
        assert after, "the after-turn recorder never counted the three turns"
        logged = eventually(lambda: len(outcomes(app_server, session_id)) == 2 and outcomes(app_server, session_id))
    return {
        "word": word,
        "before": before["totals"],
        "after": after["totals"],
        "turns": turns,
        "ids": [session_id, escalated_session, m1, m2, payload(escalated, "escalated")["ticket_id"]],
        "outcomes": logged,
    }


def test_turns_and_ratings_become_the_days_figures(traffic: dict[str, Any]) -> None:
    before, after = traffic["before"], traffic["after"]
    change = {name: after[name] - before[name] for name in ("conversations", "turns", "deflected")}
    change |= {name: after[name] - before[name] for name in ("escalated_conversations", "thumbs_up", "thumbs_down")}
    answered = bool(set(ANSWERED) & set(traffic["outcomes"]))  # the tiny model may offer a person: read, not assumed
    assert change == {
        "conversations": 2,  # the two-turn conversation counts once
        "turns": 3,
        "deflected": 1 if answered else 0,  # the escalated conversation is never deflected
        "escalated_conversations": 1,
        "thumbs_up": 1,  # m1 up → down (moved), m1 down again (no change), m2 up
        "thumbs_down": 1,
    }
    assert after["escalations"]["caller_request"] - before["escalations"]["caller_request"] == 1
    first_tokens = sum(payload(turn, "done")["timings"]["first_token_ms"] is not None for turn in traffic["turns"])
    assert after["first_token_ms"]["count"] - before["first_token_ms"]["count"] == first_tokens
    p50, p95 = after["first_token_ms"]["p50"], after["first_token_ms"]["p95"]
    assert p50 is not None and p95 >= p50


def test_the_range_is_checked_with_a_sentence(app_server: Any, traffic: dict[str, Any]) -> None:
    now = datetime.now(UTC).date()
    with httpx.Client(base_url=app_server.url, timeout=60) as client:
        assert client.get("/api/analytics").status_code == 401
        assert client.get("/api/analytics.csv").status_code == 401
        assert client.get("/api/analytics", headers={"Authorization": "Bearer wrong"}).status_code == 403
        bad = {
            "from=2025-13-01": "YYYY-MM-DD",
            "to=yesterday": "YYYY-MM-DD",
            "from=2025-1-5": "YYYY-MM-DD",
            "from=2025-W01-1": "YYYY-MM-DD",  # an ISO week date is 10 characters too
            "to=0001-01-05": "too early",  # the default 30 days would start before year 1
            f"from={now}&to={now - timedelta(1)}": "swap them",
            f"to={now + timedelta(1)}": "in the future",
            f"from={now - timedelta(400)}&to={now}": "401 days",  # ANALYTICS_RETENTION_DAYS=400 by default
        }
        for query, words in bad.items():
            for route in ("/api/analytics", "/api/analytics.csv"):
                response = client.get(f"{route}?{query}", headers=ADMIN)
                assert response.status_code == 422, (query, response.text)
                assert words in response.json()["detail"], (query, response.json())
        widest = client.get(f"/api/analytics?from={now - timedelta(399)}&to={now}", headers=ADMIN)
        assert widest.status_code == 200 and len(widest.json()["days"]) == 400
        default = client.get("/api/analytics", headers=ADMIN).json()
        assert (default["from"], default["to"], len(default["days"])) == (str(now - timedelta(29)), str(now), 30)


def test_the_csv_holds_the_same_figures(app_server: Any, traffic: dict[str, Any]) -> None:
    first = (datetime.now(UTC).date() - timedelta(6)).isoformat()
    with httpx.Client(base_url=app_server.url, timeout=60, headers=ADMIN) as client:
        report = client.get("/api/analytics", params={"from": first, "to": TODAY}).json()
        response = client.get("/api/analytics.csv", params={"from": first, "to": TODAY})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="analytics-{first}-{TODAY}.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["date"] for row in rows] == [day["date"] for day in report["days"]] + ["total"]
    for row, figures in zip(rows, [*report["days"], report["totals"]], strict=True):
        assert int(row["conversations"]) == figures["conversations"]
        assert int(row["deflected"]) == figures["deflected"]
        assert int(row["escalated_caller_request"]) == figures["escalations"]["caller_request"]
        assert (int(row["thumbs_up"]), int(row["thumbs_down"])) == (figures["thumbs_up"], figures["thumbs_down"])
        p95 = figures["first_token_ms"]["p95"]
        assert row["first_token_p95_ms"] == ("" if p95 is None else str(p95))
    assert int(rows[-1]["conversations"]) >= traffic["after"]["conversations"]


def test_the_unanswered_questions_are_the_review_reports(app_server: Any, traffic: dict[str, Any]) -> None:
    """Reused, not redone: for today, the review report's groups (all kept items are today's in a test run);
    for a day without items, none."""
    yesterday = (datetime.now(UTC).date() - timedelta(1)).isoformat()
    with httpx.Client(base_url=app_server.url, timeout=120, headers=ADMIN) as client:
        groups = eventually(lambda: client.get("/api/review/unanswered").json()["groups"], timeout=15)
        mine = client.get("/api/analytics", params={"from": TODAY, "to": TODAY}).json()["unanswered"]
        before = client.get("/api/analytics", params={"from": yesterday, "to": yesterday}).json()["unanswered"]
    assert groups and mine == groups[:10]
    assert before == []


def test_analytics_keys_hold_no_customer_text_or_ids_and_all_expire(app_server: Any, traffic: dict[str, Any]) -> None:
    store = redis.Redis.from_url(app_server.env["REDIS_URL"], decode_responses=True)
    try:
        keys = list(store.scan_iter(match="analytics:*"))
        dumped = "\n".join(key + json.dumps(store.hgetall(key)) for key in keys)
        ttls = {key: store.ttl(key) for key in keys}
    finally:
        store.close()
    assert keys
    secrets_of_the_customer = [traffic["word"], EMAIL, "password", "invoice", *traffic["ids"]]
    assert [text for text in secrets_of_the_customer if text in dumped] == []
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    day = f"analytics:day:{TODAY}"
    assert 399 * 86400 < ttls[day] <= 401 * 86400


def failures(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics", headers=ADMIN).text
    found = re.findall(r'^analytics_record_failures_total\{kind="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return {kind: float(value) for kind, value in found}


def test_a_failing_count_never_breaks_a_turn_or_a_rating(app_server: Any, traffic: dict[str, Any]) -> None:
    """Today's counters made unwritable (a string where the hash goes): the turn, its log record and its rating
    still happen; each failure is logged and counted in /metrics."""
    store = redis.Redis.from_url(app_server.env["REDIS_URL"], decode_responses=True)
    key = f"analytics:day:{TODAY}"
    saved, ttl = store.hgetall(key), store.ttl(key)
    store.delete(key)
    store.set(key, "not a hash", ex=600)
    try:
        with httpx.Client(base_url=app_server.url, timeout=120) as client:
            before = failures(client)
            events = chat_events(client, {"message": "Hello!"})  # small talk: no LLM call
            session_id, message_id = payload(events, "session")["session_id"], payload(events, "done")["message_id"]
            assert eventually(lambda: outcomes(app_server, session_id), timeout=15) == ["small_talk"]
            rate = f"/api/messages/{message_id}/feedback"
            assert eventually(lambda: client.post(rate, json={"rating": "up"}).status_code == 201, timeout=15)
            after = failures(client)
    finally:
        store.delete(key)
        if saved:
            store.hset(key, mapping=saved)
            store.expire(key, max(ttl, 1))
        store.close()
    assert after.get("turn", 0) == before.get("turn", 0) + 1
    assert after.get("rating", 0) == before.get("rating", 0) + 1
