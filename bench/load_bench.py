"""Many concurrent /chat streams against ONE app process: the delay the app adds to each token, burst TTFT, errors.

    .venv/bin/python bench/load_bench.py                          # 50, 100, 200 streams at a 50 ms pace
    .venv/bin/python bench/load_bench.py --streams 10 --interval-ms 25 100   # the hold-back window's own cost

BENCHMARK-ONLY STAND-IN LLM: the language model is replaced by `paced_llm`, a constant-rate streaming
OpenAI-compatible endpoint defined in this file and started by it (never used by the product or the tests),
so the app's own overhead is measured instead of llama.cpp (one request at a time). It streams `--tokens`
chunks `--interval-ms` apart. Each chunk is one plain word that carries the stand-in's wall-clock send time,
` t1733070000123456789` (`t` + time.time_ns()), with a full stop every 12 words so the answer has sentences.
No output check touches such a word (no brackets, no URL, not a word of the system prompt, no first person),
so it reaches the client as sent. Real Redis (embedded Valkey or redis-server) and a real Chroma server with a
small knowledge base are started too; rate limits are raised for the run.

Per pace and level it first sends N streams at once straight to the stand-in (the baseline: the same client
code, the same machine, the same run), then N at once through /chat, and prints:

  * burst time to first token p50/p95, /chat beside direct, and their ratio at p50;
  * per-token delay: for every word, the client's receive time minus the send time stamped in it, p50/p95,
    /chat beside direct, and the difference (what the app adds to each token), also as a share of the pace;
  * the hold-back: the app's output check shows a word only once the next piece has arrived (a word may be
    cut mid-way), so each word waits for the stand-in's next chunk. Printed: the share of words that reached
    the client only after the stand-in had sent the next chunk, and their delay counted from that next chunk
    (the relay's cost without the hold-back window; a relay that lags by more than one interval also lands
    here). Run with two paces (`--interval-ms 25 100`) and the script also prints how the added delay grows
    with the pace: ~1 ms per ms means one interval per token. Measure that at a low level (e.g. `--streams
    10`): when the one process is saturated, its backlog, not the pace, sets the delay;
  * errors, and the CPU used by the app process and by the stand-in.

The machine has 2 cores shared by the app, the stand-in, the clients, Redis and Chroma, so the direct baseline
matters: it absorbs what the clients and the stand-in themselves cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

STAMP = re.compile(r"\bt(\d{15,})\b")  # ` t<time.time_ns()>`: the stand-in's send time inside the token text
SENTENCE_WORDS = 12  # a full stop after every 12th word


# ------------------------------------------------------------------------- the benchmark-only stand-in LLM
def paced_llm(tokens: int, pace: Any):  # type: ignore[no-untyped-def]
    """BENCHMARK ONLY: an OpenAI-compatible `/v1/chat/completions` that streams `tokens` chunks at a constant
    pace (`pace.value` seconds, read per request), each a word stamped with its send time, and `/v1/models`.
    Not a product component."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "paced", "object": "model"}]})

    async def completions(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        created = int(time.time())
        interval = float(pace.value)

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
                stop = "." if (i + 1) % SENTENCE_WORDS == 0 else ""
                yield chunk({"content": f" t{time.time_ns()}{stop}"})  # stamped as it is handed to the socket
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", completions, methods=["POST"])])


def serve_paced_llm(port: int, tokens: int, pace: Any) -> None:
    import uvicorn

    uvicorn.run(paced_llm(tokens, pace), host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------------------------------- the clients
class StreamError(Exception):
    pass


@dataclass
class Side:
    """How to talk to one side with the same client code: /chat (the app) or the stand-in directly."""

    url: str
    path: str
    body: Callable[[int], dict]
    text: Callable[[Any], str | None]  # the shown text of an SSE event (None: not a text event)
    finished: Callable[[Any], bool]  # the event that ends a complete stream


def chat_text(event: Any) -> str | None:
    if event.event == "error":
        raise StreamError(f"error event {event.data}")
    return json.loads(event.data)["text"] if event.event == "token" else None


def direct_text(event: Any) -> str | None:
    if event.data == "[DONE]":
        return None
    choices = json.loads(event.data).get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or None


def chat_side(url: str) -> Side:
    return Side(
        url,
        "/chat",
        lambda i: {"message": f"How do I reset my password? ({i})"},
        chat_text,
        lambda event: event.event == "done",
    )


def direct_side(url: str) -> Side:
    return Side(
        url,
        "/chat/completions",
        lambda i: {"messages": [{"role": "user", "content": f"How do I reset my password? ({i})"}], "stream": True},
        direct_text,
        lambda event: event.data == "[DONE]",
    )


@dataclass
class Stream:
    ttft: float | None = None  # s from sending the request to the first shown text
    stamps: list[tuple[int, int]] = field(default_factory=list)  # (sent ns, received ns) per stamped word
    error: str | None = None


async def one_stream(client, side: Side, index: int) -> Stream:  # type: ignore[no-untyped-def]
    """One stream, read with httpx-sse; the receive time of every stamped word."""
    from httpx_sse import aconnect_sse

    result = Stream()
    complete = False
    started = time.perf_counter()
    try:
        async with aconnect_sse(client, "POST", side.path, json=side.body(index)) as source:
            if source.response.status_code != 200:
                result.error = f"HTTP {source.response.status_code}"
                return result
            async for event in source.aiter_sse():
                if not event.data:  # not an event (SSE spec): httpx-sse yields a `: ping` after an `id:` as one
                    continue
                received = time.time_ns()
                complete = side.finished(event)
                text = side.text(event)
                if text:
                    if result.ttft is None:
                        result.ttft = time.perf_counter() - started
                    result.stamps.extend((int(m.group(1)), received) for m in STAMP.finditer(text))
    except Exception as error:
        result.error = f"{type(error).__name__}: {error}"
        return result
    if not complete:
        result.error = "the stream ended without its final event"
    return result


async def run_level(side: Side, streams: int) -> list[Stream]:
    """`streams` streams started at once, one HTTP connection each."""
    import httpx

    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(base_url=side.url, timeout=httpx.Timeout(120), limits=limits) as client:
        return await asyncio.gather(*(one_stream(client, side, i) for i in range(streams)))


# ------------------------------------------------------------------------------------------- the figures
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    ok: int
    errors: list[str]
    ttft_ms: list[float]  # per stream
    delay_ms: list[float]  # per word: received − sent
    gap_ms: list[float]  # per word but the last: the stand-in's send gap to the next word
    held_ms: list[float]  # words received after the next word was sent: received − next word's send time
    words: int  # words that have a next word

    @classmethod
    def of(cls, results: list[Stream]) -> Figures:
        good = [r for r in results if r.error is None]
        delay, gap, held, words = [], [], [], 0
        for r in good:
            for (sent, received), following in zip(r.stamps, [*r.stamps[1:], None], strict=True):
                delay.append((received - sent) / 1e6)
                if following is None:
                    continue
                words += 1
                gap.append((following[0] - sent) / 1e6)
                if received >= following[0]:
                    held.append((received - following[0]) / 1e6)
        return cls(
            ok=len(good),
            errors=[r.error for r in results if r.error is not None],
            ttft_ms=[r.ttft * 1000 for r in good if r.ttft is not None],
            delay_ms=delay,
            gap_ms=gap,
            held_ms=held,
            words=words,
        )


def report(streams: int, interval_ms: float, chat: Figures, direct: Figures) -> str:
    def pp(values: list[float]) -> str:
        return f"{pct(values, 0.5):.1f} / {pct(values, 0.95):.1f} ms" if values else "none"

    def share(figures: Figures) -> str:
        return f"{len(figures.held_ms) / max(figures.words, 1) * 100:.0f} %"

    added50 = pct(chat.delay_ms, 0.5) - pct(direct.delay_ms, 0.5)
    added95 = pct(chat.delay_ms, 0.95) - pct(direct.delay_ms, 0.95)
    lines = [
        f"{streams} streams at once, stand-in pace {interval_ms:g} ms | /chat {chat.ok} complete, "
        f"{len(chat.errors)} errors | direct {direct.ok} complete, {len(direct.errors)} errors",
        f"  burst TTFT p50 / p95         /chat {pp(chat.ttft_ms)} | direct {pp(direct.ttft_ms)} | "
        f"ratio at p50 {pct(chat.ttft_ms, 0.5) / pct(direct.ttft_ms, 0.5):.1f}x",
        f"  per-token delay p50 / p95    /chat {pp(chat.delay_ms)} | direct {pp(direct.delay_ms)} | "
        f"added p50 {added50:+.1f} ms = {added50 / interval_ms:.2f} x the pace, p95 {added95:+.1f} ms",
        f"  words that reached the client only after the stand-in had sent the next word (held back, or late "
        f"by over one interval): /chat {share(chat)}, direct {share(direct)}",
        f"  their delay counted from that next word's send (the relay without the hold-back window) p50 / p95 "
        f"{pp(chat.held_ms)}",
        f"  stand-in's actual gap between words p50 / p95 {pp(chat.gap_ms)}",
    ]
    for name, figures in (("/chat", chat), ("direct", direct)):
        if figures.errors:
            lines.append(f"  first {name} errors: {figures.errors[:3]}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the run
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--tokens", type=int, default=100, help="chunks (words) per answer from the stand-in LLM")
    parser.add_argument(
        "--interval-ms",
        type=float,
        nargs="+",
        default=[50.0],
        help="stand-in LLM pace per stream (50 ms = 20 tokens/s); two values also measure the hold-back's cost",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    from launcher.app_process import run_app, seed_knowledge_base  # shared with the tests; bench/ imports no tests/
    from launcher.services import free_port, start_chroma, start_redis
    from settings import Settings

    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    redis = start_redis(work / "redis", free_port(), work / "logs")
    chroma = start_chroma(work / "chroma", free_port(), work / "logs")
    llm_port = free_port()
    pace = multiprocessing.Value("d", args.interval_ms[0] / 1000)
    llm = multiprocessing.Process(target=serve_paced_llm, args=(llm_port, args.tokens, pace), daemon=True)
    llm.start()
    added: dict[tuple[int, float], float] = {}
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
        direct = direct_side(f"http://127.0.0.1:{llm_port}/v1")
        with run_app(work, env) as app:
            chat = chat_side(app.url)
            print(
                f"app {app.url}, one uvicorn process. LLM: the BENCHMARK-ONLY STAND-IN defined in "
                f"bench/load_bench.py (constant pace, {args.tokens} one-word chunks per answer, each stamped "
                "with its send time; not llama.cpp, not part of the product)."
            )
            print(
                "Measured per token: receive time at the client minus the send time stamped in the token by the "
                "stand-in (same machine, same clock). 'direct' = the same N requests sent at once straight to the "
                "stand-in by the same client code, just before the /chat run.\n",
                flush=True,
            )
            asyncio.run(run_level(chat, 5))  # warm-up: embedding model, BM25 index, connections
            for interval_ms in args.interval_ms:
                pace.value = interval_ms / 1000
                for streams in args.streams:
                    baseline = Figures.of(asyncio.run(run_level(direct, streams)))
                    cpu_app, cpu_llm, wall = cpu_seconds(app.process.pid), cpu_seconds(llm.pid), time.perf_counter()
                    through = Figures.of(asyncio.run(run_level(chat, streams)))
                    elapsed = time.perf_counter() - wall
                    busy_app = (cpu_seconds(app.process.pid) - cpu_app) / elapsed * 100
                    busy_llm = (cpu_seconds(llm.pid) - cpu_llm) / elapsed * 100
                    added[(streams, interval_ms)] = pct(through.delay_ms, 0.5) - pct(baseline.delay_ms, 0.5)
                    print(report(streams, interval_ms, through, baseline), flush=True)
                    print(
                        f"  CPU during the /chat run: app process {busy_app:.0f} % of one core, stand-in "
                        f"{busy_llm:.0f} %; {len(through.delay_ms)} words relayed in {elapsed:.1f} s\n",
                        flush=True,
                    )
        if len(args.interval_ms) >= 2:
            low, high = min(args.interval_ms), max(args.interval_ms)
            print(f"hold-back window: added per-token delay p50 (/chat − direct) at a {low:g} / {high:g} ms pace")
            for streams in args.streams:
                a, b = added[(streams, low)], added[(streams, high)]
                slope = (b - a) / (high - low)
                print(
                    f"  {streams:>4} streams: {a:+.1f} / {b:+.1f} ms -> grows {slope:.2f} ms per ms of pace "
                    f"(1.00 = each word waits one full interval); the rest, the relay itself: "
                    f"{b - slope * high:+.1f} ms"
                )
    finally:
        llm.terminate()
        llm.join(5)
        chroma.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
