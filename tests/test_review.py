"""Quality review: escalations, low-relevance answers, thumbs-down and a sample reach the leads' queue; the
unanswered questions are grouped by meaning, largest gap first."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import API_ADMIN_TOKEN
from helpers.sse import chat_events, payload
from helpers.wait import eventually
from settings import Settings
from tools.embeddings import get_embeddings
from tools.review import unanswered_report

ADMIN = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}


def test_unanswered_questions_are_grouped_by_meaning_largest_group_first() -> None:
    asked = [
        "How do I pay with PayPal?",
        "Can I pay using PayPal?",
        "Is PayPal accepted as payment?",
        "Do you ship to Mars?",
    ]
    items = [{"kind": "escalation", "question": q} for q in asked] + [{"kind": "sampled", "question": "Hello"}]
    groups = unanswered_report(items, get_embeddings(Settings(_env_file=None)).embed_documents)  # type: ignore[call-arg]
    assert [g["size"] for g in groups] == [3, 1]
    assert set(groups[0]["questions"]) == set(asked[:3])


@pytest.mark.slow
def test_escalations_and_thumbs_down_reach_the_review_queue(app_server: Any) -> None:
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        assert client.get("/api/review").status_code == 401
        escalated = chat_events(client, {"message": "Do you sell gift cards for Mars?", "escalate": True})
        ticket_id = payload(escalated, "escalated")["ticket_id"]

        def escalations() -> list[str]:  # written by the after-turn recorder, once `done` has been sent
            queue = client.get("/api/review", params={"kind": "escalation"}, headers=ADMIN).json()["items"]
            return [item.get("ticket_id") for item in queue]

        assert eventually(lambda: ticket_id in escalations(), timeout=15)

        answered = chat_events(client, {"message": "How long is the password reset link valid?"})
        message_id = payload(answered, "done")["message_id"]
        rated = client.post(f"/api/messages/{message_id}/feedback", json={"rating": "down", "comment": "too vague"})
        assert rated.status_code == 201
        downs = client.get("/api/review", params={"kind": "thumbs_down"}, headers=ADMIN).json()["items"]
        assert message_id in [item["message_id"] for item in downs]

        report = client.get("/api/review/unanswered", headers=ADMIN)
        assert report.status_code == 200
        assert any("Mars" in q for group in report.json()["groups"] for q in group["questions"])
        assert client.get("/api/review", params={"kind": "bogus"}, headers=ADMIN).status_code == 422


@pytest.mark.slow
def test_a_second_thumbs_down_on_one_answer_updates_its_review_item(app_server: Any) -> None:
    """One item per message for the leads, however often its answer is rated down."""
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        answered = chat_events(client, {"message": "How long is the password reset link valid?"})
        message_id = payload(answered, "done")["message_id"]

        def rate(comment: str) -> int:
            return client.post(
                f"/api/messages/{message_id}/feedback", json={"rating": "down", "comment": comment}
            ).status_code

        assert eventually(lambda: rate("too vague") == 201)
        assert [rate(f"still vague ({n})") for n in range(3)] == [201] * 3
        downs = client.get("/api/review", params={"kind": "thumbs_down"}, headers=ADMIN).json()["items"]
        (item,) = [item for item in downs if item["message_id"] == message_id]
        assert item["comment"] == "still vague (2)" and item["count"] >= 4 and "thumbs_down" in item["kinds"]
