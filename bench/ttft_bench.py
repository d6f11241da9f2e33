"""Time to first token through /chat vs. straight to the LLM server, with the SAME final prompt, side by side.

    .venv/bin/python bench/ttft_bench.py                 # N = 15 runs per mode
    .venv/bin/python bench/ttft_bench.py --runs 30 --mode warm

How "the same prompt" is obtained: /chat sends the LLM a prompt built from the question, the retrieved
sources and a system prompt. The script first runs the app once with LLM_BASE_URL pointing at a
BENCHMARK-ONLY recorder defined here (it stores the request body and answers with a one-word stream), asks
the question once, and keeps the last streaming request body the app sent. A new session with the same
question retrieves the same sources, so that body is exactly what /chat sends in the measured runs. The
measured app then talks to the real llama.cpp server, and each run times:

  * /chat: request sent → `sources` event, → first `token` event (new session each run);
  * direct: the recorded body POSTed to the LLM server's /v1/chat/completions → first non-empty content chunk.

The order alternates every run (chat-direct, direct-chat…). llama.cpp caches the previous prompt's prefix, so:
  * `warm`: the measured request follows one with the identical prompt → both sides are prefix-cache hits;
  * `cold`: a different filler prompt is sent before each measured request → both process the full prompt.
The overhead of /chat (goal ≤ 5 % and ≤ 30 ms at p50) includes retrieval (query embedding + Chroma + BM25),
session set-up, rate limiting and SSE; time to `sources` has its own goal (p50 ≤ 100 ms).

An output check applied while the answer streams may hold text back (a word until the next piece arrives, a
sentence in the first person until its end), so /chat's first token can carry more than the LLM's first
chunk. To tell that apart, the direct side keeps reading until it has as much text as /chat's last first
token held, and prints the time to that chunk and to the one after it (what a hold-back check waits for),
and /chat's first token minus each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
QUESTION = "How long is the password reset link valid, and what do I do when it has expired?"


class PromptRecorder:
    """BENCHMARK ONLY: an OpenAI-compatible endpoint that records request bodies and streams one word."""

    def __init__(self, port: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._send(200, "application/json", b'{"object":"list","data":[{"id":"recorder"}]}')

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                recorder.bodies.append(body)
                delta = {"id": "r", "object": "chat.completion.chunk", "created": 0, "model": "recorder"}
                if body.get("stream"):
                    chunks = [
                        delta
                        | {
                            "choices": [
                                {"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}
                            ]
                        },
                        delta | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    ]
                    payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                    self._send(200, "text/event-stream", payload.encode())
                else:
                    message = {"role": "assistant", "content": "ok"}
                    full = delta | {
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    }
                    self._send(200, "application/json", json.dumps(full).encode())

            def _send(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def time_chat(app_url: str) -> tuple[float, float, str]:
    """(ms to `sources`, ms to first `token`, that token's text) for one /chat request in a new session."""
    from httpx_sse import connect_sse

    sources = None
    with httpx.Client(base_url=app_url, timeout=300) as client:
        started = time.perf_counter()
        with connect_sse(client, "POST", "/chat", json={"message": QUESTION}) as source:
            for event in source.iter_sse():
                if event.event == "sources" and sources is None:
                    sources = (time.perf_counter() - started) * 1000
                if event.event == "token":
                    first = (time.perf_counter() - started) * 1000
                    text = str(json.loads(event.data).get("text", ""))
                    break
            else:
                raise RuntimeError("the /chat stream had no token")
    return sources or float("nan"), first, text


def time_direct(llm_url: str, body: dict, same_as: str = "") -> tuple[float, float, float]:
    """For the recorded body sent straight to the LLM server, ms to: the first non-empty content chunk; the
    chunk that completes as much text as `same_as` holds (/chat's first token); the chunk after that one (an
    output check that releases text only once the next piece has arrived can show `same_as` then at the
    earliest; the end of the stream if there is none)."""
    first = done = None
    text = ""
    with httpx.Client(timeout=300) as client:
        started = time.perf_counter()
        with client.stream("POST", f"{llm_url}/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                content = (choices[0].get("delta") or {}).get("content")
                if not content:
                    continue
                now = (time.perf_counter() - started) * 1000
                if done is not None:
                    return first, done, now  # type: ignore[return-value]
                first = now if first is None else first
                text += content
                if len(text.strip()) >= len(same_as.strip()):
                    done = now
            if first is not None:
                end = (time.perf_counter() - started) * 1000
                return first, done or end, end
    raise RuntimeError("the LLM stream had no content")


def flush_cache(llm_url: str, run: int) -> None:
    """Make llama.cpp's single prompt cache hold something else (cold mode)."""
    body = {"messages": [{"role": "user", "content": f"Count to three. ({run} {time.time()})"}], "max_tokens": 1}
    httpx.post(f"{llm_url}/chat/completions", json=body, timeout=120).raise_for_status()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(app_url: str, llm_url: str, body: dict, runs: int, cold: bool, first_text: str) -> None:
    chat, direct, same, after, sources, lengths = [], [], [], [], [], []
    for run in range(runs):
        for side in ("chat", "direct") if run % 2 == 0 else ("direct", "chat"):
            if cold:
                flush_cache(llm_url, run)
            if side == "chat":
                to_sources, to_token, first_text = time_chat(app_url)
                chat.append(to_token)
                sources.append(to_sources)
                lengths.append(len(first_text))
            else:
                to_first, to_same, to_next = time_direct(llm_url, body, first_text)
                direct.append(to_first)
                same.append(to_same)
                after.append(to_next)
    mode = "cold (prompt processed in full)" if cold else "warm (prefix cache hit on both sides)"
    c50, d50, s50, n50 = pct(chat, 0.5), pct(direct, 0.5), pct(same, 0.5), pct(after, 0.5)
    print(f"\n{mode}, {runs} runs each")
    print(f"  /chat  first token   p50 {c50:8.1f} ms   p95 {pct(chat, 0.95):8.1f} ms")
    print(f"  direct first token   p50 {d50:8.1f} ms   p95 {pct(direct, 0.95):8.1f} ms")
    print(f"  overhead at p50      {c50 - d50:+8.1f} ms   ({(c50 - d50) / d50 * 100:+.1f} %)  goal ≤ 30 ms and ≤ 5 %")
    print(
        f"  /chat `sources`      p50 {pct(sources, 0.5):8.1f} ms   p95 {pct(sources, 0.95):8.1f} ms   goal p50 ≤ 100 ms"
    )
    print(f"  mean /chat {statistics.fmean(chat):.1f} ms, mean direct {statistics.fmean(direct):.1f} ms")
    print(
        f"  /chat's first token: {pct(lengths, 0.5):.0f} characters at p50 (last one {first_text!r}); direct, to "
        f"the chunk that completes as much text p50 {s50:.1f} ms, to the chunk after it p50 {n50:.1f} ms"
    )
    print(
        f"  /chat first token minus those: {c50 - s50:+.1f} ms / {c50 - n50:+.1f} ms  (what is left once the "
        "text the first token carries, and the piece a hold-back check waits for, are counted out)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--mode", choices=["warm", "cold", "both"], default="both")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    from launcher.app_process import bench_parts, run_app  # shared with the tests; bench/ imports no tests/
    from launcher.services import free_port

    work = Path(tempfile.mkdtemp(prefix="ttft-bench-"))
    with bench_parts(work, "ttft-bench") as (redis, chroma, llm):
        env = {
            "REDIS_URL": redis.url,
            "CHROMA_URL": chroma.url,
            "KB_COLLECTION": "ttft-bench",
            "LLM_TEMPERATURE": "0",
            "RATE_LIMIT_IP": "100000/minute",
            "RATE_LIMIT_SESSION": "100000/minute",
        }

        recorder_port = free_port()
        recorder = PromptRecorder(recorder_port)
        try:
            with run_app(work / "capture", env | {"LLM_BASE_URL": f"http://127.0.0.1:{recorder_port}/v1"}) as app:
                time_chat(app.url)
        finally:
            recorder.close()
        streamed = [b for b in recorder.bodies if b.get("stream")]
        if not streamed:
            raise RuntimeError(f"the app sent no streaming request to the LLM: {recorder.bodies}")
        body = streamed[-1]
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        print(
            f"recorded the final prompt: {len(body.get('messages', []))} messages, {prompt_chars} characters, "
            f"{len(recorder.bodies)} LLM request(s) per turn"
        )

        with run_app(work / "measure", env | {"LLM_BASE_URL": llm.url}) as app:
            first_text = time_chat(app.url)[2]  # warm-up: embedding model, BM25, connections
            time_direct(llm.url, body)
            for cold in {"warm": [False], "cold": [True], "both": [False, True]}[args.mode]:
                measure(app.url, llm.url, body, args.runs, cold, first_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
