"""api/sse.py builds each SSE frame itself (once per event, shared by every live connection): the bytes must be
exactly what sse-starlette's ServerSentEvent writes, which the page's parser and the resume ids rely on."""

from __future__ import annotations

import json

import pytest
from sse_starlette import ServerSentEvent

from api.sse import frame, sse

DATA = [
    {"text": " word"},
    {"text": "line one\nline two\r\nthree\rfour"},  # raw line breaks in the text: escaped by JSON, one data line
    {"text": "naïve café 🙂 \u2028 \u2029 \x85 \x00"},  # non-ASCII as is (ensure_ascii=False), odd separators
    {"session_id": "s_1", "answer_id": "a_x", "nested": {"list": [1, 2.5, None, True]}},
]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("event_id", ["0-1", "0-12345", None, ""])
def test_a_frame_is_byte_for_byte_what_sse_starlette_writes(data: dict, event_id: str | None) -> None:
    payload = json.dumps(data, ensure_ascii=False)
    expected = ServerSentEvent(data=payload, event="token", id=event_id or None).encode()
    assert frame("token", payload, event_id) == expected
    assert sse("token", data, event_id) == expected
