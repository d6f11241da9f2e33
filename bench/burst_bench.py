"""Bursts of simultaneous questions through /chat on ONE app process: everything before the first token (issue 14).

    .venv/bin/python bench/burst_bench.py                               # bursts of 1 10 100 300, 10 k chunks
    .venv/bin/python bench/burst_bench.py --burst 1 10 --seconds 5      # a quick smoke run
    .venv/bin/python bench/burst_bench.py --profile                     # + a py-spy profile of a 100-burst

BENCHMARK-ONLY STAND-IN LLM: the language model is bench/load_bench.py's `paced_llm`, a constant-rate streaming
OpenAI-compatible endpoint (never used by the product or the tests), so what is measured is the app's own work
before the first token, not llama.cpp. Real Redis and a real Chroma server are started in a temp folder. The
knowledge base is `--chunks` SYNTHETIC chunks (bench/search_bench.py's generator: random unit vectors, Zipf-drawn
text in which the questions' words occur) written straight into the collection the app reads — the app builds
its BM25 index from that collection's rows when `kb_version` changes (tools/retrieval.py) — plus the three real
help-centre chunks of launcher/app_process.py, so every question finds a source and reaches the LLM.

Printed, for each `--burst` N (N distinct questions sent at once, one HTTP connection each):
  * first-token time p50/p95 through /chat beside the stand-in's own direct TTFT (the same client code sends N
    requests straight to it, just before), and their ratio at p50;
  * the app process's CPU during the burst;
  * event-loop lag p99 from the app's own `event_loop_lag_seconds` histogram (/metrics, the delta over the
    burst; a probe wakes every 0.25 s, api/loop_lag.py, so a short burst has few samples — their count is shown).
Then, questions per second at saturation: `--clients` clients in a closed loop for `--seconds`, counting turns
whose first token arrived within the window, /chat beside the stand-in direct, with the app's CPU %. With
`--profile`, py-spy (a dev tool: `.venv/bin/pip install py-spy`) samples the app during one more 100-burst and
the samples are summarised by group and by function.

The machine may be shared: note `cat /proc/loadavg` (printed at the start and the end) and compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from load_bench import (  # noqa: E402
    Figures,
    Side,
    chat_side,
    cpu_seconds,
    direct_side,
    one_stream,
    pct,
    run_level,
    serve_paced_llm,
)

QUESTIONS = [  # each answered by one of the help-centre chunks; a number makes every question of the run distinct
    "How do I reset my password?",
    "When are invoices issued and how do I download them?",
    "How long does international delivery take?",
]
RAISED_LIMITS = {  # as load_bench does: the bench measures the app's work, not its rate limits
    "RATE_LIMIT_IP": "1000000/minute",
    "RATE_LIMIT_SESSION": "1000000/minute",
    "RATE_LIMIT_SESSIONS_IP": "1000000/minute",
}
# Profile groups, matched against py-spy's frames (`Class.function (package/file.py)`): a sample counts in every
# group one of whose frames is on its stack, so groups overlap (the Redis pipelines of a checkpoint write count in
# both). py-spy shows langgraph's files without their top folder (`pregel/main.py`).
GROUPS: list[tuple[str, str]] = [
    ("query embedding: SentenceTransformer.encode", r"^SentenceTransformer\.encode \("),
    ("Chroma HTTP client (query / get)", r"\(chromadb/"),
    ("BM25 (bm25s)", r"\(bm25s/"),
    ("checkpoint writes: aput / aput_writes", r"\.aput(_writes)? \("),
    ("Redis pipelines (Pipeline.*)", r"^Pipeline\.\w+ \(redis/asyncio/client\.py"),
    ("Redis client, all", r"\(redis/"),
    ("LangGraph runtime", r"\((pregel|channels|managed|_internal|langgraph)/"),
    ("input guard: guard_input node", r"^guard_input \(graph/nodes\.py"),
    ("retrieve node", r"^retrieve \(graph/nodes\.py"),
    ("answer node", r"^answer \(graph/nodes\.py"),
    ("LLM client (openai, langchain_openai)", r"\((openai|langchain_openai)/"),
    ("SSE: sse_starlette", r"\(sse_starlette/"),
]
OWN_FRAME = re.compile(r"\((api|graph|tools)/")  # the app's files (py-spy names them from the project root)
WORKER_THREAD = "Thread._bootstrap (threading.py)"  # the root of a thread's stack; the event loop is the main thread


# ------------------------------------------------------------------------------------------ the clients
def distinct_chat(url: str, offset: int) -> Side:
    """load_bench's /chat side, asking QUESTIONS in turn, numbered from `offset` (no question asked twice)."""
    return dataclasses.replace(
        chat_side(url), body=lambda i: {"message": f"{QUESTIONS[(offset + i) % len(QUESTIONS)]} ({offset + i})"}
    )


async def closed_loop(side: Side, clients: int, seconds: float) -> tuple[int, int, float]:
    """`clients` clients, each sending its next question as soon as its answer is done, for `seconds`:
    (turns whose first token arrived within the window, errors, wall time until the last answer ended)."""
    import httpx

    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    began = time.perf_counter()
    deadline = began + seconds
    counter = iter(range(10**9))
    reached, errors = 0, 0

    async def client_loop(http: httpx.AsyncClient) -> None:
        nonlocal reached, errors
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            result = await one_stream(http, side, next(counter))
            if result.error is not None:
                errors += 1
            elif result.ttft is not None and sent + result.ttft <= deadline:
                reached += 1

    async with httpx.AsyncClient(base_url=side.url, timeout=httpx.Timeout(120), limits=limits) as http:
        await asyncio.gather(*(client_loop(http) for _ in range(clients)))
    return reached, errors, time.perf_counter() - began


# ------------------------------------------------------------------------------------------------ CPU
def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants so far (Linux /proc); 0 for one that has gone."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += cpu_seconds(current)
            for children in Path(f"/proc/{current}/task").glob("*/children"):
                pending += [int(child) for child in children.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used so far (/proc/stat: all but idle and iowait)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used between `start()` and `read()`, in % of one core, by each part of the run and by the whole machine
    (the rest is what other processes on a shared machine took)."""

    def __init__(self, parts: dict[str, int]) -> None:
        self.parts = parts
        self.began: tuple[dict[str, float], float, float] = ({}, 0.0, 0.0)

    def _now(self) -> tuple[dict[str, float], float, float]:
        return {name: tree_cpu(pid) for name, pid in self.parts.items()}, machine_busy(), time.perf_counter()

    def start(self) -> None:
        self.began = self._now()

    def read(self) -> str:
        parts, busy, wall = self._now()
        elapsed = wall - self.began[2]
        shares = ", ".join(f"{name} {(parts[name] - self.began[0][name]) / elapsed * 100:.0f}" for name in parts)
        machine = (busy - self.began[1]) / elapsed * 100
        return f"CPU % of one core: {shares}; whole machine {machine:.0f} of {100 * (os.cpu_count() or 1)}"


# ------------------------------------------------------------------------------- the app's own loop lag
def lag_buckets(url: str, token: str) -> dict[float, float]:
    """Cumulative counts of the app's `event_loop_lag_seconds` histogram: bucket bound (inf last) → count."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    for family in text_string_to_metric_families(text):
        if family.name == "event_loop_lag_seconds":
            return {float(s.labels["le"]): s.value for s in family.samples if s.name.endswith("_bucket")}
    raise RuntimeError("event_loop_lag_seconds is not on the app's /metrics")


def lag_summary(before: dict[float, float], after: dict[float, float]) -> str:
    """p99 of the wake-ups observed between two readings (linear within a bucket, as PromQL's
    histogram_quantile does), their count, and the bucket of the worst one."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return "no probe wake-up during the burst"
    rank, lower, below = 0.99 * total, 0.0, 0.0
    p99 = float("inf")
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:  # count > below here, as below < rank
            p99 = lower if bound == float("inf") else lower + (bound - lower) * (rank - below) / (count - below)
            break
        lower, below = bound, count
    worst = next(b for b, c in zip(bounds, counts, strict=True) if c >= total)
    return f"p99 {p99 * 1000:.1f} ms over {total:.0f} wake-ups (worst <= {worst * 1000:g} ms)"


# ------------------------------------------------------------------------------------------ the profile
def summarise_profile(raw: Path, top: int = 12) -> str:
    """py-spy's raw output (`frame;frame;… count` per stack, root first) as shares of the samples."""
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    total = sum(count for _, count in stacks)
    if not total:
        return "  py-spy recorded no samples"
    loop_stacks = [(frames, count) for frames, count in stacks if WORKER_THREAD not in frames]
    on_loop = sum(count for _, count in loop_stacks)
    lines = [
        f"  {total} samples of active threads: event-loop thread {100 * on_loop / total:.0f} %, worker threads "
        f"{100 * (total - on_loop) / total:.0f} % (py-spy leaves idle threads out)",
        "  by group: share of all samples | of the event-loop thread's (a sample counts in each group on its stack)",
    ]
    for name, pattern in GROUPS:
        marker = re.compile(pattern)
        hits = sum(count for frames, count in stacks if any(marker.search(f) for f in frames))
        loop_hits = sum(count for frames, count in loop_stacks if any(marker.search(f) for f in frames))
        lines.append(f"    {100 * hits / total:5.1f} % | {100 * loop_hits / max(on_loop, 1):5.1f} %  {name}")
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines.append(f"  top {top} functions by own time (the leaf frame):")
    lines += [f"    {100 * count / total:5.1f} %  {frame}" for frame, count in own.most_common(top)]
    lines.append(f"  top {top} of the app's own functions (api/, graph/, tools/) by time spent in them or below:")
    ours = [(f, c) for f, c in inclusive.most_common() if OWN_FRAME.search(f)]
    lines += [f"    {100 * count / total:5.1f} %  {frame}" for frame, count in ours[:top]]
    return "\n".join(lines)


def profiled_burst(app: Any, url: str, offset: int, size: int, rate: int, work: Path, gil: bool = False) -> str:
    """One `size`-burst while py-spy samples the app process (all threads, without pausing it)."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return "  py-spy is not installed: `.venv/bin/pip install py-spy` (a dev tool, not a project dependency)"
    raw = work / "profile.txt"
    command = [spy, "record", "--pid", str(app.process.pid), "--rate", str(rate), "--format", "raw"]
    command += ["--nolineno", "--nonblocking", "--output", str(raw), *(["--gil"] if gil else [])]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    began = time.perf_counter()
    figures = Figures.of(asyncio.run(run_level(distinct_chat(url, offset), size)))
    elapsed = time.perf_counter() - began
    recorder.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
    _, stderr = recorder.communicate(timeout=60)
    if not raw.exists():
        return f"  py-spy wrote nothing: {stderr.decode(errors='replace')[-500:]}"
    head = (
        f"  {size}-burst under py-spy ({rate} Hz, --nonblocking): /chat TTFT p50 {pct(figures.ttft_ms, 0.5):.0f} ms, "
        f"{figures.ok} complete, {len(figures.errors)} errors, {elapsed:.1f} s; raw stacks in {raw}\n"
    )
    return head + summarise_profile(raw)


# ---------------------------------------------------------------------------------------------- the run
def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, nargs="+", default=[1, 10, 100, 300], help="questions sent at once")
    parser.add_argument("--chunks", type=int, default=10_000, help="synthetic chunks in the knowledge base")
    parser.add_argument("--tokens", type=int, default=5, help="chunks (words) per answer from the stand-in LLM")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="the stand-in's pace between chunks")
    parser.add_argument("--clients", type=int, default=50, help="closed-loop clients for the saturation figure")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each closed-loop run")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of one more 100-burst")
    parser.add_argument("--profile-burst", type=int, default=100)
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--profile-gil", action="store_true", help="sample only the thread holding the GIL")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from search_bench import fill

    from launcher.app_process import run_app, seed_knowledge_base
    from launcher.services import free_port, start_chroma, start_redis
    from settings import Settings

    started = time.perf_counter()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, loadavg {loadavg()}, {os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="burst-bench-"))
    redis = start_redis(work / "redis", free_port(), work / "logs")
    chroma = start_chroma(work / "chroma", free_port(), work / "logs")
    llm_port = free_port()
    pace = multiprocessing.Value("d", args.interval_ms / 1000)
    llm = multiprocessing.Process(target=serve_paced_llm, args=(llm_port, args.tokens, pace), daemon=True)
    llm.start()
    token = secrets.token_urlsafe(24)
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=work / "data",
            chroma_url=chroma.url,
            kb_collection="burst-bench",
        )
        seconds = fill(settings, 0, args.chunks)
        seed_knowledge_base(settings)  # the help centre; bumps kb_version, so the app's BM25 covers every row
        print(f"knowledge base: {args.chunks} SYNTHETIC chunks (added in {seconds:.0f} s) + 3 help-centre chunks")
        env = {
            "REDIS_URL": redis.url,
            "CHROMA_URL": chroma.url,
            "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "KB_COLLECTION": "burst-bench",
            "ADMIN_TOKEN": token,
            **RAISED_LIMITS,
        }
        direct = direct_side(f"http://127.0.0.1:{llm_port}/v1")
        with run_app(work, env) as app:
            pid = app.process.pid
            parts = {"app": pid, "Chroma": chroma.process.pid, "Redis": redis.process.pid, "stand-in": llm.pid or 0}
            cpu = CpuMeter(parts)
            print(
                f"app {app.url}, one uvicorn process (pid {pid}). LLM: the BENCHMARK-ONLY STAND-IN of "
                f"bench/load_bench.py ({args.tokens} one-word chunks per answer, {args.interval_ms:g} ms apart; "
                "not llama.cpp, not part of the product). 'direct' = the same client code sending the same "
                "number of requests straight to the stand-in, just before.\n",
                flush=True,
            )
            offset = 0
            for size in (5, 5):  # warm-up: embedding model, BM25 index over the whole collection, connections
                asyncio.run(run_level(distinct_chat(app.url, offset), size))
                offset += size
            asyncio.run(run_level(direct, 5))
            for size in args.burst:
                baseline = Figures.of(asyncio.run(run_level(direct, size)))
                lag0, wall = lag_buckets(app.url, token), time.perf_counter()
                cpu.start()
                through = Figures.of(asyncio.run(run_level(distinct_chat(app.url, offset), size)))
                elapsed = time.perf_counter() - wall
                used = cpu.read()
                lag = lag_summary(lag0, lag_buckets(app.url, token))
                offset += size
                ratio = pct(through.ttft_ms, 0.5) / pct(baseline.ttft_ms, 0.5)
                print(
                    f"burst {size:>3}: first token p50 / p95 /chat {pct(through.ttft_ms, 0.5):7.0f} / "
                    f"{pct(through.ttft_ms, 0.95):7.0f} ms | direct {pct(baseline.ttft_ms, 0.5):5.0f} / "
                    f"{pct(baseline.ttft_ms, 0.95):5.0f} ms | ratio at p50 {ratio:5.1f}x\n"
                    f"           /chat {through.ok} complete, {len(through.errors)} errors (direct "
                    f"{len(baseline.errors)}), {elapsed:.1f} s | event-loop lag {lag}\n"
                    f"           {used} | loadavg {loadavg()}",
                    flush=True,
                )
                for error in through.errors[:3]:
                    print(f"           error: {error}")
            print(f"\nsaturation: {args.clients} clients in a closed loop for {args.seconds:g} s each side", flush=True)
            reached_direct, errors_direct, _ = asyncio.run(closed_loop(direct, args.clients, args.seconds))
            lag0 = lag_buckets(app.url, token)
            cpu.start()
            reached, errors, _ = asyncio.run(closed_loop(distinct_chat(app.url, offset), args.clients, args.seconds))
            used, lag = cpu.read(), lag_summary(lag0, lag_buckets(app.url, token))
            offset += 10**6
            print(
                f"  /chat  {reached / args.seconds:6.1f} questions/s reached their first token ({reached} in "
                f"{args.seconds:g} s, {errors} errors), event-loop lag {lag}\n"
                f"         {used}\n"
                f"  direct {reached_direct / args.seconds:6.1f} questions/s ({errors_direct} errors) -> /chat is "
                f"{reached / max(reached_direct, 1):.2f} x the stand-in's own rate | loadavg {loadavg()}",
                flush=True,
            )
            if args.profile:
                print("\nprofile (py-spy):", flush=True)
                profile = profiled_burst(
                    app, app.url, offset, args.profile_burst, args.profile_rate, work, args.profile_gil
                )
                print(profile, flush=True)
    finally:
        llm.terminate()
        llm.join(5)
        chroma.stop()
        redis.stop()
        for data in ("chroma", "redis", "data"):  # ~110 MB per run; the logs and the profile stay
            shutil.rmtree(work / data, ignore_errors=True)
    print(f"\ndone in {time.perf_counter() - started:.0f} s, loadavg {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
