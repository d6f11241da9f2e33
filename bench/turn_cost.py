"""What one /chat turn costs the app when nothing else runs: Redis commands per turn and app CPU per turn.

    .venv/bin/python bench/turn_cost.py                 # 20 sequential turns
    .venv/bin/python bench/turn_cost.py --turns 100

BENCHMARK-ONLY STAND-IN LLM: bench/load_bench.py's `paced_llm` (5 one-word chunks, 5 ms apart), so the turn's own
work is measured, not llama.cpp. Real Redis and Chroma are started in a temp folder, with the three help-centre
chunks of launcher/app_process.py. After a warm-up the turns are sent one after another; Redis's `INFO
commandstats` before and after gives the commands per turn by name (deterministic for a given code version: the
figure to compare across versions), and the app process's CPU seconds ÷ turns the CPU per turn (which moves with
the machine's load: note the loadavg printed). Background writes that finish after the last turn (heartbeats,
after-turn records) are waited for, so they are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from load_bench import chat_side, cpu_seconds, one_stream, run_level, serve_paced_llm  # noqa: E402


def command_calls(client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


async def sequential(url: str, turns: int) -> None:
    import httpx

    side = chat_side(url)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for i in range(turns):
            result = await one_stream(client, side, i)
            if result.error is not None:
                raise SystemExit(f"turn {i} failed: {result.error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    import redis

    from launcher.app_process import run_app, seed_knowledge_base
    from launcher.services import free_port, start_chroma, start_redis
    from settings import Settings

    work = Path(tempfile.mkdtemp(prefix="turn-cost-"))
    store = start_redis(work / "redis", free_port(), work / "logs")
    chroma = start_chroma(work / "chroma", free_port(), work / "logs")
    llm_port = free_port()
    pace = multiprocessing.Value("d", 0.005)
    llm = multiprocessing.Process(target=serve_paced_llm, args=(llm_port, 5, pace), daemon=True)
    llm.start()
    try:
        settings = Settings(_env_file=None, data_dir=work / "data", chroma_url=chroma.url, kb_collection="turn-cost")  # type: ignore[call-arg]
        seed_knowledge_base(settings)
        env = {
            "REDIS_URL": store.url,
            "CHROMA_URL": chroma.url,
            "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "KB_COLLECTION": "turn-cost",
            "RATE_LIMIT_IP": "1000000/minute",
            "RATE_LIMIT_SESSION": "1000000/minute",
        }
        with run_app(work, env) as app:
            print(f"loadavg {Path('/proc/loadavg').read_text().strip()}; LLM: the BENCHMARK-ONLY STAND-IN")
            asyncio.run(run_level(chat_side(app.url), 3))  # warm-up: model, BM25, connections
            time.sleep(3)
            client = redis.Redis.from_url(store.url)
            before, cpu, started = command_calls(client), cpu_seconds(app.process.pid), time.perf_counter()
            asyncio.run(sequential(app.url, args.turns))
            wall = time.perf_counter() - started
            spent = cpu_seconds(app.process.pid) - cpu
            time.sleep(2.5)  # the last turn's background writes
            after = command_calls(client)
            client.close()
        deltas = {name: calls - before.get(name, 0) for name, calls in after.items() if calls > before.get(name, 0)}
        print(
            f"{args.turns} sequential turns: app CPU {1000 * spent / args.turns:.1f} ms per turn, wall "
            f"{1000 * wall / args.turns:.1f} ms per turn"
        )
        print(f"Redis commands per turn: {sum(deltas.values()) / args.turns:.1f}")
        for name, calls in sorted(deltas.items(), key=lambda item: -item[1]):
            print(f"  {calls / args.turns:7.1f}  {name}")
        print(f"loadavg {Path('/proc/loadavg').read_text().strip()}")
    finally:
        llm.terminate()
        llm.join(5)
        chroma.stop()
        store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
