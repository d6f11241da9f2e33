"""1 000 chat streams aborted by the client: does the app leak tasks, sockets or memory?

Starts the real parts (Redis, llama.cpp with SmolLM2, Chroma) and one app process, indexes a small document,
then opens N streams that each go away mid-answer (after the first token, or after `sources` for every other
one). Before and after (after a warm-up of 50 and a few seconds to settle) it reads, for the app process: open
file descriptors and sockets (/proc), resident memory, threads, the `chat_streams_in_progress` gauge (streams
the app still thinks are running), and the number of Redis client connections.

    .venv/bin/python bench/abort_bench.py [--streams 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from ingest.pipeline import ingest
from launcher.services import free_port, start_chroma, start_llm, start_redis
from settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def sample(pid: int, url: str, redis_url: str) -> dict[str, float]:
    fds = os.listdir(f"/proc/{pid}/fd")
    sockets = sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in fds if fd.isdigit())
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    streams = next(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("chat_streams_in_progress")
    )
    return {
        "fds": len(fds),
        "sockets": sockets,
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
        "streams_in_progress": streams,
        "redis_clients": len(redis.Redis.from_url(redis_url).client_list()),
    }


def abort_one(client: httpx.Client, n: int) -> None:
    body = {"message": "How do I reset my password?", "session_id": None}
    with client.stream("POST", "/chat", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("event: token") or (n % 2 and line.startswith("event: sources")):
                return  # leaving the block closes the connection mid-answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        parts = [
            start_redis(work / "redis", free_port(), work, prefer="redis"),
            start_llm(Settings().gguf_path, free_port(), work),
            start_chroma(work / "chroma", free_port(), work),
        ]
        redis_url, llm_url, chroma_url = (p.url for p in parts)
        docs = work / "docs"
        docs.mkdir()
        (docs / "password.md").write_text("# Password\n\nClick Forgot password. The reset link lasts 30 minutes.")
        settings = Settings(_env_file=None, chroma_url=chroma_url, kb_collection="bench-abort")  # type: ignore[call-arg]
        ingest([docs], settings)
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "LLM_BASE_URL": llm_url,
            "CHROMA_URL": chroma_url,
            "KB_COLLECTION": "bench-abort",
            "RATE_LIMIT_IP": "1000000/minute",
            "OPS_ROUTES_PUBLIC": "true",  # it reads /metrics
            "RATE_LIMIT_SESSION": "1000000/minute",
            "INGEST_ON_START": "",
            "LLM_MAX_TOKENS": "64",
            "HF_HUB_OFFLINE": "1",
            "DATA_DIR": str(work / "data"),
        }
        log = (work / "app.log").open("wb")
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "server:create_app",
                "--factory",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            with httpx.Client(base_url=url, timeout=60) as client:
                for n in range(50):
                    abort_one(client, n)
            time.sleep(5)
            before = sample(app.pid, url, redis_url)
            started = time.perf_counter()
            with httpx.Client(base_url=url, timeout=60) as client:
                for n in range(args.streams):
                    abort_one(client, n)
            elapsed = time.perf_counter() - started
            time.sleep(5)
            after = sample(app.pid, url, redis_url)
            answered = httpx.post(f"{url}/chat", json={"message": "How do I reset my password?"}, timeout=120)
        finally:
            app.terminate()
            app.wait(20)
            for part in parts:
                part.stop()
    print(f"{args.streams} streams aborted by the client in {elapsed:.0f} s (real llama.cpp, SmolLM2, 64 max tokens)")
    print(f"{'':22}{'before':>10}{'after':>10}")
    for key in before:
        print(f"{key:22}{before[key]:>10.1f}{after[key]:>10.1f}")
    print(f"a normal answer afterwards: HTTP {answered.status_code}, {answered.text.count('event: token')} tokens")


if __name__ == "__main__":
    main()
