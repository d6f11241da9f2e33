"""Reliability drills on real servers: Redis restarted mid-conversation, the LLM killed mid-answer, one client
flooding while another is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.checkpointer import make_checkpointer, new_session_id
from graph.graph import build_graph
from graph.turns import Failed, Finished, Token, get_history, run_turn
from ingest.pipeline import ingest
from launcher.services import free_port, start_llm, start_redis
from settings import Settings

pytestmark = pytest.mark.slow


async def turn(agent: Any, session: str, message: str) -> list[Any]:
    return [e async for e in run_turn(agent, session_id=session, message=message)]


async def test_a_conversation_continues_after_redis_restarts(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    redis = start_redis(tmp_path / "redis", port, tmp_path, prefer="redis")
    own = settings.model_copy(update={"redis_url": redis.url})
    saver = make_checkpointer(redis.url, 600)
    agent = build_graph(saver, own)
    session = new_session_id()
    try:
        await turn(agent, session, "I want to talk to a human")  # no LLM needed: escalation opens a ticket
        redis.stop()
        redis = start_redis(tmp_path / "redis", port, tmp_path, prefer="redis")
        second = await turn(agent, session, "Still there? I need a human")
        assert isinstance(second[-1], Finished)
        history = await get_history(agent, session)
        assert [h["content"] for h in history if h["role"] == "user"] == [
            "I want to talk to a human",
            "Still there? I need a human",
        ]
        assert history[1]["ticket_id"] == history[3]["ticket_id"]  # the ticket survived too (AOF)
    finally:
        await saver.aclose()
        redis.stop()


async def test_the_llm_killed_mid_answer_gives_an_error_event_a_fallback_and_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "password.md").write_text(
        "# Resetting your password\n\nClick Forgot password on the sign-in page. The link is valid for 30 minutes."
    )
    ingest([tmp_path / "kb"], settings)
    llm = start_llm(Settings().gguf_path, free_port(), tmp_path)
    own = settings.model_copy(update={"llm_base_url": [llm.url], "llm_max_tokens": 400})
    saver = make_checkpointer(own.redis_url, 600)  # type: ignore[arg-type]
    agent = build_graph(saver, own)
    session = new_session_id()
    events: list[Any] = []
    try:
        await turn(agent, session, "I want to talk to a human")  # an earlier turn that must not be lost
        async for event in run_turn(
            agent, session_id=session, message="How do I reset my password? Explain every step in detail."
        ):
            events.append(event)
            if isinstance(event, Token) and len(events) == 3:
                llm.kill()
    finally:
        llm.stop()
        await saver.aclose()
    kinds = [type(e) for e in events]
    assert Failed in kinds and kinds[-1] is Finished
    assert Token in kinds[kinds.index(Failed) :]  # the fallback text follows the error
    history = await get_history(build_graph(make_checkpointer(own.redis_url, 600), own), session)  # type: ignore[arg-type]
    assert [h["role"] for h in history] == ["user", "assistant", "user", "assistant"]
    assert "Escalate to human" in history[-1]["content"]


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
