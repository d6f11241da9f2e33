"""Many concurrent /chat streams against ONE app process: added inter-token latency and errors.

    .venv/bin/python bench/load_bench.py                     # 50, 100, 200 concurrent streams
    .venv/bin/python bench/load_bench.py --streams 50 --tokens 60

BENCHMARK-ONLY STAND-IN LLM: the language model is replaced by `paced_llm`, a constant-rate streaming
OpenAI-compatible endpoint defined in this file and started by it (never used by the product or the tests),
so the app's own overhead is measured instead of llama.cpp (one request at a time). It streams `--tokens`
chunks `--interval-ms` apart. Real Redis (embedded Valkey or redis-server) and a real Chroma server with a
small knowledge base are started too; rate limits are raised for the run.

Per level it first reads N streams straight from the stand-in (the baseline: same client, same machine), then N
through /chat, and prints: streams completed / errors, time to first token p50/p95, the mean inter-token gap
(paced, direct, through /chat) and the added inter-token latency vs direct (goal ≤ 10 % at 200, errors 0), and
the app process's CPU use. The machine has 2 cores shared by the app, the stand-in, the clients, Redis and
Chroma, so the direct baseline matters: it absorbs what the clients themselves cost.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


# ------------------------------------------------------------------------- the benchmark-only stand-in LLM
def paced_llm(tokens: int, interval: float):  # type: ignore[no-untyped-def]
    """BENCHMARK ONLY: an OpenAI-compatible `/v1/chat/completions` that streams `tokens` chunks at a constant
    pace, and `/v1/models`. Not a product component."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "paced", "object": "model"}]})

    async def completions(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        created = int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            data = {
                "id": "bench",
                "object": "chat.completion.chunk",
                "created": created,
                "model": "paced",
                "choices": [choice],
            }
            return f"data: {json.dumps(data)}\n\n"

        if not body.get("stream"):
            message = {"role": "assistant", "content": " ".join(["word"] * tokens)}
            return JSONResponse(
                {
                    "id": "bench",
                    "object": "chat.completion",
                    "created": created,
                    "model": "paced",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                }
            )

        async def stream():  # type: ignore[no-untyped-def]
            yield chunk({"role": "assistant", "content": ""})
            start = time.perf_counter()
            for i in range(tokens):
                await asyncio.sleep(max(0.0, start + (i + 1) * interval - time.perf_counter()))
                yield chunk({"content": f" w{i}"})
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", completions, methods=["POST"])])


def serve_paced_llm(port: int, tokens: int, interval: float) -> None:
    import uvicorn

    uvicorn.run(paced_llm(tokens, interval), host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------------------------------- the clients
async def one_stream(client, index: int) -> dict:  # type: ignore[no-untyped-def]
    """One /chat stream; the arrival time of every token."""
    from httpx_sse import aconnect_sse

    started = time.perf_counter()
    arrivals: list[float] = []
    events: list[str] = []
    try:
        async with aconnect_sse(
            client, "POST", "/chat", json={"message": f"How do I reset my password? ({index})"}
        ) as source:
            if source.response.status_code != 200:
                return {"error": f"HTTP {source.response.status_code}"}
            async for event in source.aiter_sse():
                events.append(event.event)
                if event.event == "token":
                    arrivals.append(time.perf_counter())
                elif event.event == "error":
                    return {"error": f"error event {event.data}"}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    if not events or events[-1] != "done":
        return {"error": f"stream ended without done: {events[-3:]}"}
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return {"ttft": arrivals[0] - started if arrivals else None, "gaps": gaps}


async def one_direct_stream(client, index: int) -> dict:  # type: ignore[no-untyped-def]
    """The baseline: the same client reading the stand-in LLM directly (no app in between)."""
    started = time.perf_counter()
    arrivals: list[float] = []
    body = {"messages": [{"role": "user", "content": f"baseline {index}"}], "stream": True}
    try:
        async with client.stream("POST", "/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {") and '"content": " ' in line:
                    arrivals.append(time.perf_counter())
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return {"ttft": arrivals[0] - started if arrivals else None, "gaps": gaps}


async def run_level(url: str, streams: int, direct: bool = False) -> list[dict]:
    import httpx

    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    one = one_direct_stream if direct else one_stream
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120), limits=limits) as client:
        return await asyncio.gather(*(one(client, i) for i in range(streams)))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mean_gap(results: list[dict]) -> float:
    return statistics.fmean([g for r in results if "error" not in r for g in r["gaps"]] or [float("nan")])


def report(streams: int, results: list[dict], baseline: list[dict], interval: float) -> str:
    errors = [r["error"] for r in results if "error" in r]
    good = [r for r in results if "error" not in r]
    gaps = [g for r in good for g in r["gaps"]]
    ttfts = [r["ttft"] for r in good if r["ttft"] is not None]
    if not gaps:
        return f"{streams:>4} streams: {len(errors)} errors, e.g. {errors[:2]}"
    through, direct = mean_gap(results), mean_gap(baseline)
    line = (
        f"{streams:>4} streams | ok {len(good):>3} errors {len(errors)} | TTFT p50 {pct(ttfts, 0.5) * 1000:6.0f} ms "
        f"p95 {pct(ttfts, 0.95) * 1000:6.0f} ms | inter-token mean: paced {interval * 1000:.0f} ms, direct "
        f"{direct * 1000:.1f} ms, through /chat {through * 1000:.1f} ms (p95 {pct(gaps, 0.95) * 1000:.1f}) | "
        f"added vs direct {(through - direct) / direct * 100:+.1f} %, "
        f"vs pace {(through - interval) / interval * 100:+.1f} %"
    )
    if errors:
        line += f"\n      first errors: {errors[:3]}"
    return line


# ---------------------------------------------------------------------------------------------- the run
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--tokens", type=int, default=100, help="chunks per answer from the stand-in LLM")
    parser.add_argument("--interval-ms", type=float, default=50.0, help="stand-in LLM pace per stream (20 tokens/s)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    interval = args.interval_ms / 1000

    import multiprocessing

    from helpers.app_process import run_app, seed_knowledge_base
    from launcher.services import free_port, start_chroma, start_redis
    from settings import Settings

    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    redis = start_redis(work / "redis", free_port(), work / "logs")
    chroma = start_chroma(work / "chroma", free_port(), work / "logs")
    llm_port = free_port()
    llm = multiprocessing.Process(target=serve_paced_llm, args=(llm_port, args.tokens, interval), daemon=True)
    llm.start()
    try:
        settings = Settings(
            _env_file=None,
            data_dir=work / "data",
            chroma_url=chroma.url,  # type: ignore[call-arg]
            kb_collection="load-bench",
        )
        seed_knowledge_base(settings)
        env = {
            "REDIS_URL": redis.url,
            "CHROMA_URL": chroma.url,
            "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "KB_COLLECTION": "load-bench",
            "RATE_LIMIT_IP": "1000000/minute",
            "RATE_LIMIT_SESSION": "1000000/minute",
        }
        with run_app(work, env) as app:
            print(f"app {app.url}, one process; stand-in LLM {args.tokens} chunks every {args.interval_ms} ms")
            asyncio.run(run_level(app.url, 5))  # warm-up: embedding model, BM25 index, connections
            for streams in args.streams:
                baseline = asyncio.run(run_level(f"http://127.0.0.1:{llm_port}/v1", streams, direct=True))
                cpu, wall = cpu_seconds(app.process.pid), time.perf_counter()
                results = asyncio.run(run_level(app.url, streams))
                busy = (cpu_seconds(app.process.pid) - cpu) / (time.perf_counter() - wall) * 100
                tokens = sum(len(r["gaps"]) + 1 for r in results if "error" not in r)
                print(report(streams, results, baseline, interval), flush=True)
                print(f"      app process CPU {busy:.0f} % of one core; {tokens} tokens relayed", flush=True)
    finally:
        llm.terminate()
        llm.join(5)
        chroma.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
