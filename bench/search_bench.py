"""Search latency of KnowledgeBase.search at 10 k and 100 k chunks (p50/p95, query embedding included).

    .venv/bin/python bench/search_bench.py                  # 10 k and 100 k, ~3-4 min on 2 cores
    .venv/bin/python bench/search_bench.py --sizes 10000    # quicker
    .venv/bin/python bench/search_bench.py --sizes 10000 --burst 1 10 100 300   # concurrent questions (issue 14)

SYNTHETIC DATA: chunks have random unit 384-d vectors and random text drawn from a 20 k-word vocabulary (with a
Zipf-like distribution), because embedding 100 k real chunks would take over an hour here. Queries are real
sentences embedded by the real model, so the embedding cost is real; the vector and BM25 search costs depend on
the sizes, not on the meaning. A Chroma server is started in a temp folder (launcher.services.start_chroma)
and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from launcher.services import free_port, start_chroma  # noqa: E402
from settings import Settings  # noqa: E402
from tools.embeddings import get_embeddings  # noqa: E402
from tools.retrieval import CANDIDATES, KnowledgeBase  # noqa: E402
from tools.store import get_collection  # noqa: E402

QUERIES = [
    "how do I reset my password",
    "what does error 4711 mean",
    "how long does international shipping take",
    "can I download my invoices as PDF",
    "how to enable two-factor authentication",
    "refund policy for damaged items",
    "change the e-mail address of my account",
    "the device does not turn on after the update",
    "cancel my subscription",
    "which payment methods are accepted",
]
BATCH = 5000
rng = np.random.default_rng(7)
# Query words take ranks 40, 80, 120, ... of the Zipf distribution, so BM25 really scores postings lists.
_QUERY_WORDS = sorted({word for query in QUERIES for word in query.lower().split()})
VOCABULARY = [f"w{n}" for n in range(20_000)]
for _n, _word in enumerate(_QUERY_WORDS, start=1):
    VOCABULARY[40 * _n] = _word
WORD_WEIGHTS = 1 / np.arange(1, len(VOCABULARY) + 1)
WORD_WEIGHTS /= WORD_WEIGHTS.sum()


def synthetic_rows(start: int, count: int) -> tuple[list[str], list[str], list[dict], np.ndarray]:
    words = rng.choice(len(VOCABULARY), size=(count, 120), p=WORD_WEIGHTS)
    texts = [" ".join(VOCABULARY[w] for w in row) for row in words]
    vectors = rng.standard_normal((count, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"synthetic-{start + n}" for n in range(count)]
    metas = [
        {
            "title": f"Page {(start + n) // 10}",
            "url": f"https://example.com/p/{(start + n) // 10}",
            "source": "synthetic",
            "section": "",
            "chunk_id": ids[n],
            "file_hash": "",
            "position": n % 10,
        }
        for n in range(count)
    ]
    return ids, texts, metas, vectors


def fill(settings: Settings, start: int, stop: int) -> float:
    collection = get_collection(settings)
    began = time.perf_counter()
    for offset in range(start, stop, BATCH):
        ids, texts, metas, vectors = synthetic_rows(offset, min(BATCH, stop - offset))
        collection.add(ids=ids, documents=texts, metadatas=metas, embeddings=vectors)  # type: ignore[arg-type]
    collection.modify(metadata={"kb_version": stop})
    return time.perf_counter() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(settings: Settings, rounds: int) -> None:
    kb = KnowledgeBase(settings)
    began = time.perf_counter()
    kb.refresh(force=True)
    build = time.perf_counter() - began
    embeddings = get_embeddings(settings)
    kb.search("warm up")
    total, embed, vector, lexical = [], [], [], []
    for _ in range(rounds):
        for query in QUERIES:
            t0 = time.perf_counter()
            kb.search(query, k=5)
            t1 = time.perf_counter()
            q = embeddings.embed_query(query)
            t2 = time.perf_counter()
            kb._collection.query(
                query_embeddings=[q], n_results=CANDIDATES, include=["documents", "metadatas", "distances"]
            )
            t3 = time.perf_counter()
            assert kb._lexical is not None
            kb._lexical.search(query, CANDIDATES)
            t4 = time.perf_counter()
            total.append(t1 - t0)
            embed.append(t2 - t1)
            vector.append(t3 - t2)
            lexical.append(t4 - t3)
    ms = lambda values: f"p50 {1000 * statistics.median(values):6.1f} ms  p95 {1000 * percentile(values, 0.95):6.1f} ms"  # noqa: E731
    print(f"  BM25 (re)build from the collection: {build:.1f} s")
    print(f"  search() total, {len(total)} queries: {ms(total)}")
    print(f"    query embedding alone:            {ms(embed)}")
    print(f"    Chroma query ({CANDIDATES} nearest):       {ms(vector)}")
    print(f"    BM25 query ({CANDIDATES} best):            {ms(lexical)}")


def burst_questions(count: int) -> list[str]:
    """`count` distinct questions (the 10 queries with a number each), so no two are the same text."""
    return [f"{QUERIES[i % len(QUERIES)]} ({i})" for i in range(count)]


async def one_burst(kb: KnowledgeBase, questions: list[str], batched: bool) -> tuple[float, list[float], list[float]]:
    """All `questions` at once on one event loop: wall time, each one's latency, and the loop's lag (how late a
    1 ms sleep of a probe task woke up) during the burst. Unbatched = each question's own `search` in a thread
    (its own encode, Chroma query and get); batched = `asearch`, whose concurrent questions share them."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t - 0.001)

    async def one(question: str) -> float:
        t = time.perf_counter()
        if batched:
            await kb.asearch(question, k=5)
        else:
            await asyncio.to_thread(kb.search, question, 5)
        return time.perf_counter() - t

    prober = asyncio.create_task(probe())
    began = time.perf_counter()
    latencies = await asyncio.gather(*(one(q) for q in questions))
    wall = time.perf_counter() - began
    done.set()
    await prober
    return wall, list(latencies), lags


def measure_bursts(settings: Settings, sizes: list[int]) -> None:
    """Per burst size: unbatched beside batched, in the same run, same loop; with the encode calls (= batches)
    and the Chroma `query` / `get` round trips each made."""
    kb = KnowledgeBase(settings)
    kb.refresh(force=True)
    kb.search("warm up")

    async def run() -> None:
        await kb.asearch("warm up")
        for size in sizes:
            questions = burst_questions(size)
            figures = {}
            for batched in (False, True):
                batches, chroma = kb.batcher().calls, dict(kb.chroma_calls)
                wall, latencies, lags = await one_burst(kb, questions, batched)
                calls = {name: kb.chroma_calls[name] - chroma.get(name, 0) for name in ("query", "get")}
                figures[batched] = (wall, latencies, lags, kb.batcher().calls - batches if batched else size, calls)
            for batched, (wall, latencies, lags, encodes, calls) in figures.items():
                name = "batched  " if batched else "unbatched"
                print(
                    f"  burst {size:>3} {name}: wall {1000 * wall:7.0f} ms = {size / wall:6.0f} questions/s | "
                    f"latency p50 {1000 * statistics.median(latencies):6.0f} ms p95 "
                    f"{1000 * percentile(latencies, 0.95):6.0f} ms | loop lag p99 "
                    f"{1000 * percentile(lags, 0.99) if lags else float('nan'):5.1f} ms | encode calls "
                    f"{encodes:3} | Chroma query {calls['query']:3} get {calls['get']:3}",
                    flush=True,
                )

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts, ascending")
    parser.add_argument("--rounds", type=int, default=5, help="times each of the 10 queries is searched")
    parser.add_argument(
        "--burst", type=int, nargs="*", help="instead: bursts of N simultaneous searches (e.g. 1 10 100 300)"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        chroma = start_chroma(Path(tmp) / "chroma", free_port(), Path(tmp) / "logs")
        try:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                data_dir=Path(tmp) / "data",
                chroma_url=chroma.url,
                kb_collection="search-bench",
            )
            have = 0
            for size in sizes:
                seconds = fill(settings, have, size)
                print(
                    f"{size} chunks (SYNTHETIC vectors and text; added {size - have} in {seconds:.0f} s, "
                    f"{(size - have) / seconds:.0f}/s)"
                )
                have = size
                if args.burst:
                    measure_bursts(settings, args.burst)
                else:
                    measure(settings, args.rounds)
        finally:
            chroma.stop()


if __name__ == "__main__":
    main()
