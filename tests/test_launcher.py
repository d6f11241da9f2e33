"""The one-command launcher: settings checked before anything starts, children supervised and stopped however
the launcher ends; and the help pages it links sources to."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.help import router as help_router
from helpers.wait import eventually
from launcher.admin_token import ensure_admin_token
from launcher.services import CHILD_ENV, CHILD_SETTINGS, Service, free_port, port_in_use, start_llm
from settings import Settings, SettingsError, get_settings, settings_problems

ROOT = Path(__file__).resolve().parents[1]


def test_a_taken_port_stops_the_launcher_with_a_message_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "DATA_DIR": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "PORT" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LOCAL_MODEL",
            "qwen-coder",
            "LOCAL_MODEL='qwen-coder' is unknown: use one of qwen2.5-coder-1.5b, smollm2 or a",
        ),
        (
            "LOCAL_MODEL",
            "/nowhere/model.gguf",
            "LOCAL_MODEL=/nowhere/model.gguf: no such file; give a GGUF file or one",
        ),
        ("LOCAL_MODEL_PATH", "/nowhere/m.gguf", "LOCAL_MODEL_PATH=/nowhere/m.gguf: no such file; give a GGUF file or"),
    ],
)
def test_a_bad_local_model_stops_the_launcher_before_anything_starts(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = {**os.environ, variable: value, "PORT": str(free_port()), "DATA_DIR": str(tmp_path)}
    env.pop("LLM_BASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "launcher:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert list(tmp_path.iterdir()) == []  # no Redis, no LLM server, no Chroma: not even a log folder


def test_the_llm_server_keeps_its_own_port_when_the_app_port_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama_cpp.server prefers HOST/PORT from the environment over --host/--port; `PORT=9000 ./run` must still
    put the LLM server on LOCAL_LLM_PORT and leave PORT to the app."""
    app_port, llm_port = free_port(), free_port()
    monkeypatch.setenv("PORT", str(app_port))
    monkeypatch.setenv("HOST", "127.0.0.2")
    llm = start_llm(Settings(_env_file=None).gguf_path, llm_port, tmp_path)  # type: ignore[call-arg]
    try:
        assert llm.url == f"http://127.0.0.1:{llm_port}/v1"
        assert not port_in_use(app_port)
    finally:
        llm.stop()


def test_the_llm_server_reads_prompts_with_flash_attention_and_without_all_logits(llm_service: Service) -> None:
    """What the llama.cpp server itself reports having set up: flash attention reads prompts ~19 % faster here
    (docs/quality.md), and all-position logits would cost Qwen ~1.2 GB (docs/configuration.md)."""
    assert llm_service.log_path is not None
    log = llm_service.log_path.read_text(errors="replace")
    assert re.search(r"flash_attn\s*=\s*(enabled|1)\b", log), "the server runs without flash attention"
    assert not re.search(r"logits_all\s*=\s*(true|1)\b", log, re.IGNORECASE)


def test_help_pages_render_the_docs_with_the_anchors_citations_use() -> None:
    app = FastAPI()
    app.include_router(help_router)
    client = TestClient(app)
    page = client.get("/help/configuration.md")
    assert page.status_code == 200
    assert 'id="conversations"' in page.text
    assert client.get("/help/").status_code == 200
    assert client.get("/help/../pyproject.toml").status_code == 404
    assert client.get("/help/nope.md").status_code == 404


# --- Settings checked before anything starts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("KB_COLLECTION", "aq", "must be 3-512 characters"),
        ("RATE_LIMIT_IP", "20/fortnight", "must be a rate in `limits` notation"),
        ("LLM_BASE_URL", "localhost:8081/v1", "must be an http:// or https:// URL"),
    ],
)
def test_a_bad_setting_stops_the_launcher_with_one_line_before_anything_starts(
    tmp_path: Path, variable: str, value: str, rule: str
) -> None:
    env = {**os.environ, variable: value, "PORT": str(free_port()), "DATA_DIR": str(tmp_path)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # no traceback, nothing else
    assert f"launcher: {variable}={value!r}: {rule}" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no Redis, no LLM server, no Chroma: not even a log folder


def test_the_server_started_alone_fails_the_same_way(tmp_path: Path) -> None:
    env = {**os.environ, "KB_COLLECTION": "aq", "DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0"}
    command = [sys.executable, "-m", "uvicorn", "--factory", "server:create_app", "--port", str(free_port())]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("KB_COLLECTION='aq': must be 3-512 characters"), result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("PORT", "70000", "must be a port number from 1 to 65535"),
        ("LOCAL_REDIS_PORT", "0", "must be a port number from 1 to 65535"),
        ("LLM_READ_TIMEOUT", "0", "must be more than 0"),
        ("HISTORY_TURNS", "-1", "must be 0 or more"),
        ("RELEVANCE_THRESHOLD", "1.5", "must be between 0 and 1"),
        ("RETRIEVAL_K", "51", "must be between 1 and 50"),
        ("LLM_TEMPERATURE", "3", "must be between 0 and 2"),
        ("KB_COLLECTION", "_underscored", "must be 3-512 characters"),
        ("KB_COLLECTION", "a..b", "no '..'"),
        ("KB_COLLECTION", "10.0.0.1", "not an IPv4 address"),
        ("RATE_LIMIT_SESSION", "20/minute;5/second", "must be one rate"),
        ("RATE_LIMIT_TICKETS_IP", "0/hour", "must allow at least 1 request"),
        ("REDIS_URL", "http://127.0.0.1:6379", "must be a redis://, rediss://, unix:// or redis+sentinel:// URL"),
        ("CHROMA_URL", "127.0.0.1:8082", "must be an http:// or https:// URL"),
        ("TICKET_WEBHOOK_URL", "ftp://hooks.example", "must be an http:// or https:// URL"),
        ("CORS_ORIGINS", "https://a.example/", "is not an origin"),
        ("FRAME_ANCESTORS", "'self'; script-src *", "must be CSP sources separated by spaces"),
        ("HOST", "local host", "must be an IP address or a host name"),
        ("LLM_MAX_TOKENS", "5000", "leaves no room for the prompt"),
        ("LOCAL_LLM_PORT", "8000", "PORT and LOCAL_LLM_PORT are both 8000"),
    ],
)
def test_each_setting_is_checked_against_its_rule(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, rule: str
) -> None:
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as raised:
            get_settings()
    finally:
        get_settings.cache_clear()
    [problem] = raised.value.problems
    assert variable in problem and rule in problem


def test_documented_values_pass_and_secrets_are_never_echoed() -> None:
    Settings(
        _env_file=None,  # type: ignore[call-arg]
        rate_limit_ip="5 per 10 seconds",
        cors_origins="https://a.example,http://localhost:3000",  # type: ignore[arg-type]
        frame_ancestors="'self' https://www.example.com",
        host="0.0.0.0",
        redis_url="rediss://:secret@redis.example:6380/0",
        kb_collection="a" * 512,
        llm_max_tokens=4000,
    )
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, redis_url="http://user:hunter2@redis.example")  # type: ignore[call-arg]
    [problem] = settings_problems(raised.value)
    assert "hunter2" not in problem and problem.startswith("REDIS_URL=")


# --- Children: their environment, supervision, and stopping -----------------------------------------------------

ADMIN = "launcher-test-admin-token"  # a setting of the app that must not reach any child
KINDS = {"llama_cpp.server": "llm", "valkey-server": "redis", "redis-server": "redis", "bin/chroma": "chroma"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def children_of(parent: int) -> dict[str, int]:
    """The launcher's live children by kind (llm, redis, chroma)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            command = _cmdline(int(entry.name))
            kind = next((kind for needle, kind in KINDS.items() if needle in command), None)
            if kind:
                found[kind] = int(entry.name)
    return found


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


@dataclass
class Launcher:
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]
    admin_token: str | None
    data_dir: Path
    seen: set[int] = field(default_factory=set)  # every child pid seen: all must be gone at the end

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['PORT']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        found = children_of(self.process.pid)
        self.seen.update(found.values())
        return found

    def console_link(self) -> str:
        found = re.search(r"support console: (\S+)", self.output())
        return found.group(1) if found else ""

    @property
    def admin(self) -> str:
        """ADMIN_TOKEN as set, or as generated and printed in the console link."""
        return self.admin_token or self.console_link().partition("#token=")[2]

    def ready(self) -> httpx.Response | None:
        try:
            return httpx.get(f"{self.url}/ready", headers={"Authorization": f"Bearer {self.admin}"}, timeout=5)
        except httpx.HTTPError:
            return None

    def wait_until_ready(self, timeout: float = 240) -> dict[str, int]:
        def up() -> bool:
            assert self.process.poll() is None, self.output()
            response = self.ready()
            return response is not None and response.json().get("status") == "ready"

        assert eventually(up, timeout), self.output()[-3000:]
        children = self.children()
        assert sorted(children) == ["chroma", "llm", "redis"], self.output()[-3000:]
        return children

    def wait_for_line(self, pattern: str, timeout: float = 120) -> None:
        found = eventually(lambda: re.search(pattern, self.output()) or self.process.poll() is not None, timeout)
        assert found and self.process.poll() is None, self.output()[-3000:]

    def survivors(self) -> list[str]:
        return [_cmdline(pid) for pid in self.seen if alive(pid)]


@contextmanager
def launcher(tmp_path: Path, admin_token: str | None = ADMIN) -> Iterator[Launcher]:
    """`python -m launcher` on SmolLM2, on free ports, with the app's PORT, HOST and ADMIN_TOKEN (None: unset) set;
    any child still running at the end is killed, so a failing test leaves nothing behind."""
    ports = {name: free_port() for name in ("PORT", "LOCAL_LLM_PORT", "LOCAL_CHROMA_PORT", "LOCAL_REDIS_PORT")}
    unset = ("LLM_BASE_URL", "REDIS_URL", "CHROMA_URL", "ADMIN_TOKEN")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env |= {name: str(port) for name, port in ports.items()}
    env |= {
        "HOST": "127.0.0.1",
        "DATA_DIR": str(tmp_path / "data"),
        "LOCAL_MODEL": "smollm2",
        "INGEST_ON_START": "",
        "OPS_ROUTES_PUBLIC": "true",
    } | ({"ADMIN_TOKEN": admin_token} if admin_token else {})
    log = tmp_path / "launcher.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    running = Launcher(process, log, ports, admin_token, tmp_path / "data")
    try:
        yield running
    finally:
        running.children()
        if process.poll() is None:
            process.kill()
            process.wait(30)
        for pid in running.seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """One launcher run for the checks below, as a new user starts it (no ADMIN_TOKEN); the last of them stops it
    with SIGTERM."""
    with launcher(tmp_path_factory.mktemp("launcher"), admin_token=None) as started:
        started.wait_until_ready()
        yield started


def test_children_get_only_their_own_environment(running: Launcher) -> None:
    """The app's settings (PORT, HOST, ADMIN_TOKEN, …) never reach a child: llama_cpp.server, for one, would bind
    the app's PORT."""
    for kind, pid in running.children().items():
        names = set(environ(pid))
        assert names <= set(CHILD_ENV) | set(CHILD_SETTINGS) | {n for n in names if n.startswith("LC_")}, kind
        assert not {"PORT", "HOST", "ADMIN_TOKEN", "LOCAL_MODEL", "DATA_DIR"} & names, kind
    assert port_in_use(running.ports["LOCAL_LLM_PORT"])
    assert httpx.get(f"http://127.0.0.1:{running.ports['LOCAL_LLM_PORT']}/v1/models", timeout=5).is_success


def test_without_admin_token_it_prints_a_console_link_whose_token_opens_the_lead_api(running: Launcher) -> None:
    """The one command makes the console usable: a generated token, kept owner-only under DATA_DIR, printed once
    in a link that carries it in the fragment (never sent to the server, so never in an access log)."""
    link = running.console_link()
    assert link.startswith(f"{running.url}/console#token="), running.output()[-2000:]
    kept = running.data_dir / "admin-token"
    assert kept.read_text().strip() == running.admin and len(running.admin) >= 32
    assert kept.stat().st_mode & 0o777 == 0o600
    headers = {"Authorization": f"Bearer {running.admin}"}
    assert httpx.get(f"{running.url}/api/tickets", headers=headers, timeout=10).status_code == 200
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert httpx.get(f"{running.url}/api/tickets", headers=wrong, timeout=10).status_code == 403


def test_the_generated_token_survives_a_restart_and_a_set_token_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    unset = Settings(_env_file=None, data_dir=tmp_path / "a")  # type: ignore[call-arg]
    first = ensure_admin_token(unset)
    assert first and os.environ["ADMIN_TOKEN"] == first
    assert ensure_admin_token(unset) == first  # the link printed last time keeps working
    (tmp_path / "a" / "admin-token").write_text("short\n")  # cut short or emptied: replaced, never used
    assert (renewed := ensure_admin_token(unset)) not in (None, first, "short") and len(renewed) >= 32

    monkeypatch.delenv("ADMIN_TOKEN")
    given = Settings(_env_file=None, data_dir=tmp_path / "b", admin_token="set-by-the-operator-" * 2)  # type: ignore[call-arg]
    assert ensure_admin_token(given) is None  # nothing to print
    assert not (tmp_path / "b").exists() and "ADMIN_TOKEN" not in os.environ


def test_a_killed_llm_server_is_restarted_and_ready_says_degraded_meanwhile(running: Launcher) -> None:
    old = running.children()["llm"]
    os.kill(old, signal.SIGKILL)

    def restarting() -> dict | None:
        response = running.ready()
        if response is None:
            return None
        body = response.json()
        llm = next(part for part in body["parts"] if part["name"].startswith("llm:"))
        return body if llm["status"] == "restarting" else None

    body = eventually(restarting, 10)
    assert body, running.output()[-3000:]
    assert body["status"] == "degraded"
    [llm] = [part for part in body["parts"] if part["name"] in body["degraded"]]
    assert llm["name"] == f"llm:http://127.0.0.1:{running.ports['LOCAL_LLM_PORT']}/v1"
    assert llm["restarting"]["restarts"] == 1
    assert not alive(old)  # reaped, not left defunct

    running.wait_until_ready(60)
    assert running.children()["llm"] != old
    assert re.search(rf"llm \(pid {old}\) exited with signal SIGKILL; restarting in 1 s", running.output())
    assert re.search(r"llm is back at \S+ \(pid \d+\)", running.output())


def test_killed_valkey_and_chroma_servers_are_restarted_too(running: Launcher) -> None:
    before = running.children()
    os.kill(before["redis"], signal.SIGKILL)
    os.kill(before["chroma"], signal.SIGKILL)
    down = eventually(lambda: (r := running.ready()) is not None and r.status_code == 503 and r.json(), 10)
    assert down and {"redis", "chroma"} & set(down["degraded"]), running.output()[-3000:]
    after = running.wait_until_ready(90)
    assert after["redis"] != before["redis"] and after["chroma"] != before["chroma"]


def test_sigterm_stops_every_child(running: Launcher) -> None:
    """Last of the module: uvicorn re-raises SIGTERM once it has shut down; the launcher still stops its children
    before it exits, and exits 0."""
    children = running.children()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(60) == 0, running.output()[-3000:]
    assert running.survivors() == [], children


def test_sigint_during_start_up_stops_what_was_started(tmp_path: Path) -> None:
    """Ctrl-C while the LLM server is still loading: Redis (running) and the LLM server (starting) both stop."""
    with launcher(tmp_path) as starting:
        starting.wait_for_line(r"redis ready at")
        eventually(lambda: "llm" in starting.children(), 10)
        assert sorted(starting.children()) == ["llm", "redis"], starting.output()
        starting.process.send_signal(signal.SIGINT)
        assert starting.process.wait(60) == 0, starting.output()[-3000:]
        assert starting.survivors() == []


def test_the_app_crashing_stops_every_child(tmp_path: Path) -> None:
    """The app runs inside the launcher: killed outright (SIGKILL, as the OOM killer would), it cannot clean up;
    the kernel stops its children (PR_SET_PDEATHSIG, set in launcher/services.py)."""
    with launcher(tmp_path) as serving:
        serving.wait_for_line(r"serving on http")
        assert sorted(serving.children()) == ["chroma", "llm", "redis"], serving.output()
        serving.process.kill()
        serving.process.wait(10)
        assert eventually(lambda: serving.survivors() == [], 15), serving.survivors()
