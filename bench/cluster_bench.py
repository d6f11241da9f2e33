"""Many concurrent /chat streams through the shipped nginx config in front of several app replicas: the delay the
cluster adds to each token, burst TTFT, errors, and tokens relayed per app CPU second.

    .venv/bin/python bench/cluster_bench.py                                   # 600 streams, 3 replicas, 50 ms pace
    .venv/bin/python bench/cluster_bench.py --replicas 1 --streams 100 --tokens 200 --interval-ms 10   # saturate one

Parts, all real but the LLM: Debian's nginx running deploy/nginx.conf (launcher/proxy.py: only the upstreams, the
listen port, the log/pid paths and, for this many streams, `worker_connections` rewritten), `--replicas` uvicorn
app processes (launcher/app_process.py, as bench/load_bench.py starts one), one Redis server, one Chroma server
with the sample help centre. Rate limits are raised for the run.

BENCHMARK-ONLY STAND-IN LLM: bench/load_bench.py's `paced_llm` (imported, not copied): a constant-rate streaming
OpenAI-compatible endpoint whose every chunk is one word stamped with its send time, never used by the product or
the tests. Per level, N streams are first sent at once straight to the stand-in (the direct baseline, same client
code, same run), then N at once to nginx; printed with load_bench's `report`: burst TTFT p50/p95 beside direct,
per-token delay (client receive time − the stamped send time) p50/p95 beside direct and their difference, errors.
Then the CPU each part used during the /chat run and **tokens relayed per app CPU second**: the stamped words the
clients received divided by the CPU seconds of the app processes (user + system, summed over the replicas). With
the stand-in's pace above what the replicas can relay, that is the throughput of one app core at saturation; it
includes each turn's own work (retrieval, graph steps, checkpoints) spread over `--tokens` tokens.

The machine this was written on has 2 cores shared by everything above and the clients; read figures against the
direct baseline and with the load average printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from load_bench import (  # noqa: E402  (the stand-in, the client and the figures: one copy, in load_bench)
    Figures,
    chat_side,
    cpu_seconds,
    direct_side,
    report,
    run_level,
    serve_paced_llm,
)


def children(pid: int) -> list[int]:
    """Direct child processes (nginx's workers under its master)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def raise_open_files(needed: int) -> tuple[int, int]:
    """Lift this process's soft RLIMIT_NOFILE towards the hard limit (children inherit it): each stream holds a
    client socket here, two in nginx and one in an app process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft, hard


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[600])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=100, help="chunks (words) per answer from the stand-in LLM")
    parser.add_argument("--interval-ms", type=float, default=50.0, help="stand-in pace per stream (50 ms = 20/s)")
    parser.add_argument("--repeat", type=int, default=1, help="run every level this many times")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    from launcher.app_process import run_app, seed_knowledge_base
    from launcher.proxy import run_proxy
    from launcher.services import free_port, start_chroma, start_redis
    from settings import Settings

    most = max(args.streams)
    soft, hard = raise_open_files(4 * most + 1024)
    worker_connections = 2 * most + 512  # nginx's default 512 per worker would refuse past ~250 streams
    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    redis = start_redis(work / "redis", free_port(), work / "logs")
    chroma = start_chroma(work / "chroma", free_port(), work / "logs")
    llm_port = free_port()
    pace = multiprocessing.Value("d", args.interval_ms / 1000)
    llm = multiprocessing.Process(target=serve_paced_llm, args=(llm_port, args.tokens, pace), daemon=True)
    llm.start()
    try:
        seed_knowledge_base(
            Settings(_env_file=None, data_dir=work / "data", chroma_url=chroma.url, kb_collection="cluster-bench")  # type: ignore[call-arg]
        )
        env = {
            "REDIS_URL": redis.url,
            "CHROMA_URL": chroma.url,
            "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "KB_COLLECTION": "cluster-bench",
            "TRUSTED_PROXIES": "127.0.0.1",
            "RATE_LIMIT_IP": "1000000/minute",
            "RATE_LIMIT_SESSION": "1000000/minute",
        }
        direct = direct_side(f"http://127.0.0.1:{llm_port}/v1")
        with ExitStack() as stack:
            with ThreadPoolExecutor(args.replicas) as pool:  # each loads the embedding model: start them together
                starts = [
                    pool.submit(stack.enter_context, run_app(work / f"replica-{n}", env)) for n in range(args.replicas)
                ]
                apps = [start.result() for start in starts]
            proxy = stack.enter_context(
                run_proxy([a.url.removeprefix("http://") for a in apps], work / "nginx", worker_connections)
            )
            chat = chat_side(proxy.url)
            print(
                f"nginx {proxy.url} (deploy/nginx.conf, worker_connections {worker_connections}) in front of "
                f"{args.replicas} uvicorn app process(es); open files limit {soft} (hard {hard}). LLM: the "
                f"BENCHMARK-ONLY STAND-IN of bench/load_bench.py ({args.tokens} one-word chunks per answer, "
                f"{args.interval_ms:g} ms apart, each stamped with its send time; not llama.cpp, not the product).\n",
                flush=True,
            )
            asyncio.run(run_level(chat, 5 * args.replicas))  # warm-up: embedding model, BM25 index, connections
            for streams in args.streams:
                for _ in range(args.repeat):
                    before = loadavg()
                    baseline = Figures.of(asyncio.run(run_level(direct, streams)))
                    nginx = [proxy.pid, *children(proxy.pid)]
                    pids = [a.process.pid for a in apps] + nginx + [llm.pid]  # type: ignore[list-item]
                    cpu0, wall = {p: cpu_seconds(p) for p in pids}, time.perf_counter()
                    results = asyncio.run(run_level(chat, streams))
                    elapsed = time.perf_counter() - wall
                    used = {p: cpu_seconds(p) - cpu0[p] for p in pids}
                    through = Figures.of(results)
                    relayed = sum(len(r.stamps) for r in results)
                    app_cpu = sum(used[a.process.pid] for a in apps)
                    print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC, loadavg before {before}]")
                    print(report(streams, args.interval_ms, through, baseline))
                    per_replica = ", ".join(f"{used[a.process.pid] / elapsed * 100:.0f}" for a in apps)
                    print(
                        f"  CPU during the /chat run ({elapsed:.1f} s): app processes {per_replica} % of a core, "
                        f"nginx {sum(used[p] for p in nginx) / elapsed * 100:.0f} %, stand-in "
                        f"{used[llm.pid] / elapsed * 100:.0f} %"  # type: ignore[index]
                    )
                    print(
                        f"  tokens relayed {relayed} in {elapsed:.1f} s = {relayed / elapsed:.0f}/s; per app CPU "
                        f"second {relayed / max(app_cpu, 1e-9):.0f} (app CPU {app_cpu:.1f} s); loadavg after "
                        f"{loadavg()}\n",
                        flush=True,
                    )
    finally:
        llm.terminate()
        llm.join(5)
        chroma.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
