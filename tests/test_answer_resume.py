"""Resumable answers (api/answer_stream.py): ids on every event, a resume from any app process that gets what the
client missed and then the rest live, exactly once; the answer outlives its connection; stop, ownership, erase.

The model's words come from the scripted stand-in (tests/helpers/scripted_llm.py), slow enough that a test can
drop the connection mid-answer and deterministic enough to compare texts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
import redis
from httpx_sse import connect_sse

from helpers.app_process import AppProcess, run_app
from helpers.browser import needs_chromium, open_page, poll, send, wait_ready
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from helpers.wait import eventually
from launcher.services import Service

QUESTION = "How do I reset my password?"
LONG_ANSWER = " ".join(f"Step {i}: open Settings, choose Security, press Reset." for i in range(1, 60))
Event = tuple[str, str, dict[str, Any]]  # (id, name, data)


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as words:
        yield words


@pytest.fixture(scope="module")
def first_app(
    start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]], llm: ScriptedLLM
) -> Iterator[AppProcess]:
    with start_app("resume-a", "resume", {"LLM_BASE_URL": llm.url, "LLM_MAX_TOKENS": "2000"}) as app:
        yield app


@pytest.fixture(scope="module")
def second_app(first_app: AppProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """Another app process on the same Redis, Chroma and knowledge base: a second replica."""
    with run_app(tmp_path_factory.mktemp("resume-b"), dict(first_app.env)) as app:  # type: ignore[attr-defined]
        yield app


@pytest.fixture
def db(redis_service: Service) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_service.url, decode_responses=True)
    yield client
    client.close()


def _read(source: Any, stop_after_tokens: int | None = None) -> list[Event]:
    events: list[Event] = []
    for event in source.iter_sse():
        if not event.data:  # a `: ping` after an event with an id: httpx-sse yields it, EventSource does not
            continue
        events.append((event.id, event.event, json.loads(event.data)))
        tokens = sum(name == "token" for _, name, _ in events)
        if stop_after_tokens is not None and tokens >= stop_after_tokens:
            break
    return events


def _ask(base: str, session_id: str | None = None, stop_after_tokens: int | None = None) -> list[Event]:
    """POST /chat; with `stop_after_tokens` the client drops the connection after that many tokens."""
    with httpx.Client(base_url=base, timeout=120) as client:
        body = {"message": QUESTION, "session_id": session_id}
        with connect_sse(client, "POST", "/chat", json=body) as source:
            assert source.response.status_code == 200
            events = _read(source, stop_after_tokens)
            source.response.close()
    return events


def _resume(base: str, answer_id: str, session_id: str, last_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with httpx.Client(base_url=base, timeout=120) as client:
        url = f"/chat/stream/{answer_id}?session_id={session_id}"
        with connect_sse(client, "GET", url, headers=headers) as source:
            assert source.response.status_code == 200, source.response.read()
            return _read(source)


def _tokens(events: list[Event]) -> str:
    return "".join(data["text"] for _, name, data in events if name == "token")


def _done(events: list[Event]) -> dict[str, Any]:
    return next(data for _, name, data in events if name == "done")


def _session(events: list[Event]) -> dict[str, Any]:
    return next(data for _, name, data in events if name == "session")


def _last_reply(base: str, session_id: str) -> dict[str, Any] | None:
    messages = httpx.get(f"{base}/api/sessions/{session_id}/history", timeout=30).json()["messages"]
    return messages[-1] if messages and messages[-1]["role"] == "assistant" else None


def test_every_event_has_an_increasing_id_and_the_session_event_names_the_answer(
    first_app: AppProcess, llm: ScriptedLLM
) -> None:
    llm.script("You can reset it from the sign-in page [1].", delay=0.0)
    events = _ask(first_app.url)
    ids = [event_id for event_id, _, _ in events]
    assert all(ids) and ids == [f"0-{n}" for n in range(1, len(ids) + 1)]
    assert events[0][1] == "session" and _session(events)["answer_id"].startswith("a_")
    assert events[-1][1] == "done"


def test_a_drop_then_a_resume_on_another_process_gets_the_rest_exactly_once(
    first_app: AppProcess, second_app: AppProcess, llm: ScriptedLLM
) -> None:
    """Started on one process, dropped after 5 tokens, resumed on the other with Last-Event-ID: the tokens
    before and after join into exactly the `done` text, and the answer was not interrupted."""
    llm.script(LONG_ANSWER, delay=0.02)
    before = _ask(first_app.url, stop_after_tokens=5)
    session = _session(before)
    after = _resume(second_app.url, session["answer_id"], session["session_id"], before[-1][0])
    assert after[0][0] == f"0-{int(before[-1][0].split('-')[1]) + 1}", "nothing missed, nothing repeated"
    done = _done(after)
    assert done["interrupted"] is False
    assert _tokens(before) + _tokens(after) == done["text"]
    assert done["text"].strip() == LONG_ANSWER
    reply = eventually(lambda: _last_reply(first_app.url, session["session_id"]), 10)
    assert reply is not None and reply["content"] == done["text"]


def test_a_finished_answer_replays_whole_without_last_event_id(first_app: AppProcess, llm: ScriptedLLM) -> None:
    llm.script("You can reset it from the sign-in page [1].", delay=0.0)
    events = _ask(first_app.url)
    session = _session(events)
    assert _resume(first_app.url, session["answer_id"], session["session_id"]) == events


def test_resume_and_stop_refuse_other_sessions_unknown_answers_and_bad_ids(
    first_app: AppProcess, llm: ScriptedLLM
) -> None:
    llm.script("You can reset it from the sign-in page [1].", delay=0.0)
    mine = _session(_ask(first_app.url))
    other = _session(_ask(first_app.url))
    with httpx.Client(base_url=first_app.url, timeout=30) as client:
        for answer_id, session_id in (
            (mine["answer_id"], other["session_id"]),  # someone else's answer
            (mine["answer_id"], ""),
            ("a_" + "A" * 22, mine["session_id"]),  # unknown
            ("not-an-answer-id", mine["session_id"]),
        ):
            for method, path in (("GET", ""), ("POST", "/stop")):
                response = client.request(method, f"/chat/stream/{answer_id}{path}?session_id={session_id}")
                assert response.status_code == 404, (answer_id, session_id, response.text)
                assert "No such answer" in response.json()["detail"]
        bad = client.get(
            f"/chat/stream/{mine['answer_id']}?session_id={mine['session_id']}", headers={"Last-Event-ID": "x"}
        )
        assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]
        by_header = client.get(f"/chat/stream/{mine['answer_id']}", headers={"X-Session-Id": mine["session_id"]})
        assert by_header.status_code == 200


def test_a_client_going_away_does_not_stop_the_answer(first_app: AppProcess, llm: ScriptedLLM) -> None:
    """The old contract was: a disconnect stops the turn. Now it runs on and is stored whole."""
    llm.script(LONG_ANSWER, delay=0.01)
    session = _session(_ask(first_app.url, stop_after_tokens=2))

    def whole() -> dict[str, Any] | None:
        reply = _last_reply(first_app.url, session["session_id"])
        return reply if reply and reply["content"].strip() == LONG_ANSWER else None

    reply = eventually(whole, 30)
    assert reply is not None and not reply.get("interrupted")


def test_stop_on_another_process_ends_the_answer_stored_interrupted(
    first_app: AppProcess, second_app: AppProcess, llm: ScriptedLLM
) -> None:
    llm.script(LONG_ANSWER, delay=0.1)  # ~55 s if nothing stops it
    session = _session(_ask(first_app.url, stop_after_tokens=2))
    with httpx.Client(base_url=second_app.url, timeout=30) as client:
        stopped = client.post(f"/chat/stream/{session['answer_id']}/stop?session_id={session['session_id']}")
        assert stopped.status_code == 202 and stopped.json()["stopping"] is True
    rest = _resume(second_app.url, session["answer_id"], session["session_id"])
    assert _done(rest)["interrupted"] is True
    reply = eventually(lambda: _last_reply(first_app.url, session["session_id"]), 10)
    assert reply is not None and reply["interrupted"] is True and len(reply["content"]) < len(LONG_ANSWER) / 2


def test_a_stop_from_another_process_acts_while_the_model_still_reads_its_prompt(
    first_app: AppProcess, second_app: AppProcess, llm: ScriptedLLM
) -> None:
    """No event is written while a local model reads a long prompt: the stop is read with the heartbeat, so the
    answer ends within seconds instead of at its first token, 20 s later (the scripted stand-in's pause)."""
    llm.script(LONG_ANSWER, delay=0.1, first_delay=20)
    with httpx.Client(base_url=first_app.url, timeout=60) as client:
        body = {"message": QUESTION, "session_id": None}
        with connect_sse(client, "POST", "/chat", json=body) as source:
            events: list[Event] = []
            for event in source.iter_sse():
                if event.data:
                    events.append((event.id, event.event, json.loads(event.data)))
                if event.event == "sources":  # retrieval is done: the turn now waits for the model's first token
                    session = _session(events)
                    url = f"/chat/stream/{session['answer_id']}/stop?session_id={session['session_id']}"
                    asked = time.monotonic()
                    assert httpx.post(second_app.url + url, timeout=30).status_code == 202
                if event.event == "done":
                    break
    assert time.monotonic() - asked < 10  # HEARTBEAT_SECONDS is 2
    assert _tokens(events) == "" and _done(events)["interrupted"] is True


def test_an_answer_nobody_reads_stops_after_the_grace_period(first_app: AppProcess, llm: ScriptedLLM) -> None:
    """RESUME_GRACE_SECONDS (10 s) without any reader: the turn stops, the LLM is freed, the part is stored."""
    llm.script(LONG_ANSWER, delay=0.1)
    left = time.monotonic()
    session = _session(_ask(first_app.url, stop_after_tokens=2))
    reply = eventually(lambda: _last_reply(first_app.url, session["session_id"]), 30)
    assert reply is not None and reply["interrupted"] is True
    assert time.monotonic() - left < 30 and len(reply["content"]) < len(LONG_ANSWER) / 2


def test_a_finished_answer_expires_is_bounded_and_goes_with_the_session(
    first_app: AppProcess, llm: ScriptedLLM, db: redis.Redis
) -> None:
    """A 500-word answer: its stream expires ~300 s after `done`; MEMORY USAGE is printed (docs/api.md) and
    bounded; erasing the session deletes it and the pointer."""
    llm.script(" ".join(f"word{i % 50}" for i in range(500)), delay=0.0)
    events = _ask(first_app.url)
    session = _session(events)
    key = f"api:answer:{session['answer_id']}"
    assert sum(name == "token" for _, name, _ in events) >= 400
    assert db.xlen(key) == len(events)
    ttl = eventually(lambda: (t := db.ttl(key)) <= 300 and t, 5)
    assert 0 < ttl <= 300
    memory = db.memory_usage(key)
    print(f"\nMEMORY USAGE of a finished {len(events)}-event answer stream: {memory} bytes")
    assert memory is not None and memory < 64 * 1024
    assert db.get(f"api:answers:{session['session_id']}") == session["answer_id"]
    assert httpx.delete(f"{first_app.url}/api/sessions/{session['session_id']}", timeout=30).status_code == 204
    assert not db.exists(key, f"api:answers:{session['session_id']}")


def test_erasing_the_session_mid_answer_leaves_no_answer_stream(
    first_app: AppProcess, llm: ScriptedLLM, db: redis.Redis
) -> None:
    llm.script(LONG_ANSWER, delay=0.05)
    session = _session(_ask(first_app.url, stop_after_tokens=2))
    assert httpx.delete(f"{first_app.url}/api/sessions/{session['session_id']}", timeout=30).status_code == 204
    time.sleep(2)  # the answer would have written ~40 more events by now
    assert not db.exists(f"api:answer:{session['answer_id']}")


# The page (headless Debian Chromium, tests/helpers/browser.py)


@needs_chromium
def test_the_page_resumes_an_answer_in_progress_after_a_reload(
    browser: Any, first_app: AppProcess, llm: ScriptedLLM, request: pytest.FixtureRequest
) -> None:
    """Reloaded mid-answer, the page shows the question and the answer again and the rest streams in; the
    answer completes once (one bubble, not interrupted), as stored."""
    llm.script(LONG_ANSWER, delay=0.04)  # ~22 s
    with open_page(browser, first_app.url + "/", request.node.name) as page:
        send(page, QUESTION)
        poll(page, "(document.querySelector('.msg.bot .md')?.innerText.length || 0) > 20", timeout=60)
        page.reload()
        wait_ready(page)
        poll(page, "document.querySelector('.msg.bot.streaming') !== null", timeout=30)
        done = "document.querySelector('.msg.bot') && !document.querySelector('.msg.bot.streaming')"
        poll(page, done, timeout=90)
        assert page.evaluate("document.querySelectorAll('.msg.bot').length") == 1
        assert page.evaluate("document.querySelectorAll('.msg.user').length") == 1
        assert not page.is_visible(".msg.bot.interrupted")
        text = page.evaluate("document.querySelector('.msg.bot .md').innerText")
        assert "Step 59: open Settings" in text and "Step 1: open Settings" in text
        assert page.evaluate("localStorage.getItem('support-chat.answer')") is None
