"""Session routing over several LLM instances (graph/llm_pool.py), observed on scripted stand-ins.

The instances here are tests/helpers/scripted_llm.py servers — the scripted OpenAI-compatible stand-in, reached
over real HTTP — because each test must see which instance got which request and with which headers; the real
llama.cpp servers are in tests/test_llm_pool.py and bench/affinity_bench.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from api.sessions import new_session_id
from graph.llm import chat_model
from graph.llm_pool import LLMPool, Routing
from helpers.agent import agent_for, first
from helpers.app_process import seed_knowledge_base
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from settings import Settings

PROMPT = [HumanMessage("Say hello.")]
SECRET = "test-session-key-secret"


@pytest.fixture
def stand_ins() -> Iterator[list[ScriptedLLM]]:
    """Three scripted stand-ins: with three, "the next instance" is a real choice, not the only one left."""
    with contextlib.ExitStack() as stack:
        llms = [stack.enter_context(scripted_llm()) for _ in range(3)]
        for llm in llms:
            llm.script("Hello there.", delay=0.0)
        yield llms


def pool_for(urls: list[str], routing: Routing = "session", max_in_flight: int = 0) -> LLMPool:
    settings = Settings(_env_file=None, llm_temperature=0, llm_max_tokens=8, llm_connect_timeout=1)  # type: ignore[call-arg]
    return LLMPool(
        urls,
        lambda url: chat_model(settings, url),
        cool_down=60.0,
        routing=routing,
        max_in_flight=max_in_flight,
        session_secret=SECRET,
    )


async def ask(pool: LLMPool, session: str | None) -> str:
    return "".join([str(chunk.content) async for chunk in pool.astream(PROMPT, session=session)])


def served_by(llms: list[ScriptedLLM], session_header: str = "x-session-id") -> dict[str, set[str]]:
    """Session key (as the upstream saw it) -> the URLs of the stand-ins that received it."""
    seen: dict[str, set[str]] = {}
    for llm in llms:
        for headers in llm.headers:
            key = {k.lower(): v for k, v in headers.items()}[session_header]
            seen.setdefault(key, set()).add(llm.url)
    return seen


def key_of(session: str) -> str:
    return hmac.new(SECRET.encode(), session.encode(), hashlib.sha256).hexdigest()[:32]


async def test_a_session_stays_on_one_instance_and_sessions_spread(stand_ins: list[ScriptedLLM]) -> None:
    pool = pool_for([llm.url for llm in stand_ins])
    sessions = [new_session_id() for _ in range(24)]
    for _turn in range(3):
        for session in sessions:
            assert await ask(pool, session)
    seen = served_by(stand_ins)
    assert len(seen) == len(sessions)
    assert all(len(urls) == 1 for urls in seen.values()), "every turn of a session lands on its one instance"
    assert all(llm.requests for llm in stand_ins), "24 sessions spread over all three instances"
    assert {key_of(s): {pool.ranking(s)[0].url} for s in sessions} == seen


async def test_least_busy_alternates_a_sessions_turns(stand_ins: list[ScriptedLLM]) -> None:
    """The baseline the bench compares against: without affinity one conversation visits every instance."""
    pool = pool_for([llm.url for llm in stand_ins], routing="least_busy")
    session = new_session_id()
    for _turn in range(3):
        assert await ask(pool, session)
    assert served_by(stand_ins)[key_of(session)] == {llm.url for llm in stand_ins}


async def test_a_down_instance_moves_only_its_sessions_to_their_next(stand_ins: list[ScriptedLLM]) -> None:
    urls = [llm.url for llm in stand_ins]
    pool = pool_for(urls)
    sessions = [new_session_id() for _ in range(24)]
    home = {s: pool.ranking(s)[0].url for s in sessions}
    second = {s: pool.ranking(s)[1].url for s in sessions}
    dead = stand_ins[0]
    pool.instances[0].model = chat_model(  # the instance stops answering: its URL now refuses connections
        Settings(_env_file=None, llm_connect_timeout=1),  # type: ignore[call-arg]
        "http://127.0.0.1:9/v1",
    )
    assert any(home[s] == dead.url for s in sessions) and any(home[s] != dead.url for s in sessions)
    for llm in stand_ins:
        llm.headers.clear()
    for session in sessions:
        assert await ask(pool, session)  # no failure reaches the caller
    seen = served_by(stand_ins)
    for session in sessions:
        expected = second[session] if home[session] == dead.url else home[session]
        assert seen[key_of(session)] == {expected}, "moved sessions go to their next; the others stay"
    status = {s["url"]: s for s in pool.status()}
    assert status[dead.url]["last_error"] and status[dead.url]["served"] == 0


async def test_a_saturated_instance_spills_over_to_the_sessions_next(stand_ins: list[ScriptedLLM]) -> None:
    pool = pool_for([llm.url for llm in stand_ins], max_in_flight=1)
    session = new_session_id()
    home, second = pool.ranking(session)[0], pool.ranking(session)[1]
    for llm in stand_ins:
        llm.script("one two three four five six", delay=0.2)
    busy = pool.astream(PROMPT, session=session)
    await anext(busy)  # the first request is in flight on the session's instance
    assert home.in_flight == 1
    assert await ask(pool, session)  # a second one meanwhile spills over
    await busy.aclose()
    assert await ask(pool, session)  # and once the first is done, the session is home again
    seen = [llm.url for llm in stand_ins for _ in llm.requests]
    assert sorted(seen) == sorted([home.url, second.url, home.url])
    status = {s["url"]: s for s in pool.status()}
    assert status[second.url]["spilled"] == 1 and status[home.url]["spilled"] == 0


async def test_the_upstream_gets_a_keyed_hash_never_the_session_id(stand_ins: list[ScriptedLLM]) -> None:
    pool = pool_for([llm.url for llm in stand_ins])
    session = new_session_id()
    assert await ask(pool, session)
    (llm,) = [llm for llm in stand_ins if llm.requests]
    headers = {k.lower(): v for k, v in llm.headers[0].items()}
    assert headers["x-session-id"] == key_of(session) != session
    assert session not in json.dumps(llm.headers) + json.dumps(llm.requests)


async def test_no_session_header_when_turned_off(stand_ins: list[ScriptedLLM]) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    pool = LLMPool([stand_ins[0].url], lambda url: chat_model(settings, url), session_header="")
    assert await ask(pool, new_session_id())
    assert "x-session-id" not in {k.lower() for k in stand_ins[0].headers[0]}


def test_routing_settings_are_checked() -> None:
    for env in ({"llm_routing": "sticky"}, {"llm_max_in_flight_per_instance": -1}, {"llm_session_header": "X Bad"}):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, **env)  # type: ignore[arg-type]
    assert Settings(_env_file=None).llm_routing == "session"  # type: ignore[call-arg]


@pytest.mark.slow
async def test_the_agents_turns_stay_on_one_instance_with_a_keyed_header(settings: Settings) -> None:
    """Through the whole agent: the thread id reaches the pool, three turns go to one instance, and what the
    upstream receives is the HMAC of the session id, not the id."""
    seed_knowledge_base(settings)
    with scripted_llm() as a, scripted_llm() as b:
        for llm in (a, b):
            llm.script("The reset link is valid for 24 hours [1].", delay=0.0)
        update = {"llm_base_url": [a.url, b.url], "llm_session_key_secret": SECRET}
        session = new_session_id()
        async with agent_for(settings.model_copy(update=update)) as agent:
            for question in ("How long is the password reset link valid?", "And can I reset it twice?", "Why?"):
                events = await agent.turn(session, question)
                assert first(events, "sources")["sources"], "each turn must reach the answer step"
        calls = {a.url: a, b.url: b}
        (home,) = [llm for llm in calls.values() if llm.requests]
        assert len(home.requests) == 3
        assert {h.get("X-Session-ID") or h.get("x-session-id") for h in home.headers} == {key_of(session)}
        assert session not in json.dumps(home.headers) + json.dumps(home.requests)
        await asyncio.sleep(0)
