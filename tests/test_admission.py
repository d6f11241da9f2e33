"""PREPARE_CONCURRENCY: turns prepare their answers first come, first served, a few at a time, and leave the gate
with their sources, so the LLM's wait for a prompt is never limited by it (api/admission.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest
from httpx_sse import aconnect_sse

from api.admission import Gate
from helpers.app_process import AppProcess
from helpers.scripted_llm import ScriptedLLM, scripted_llm


async def test_turns_enter_in_arrival_order_and_never_more_than_the_limit() -> None:
    gate, inside, most, order = Gate(2), 0, 0, []

    async def turn(number: int) -> None:
        nonlocal inside, most
        admitted = await gate.enter()
        order.append(number)
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.01)
        inside -= 1
        admitted.leave()
        admitted.leave()  # every way out may leave; only the first counts

    tasks = []
    for number in range(8):
        tasks.append(asyncio.create_task(turn(number)))
        await asyncio.sleep(0)  # arrive one after the other
    await asyncio.gather(*tasks)
    assert order == list(range(8))
    assert most == 2


async def test_a_turn_cancelled_while_waiting_takes_no_place() -> None:
    gate = Gate(1)
    first = await gate.enter()
    waiting = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    first.leave()
    admitted = await asyncio.wait_for(gate.enter(), 1)  # the cancelled waiter did not keep the place
    admitted.leave()


async def test_no_limit_admits_everyone_at_once() -> None:
    gate = Gate(0)
    passes = [await asyncio.wait_for(gate.enter(), 1) for _ in range(100)]
    assert len(passes) == 100


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as words:
        yield words


@pytest.fixture(scope="module")
def one_at_a_time(
    start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]], llm: ScriptedLLM
) -> Iterator[AppProcess]:
    with start_app("gate", "gate", {"LLM_BASE_URL": llm.url, "PREPARE_CONCURRENCY": "1"}) as app:
        yield app


async def test_the_llm_reads_its_prompts_outside_the_gate(one_at_a_time: AppProcess, llm: ScriptedLLM) -> None:
    """One turn prepares at a time, yet three questions asked together all get their sources while the (scripted)
    LLM is still reading the first prompt: a turn leaves the gate with its sources, not with its first word."""
    llm.script("Open Settings, choose Security and press Reset [1].", delay=0.01, first_delay=2.0)
    seen: dict[str, list[float]] = {"sources": [], "token": []}

    async def ask(client: httpx.AsyncClient) -> list[str]:
        names = []
        body = {"message": "How do I reset my password?"}
        async with aconnect_sse(client, "POST", "/chat", json=body) as source:
            async for event in source.aiter_sse():
                names.append(event.event)
                if event.event in seen and (event.event == "sources" or names.count("token") == 1):
                    seen[event.event].append(time.monotonic())
                if event.event == "done":
                    assert json.loads(event.data)["text"]
        return names

    async with httpx.AsyncClient(base_url=one_at_a_time.url, timeout=60) as client:
        streams = await asyncio.gather(*(ask(client) for _ in range(3)))
    for names in streams:
        assert names[0] == "session" and names[-1] == "done" and names.index("sources") < names.index("token")
    assert len(seen["sources"]) == 3 and len(seen["token"]) == 3
    assert max(seen["sources"]) < min(seen["token"])
