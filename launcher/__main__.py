"""One command runs the product: `python -m launcher` (the README's `./run` calls it).

Starts what is not configured — Redis (embedded Valkey) unless REDIS_URL is set, the local LLM server unless
LLM_BASE_URL is set (on LOCAL_MODEL, Qwen2.5-Coder-1.5B unless set: launcher/models.py), a Chroma server unless
CHROMA_URL is set — indexes docs/ into the knowledge base, then serves the app. Ctrl-C stops every child process.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from launcher.models import ensure_local_model, launcher_settings
from launcher.services import PortTakenError, Service, ensure_port_free, start_chroma, start_llm, start_redis
from settings import LocalModelError, get_settings

log = logging.getLogger("launcher")
ROOT = Path(__file__).resolve().parents[1]


def _start(stack: ExitStack, service: Service) -> str:
    stack.callback(service.stop)
    log.info("%s ready at %s (log: %s)", service.name, service.url, service.log_path)
    return service.url


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Chroma call otherwise
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    settings = launcher_settings()
    logs = settings.data_dir / "logs"
    local_llm = "llm_base_url" not in settings.model_fields_set
    with ExitStack() as stack:
        try:
            ensure_port_free(settings.port, "app", "PORT")
            gguf = ensure_local_model(settings) if local_llm else None  # before anything starts
            if settings.redis_url is None:
                redis = start_redis(settings.data_dir / "redis", settings.local_redis_port, logs)
                os.environ["REDIS_URL"] = _start(stack, redis)
            if gguf is not None:
                llm = start_llm(gguf, settings.local_llm_port, logs, alias=settings.llm_model)
                os.environ["LLM_BASE_URL"] = _start(stack, llm)
            if settings.chroma_url is None:
                chroma = start_chroma(settings.chroma_dir, settings.local_chroma_port, logs)
                os.environ["CHROMA_URL"] = _start(stack, chroma)
        except (PortTakenError, LocalModelError) as error:
            log.error("%s", error)
            return 1
        get_settings.cache_clear()
        settings = get_settings()

        if settings.ingest_on_start:
            from ingest.pipeline import ingest

            log.info("indexing %s into the knowledge base", settings.ingest_on_start)
            base_url = f"http://{settings.host}:{settings.port}/help/"
            report = ingest([Path(p) for p in settings.ingest_on_start], settings, base_url=base_url, prune=True)
            log.info("knowledge base: %s", report)

        import uvicorn

        from server import create_app

        log.info("serving on http://%s:%s — Ctrl-C stops everything", settings.host, settings.port)
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
