"""Three app processes behind Debian's nginx running the shipped deploy/nginx.conf, on one Redis server and one
Chroma server (tests/helpers/cluster.py): what compose.yaml runs. A conversation whose turns land on different
replicas keeps its memory, the per-session lock and the rate limits hold across replicas, and a replica killed
mid-answer costs that answer only.

The model is the scripted stand-in (tests/helpers/scripted_llm.py), so that a stream is slow enough to kill
and its words are known; retrieval, storage, locks, limits and the proxy are real.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
import yaml
from httpx_sse import connect_sse

from conftest import NO_RATE_LIMITS
from helpers.app_process import AppProcess, seed_knowledge_base
from helpers.cluster import Cluster, admin, run_cluster
from helpers.proxy import SHIPPED
from helpers.scripted_llm import ScriptedLLM, scripted_llm
from helpers.sse import chat_events, names, payload
from launcher.services import Service
from settings import Settings

pytestmark = pytest.mark.slow
SESSION_LIMIT = 6  # RATE_LIMIT_SESSION of every replica, per minute
FEEDBACK_LIMIT = 4  # RATE_LIMIT_FEEDBACK_IP, per minute
LOCK_SECONDS = 20  # CHAT_LOCK_SECONDS: how long a dead replica's lock outlives it (a cold cluster is slow)
QUICK = "Use the reset link on the sign-in page [1]."
SLOW = " ".join(f"word{n}" for n in range(120))  # 120 chunks, 0.1 s apart: 12 s of streaming


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as server:
        server.script(QUICK, delay=0.0)
        yield server


@pytest.fixture(scope="module")
def cluster(
    llm: ScriptedLLM, tmp_path_factory: pytest.TempPathFactory, redis_service: Service, chroma_service: Service
) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    collection = f"replicas-{work.name}"[-60:]
    seeded = Settings(_env_file=None, data_dir=work / "data", chroma_url=chroma_service.url, kb_collection=collection)  # type: ignore[call-arg]
    seed_knowledge_base(seeded)
    env = {
        "REDIS_URL": redis_service.url,
        "CHROMA_URL": chroma_service.url,
        "KB_COLLECTION": collection,
        "LLM_BASE_URL": llm.url,
        **NO_RATE_LIMITS,
        "RATE_LIMIT_SESSION": f"{SESSION_LIMIT}/minute",
        "RATE_LIMIT_FEEDBACK_IP": f"{FEEDBACK_LIMIT}/minute",
        "CHAT_LOCK_SECONDS": str(LOCK_SECONDS),
    }
    with run_cluster(work, env, replicas=3) as running:
        yield running


@pytest.fixture(scope="module")
def store(redis_service: Service) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_service.url, decode_responses=True)
    yield client
    client.close()


def turn(url: str, message: str, session_id: str | None = None, **extra: Any) -> list[tuple[str, dict[str, Any]]]:
    with httpx.Client(base_url=url, timeout=60) as client:
        return chat_events(client, {"message": message, "session_id": session_id, **extra})


def post_chat(url: str, message: str, session_id: str | None) -> httpx.Response:
    return httpx.post(url + "/chat", json={"message": message, "session_id": session_id}, timeout=60)


def history(url: str, session_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/sessions/{session_id}/history", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def deltas(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after, strict=True)]


def prompts_with(llm: ScriptedLLM, text: str) -> list[str]:
    """Every prompt the stand-in received that contains `text`, each as one JSON string."""
    return [dumped for body in llm.requests if text in (dumped := json.dumps(body["messages"]))]


# ----------------------------------------------------------------------------------------------- the proxy file


def test_the_compose_file_runs_the_same_proxy_config_the_cluster_runs() -> None:
    """The harness rewrites only addresses and paths of the file compose.yaml mounts, unchanged, into nginx."""
    compose = yaml.safe_load((SHIPPED.parent / "compose.yaml").read_text())
    assert compose["services"]["nginx"]["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert SHIPPED == (SHIPPED.parent / "compose.yaml").parent / "nginx.conf"
    conf = SHIPPED.read_text()
    assert "server app:8000;" in conf and compose["services"]["app"]["environment"]["PORT"] == "8000"
    assert "least_conn;" in conf and "proxy_buffering off;" in conf
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf


# ----------------------------------------------------------------------------------------------- memory


def test_turns_placed_on_different_replicas_share_one_memory(cluster: Cluster, llm: ScriptedLLM) -> None:
    first, second, third = cluster.replicas
    before = cluster.served("/chat")
    one = turn(first.url, "How do I reset my password?")
    session = payload(one, "session")["session_id"]
    two = turn(second.url, "How long is that link valid?", session)
    assert payload(two, "session")["session_id"] == session  # replica 2 knew the id replica 1 issued
    assert deltas(before, cluster.served("/chat")) == [1, 1, 0]

    stored = history(third.url, session)  # a replica that served neither turn reads the conversation
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "How do I reset my password?"),
        ("assistant", payload(one, "done")["text"]),
        ("user", "How long is that link valid?"),
        ("assistant", payload(two, "done")["text"]),
    ]
    # Replica 2 gave the model the turn replica 1 answered.
    assert any("How do I reset my password?" in p for p in prompts_with(llm, "How long is that link valid?"))


def test_through_the_proxy_a_conversation_spread_over_replicas_keeps_its_history(cluster: Cluster) -> None:
    before = cluster.served("/chat")
    questions = ["How do I reset my password?", "When do orders ship?", "How long do refunds take?", "Thanks!"]
    session = None
    for question in questions:
        events = turn(cluster.proxy.url, question, session)
        assert names(events)[-1] == "done", events
        session = payload(events, "session")["session_id"]
    served = deltas(before, cluster.served("/chat"))
    assert sum(served) == len(questions) and sum(1 for n in served if n) >= 2, served  # least_conn spread them
    assert session is not None
    assert [m["content"] for m in history(cluster.proxy.url, session) if m["role"] == "user"] == questions


# ----------------------------------------------------------------------------------------------- lock and limits


def test_a_second_message_on_another_replica_while_the_first_streams_gets_409(
    cluster: Cluster, llm: ScriptedLLM
) -> None:
    first, second, _ = cluster.replicas
    session = payload(turn(first.url, "How do I reset my password?"), "session")["session_id"]
    llm.script(" ".join(f"step{n}" for n in range(30)), delay=0.1)  # 3 s of streaming
    try:
        with httpx.Client(base_url=first.url, timeout=60) as client:
            body = {"message": "Tell me every step.", "session_id": session}
            with connect_sse(client, "POST", "/chat", json=body) as source:
                events = source.iter_sse()
                for event in events:
                    if event.event == "token":
                        break
                refused = post_chat(second.url, "Hello?", session)
                assert refused.status_code == 409, refused.text
                assert "still being written" in refused.json()["detail"]
                assert [e.event for e in events if e.data][-1] == "done"
    finally:
        llm.script(QUICK, delay=0.0)
    assert names(turn(second.url, "Thanks!", session))[-1] == "done"  # freed for every replica at the end


def test_the_per_session_limit_is_counted_across_replicas(cluster: Cluster) -> None:
    replicas = cluster.replicas
    session = None
    for n in range(SESSION_LIMIT):  # two turns on each replica: none of them alone reached the limit
        events = turn(replicas[n % 3].url, f"Question {n}: when do orders ship?", session)
        session = payload(events, "session")["session_id"]
    refused = post_chat(replicas[0].url, "One more?", session)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1 and "this session" in refused.json()["detail"]
    assert post_chat(cluster.proxy.url, "One more?", session).status_code == 429  # whichever replica nginx picks


def test_a_per_address_limit_is_counted_across_replicas(cluster: Cluster) -> None:
    """Sent as the trusted proxy would (the replicas believe X-Forwarded-For from 127.0.0.1): one client address,
    its ratings spread over the replicas."""
    headers = {"X-Forwarded-For": "203.0.113.41"}
    statuses = []
    for n in range(FEEDBACK_LIMIT + 1):
        url = f"{cluster.replicas[n % 3].url}/api/messages/m_nosuchanswer/feedback"
        statuses.append(httpx.post(url, json={"rating": "up"}, headers=headers, timeout=30).status_code)
    assert statuses == [404] * FEEDBACK_LIMIT + [429]
    other = httpx.post(
        f"{cluster.replicas[0].url}/api/messages/m_nosuchanswer/feedback",
        json={"rating": "up"},
        headers={"X-Forwarded-For": "203.0.113.42"},
        timeout=30,
    )
    assert other.status_code == 404  # another address: its own count


# ----------------------------------------------------------------------------------------------- a replica dies


@dataclass
class Cut:
    """What the client read of a stream whose replica was killed."""

    names: list[str] = field(default_factory=list)
    text: str = ""  # the tokens read, joined
    last_id: str = ""  # the SSE id of the last event read
    answer_id: str = ""
    victim: AppProcess | None = None
    seconds_to_end: float = 0.0  # from the kill to the end of the client's stream


def read_until_cut(source: Any, cluster: Cluster, kill_after_tokens: int) -> Cut:
    """Read the stream; after `kill_after_tokens` tokens SIGKILL the replica streaming it."""
    cut = Cut()
    killed_at = 0.0
    try:
        for event in source.iter_sse():
            if not event.data:  # a ping after an event with an id (tests/helpers/sse.py)
                continue
            cut.names.append(event.event)
            cut.last_id = event.id
            data = json.loads(event.data)
            if event.event == "session":
                cut.answer_id = data["answer_id"]
            elif event.event == "token":
                cut.text += data["text"]
            if cut.victim is None and cut.names.count("token") == kill_after_tokens:
                streaming = cluster.streaming()
                assert len(streaming) == 1, "exactly one replica streams the answer"
                cut.victim = streaming[0]
                cut.victim.process.kill()
                killed_at = time.monotonic()
    except httpx.RemoteProtocolError:  # nginx closes the client's connection without the body's last chunk
        pass
    assert cut.victim is not None, f"the stream ended before {kill_after_tokens} tokens: {cut.names}"
    cut.seconds_to_end = time.monotonic() - killed_at
    return cut


def resume(url: str, session_id: str, answer_id: str, last_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """GET /chat/stream/{answer_id} after `last_id` (docs/api.md): (id, name, data) of each event until the end."""
    headers = {"Last-Event-ID": last_id}
    params = {"session_id": session_id}
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=LOCK_SECONDS + 10)) as client:
        with connect_sse(client, "GET", f"/chat/stream/{answer_id}", params=params, headers=headers) as source:
            assert source.response.status_code == 200, source.response.read()
            return [(e.id, e.event, json.loads(e.data)) for e in source.iter_sse() if e.data]


def order(event_id: str) -> tuple[int, int]:
    first, second = event_id.split("-")
    return int(first), int(second)


def test_a_stream_dropped_on_one_replica_resumes_on_another_exactly_once(cluster: Cluster, llm: ScriptedLLM) -> None:
    """Through the proxy, the client drops after a few tokens; it resumes on a replica that is not generating the
    answer, which replays what it missed from Redis and then follows the rest live."""
    llm.script(" ".join(f"part{n}" for n in range(40)), delay=0.1)  # 4 s of streaming
    seen: list[tuple[str, str, dict[str, Any]]] = []
    try:
        with httpx.Client(base_url=cluster.proxy.url, timeout=60) as client:
            body = {"message": "How do I reset my password?", "session_id": None}
            with connect_sse(client, "POST", "/chat", json=body) as source:
                for event in source.iter_sse():
                    if event.data:
                        seen.append((event.id, event.event, json.loads(event.data)))
                    if [name for _, name, _ in seen].count("token") == 5:
                        generating = cluster.streaming()
                        break  # the connection closes here: the answer goes on on its replica
        session, answer_id = seen[0][2]["session_id"], seen[0][2]["answer_id"]
        assert len(generating) == 1
        other = next(app for app in cluster.alive() if app is not generating[0])
        rest = resume(other.url, session, answer_id, seen[-1][0])
    finally:
        llm.script(QUICK, delay=0.0)
    assert rest[-1][1] == "done" and all(order(i) > order(seen[-1][0]) for i, _, _ in rest)
    tokens = "".join(d["text"] for _, name, d in seen + rest if name == "token")
    assert tokens == rest[-1][2]["text"] == " ".join(f"part{n}" for n in range(40))
    assert history(other.url, session)[-1]["content"] == rest[-1][2]["text"]


def test_a_replica_killed_mid_answer_costs_that_answer_only(
    cluster: Cluster, llm: ScriptedLLM, store: redis.Redis
) -> None:
    """Runs last: it leaves the cluster one replica short."""
    first = turn(cluster.proxy.url, "I want to talk to a human")  # an escalation: a ticket, no LLM call
    session = payload(first, "session")["session_id"]
    ticket = payload(first, "escalated")["ticket_id"]
    kept = history(cluster.proxy.url, session)

    llm.script(SLOW, delay=0.1)
    try:
        with httpx.Client(base_url=cluster.proxy.url, timeout=httpx.Timeout(30, read=20)) as client:
            body = {"message": "How do I reset my password? Every step, please.", "session_id": session}
            with connect_sse(client, "POST", "/chat", json=body) as source:
                assert source.response.status_code == 200
                cut = read_until_cut(source, cluster, kill_after_tokens=3)
    finally:
        llm.script(QUICK, delay=0.0)
    assert cut.victim is not None and cut.victim.process.wait(10) == -9
    assert "done" not in cut.names and cut.seconds_to_end < 10, cut  # the client sees a cut, promptly

    # The dead replica's lock frees itself (CHAT_LOCK_SECONDS); meanwhile the session is refused, not broken.
    assert post_chat(cluster.proxy.url, "Hello?", session).status_code == 409
    # A resume on a survivor replays what Redis holds, then, the dead replica's heartbeat gone, ends the answer
    # itself: an error carrying the fallback, then `done` with the partial text, marked interrupted.
    survivor = cluster.alive()[0]
    rest = resume(survivor.url, session, cut.answer_id, cut.last_id)
    assert [name for _, name, _ in rest[-2:]] == ["error", "done"], rest
    error, done = rest[-2][2], rest[-1][2]
    assert error["code"] == "answer_lost" and "person" in error["message"]
    partial = cut.text + "".join(d["text"] for _, name, d in rest if name == "token")
    assert len(partial) >= len(cut.text) > 0 and SLOW.startswith(partial)
    assert done["text"] == partial and done["interrupted"] is True
    deadline = time.monotonic() + LOCK_SECONDS + 5
    while store.exists(f"api:lock:{session}") and time.monotonic() < deadline:
        time.sleep(0.5)

    before = cluster.served("/chat")
    third = turn(cluster.proxy.url, "I still need a human, please", session)
    assert names(third)[-1] == "done"
    assert payload(third, "escalated")["ticket_id"] == ticket  # the open ticket, updated: no second one
    assert sum(deltas(before, cluster.served("/chat"))) == 1  # a surviving replica answered

    after = history(cluster.proxy.url, session)
    assert after[: len(kept)] == kept  # nothing stored before the kill is lost
    # ... and the killed turn itself is kept, by the resume that ended it: the question, then what was shown
    question, reply = after[len(kept)], after[len(kept) + 1]
    assert (question["role"], question["content"]) == ("user", body["message"])
    assert (reply["role"], reply["content"], reply["interrupted"]) == ("assistant", partial, True)
    assert after[-1]["content"] == payload(third, "done")["text"]
    tickets = httpx.get(cluster.proxy.url + "/api/tickets", headers=admin(), timeout=30).json()["tickets"]
    assert [t["ticket_id"] for t in tickets if t["session_id"] == session] == [ticket]
