"""`POST /chat` over real HTTP with the real LLM: event order, server-issued sessions, one answer at a time
per session, disconnects, history and erasure, feedback. Assertions are about structure, never wording."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse

from api.sessions import new_session_id
from helpers.sse import answer_text, chat_events, names, payload
from helpers.wait import eventually

pytestmark = [pytest.mark.llm, pytest.mark.slow]

QUESTION = "How long is the password reset link valid?"
LONG_QUESTION = "Write a long, detailed step-by-step guide to resetting my password, with many numbered steps."


@pytest.fixture
def client(app_server) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=app_server.url, timeout=120) as client:
        yield client


def history(client: httpx.Client, session_id: str) -> list[dict]:
    response = client.get(f"/api/sessions/{session_id}/history")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def test_an_answer_streams_session_sources_tokens_then_done(client: httpx.Client) -> None:
    """The documented order: one `session`, `sources` before the first token, tokens, one `done` last."""
    events = chat_events(client, {"message": QUESTION, "session_id": None})
    assert names(events) == ["session", "sources", "token", "done"]
    sources = payload(events, "sources")["sources"]
    assert sources and set(sources[0]) == {"n", "title", "url", "snippet"}
    assert sources[0]["url"] == "https://help.example.com/account/password-reset"
    assert answer_text(events).strip()
    done = payload(events, "done")
    assert done["message_id"]
    assert set(done["timings"]) >= {"sources_ms", "first_token_ms", "total_ms"}
    assert done["timings"]["total_ms"] >= done["timings"]["first_token_ms"] > 0


def test_the_response_is_an_unbuffered_event_stream(client: httpx.Client) -> None:
    """Headers that keep proxies from buffering or caching the stream."""
    with client.stream("POST", "/chat", json={"message": QUESTION}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["cache-control"] == "no-store"
        assert "content-encoding" not in response.headers
        response.read()


@pytest.mark.parametrize("sent", ["not-a-session", "../../etc/passwd", "x" * 300, "", "forged-valid"])
def test_a_new_session_id_is_issued_for_unknown_or_invalid_ids(client: httpx.Client, sent: str) -> None:
    """Never adopt a client-made id, even a well-formed one the server did not issue."""
    sent = new_session_id() if sent == "forged-valid" else sent
    events = chat_events(client, {"message": QUESTION, "session_id": sent})
    issued = payload(events, "session")["session_id"]
    assert issued and issued != sent
    assert client.get(f"/api/sessions/{issued}/history").status_code == 200


def test_a_follow_up_in_the_same_session_keeps_its_id_and_history(client: httpx.Client) -> None:
    first = chat_events(client, {"message": QUESTION})
    session_id = payload(first, "session")["session_id"]
    second = chat_events(client, {"message": "And how do I request a new one?", "session_id": session_id})
    assert payload(second, "session")["session_id"] == session_id
    roles = [message["role"] for message in history(client, session_id)]
    assert roles.count("user") == 2 and roles.count("assistant") == 2


def test_control_characters_are_stripped_but_newlines_and_tabs_kept(client: httpx.Client) -> None:
    events = chat_events(client, {"message": "Pass\u0000word\u001b[31m reset\u202e?\nThanks\tbye"})
    session_id = payload(events, "session")["session_id"]
    question = history(client, session_id)[0]
    assert question["role"] == "user"
    assert question["content"] == "Password[31m reset?\nThanks\tbye"


def test_a_second_message_while_the_first_streams_gets_409(client: httpx.Client, app_server) -> None:  # type: ignore[no-untyped-def]
    """One answer at a time per session; the lock is released when the stream ends."""
    session_id = payload(chat_events(client, {"message": QUESTION}), "session")["session_id"]
    with connect_sse(client, "POST", "/chat", json={"message": LONG_QUESTION, "session_id": session_id}) as source:
        stream = source.iter_sse()  # one iterator: dropping it would close the response (a disconnect)
        for event in stream:
            if event.event == "token":
                break
        busy = client.post("/chat", json={"message": QUESTION, "session_id": session_id})
        assert busy.status_code == 409
        assert "still being written" in busy.json()["detail"]
        other = chat_events(httpx.Client(base_url=app_server.url, timeout=120), {"message": QUESTION})
        assert names(other)[-1] == "done", "other sessions are not blocked"
        rest = [event.event for event in stream]
        assert rest[-1] == "done"
    again = chat_events(client, {"message": QUESTION, "session_id": session_id})
    assert names(again)[-1] == "done"


def test_many_sessions_stream_at_once(app_server) -> None:  # type: ignore[no-untyped-def]
    results: list[list[str]] = []

    def ask() -> None:
        with httpx.Client(base_url=app_server.url, timeout=300) as own:
            results.append(names(chat_events(own, {"message": QUESTION})))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["session", "sources", "token", "done"]] * 3


def test_stop_after_a_disconnect_frees_the_llm_and_keeps_the_partial_answer(client: httpx.Client, app_server) -> None:  # type: ignore[no-untyped-def]
    """A client going away no longer stops the answer (it stays resumable, tests/test_answer_resume.py); the
    page's Stop, `POST /chat/stream/{answer_id}/stop`, closes the upstream LLM request (llama.cpp serves one
    request at a time, so a short direct request is answered at once) and stores the partial answer marked
    interrupted."""
    session_id = payload(chat_events(client, {"message": QUESTION}), "session")["session_id"]
    received = []
    with connect_sse(client, "POST", "/chat", json={"message": LONG_QUESTION, "session_id": session_id}) as source:
        stream = source.iter_sse()
        for event in stream:
            if event.event == "session":
                answer_id = json.loads(event.data)["answer_id"]
            if event.event == "token":
                received.append(json.loads(event.data)["text"])
                if len(received) >= 3:
                    break
        source.response.close()  # the client goes away mid-answer
    stopped = client.post(f"/chat/stream/{answer_id}/stop", params={"session_id": session_id})
    assert stopped.status_code == 202
    # The LLM server would still be writing the abandoned ~500-token answer for several seconds if it had not
    # been told; a 3-token request must get through well within this timeout.
    llm = app_server.env["LLM_BASE_URL"]
    direct = httpx.post(
        f"{llm}/chat/completions",
        json={"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 3, "temperature": 0},
        timeout=httpx.Timeout(4.0),
    )
    assert direct.status_code == 200
    for _ in range(50):
        messages = history(client, session_id)
        if len(messages) >= 4:
            break
        threading.Event().wait(0.1)
    last = messages[-1]
    assert last["role"] == "assistant" and last.get("interrupted") is True
    assert last["content"].startswith("".join(received).strip()[:5])
    follow = chat_events(client, {"message": QUESTION, "session_id": session_id})
    assert names(follow)[-1] == "done", "the lock was released on stop"


def test_history_and_erase_of_a_session(client: httpx.Client) -> None:
    events = chat_events(client, {"message": QUESTION})
    session_id = payload(events, "session")["session_id"]
    messages = history(client, session_id)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == answer_text(events)
    assert messages[1].get("message_id") == payload(events, "done")["message_id"]
    assert client.delete(f"/api/sessions/{session_id}").status_code == 204
    assert client.get(f"/api/sessions/{session_id}/history").status_code == 404
    assert client.delete(f"/api/sessions/{session_id}").status_code == 404
    restarted = chat_events(client, {"message": QUESTION, "session_id": session_id})
    assert payload(restarted, "session")["session_id"] != session_id, "an erased id is never revived"


@pytest.mark.parametrize("session_id", ["nope", new_session_id(), "%2e%2e", "a" * 500])
def test_history_of_unknown_or_invalid_sessions_is_404(client: httpx.Client, session_id: str) -> None:
    assert client.get(f"/api/sessions/{session_id}/history").status_code == 404
    assert client.delete(f"/api/sessions/{session_id}").status_code == 404


def test_feedback_on_an_answer_reaches_the_console(client: httpx.Client, app_server) -> None:  # type: ignore[no-untyped-def]
    events = chat_events(client, {"message": QUESTION})
    message_id = payload(events, "done")["message_id"]
    rate = {"rating": "down", "comment": "Too vague"}
    response = eventually(lambda: client.post(f"/api/messages/{message_id}/feedback", json=rate).status_code == 201)
    assert response, "the answer record is written just after `done`"
    admin = {"Authorization": f"Bearer {app_server.env['ADMIN_TOKEN']}"}
    items = client.get("/api/feedback", params={"rating": "down"}, headers=admin).json()["feedback"]
    mine = next(item for item in items if item["message_id"] == message_id)
    assert mine["comment"] == "Too vague" and mine["question"] == QUESTION
    assert mine["answer"] == payload(events, "done")["text"] == answer_text(events) and mine["sources"]
    ups = client.get("/api/feedback", params={"rating": "up"}, headers=admin).json()["feedback"]
    assert all(item["message_id"] != message_id for item in ups)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"rating": "meh"}, 422), ({}, 422), ({"rating": "up", "comment": "x" * 2001}, 422), ({"rating": 1}, 422)],
)
def test_bad_feedback_is_refused(client: httpx.Client, body: dict, status: int) -> None:
    assert client.post("/api/messages/some-id/feedback", json=body).status_code == status


def test_feedback_on_an_unknown_answer_is_404(client: httpx.Client) -> None:
    response = client.post("/api/messages/no-such-answer/feedback", json={"rating": "up"})
    assert response.status_code == 404
    assert response.json()["detail"]
