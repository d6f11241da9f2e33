"""Session affinity against least-busy routing: time to the first token of each conversation's third turn.

Two real llama.cpp servers (SmolLM2-135M unless LOCAL_MODEL says otherwise, 1 thread each so they run side by
side), the app's own LLMPool and prompt (graph/prompts.answer_prompt: instructions, earlier turns, sources,
question). Several conversations of three turns, sent one request at a time, interleaved turn by turn
(A1 B1 C1 A2 B2 C2 A3 …): least-busy then sends each conversation's consecutive turns to alternating servers,
session routing keeps each conversation on its own. Both routings run in the same process on the same two
servers, alternating round by round, each round with fresh session ids; the answers are generated, so the history
the third turn sends is what the model really said.

    .venv/bin/python bench/affinity_bench.py [--conversations 3] [--rounds 2] [--server-cache]

`--server-cache` starts the servers with llama-cpp-python's `--cache True` (a RAM cache of several prompt states);
without it each server re-uses only the prompt it saw last (see docs/performance.md#session-affinity).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the app's top-level modules (metrics.py), as in the other benches
    sys.path.insert(0, str(ROOT))

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage  # noqa: E402

from api.sessions import new_session_id  # noqa: E402
from graph.llm import chat_model  # noqa: E402
from graph.llm_pool import LLMPool, Routing  # noqa: E402
from graph.prompts import answer_prompt  # noqa: E402
from launcher.services import Service, free_port, start_llm, stop_all  # noqa: E402
from settings import Settings  # noqa: E402

QUESTIONS = [
    "How do I configure several LLM instances?",
    "What happens when one of them is down?",
    "And how are the sessions kept apart?",
]


def doc_sources(turn: int, count: int = 4, words: int = 150) -> list[dict[str, object]]:
    """`count` chunks of `words` words from the repo's docs, different for each turn (as retrieval would be)."""
    text = " ".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
    tokens = text.split()
    start = turn * count * words
    return [
        {
            "n": i + 1,
            "title": f"Doc part {turn}.{i}",
            "text": " ".join(tokens[start + i * words : start + (i + 1) * words]),
        }
        for i in range(count)
    ]


async def turn(pool: LLMPool, session: str, prompt: list[BaseMessage]) -> tuple[float, str]:
    """(seconds to the first text, the whole answer)."""
    started, first, text = time.perf_counter(), 0.0, ""
    async for chunk in pool.astream(prompt, session=session):
        piece = str(chunk.content)
        if piece and not first:
            first = time.perf_counter() - started
        text += piece
    return first or time.perf_counter() - started, text


async def round_of(pool: LLMPool, settings: Settings, conversations: int) -> list[float]:
    """One round: `conversations` fresh sessions, three turns each, interleaved; the third turns' first-token times."""
    sessions = [new_session_id() for _ in range(conversations)]
    history: dict[str, list[AnyMessage]] = {s: [] for s in sessions}
    third: list[float] = []
    for number, question in enumerate(QUESTIONS):
        for session in sessions:
            prompt = answer_prompt(history[session], doc_sources(number), question, settings.history_turns)
            seconds, text = await turn(pool, session, prompt)
            history[session] += [HumanMessage(question), AIMessage(text)]
            if number == 2:
                third.append(seconds)
    return third


async def bench(urls: list[str], settings: Settings, conversations: int, rounds: int) -> dict[str, list[float]]:
    pools: dict[Routing, LLMPool] = {
        routing: LLMPool(urls, lambda url: chat_model(settings, url), routing=routing, max_in_flight=0)
        for routing in ("session", "least_busy")
    }
    results: dict[str, list[float]] = {name: [] for name in pools}
    for number in range(rounds):
        order = list(pools) if number % 2 == 0 else list(pools)[::-1]  # alternate who goes first
        for name in order:
            results[name] += await round_of(pools[name], settings, conversations)
    for name, pool in pools.items():
        print(f"  {name:10} served per server: {[s['served'] for s in pool.status()]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--server-cache", action="store_true", help="llama-cpp-python --cache True (RAM)")
    args = parser.parse_args()
    settings = Settings(_env_file=None, llm_temperature=0, llm_max_tokens=args.max_tokens, llm_read_timeout=300)  # type: ignore[call-arg]
    extra = ["--cache", "True", "--cache_type", "ram"] if args.server_cache else []
    servers: list[Service] = []
    with tempfile.TemporaryDirectory() as work:
        try:
            for _ in range(2):
                servers.append(
                    start_llm(
                        settings.gguf_path,
                        free_port(),
                        Path(work),
                        settings.local_model_alias,
                        threads=args.threads,
                        extra_args=extra,
                    )
                )
            results = asyncio.run(bench([s.url for s in servers], settings, args.conversations, args.rounds))
        finally:
            stop_all(servers)
    flags = "--cache True" if args.server_cache else "default flags (one cached prompt per server)"
    print(
        f"third-turn time to first token, {args.conversations} conversations x {args.rounds} rounds per routing "
        f"({settings.local_model_alias}, llama.cpp x 2, {args.threads} thread(s) each, {flags})"
    )
    for name, values in results.items():
        p50, mean = statistics.median(values) * 1000, statistics.mean(values) * 1000
        print(f"  {name:10} p50 {p50:7.0f} ms   mean {mean:7.0f} ms   ({len(values)} third turns)")
    ratio = statistics.median(results["least_busy"]) / statistics.median(results["session"])
    print(f"  least-busy / session affinity (p50): {ratio:.2f}x")


if __name__ == "__main__":
    main()
