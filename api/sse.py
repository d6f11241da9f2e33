"""Server-Sent Events as every stream of the app writes them (/chat, its resume, /chat/live and the lead's live
events): one frame encoder and one keep-alive.

`frame` builds an event's bytes once, byte for byte what sse-starlette's `ServerSentEvent(...).encode()` writes
(tests/test_sse_frame.py), without its per-field regexes: a /chat answer sends the same frame to every live
connection. `stream` is sse-starlette's response with `Ping` as its keep-alive.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent


def frame(event: str, payload: str, event_id: str | None = None) -> bytes:
    """`payload` is json.dumps output (never a raw line break: JSON escapes them); ids and event names are ours (no
    line breaks either)."""
    head = f"id: {event_id}\r\nevent: {event}\r\n" if event_id else f"event: {event}\r\n"
    return f"{head}data: {payload}\r\n\r\n".encode()


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    return frame(event, json.dumps(data, ensure_ascii=False), event_id)


class Ping(ServerSentEvent):
    """The keep-alive: one comment line and no blank line after it. sse-starlette's own ping ends with a blank line,
    which httpx-sse (after an event with an `id:`) reads as an empty event — so a ping that falls after `done` made
    the stream seem to end without it. A lone comment line dispatches nothing in any SSE parser."""

    def encode(self) -> bytes:
        return b": ping\r\n"


def stream(events: AsyncIterable[Any], ping_seconds: float, **options: Any) -> EventSourceResponse:
    """The response for `events` (frames, or ServerSentEvents), pinging every `ping_seconds` while it waits."""
    return EventSourceResponse(events, ping=ping_seconds, ping_message_factory=Ping, **options)
