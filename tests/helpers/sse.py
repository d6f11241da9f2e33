"""Reading /chat streams in tests: each SSE event as (name, parsed JSON), via httpx-sse."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import connect_sse


def chat_events(client: httpx.Client, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """POST /chat and read the whole stream; fails the test on a non-SSE answer."""
    with connect_sse(client, "POST", "/chat", json=body) as source:
        assert source.response.status_code == 200, source.response.read()
        # httpx-sse keeps the last `id:` (as the SSE spec says), so after an event with an id a `: ping` comment comes
        # out as an empty "message" event: not an event of the answer.
        return [(event.event, json.loads(event.data)) for event in source.iter_sse() if event.data]


def names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Event names with runs of `token` collapsed, e.g. ['session', 'sources', 'token', 'done']."""
    collapsed: list[str] = []
    for name, _ in events:
        if not (name == "token" and collapsed and collapsed[-1] == "token"):
            collapsed.append(name)
    return collapsed


def payload(events: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    return next(data for event, data in events if event == name)


def answer_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(data["text"] for event, data in events if event == "token")
