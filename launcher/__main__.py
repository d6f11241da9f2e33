"""One command runs the product: `python -m launcher` (the README's `./run` calls it).

Checks every setting first (one line naming the variable and the rule, exit 1), then starts what is not
configured — Redis (embedded Valkey) unless REDIS_URL is set, the local LLM server unless LLM_BASE_URL is set (on
LOCAL_MODEL, Qwen2.5-Coder-1.5B unless set: launcher/models.py), a Chroma server unless CHROMA_URL is set —
indexes docs/ into the knowledge base, then serves the app in this process. A child that exits is restarted
with back-off (launcher/supervisor.py). SIGINT (Ctrl-C), SIGTERM, SIGHUP, a crash of the app or the launcher
killed outright each stop every child (the last through the kernel: launcher/services.py).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from launcher.admin_token import console_link, ensure_admin_token
from launcher.models import ensure_local_model, launcher_settings
from launcher.services import (
    PortTakenError,
    Service,
    StartError,
    ensure_port_free,
    start_chroma,
    start_llm,
    start_redis,
)
from launcher.supervisor import Supervisor
from settings import LocalModelError, Settings, SettingsError, get_settings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("launcher")
ROOT = Path(__file__).resolve().parents[1]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(SystemExit):
    """Raised in the main thread by a stop signal. A SystemExit, so that asyncio and uvicorn let it through to the
    launcher's cleanup (uvicorn re-raises SIGINT/SIGTERM once it has shut down; the default SIGTERM action
    would end the process there, before any cleanup)."""

    def __init__(self, signum: int) -> None:
        super().__init__(0)
        self.signal = signal.Signals(signum).name


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP stop the launcher: while the app serves, uvicorn shuts down first (SIGHUP is
    handed to it like SIGTERM); otherwise Stopped is raised. Once stopping, further signals are only logged,
    so the cleanup runs to its end."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        server = self.server
        if server is not None and server.started and not server.should_exit:
            server.handle_exit(signum, frame)  # uvicorn ends its connections, then raises `signum` again
            return
        self.quiet()
        raise Stopped(signum)

    def quiet(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda signum, frame: log.info("already stopping"))


def _problems_before_start(settings: Settings) -> list[str]:
    """Checks that need the file system, before anything starts."""
    return [
        f"INGEST_ON_START={path}: no such file or folder (give folders to index, comma-separated, or leave it empty)"
        for path in settings.ingest_on_start
        if not Path(path).exists()
    ]


def _watched(supervisor: Supervisor, part: str, service: Service) -> str:
    log.info("%s ready at %s (pid %d, log: %s)", service.name, service.url, service.process.pid, service.log_path)
    return supervisor.add(part, service).url


def start_parts(settings: Settings, supervisor: Supervisor) -> None:
    """Start the parts whose URL is not set, each watched by `supervisor`; export their URLs for the app."""
    logs = settings.data_dir / "logs"
    local_llm = "llm_base_url" not in settings.model_fields_set
    ensure_port_free(settings.port, "app", "PORT")
    gguf = ensure_local_model(settings) if local_llm else None  # before anything starts
    if settings.redis_url is None:
        redis = start_redis(settings.data_dir / "redis", settings.local_redis_port, logs)
        os.environ["REDIS_URL"] = _watched(supervisor, "redis", redis)
    if gguf is not None:
        llm = start_llm(gguf, settings.local_llm_port, logs, alias=settings.llm_model)
        os.environ["LLM_BASE_URL"] = _watched(supervisor, f"llm:{llm.url}", llm)
    if settings.chroma_url is None:
        chroma = start_chroma(settings.chroma_dir, settings.local_chroma_port, logs)
        os.environ["CHROMA_URL"] = _watched(supervisor, "chroma", chroma)


def serve(settings: Settings, supervisor: Supervisor, signals: StopSignals, console_token: str | None = None) -> int:
    """Index INGEST_ON_START, then serve the app here until a stop signal; 1 if it could not start."""
    if settings.ingest_on_start:
        from ingest.pipeline import ingest

        log.info("indexing %s into the knowledge base", settings.ingest_on_start)
        base_url = f"http://{settings.host}:{settings.port}/help/"
        report = ingest([Path(p) for p in settings.ingest_on_start], settings, base_url=base_url, prune=True)
        log.info("knowledge base: %s", report)

    import uvicorn

    from api.http_protocol import HTTP_PROTOCOL
    from server import create_app

    app = create_app(settings)
    app.state.supervisor = supervisor  # /ready names a part while it is being restarted
    # As the Dockerfile runs it: X-Forwarded-For only through TRUSTED_PROXIES (server.py), the HTTP parser's own
    # refusals in JSON (api/http_protocol.py).
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False, http=HTTP_PROTOCOL
    )
    server = uvicorn.Server(config)
    signals.server = server
    log.info("serving on http://%s:%s — Ctrl-C stops everything", settings.host, settings.port)
    if console_token:  # generated (launcher/admin_token.py): shown as notebook servers show theirs
        log.info("support console: %s", console_link(settings, console_token))
    server.run()  # a failed start (port taken, lifespan error) raises SystemExit here
    return 0 if server.started else 1


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Chroma call otherwise
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    signals = StopSignals()
    supervisor = Supervisor()
    try:
        try:
            settings = launcher_settings()
            problems = _problems_before_start(settings)
            if problems:
                raise SettingsError(problems)
            start_parts(settings, supervisor)
            console_token = ensure_admin_token(settings)  # after every check: a refused start writes nothing
            get_settings.cache_clear()
            return serve(get_settings(), supervisor, signals, console_token)
        except SettingsError as error:
            for problem in error.problems:
                log.error("%s", problem)
            return 1
        except (PortTakenError, LocalModelError, StartError) as error:
            log.error("%s", error)
            return 1
    except Stopped as stopped:
        log.info("stopping (%s)", stopped.signal)
        return 0
    finally:
        signals.quiet()
        if supervisor.children:
            log.info("stopping %s", ", ".join(child.service.name for child in supervisor.children))
            supervisor.stop()
            log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
