"""Conversation memory on a real Redis server: conformance, sliding expiry, erasure."""

from __future__ import annotations

import asyncio
import operator
import secrets
from typing import Annotated

import pytest
import redis.asyncio as aioredis
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph_checkpoint_plainredis import AsyncRedisSaver
from typing_extensions import TypedDict

from api.sessions import is_valid_session_id, new_session_id
from graph.checkpointer import make_checkpointer
from launcher.services import Service


class TurnState(TypedDict, total=False):
    turns: Annotated[list[str], operator.add]  # changes on every turn
    opened_on: str  # written on the first turn only


def _tiny_graph(saver: AsyncRedisSaver):  # type: ignore[no-untyped-def]
    async def turn(state: TurnState) -> dict:
        update: dict = {"turns": ["turn"]}
        if not state.get("opened_on"):
            update["opened_on"] = "first turn"
        return update

    builder = StateGraph(TurnState)
    builder.add_node("turn", turn)
    builder.add_edge(START, "turn")
    builder.add_edge("turn", END)
    return builder.compile(checkpointer=saver)


async def _keys(url: str, prefix: str) -> list[bytes]:
    client = aioredis.Redis.from_url(url)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}:*")]
    finally:
        await client.aclose()


async def test_the_saver_passes_langgraphs_checkpointer_conformance_suite(redis_service: Service) -> None:
    """The base suite of langgraph-checkpoint-conformance, against the real server: every test passes, as many
    as LangGraph's own in-memory saver passes in the same run (the suite's size is not written down here)."""

    @checkpointer_test(name="SlidingRedisSaver")
    async def factory():  # type: ignore[no-untyped-def]
        saver = make_checkpointer(redis_service.url, None, prefix=f"conf{secrets.token_hex(4)}")
        yield saver
        await saver.aclose()

    @checkpointer_test(name="InMemorySaver")
    async def reference():  # type: ignore[no-untyped-def]
        yield InMemorySaver()

    report, baseline = await validate(factory), await validate(reference)
    results = report.results.values()
    passed = sum(r.tests_passed for r in results)
    failed = sum(r.tests_failed for r in results)
    print(f"conformance: {passed} passed, {failed} failed")
    assert report.passed_all_base(), [f for r in results for f in r.failures]
    assert failed == 0
    assert passed == sum(r.tests_passed for r in baseline.results.values()) > 0


async def _run_turns(saver: AsyncRedisSaver, thread: str, turns: int, gap: float) -> dict:
    graph = _tiny_graph(saver)
    config = {"configurable": {"thread_id": thread}}
    for _ in range(turns):
        await graph.ainvoke({}, config)
        await asyncio.sleep(gap)
    return (await graph.aget_state(config)).values


@pytest.mark.slow
async def test_an_active_conversation_keeps_everything_and_an_idle_one_expires_whole(redis_service: Service) -> None:
    """TTL 2 s, four turns 1 s apart (longer than the TTL): the channel written only on turn 1 is still there.
    Then, idle past the TTL, no key of the thread is left in Redis."""
    prefix = f"slide{secrets.token_hex(4)}"
    saver = make_checkpointer(redis_service.url, 2, prefix=prefix)
    try:
        values = await _run_turns(saver, new_session_id(), turns=4, gap=1.0)
        assert values.get("opened_on") == "first turn"
        assert len(values["turns"]) == 4
        await asyncio.sleep(3.0)
        leftover = [k for k in await _keys(redis_service.url, prefix) if not k.endswith((b":threads", b":seq"))]
        assert leftover == []
    finally:
        await saver.aclose()


@pytest.mark.slow
async def test_the_unpatched_library_loses_a_channel_that_stopped_changing(redis_service: Service) -> None:
    """Documents the defect SlidingRedisSaver fixes: plain AsyncRedisSaver(ttl=2) drops `opened_on`."""
    saver = AsyncRedisSaver(url=redis_service.url, ttl=2, prefix=f"plain{secrets.token_hex(4)}")
    try:
        values = await _run_turns(saver, new_session_id(), turns=4, gap=1.0)
        assert values.get("opened_on") is None
    finally:
        await saver.aclose()


async def test_erasing_a_session_removes_all_its_keys_and_leaves_others(redis_service: Service) -> None:
    prefix = f"erase{secrets.token_hex(4)}"
    saver = make_checkpointer(redis_service.url, 60, prefix=prefix)
    try:
        gone, kept = new_session_id(), new_session_id()
        await _run_turns(saver, gone, turns=2, gap=0)
        await _run_turns(saver, kept, turns=1, gap=0)
        await saver.adelete_thread(gone)
        keys = [k.decode() for k in await _keys(redis_service.url, prefix)]
        assert not [k for k in keys if gone in k]
        assert [k for k in keys if kept in k]
        graph = _tiny_graph(saver)
        assert (await graph.aget_state({"configurable": {"thread_id": gone}})).values == {}
    finally:
        await saver.aclose()


def test_only_server_issued_session_ids_are_accepted() -> None:
    issued = new_session_id()
    assert is_valid_session_id(issued)
    assert issued != new_session_id()
    for bad in ["", "default", "s_short", "a:b", issued + "x", "s_" + "a" * 21 + ":", None, 42, "../" + issued]:
        assert not is_valid_session_id(bad)
