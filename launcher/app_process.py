"""The real app in a uvicorn subprocess on a free port, and a knowledge base seeded the way ingestion writes it
(by default a small sample help centre).

For the tests and the benchmarks (each brings its own documents): requests go through real HTTP, so what is
measured or tested is exactly what a browser or `curl` gets — headers, status codes, streaming, disconnects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.http_protocol import HTTP_PROTOCOL
from launcher.services import Service, free_port, start_chroma, start_llm, start_redis
from settings import Settings
from tools.documents import Chunk, index_text
from tools.embeddings import get_embeddings
from tools.store import get_collection

ROOT = Path(__file__).resolve().parents[1]

# A small sample help centre: what the tests and the benchmarks ask about.
HELP_CENTER = [
    Chunk(
        "A password reset link is sent to your e-mail address. It expires after 30 minutes; "
        "request a new one from the sign-in page if it has expired.",
        "Resetting your password",
        "https://help.example.com/account/password-reset",
        "account.md",
        section="Reset link",
    ),
    Chunk(
        "Invoices are issued on the first day of each month and can be downloaded as PDF from Billing > "
        "History. Refunds take 5-10 business days to reach your card.",
        "Billing and invoices",
        "https://help.example.com/billing",
        "billing.md",
    ),
    Chunk(
        "Orders ship within two business days. International delivery takes 7-14 days and tracking numbers "
        "are e-mailed when the parcel leaves our warehouse.",
        "Shipping",
        "https://help.example.com/shipping",
        "shipping.md",
    ),
]


def seed_knowledge_base(settings: Settings, chunks: list[Chunk] = HELP_CENTER, version: int | None = None) -> None:
    """Write chunks the way ingestion does (ids, metadata, embedded index_text) and bump `kb_version`."""
    collection = get_collection(settings)
    vectors = get_embeddings(settings).embed_documents([index_text(c.title, c.section, c.text) for c in chunks])
    collection.upsert(
        ids=[c.chunk_id for c in chunks],
        documents=[c.text for c in chunks],
        metadatas=[c.metadata() for c in chunks],  # type: ignore[misc]
        embeddings=vectors,  # type: ignore[arg-type]
    )
    collection.modify(metadata={"kb_version": version if version is not None else int(time.time())})


@dataclass
class AppProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _wait_ready(app: AppProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"app exited with {app.process.returncode}:\n{app.log_tail()}")
        try:
            if httpx.get(app.url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"app not ready within {timeout:.0f} s: {app.log}")


@contextmanager
def run_app(work: Path, env: dict[str, str], timeout: float = 120.0) -> Iterator[AppProcess]:
    """Start `uvicorn --factory server:create_app` with `env` added to this environment; stop it after."""
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"app-{port}.log"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "INGEST_ON_START": "", "DATA_DIR": str(work / "data"), **env}
    # As the Dockerfile runs it: no client-written X-Forwarded-For believed (the app applies TRUSTED_PROXIES), and
    # the HTTP parser's own refusals in JSON.
    command = [sys.executable, "-m", "uvicorn", "server:create_app", "--factory", "--host", "127.0.0.1"]
    command += ["--no-proxy-headers", "--http", HTTP_PROTOCOL]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app = AppProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(app, timeout)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def bench_parts(work: Path, collection: str) -> Iterator[tuple[Service, Service, Service]]:
    """What the benchmarks start: a Redis server, a Chroma server whose `collection` holds the sample help centre,
    and the local LLM server (LOCAL_MODEL); (redis, chroma, llm), all stopped at the end, the last started first."""
    services: list[Service] = []
    try:
        services.append(start_redis(work / "redis", free_port(), work / "logs"))
        services.append(start_chroma(work / "chroma", free_port(), work / "logs"))
        services.append(start_llm(Settings().gguf_path, free_port(), work / "logs"))
        redis, chroma, llm = services
        seeded = Settings(_env_file=None, data_dir=work / "data", chroma_url=chroma.url, kb_collection=collection)  # type: ignore[call-arg]
        seed_knowledge_base(seeded)
        yield redis, chroma, llm
    finally:
        for service in reversed(services):
            service.stop()
