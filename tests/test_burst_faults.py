"""What 300-question bursts showed (bench/burst_bench.py): an LLM connection the server reset failed the answer,
and a keep-alive ping after `done` made the stream seem to end without it. Both reproduced here without timing:
the scripted stand-in (tests/helpers/scripted_llm.py) resets a reused connection on demand, and pings are sent far
more often than the answer's words.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest
from httpx_sse import connect_sse
from langchain_core.messages import HumanMessage

from graph.llm import chat_model
from graph.llm_pool import LLMPool
from helpers.app_process import AppProcess
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from settings import Settings

ANSWER = "Open Settings, choose Security and press Reset to get a new link by e-mail."


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as words:
        yield words


async def answer(pool: LLMPool) -> str:
    return "".join([str(chunk.content) async for chunk in pool.astream([HumanMessage("Hello?")])])


async def test_a_reused_connection_the_server_reset_is_retried_on_the_only_instance(llm: ScriptedLLM) -> None:
    """The burst's `llm_unavailable`: a kept-alive connection reset by the server (ReadError) as the request went
    out on it. One instance only, so a failover cannot hide it: the answer comes on a new connection, and the
    instance is not marked down."""
    llm.script(ANSWER, delay=0)
    settings = Settings(_env_file=None, llm_max_tokens=48)  # type: ignore[call-arg]
    pool = LLMPool([llm.url], lambda url: chat_model(settings, url), cool_down=60.0)
    assert await answer(pool) == ANSWER  # leaves one idle keep-alive connection in the client's pool
    llm.reset_reused(1)
    assert await answer(pool) == ANSWER
    assert llm.resets_sent == 1  # the reset did happen, on the reused connection
    [status] = pool.status()
    assert status["healthy"] and status["last_error"] is None


@pytest.fixture(scope="module")
def pinging_app(
    start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]], llm: ScriptedLLM
) -> Iterator[AppProcess]:
    """Pings every 10 ms: many fall between the answer's events, and some after `done` (the answer then still
    writes to Redis)."""
    with start_app("pings", "pings", {"LLM_BASE_URL": llm.url, "SSE_PING_SECONDS": "0.01"}) as app:
        yield app


def test_a_chat_stream_read_by_httpx_sse_ends_with_done_and_holds_no_empty_events(
    pinging_app: AppProcess, llm: ScriptedLLM
) -> None:
    """Every event httpx-sse reads — unfiltered, as bench/load_bench.py read them — is one of the answer's, and the
    last is `done`: a keep-alive ping is never read as an event, not even after `done`."""
    llm.script(ANSWER, delay=0.03)
    with httpx.Client(base_url=pinging_app.url, timeout=60) as client:
        for _ in range(3):
            with connect_sse(client, "POST", "/chat", json={"message": "How do I reset my password?"}) as source:
                assert source.response.status_code == 200
                events = [(event.event, event.data) for event in source.iter_sse()]
            assert all(data for _, data in events), [name for name, data in events if not data][:3]
            names = [name for name, _ in events]
            assert names[0] == "session" and names[-1] == "done" and names.count("done") == 1, names
            assert json.loads(events[-1][1])["text"]
