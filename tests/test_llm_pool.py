"""Several LLM instances: two real llama.cpp servers, one killed and brought back mid-test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from graph.checkpointer import make_checkpointer, new_session_id
from graph.graph import build_graph
from graph.llm import chat_model
from graph.llm_pool import AllInstancesDown, LLMPool
from graph.turns import Failed, Finished, Token, run_turn
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


async def answer(pool: LLMPool) -> str:
    return "".join([str(chunk.content) async for chunk in pool.astream(PROMPT)])


async def test_requests_spread_over_healthy_instances(two_servers: list[Service]) -> None:
    pool = pool_for([s.url for s in two_servers])
    for _ in range(4):
        assert await answer(pool)
    assert [s["served"] for s in pool.status()] == [2, 2]


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
    dead = f"http://127.0.0.1:{free_port()}/v1"
    failover = settings.model_copy(update={"llm_base_url": [dead, *settings.llm_base_url]})
    saver = make_checkpointer(failover.redis_url, 60)  # type: ignore[arg-type]
    agent = build_graph(saver, failover)
    agent.deps.llm.instances[0].down_until = 0  # the dead one is tried first in at least one of two turns
    try:
        for _ in range(2):
            events = [e async for e in run_turn(agent, session_id=new_session_id(), message="Hello?", escalate=False)]
            assert not [e for e in events if isinstance(e, Failed)]
            assert isinstance(events[-1], Finished)
    finally:
        await saver.aclose()
    assert [s["url"] for s in agent.deps.llm.status() if s["last_error"]] in ([dead], [])
    assert Token  # tokens may be empty when the tiny model escalates; the point is: no failure surfaced
