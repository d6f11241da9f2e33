"""The agent through LangServe, driven by LangServe's own client against the running app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langserve import RemoteRunnable

pytestmark = pytest.mark.slow


def _new_session(url: str) -> str:
    response = httpx.post(f"{url}/api/sessions", timeout=10)
    assert response.status_code == 201
    return response.json()["session_id"]


def _messages(result: Any) -> list[Any]:
    return result["messages"] if isinstance(result, dict) else result.messages


def test_remote_runnable_keeps_two_turns_in_one_thread(app_server: Any) -> None:
    session = _new_session(app_server.url)
    remote = RemoteRunnable(f"{app_server.url}/agent/", headers={"X-Session-Id": session}, timeout=300)
    first = remote.invoke({"messages": [HumanMessage("How do I reset my password?")]})
    second = remote.invoke({"messages": [HumanMessage("How long is the link valid?")]})
    contents = [m["content"] if isinstance(m, dict) else m.content for m in _messages(second)]
    assert len(_messages(first)) == 2
    assert contents[0] == "How do I reset my password?"
    assert contents[2] == "How long is the link valid?"
    assert len(contents) == 4
    history = httpx.get(f"{app_server.url}/api/sessions/{session}/history", timeout=10).json()["messages"]
    assert [m["content"] for m in history][::2] == [contents[0], contents[2]]


def test_remote_runnable_streams_the_graph_updates(app_server: Any) -> None:
    session = _new_session(app_server.url)
    remote = RemoteRunnable(f"{app_server.url}/agent/", headers={"X-Session-Id": session}, timeout=300)
    chunks = list(remote.stream({"messages": [HumanMessage("Where can I download invoices?")]}))
    assert chunks


def test_the_agent_routes_refuse_a_missing_or_made_up_session(app_server: Any) -> None:
    body = {"input": {"messages": [{"type": "human", "content": "hi"}]}}
    for headers in ({}, {"X-Session-Id": "default"}, {"X-Session-Id": "s_" + "A" * 22}):
        response = httpx.post(f"{app_server.url}/agent/invoke", json=body, headers=headers, timeout=30)
        assert response.status_code == 422, response.text
        assert "X-Session-Id" in response.text


def test_the_agent_routes_explain_a_malformed_input_instead_of_failing(app_server: Any) -> None:
    session = _new_session(app_server.url)
    for body in ({"input": {"messages": [{"role": "user", "content": "hi"}]}}, {"input": "hi"}, {"nothing": 1}):
        response = httpx.post(
            f"{app_server.url}/agent/invoke", json=body, headers={"X-Session-Id": session}, timeout=30
        )
        assert response.status_code == 422, response.text
        assert "input" in response.json()["detail"]
