"""The chat page resumes an answer whose connection dropped mid-answer (frontend/js/chat.js `RESUME_ATTEMPTS`,
frontend/js/api.js `resumeAnswer`): from the last event id it saw, so the answer shows whole and exactly once.

The connection breaks for real: the page talks to the app through Debian's nginx running the shipped
deploy/nginx.conf (tests/helpers/proxy.py, as tests/test_replicas.py runs it), and the test kills nginx's worker
mid-answer (its master starts a new one: the page's fetch stream errors, the next request gets through) or stops
nginx altogether (the connection stays down past the resume attempts). The app process keeps generating.

The model's words come from the scripted OpenAI-compatible stand-in (tests/helpers/scripted_llm.py), slow enough to
cut mid-answer and deterministic enough to compare; the app (uvicorn subprocess on the session's Redis and Chroma),
the proxy and headless Debian Chromium are real. Each stream the page reads is recorded (an init script tees
fetch's body) so the events it got before and after the cut can be compared with the server's whole answer.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.app_process import AppProcess
from helpers.browser import needs_chromium, open_page, poll, record_streams, send
from helpers.proxy import Proxy, run_proxy
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from helpers.wait import eventually

pytestmark = [pytest.mark.slow]
QUESTION = "How do I reset my password?"
FOLLOW_UP = "And how long is the link valid?"
LONG_ANSWER = " ".join(f"Step {i}: open Settings, choose Security, press Reset." for i in range(1, 13))  # 96 chunks
SHORT_ANSWER = "The reset link expires after 30 minutes [1]."
Event = tuple[str, str, dict[str, Any]]  # (id, name, data)
CHAT_JS = Path(__file__).resolve().parents[1] / "frontend" / "js" / "chat.js"

# Every /chat and /chat/stream response the page reads, copied into `window.__streams`.
RECORD_STREAMS = record_streams("__streams", r"\/chat(\/stream\/[^/]+)?(\?|$)")

ANSWER_DONE = "document.querySelectorAll('.msg.bot').length >= {n} && !document.querySelector('.msg.bot.streaming')"
SHOWN = "[...document.querySelectorAll('.msg.bot .md')].map((n) => n.innerText)"
ERRORS_SHOWN = """[...document.querySelectorAll('.msg.bot .alert, .msg.bot .model-notice, .msg.notice.error')]
    .filter((n) => !n.hidden && n.textContent.trim()).map((n) => n.textContent.trim())"""


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as words:
        yield words


@pytest.fixture(scope="module")
def app(
    start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]], llm: ScriptedLLM
) -> Iterator[AppProcess]:
    with start_app("browser-resume", "bresume", {"LLM_BASE_URL": llm.url, "LLM_MAX_TOKENS": "2000"}) as process:
        yield process


@pytest.fixture
def proxy(app: AppProcess, tmp_path: Path) -> Iterator[Proxy]:
    """A fresh nginx per test (one test stops it)."""
    with run_proxy([app.url.removeprefix("http://")], tmp_path / "nginx") as running:
        yield running


# ----------------------------------------------------------------------------------------------- helpers


def events_of(raw: str) -> list[Event]:
    """The complete events of a recorded text/event-stream body (a cut one ends in a partial event: not one)."""
    blocks = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
    events = []
    for block in blocks[:-1]:  # what follows the last blank line is incomplete (or empty)
        event_id, name, data = "", "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((event_id, name, json.loads("\n".join(data))))
    return events


def order(event_id: str) -> tuple[int, int]:
    """A Redis stream id ("<ms>-<seq>") as something that sorts."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (nginx's master → its workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def worker_of(proxy: Proxy) -> int:
    workers = children(proxy.pid)
    assert len(workers) == 1, f"nginx runs one worker here (worker_processes 1): {workers}"
    return workers[0]


def history(app: AppProcess, session_id: str) -> list[dict[str, Any]]:
    """The conversation the server stored (GET /api/sessions/{id}/history, asked of the app directly)."""
    response = httpx.get(f"{app.url}/api/sessions/{session_id}/history", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def last_reply(app: AppProcess, session_id: str) -> dict[str, Any]:
    messages = history(app, session_id)
    assert messages and messages[-1]["role"] == "assistant", messages
    return messages[-1]


def whole_answer(app: AppProcess, answer_id: str, session_id: str) -> list[Event]:
    """The server's whole answer: its stream replayed from the start (no Last-Event-ID)."""
    url = f"{app.url}/chat/stream/{answer_id}?session_id={session_id}"
    with httpx.stream("GET", url, timeout=60) as response:
        assert response.status_code == 200
        return events_of(response.read().decode())


def normal(text: str) -> str:
    return " ".join(text.split())


def resume_attempts() -> int:
    """RESUME_ATTEMPTS as frontend/js/chat.js sets it."""
    found = re.search(r"^const RESUME_ATTEMPTS = (\d+);", CHAT_JS.read_text(), flags=re.MULTILINE)
    assert found, "frontend/js/chat.js no longer sets `const RESUME_ATTEMPTS = <n>;`"
    return int(found.group(1))


# ----------------------------------------------------------------------------------------------- tests


@needs_chromium
def test_a_dropped_connection_is_resumed_from_the_last_event_and_the_answer_shows_once(
    browser: Any, app: AppProcess, proxy: Proxy, llm: ScriptedLLM, request: pytest.FixtureRequest
) -> None:
    """nginx's worker dies mid-answer: the page resumes through the new worker with Last-Event-ID, shows the whole
    stored answer once with no error, and the next question is answered."""
    llm.script(LONG_ANSWER, delay=0.05)  # ~5 s of streaming
    with open_page(browser, proxy.url + "/", request.node.name, init_script=RECORD_STREAMS) as page:
        resumes: list[dict[str, str]] = []
        page.on("request", lambda r: resumes.append(r.headers) if "/chat/stream/" in r.url else None)
        send(page, QUESTION)
        poll(page, "(document.querySelector('.msg.bot.streaming .md')?.innerText.length || 0) > 40", timeout=60)
        os.kill(worker_of(proxy), signal.SIGKILL)  # the page's connection breaks; the app is not told to stop

        poll(page, ANSWER_DONE.format(n=1), timeout=60)
        assert page.evaluate(ERRORS_SHOWN) == [], "a resumed answer shows no error"
        session = page.evaluate("localStorage.getItem('support-chat.session-id')")
        stored = last_reply(app, session)
        assert not stored.get("interrupted"), "the answer ran to its end while the page was cut off"
        shown = [normal(text) for text in page.evaluate(SHOWN)]
        assert shown == [normal(stored["content"])], "the page shows the stored answer, once"
        assert normal(stored["content"]) == normal(LONG_ANSWER)
        assert not page.is_visible(".msg.bot.interrupted")

        streams = page.evaluate("window.__streams")
        assert [re.sub(r"/a_[^?]*\?.*$", "", s["url"]) for s in streams] == ["/chat", "/chat/stream"], streams
        before, after = events_of(streams[0]["text"]), events_of(streams[1]["text"])
        assert not any(name == "done" for _, name, _ in before), "the page's first stream was cut mid-answer"
        answer_id = next(data["answer_id"] for _, name, data in before if name == "session")
        assert streams[1]["url"].startswith(f"/chat/stream/{answer_id}?")

        # The resume asked for what came after the last event the page had, and got exactly the rest.
        assert len(resumes) == 1, resumes
        assert resumes[0].get("last-event-id") == before[-1][0], (resumes[0], before[-1])
        assert after and order(after[0][0]) > order(before[-1][0])
        assert before + after == whole_answer(app, answer_id, session), "each event reached the page exactly once"
        logged = (proxy.access_log).read_text()
        assert re.search(rf'"GET /chat/stream/{answer_id} HTTP/1\.1" 200 ', logged), logged

        llm.script(SHORT_ANSWER, delay=0.0)
        send(page, FOLLOW_UP)
        poll(page, ANSWER_DONE.format(n=2), timeout=60)
        follow_up = last_reply(app, session)
        assert [normal(t) for t in page.evaluate(SHOWN)] == [normal(stored["content"]), normal(follow_up["content"])]
        assert page.evaluate(ERRORS_SHOWN) == []


@needs_chromium
def test_a_connection_down_past_the_resume_attempts_shows_an_error_and_keeps_the_stored_answer(
    browser: Any, app: AppProcess, proxy: Proxy, llm: ScriptedLLM, request: pytest.FixtureRequest
) -> None:
    """nginx stops mid-answer and stays down: after its resume attempts (~3 s) the page says the connection
    dropped (with Retry); the answer, generated to its end meanwhile, is stored whole."""
    llm.script(LONG_ANSWER, delay=0.05)
    with open_page(browser, proxy.url + "/", request.node.name, init_script=RECORD_STREAMS) as page:
        failed: list[dict[str, str]] = []
        page.on("requestfailed", lambda r: failed.append(r.headers) if "/chat/stream/" in r.url else None)
        send(page, QUESTION)
        poll(page, "(document.querySelector('.msg.bot.streaming .md')?.innerText.length || 0) > 40", timeout=60)
        os.kill(proxy.pid, signal.SIGTERM)  # nginx exits: the stream breaks and every resume is refused
        started = time.monotonic()
        errors = poll(page, ERRORS_SHOWN, timeout=30)
        assert time.monotonic() - started > 2.5, "the page tried to resume before it gave up"
        assert any("connection" in e.lower() or "reach the server" in e.lower() for e in errors), errors
        assert page.is_visible(".msg.bot .alert button"), "the error offers Retry"
        assert len(failed) == resume_attempts() > 0, f"each resume attempt was made, and refused: {failed}"
        assert all(headers.get("last-event-id") for headers in failed), failed
        session = page.evaluate("localStorage.getItem('support-chat.session-id')")
        assert session

        def stored() -> list[tuple[str, str]]:
            return [(m["role"], normal(m["content"])) for m in history(app, session)]

        whole = [("user", QUESTION), ("assistant", normal(LONG_ANSWER))]
        eventually(lambda: stored() == whole, timeout=30)  # the app keeps generating with nobody reading
        assert stored() == whole, "the question and the whole answer are stored, once each"
        assert not history(app, session)[-1].get("interrupted")
