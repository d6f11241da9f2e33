"""Several LLM instances: two real llama.cpp servers, one killed and brought back mid-test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from api.sessions import new_session_id
from graph.llm import chat_model
from graph.llm_pool import AllInstancesDown, LLMPool
from helpers.agent import agent_for, first, kinds, text_of
from helpers.app_process import seed_knowledge_base
from launcher.services import Service, free_port, start_llm
from settings import Settings

pytestmark = pytest.mark.slow
PROMPT = [HumanMessage("Say hello.")]


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[Service]]:
    servers = [start_llm(Settings().gguf_path, free_port(), tmp_path) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def pool_for(urls: list[str], cool_down: float = 60.0) -> LLMPool:
    settings = Settings(_env_file=None, llm_temperature=0, llm_max_tokens=8, llm_connect_timeout=1)  # type: ignore[call-arg]
    return LLMPool(urls, lambda url: chat_model(settings, url), cool_down=cool_down)


async def answer(pool: LLMPool, session: str | None = None) -> str:
    """Without a session the pool routes by load (as for the classifier); with one, by the session."""
    return "".join([str(chunk.content) async for chunk in pool.astream(PROMPT, session=session)])


async def test_requests_spread_over_healthy_instances(two_servers: list[Service]) -> None:
    pool = pool_for([s.url for s in two_servers])
    for _ in range(4):
        assert await answer(pool)
    assert [s["served"] for s in pool.status()] == [2, 2]


async def test_each_sessions_turns_stay_on_one_real_server(two_servers: list[Service]) -> None:
    """Session routing (the default) on two real llama.cpp servers: three turns of each session on one server."""
    pool = pool_for([s.url for s in two_servers])
    sessions = [new_session_id() for _ in range(4)]
    for session in sessions:
        home = pool.ranking(session)[0]
        before = home.served
        for _ in range(3):
            assert await answer(pool, session)
        assert home.served == before + 3
    assert sum(s["served"] for s in pool.status()) == 12


async def test_a_killed_instance_is_skipped_and_used_again_once_back(
    two_servers: list[Service], tmp_path: Path
) -> None:
    pool = pool_for([s.url for s in two_servers], cool_down=1.0)
    assert await answer(pool)
    killed = two_servers[0]
    killed.kill()
    for _ in range(4):  # every request is answered; the failure never reaches the caller
        assert await answer(pool)
    status = {s["url"]: s for s in pool.status()}
    assert status[killed.url]["last_error"] and not status[two_servers[1].url]["last_error"]

    port = int(killed.url.rsplit(":", 1)[1].split("/")[0])
    two_servers[0] = start_llm(Settings().gguf_path, port, tmp_path)
    await asyncio.sleep(1.1)  # past the cool-down: the instance is tried again
    for _ in range(3):
        assert await answer(pool)
    assert {s["url"]: s for s in pool.status()}[killed.url]["last_error"] is None


async def test_all_instances_down_is_one_clear_error() -> None:
    pool = pool_for([f"http://127.0.0.1:{free_port()}/v1", f"http://127.0.0.1:{free_port()}/v1"])
    started = time.perf_counter()
    with pytest.raises(AllInstancesDown):
        await answer(pool)
    assert time.perf_counter() - started < 10


async def test_the_agent_answers_through_the_live_instance_when_the_first_is_down(settings: Settings) -> None:
    """A question the knowledge base answers, so the turn really calls the LLM; the dead instance is the session's
    own (session routing, the default), so the turn must fail over."""
    seed_knowledge_base(settings)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    async with agent_for(settings.model_copy(update={"llm_base_url": [dead, *settings.llm_base_url]})) as agent:
        session = new_session_id()
        while agent.context.llm.ranking(session)[0].url != dead:  # a session whose own instance is the dead one
            session = new_session_id()
        events = await agent.turn(session, "How long is the password reset link valid?")
        status = {s["url"]: s for s in agent.context.llm.status()}
    assert first(events, "sources")["sources"], "the question must reach the answer step"
    assert "error" not in kinds(events) and "escalated" not in kinds(events)
    assert text_of(events).strip() and events[-1]["text"].strip()
    assert status[dead]["last_error"] and status[dead]["served"] == 0
    assert status[settings.llm_base_url[0]]["served"] == 1
