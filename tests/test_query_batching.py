"""Query embeddings of concurrent questions share one `encode` call (tools/query_batcher.py, issue 14), and the
batched search gives exactly the unbatched results on the development eval set (../shared/eval/anthropic-docs,
read at run time and indexed into the test Chroma server as tests/test_retrieval_quality.py does)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from launcher.services import Service
from settings import Settings
from tools.embeddings import encode_queries
from tools.query_batcher import QueryBatcher
from tools.retrieval import KnowledgeBase

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("eval_retrieval", ROOT / "bench" / "eval_retrieval.py")
assert _spec and _spec.loader
eval_retrieval = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("eval_retrieval", eval_retrieval)
_spec.loader.exec_module(eval_retrieval)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, chroma_service: Service) -> tuple[KnowledgeBase, list[str]]:
    if not eval_retrieval.EVAL_DIR.is_dir():
        pytest.skip(f"the development eval set is not at {eval_retrieval.EVAL_DIR} (it lives in shared/)")
    folder = tmp_path_factory.mktemp("batching")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=folder / "data",
        chroma_url=chroma_service.url,
        kb_collection=f"batching-{folder.name}"[-60:].strip("-_."),
    )
    docs, questions = eval_retrieval.load_eval()
    eval_retrieval.index_corpus(eval_retrieval.write_corpus(docs, folder / "corpus"), settings)
    return KnowledgeBase(settings), [q["question"] for q in questions]


def test_batched_query_vectors_equal_one_by_one_vectors(indexed: tuple[KnowledgeBase, list[str]]) -> None:
    kb, questions = indexed
    batched = np.asarray(encode_queries(kb._embeddings, questions[:64]))
    alone = np.asarray([kb._embeddings.embed_query(q) for q in questions[:64]])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_concurrent_searches_give_the_unbatched_results_on_the_dev_set(
    indexed: tuple[KnowledgeBase, list[str]],
) -> None:
    kb, questions = indexed
    unbatched = [kb.search(q, k=5) for q in questions]

    async def burst() -> tuple[list, QueryBatcher]:
        hits = await asyncio.gather(*(kb.asearch(q, k=5) for q in questions))
        return hits, kb.batcher()

    batched, batcher = asyncio.run(burst())
    assert batcher.texts == len(questions)
    assert batcher.calls < len(questions) // 4, f"{batcher.calls} encode calls for {len(questions)} questions"
    for question, alone, together in zip(questions, unbatched, batched, strict=True):
        assert [h.chunk_id for h in together] == [h.chunk_id for h in alone], question
        assert [h.score for h in together] == pytest.approx([h.score for h in alone], abs=1e-4), question


def test_questions_arriving_during_an_encode_share_the_next_call(indexed: tuple[KnowledgeBase, list[str]]) -> None:
    kb, questions = indexed

    async def run() -> tuple[int, int, int]:
        batcher = kb.batcher()
        await kb.asearch(questions[0])  # alone: one call of its own, no wait
        lone = batcher.calls
        first = asyncio.create_task(batcher.embed(questions[1]))
        await asyncio.sleep(0)  # the first is being encoded now
        rest = [asyncio.create_task(batcher.embed(q)) for q in questions[2:12]]
        await asyncio.gather(first, *rest)
        return lone, batcher.calls - lone, batcher.texts

    lone, after, texts = asyncio.run(run())
    assert lone == 1
    assert after == 2, "the first question alone, then the ten that waited for it in one call"
    assert texts == 12


def test_an_encode_failure_reaches_every_waiter_and_the_batcher_goes_on() -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> list[list[float]]:  # a plain function standing for the model's encode
        calls.append(texts)
        if "boom" in texts:
            raise RuntimeError("encode failed")
        return [[float(len(t))] for t in texts]

    async def run() -> tuple[list[object], np.ndarray]:
        batcher = QueryBatcher(encode)
        together = asyncio.gather(batcher.embed("boom"), batcher.embed("ab"), return_exceptions=True)
        results = await asyncio.wait_for(together, 10)  # a waiter never told would hang here
        return results, await batcher.embed("abc")

    results, after = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert after.tolist() == [3.0]
    assert calls == [["boom", "ab"], ["abc"]]
