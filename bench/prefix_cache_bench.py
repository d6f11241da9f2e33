"""Does the prompt order let the LLM server re-use the previous turn's prompt? Time to first token of turn 3.

Two orders of the same content, against the real llama.cpp server (one cached prompt, like one vLLM sequence):
- product order (graph/prompts.py): instructions, earlier turns as plain messages, then sources + question;
- sources-first: instructions + sources in the system message, then the turns.
Each run sends turn 2's prompt (as the conversation would), then turn 3's, and times turn 3's first token.

    .venv/bin/python bench/prefix_cache_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from openai import OpenAI

from graph.prompts import SYSTEM, answer_prompt, format_sources
from launcher.services import free_port, start_llm
from settings import Settings

SOURCES = [
    [{"n": 1, "title": "Password", "text": "Click Forgot password on the sign-in page. " * 30}],
    [{"n": 1, "title": "Reset link", "text": "The reset link is valid for 30 minutes and can be used once. " * 30}],
    [{"n": 1, "title": "Accounts", "text": "Locked accounts unlock after one hour or through support. " * 30}],
]
TURNS = [
    ("How do I reset my password?", "Click Forgot password on the sign-in page [1]. " * 6),
    ("How long is the link valid?", "The reset link is valid for 30 minutes [1]. " * 6),
    ("What if my account is locked?", ""),
]


ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def product_order(turn: int) -> list[dict[str, str]]:
    """The product's own prompt (graph/prompts.answer_prompt): instructions, earlier turns, sources, question."""
    history: list[AnyMessage] = []
    for question, answer in TURNS[:turn]:
        history += [HumanMessage(question), AIMessage(answer)]
    prompt = answer_prompt(history, SOURCES[turn], TURNS[turn][0], turns=len(TURNS))
    return [{"role": ROLES[m.type], "content": str(m.content)} for m in prompt]


def sources_first(turn: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": f"{SYSTEM}\n\nSources:\n{format_sources(SOURCES[turn])}"}]
    for question, answer in TURNS[:turn]:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": TURNS[turn][0]})
    return messages


def first_token_seconds(client: OpenAI, messages: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="bench",
        messages=messages,
        stream=True,
        temperature=0,
        extra_body={"max_tokens": 4},  # type: ignore[arg-type]
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            elapsed = time.perf_counter() - started
            stream.close()
            return elapsed
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        server = start_llm(Settings().gguf_path, free_port(), Path(work))
        try:
            client = OpenAI(base_url=server.url, api_key="none")
            results: dict[str, list[float]] = {"product order": [], "sources first": []}
            for _ in range(args.runs):
                for name, build in (("product order", product_order), ("sources first", sources_first)):
                    first_token_seconds(client, build(1))  # turn 2 is what the server last saw
                    results[name].append(first_token_seconds(client, build(2)))
        finally:
            server.stop()
    print(f"time to first token of turn 3, {args.runs} runs each (SmolLM2-135M, llama.cpp, 2 threads)")
    for name, values in results.items():
        print(f"  {name:14} p50 {statistics.median(values) * 1000:7.0f} ms   min {min(values) * 1000:6.0f} ms")
    ratio = statistics.median(results["sources first"]) / statistics.median(results["product order"])
    print(f"  sources-first / product order: {ratio:.2f}x")


if __name__ == "__main__":
    main()
