"""Reliability drills on real servers: Redis restarted mid-conversation, the LLM killed mid-answer, one client
flooding while another is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from api.sessions import new_session_id
from graph.prompts import FALLBACK
from graph.turns import Turn
from helpers.agent import agent_for, kinds
from ingest.pipeline import ingest
from launcher.services import free_port, start_llm, start_redis
from settings import Settings

pytestmark = pytest.mark.slow


async def test_a_conversation_continues_after_redis_restarts(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    redis = start_redis(tmp_path / "redis", port, tmp_path, prefer="redis")
    own = settings.model_copy(update={"redis_url": redis.url, "session_ttl_seconds": 600})
    session = new_session_id()
    try:
        async with agent_for(own) as agent:
            await agent.turn(session, "I want to talk to a human")  # no LLM needed: escalation opens a ticket
            redis.stop()
            redis = start_redis(tmp_path / "redis", port, tmp_path, prefer="redis")
            second = await agent.turn(session, "Still there? I need a human")
            assert kinds(second)[-1] == "done"
            history = await agent.history(session)
        assert [h["content"] for h in history if h["role"] == "user"] == [
            "I want to talk to a human",
            "Still there? I need a human",
        ]
        assert history[1]["ticket_id"] == history[3]["ticket_id"]  # the ticket survived too (AOF)
    finally:
        redis.stop()


async def test_the_llm_killed_mid_answer_keeps_the_shown_text_and_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """The real llama.cpp server killed after a few tokens: an error event with the fallback as a notice, the
    partial answer stored marked interrupted, the earlier turn still there."""
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "password.md").write_text(
        "# Resetting your password\n\nClick Forgot password on the sign-in page. The link is valid for 30 minutes."
    )
    ingest([tmp_path / "kb"], settings)
    llm = start_llm(Settings().gguf_path, free_port(), tmp_path)
    own = settings.model_copy(update={"llm_base_url": [llm.url], "llm_max_tokens": 400, "session_ttl_seconds": 600})
    session = new_session_id()
    events: list[Any] = []
    try:
        async with agent_for(own) as agent:
            await agent.turn(session, "I want to talk to a human")  # an earlier turn that must not be lost
            question = "How do I reset my password? Explain every step in detail."
            async for event in Turn(agent.graph, agent.context, session_id=session, message=question).events():
                events.append(event)
                if event["event"] == "token" and sum(e["event"] == "token" for e in events) == 5:
                    llm.kill()
            history = await agent.history(session)
    finally:
        llm.stop()
    assert "error" in kinds(events) and kinds(events)[-1] == "done"
    assert next(e for e in events if e["event"] == "error")["message"] == FALLBACK
    assert [h["role"] for h in history] == ["user", "assistant", "user", "assistant"]
    assert history[-1]["interrupted"] is True and history[-1]["content"] == events[-1]["text"]
    assert FALLBACK not in history[-1]["content"] and history[-1]["content"].strip()


def test_a_flood_from_one_address_gets_429_while_another_client_is_served(app_server: Any) -> None:
    """Per-IP limits on /chat: 127.0.0.2 is another loopback address, i.e. another client."""
    from helpers.app_process import run_app

    env = {**app_server.env, "RATE_LIMIT_IP": "20/minute", "RATE_LIMIT_SESSION": "1000/minute"}
    with run_app(Path(app_server.log).parent / "flood", env) as app:
        flooder = httpx.Client(base_url=app.url, timeout=30)
        other = httpx.Client(base_url=app.url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        body = {"message": "I need a person", "escalate": True}  # no LLM call: the flood stays quick
        statuses = [flooder.post("/chat", json=body).status_code for _ in range(30)]
        assert statuses[:5] == [200] * 5 and statuses.count(429) >= 8
        refused = flooder.post("/chat", json=body)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert other.post("/chat", json=body).status_code == 200
        flooder.close()
        other.close()
