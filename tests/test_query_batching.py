"""Concurrent searches are served together (tools/query_batcher.py, issue 14): one `encode`, one Chroma `query`
and one `get` per batch, and the batched results are exactly the unbatched ones on the development eval set
(../shared/eval/anthropic-docs, indexed once per session by tests/conftest.py `dev_set`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from conftest import DevSet
from launcher.services import Service
from settings import BGE_QUERY_INSTRUCTION, Settings
from tools.documents import SearchHit
from tools.embeddings import _load, encode_queries, model_path
from tools.query_batcher import QueryBatcher
from tools.retrieval import MAX_K, KnowledgeBase
from tools.store import get_collection


@pytest.fixture(scope="module")
def questions(dev_set: DevSet) -> list[str]:
    return [q["question"] for q in dev_set.questions]


def steady(dev_set: DevSet) -> KnowledgeBase:
    """A KnowledgeBase on the dev set whose freshness check does not run during the test (it would put a thread
    hop before some questions and change how they fall into batches)."""
    kb = KnowledgeBase(dev_set.settings.model_copy(update={"kb_refresh_seconds": 3600.0}))
    kb.refresh(force=True)
    return kb


def assert_same_hits(together: list[SearchHit], alone: list[SearchHit], question: str) -> None:
    assert [h.chunk_id for h in together] == [h.chunk_id for h in alone], question
    assert [h.rank for h in together] == [h.rank for h in alone], question
    assert [h.score for h in together] == pytest.approx([h.score for h in alone], abs=1e-4), question
    assert [(h.url, h.text) for h in together] == [(h.url, h.text) for h in alone], question


def test_batched_query_vectors_equal_one_by_one_vectors(dev_set: DevSet, questions: list[str]) -> None:
    kb = KnowledgeBase(dev_set.settings)
    batched = np.asarray(encode_queries(kb._embeddings, questions[:64]))
    alone = np.asarray([kb._embeddings.embed_query(q) for q in questions[:64]])
    np.testing.assert_allclose(batched, alone, atol=1e-5)  # padding to the longest text moves the last bits
    for question in questions[:5]:  # one text: the very vector embed_query gives
        assert encode_queries(kb._embeddings, [question])[0] == kb._embeddings.embed_query(question)


def test_batched_query_vectors_carry_the_query_instruction(dev_set: DevSet, questions: list[str]) -> None:
    """The BGE query instruction is applied by encode_queries as by embed_query (documents go without it): the
    embeddings get_embeddings makes for a BGE model, here on the installed MiniLM."""
    instructed = _load(model_path(dev_set.settings), BGE_QUERY_INSTRUCTION)
    assert instructed.query_encode_kwargs.get("prompt") == BGE_QUERY_INSTRUCTION
    batched = np.asarray(encode_queries(instructed, questions[:8]))
    np.testing.assert_allclose(batched, [instructed.embed_query(q) for q in questions[:8]], atol=1e-5)
    assert not np.allclose(batched, instructed.embed_documents(questions[:8]), atol=1e-3)


def test_a_burst_of_100_concurrent_searches_gives_the_unbatched_results_on_the_dev_set(
    dev_set: DevSet, questions: list[str]
) -> None:
    kb = KnowledgeBase(dev_set.settings)
    assert len(questions) == 100
    unbatched = [kb.search(q, k=5) for q in questions]
    kb.refresh(force=True)
    before = dict(kb.chroma_calls)

    async def burst() -> tuple[list[list[SearchHit]], QueryBatcher]:
        hits = await asyncio.gather(*(kb.asearch(q, k=5) for q in questions))
        return hits, kb.batcher()

    batched, batcher = asyncio.run(burst())
    assert batcher.items == len(questions)
    assert batcher.calls < len(questions) // 4, f"{batcher.calls} batches for {len(questions)} questions"
    assert kb.chroma_calls["query"] - before["query"] == batcher.calls, "one Chroma query per batch"
    assert kb.chroma_calls["get"] - before["get"] <= batcher.calls, "at most one Chroma get per batch"
    for question, alone, together in zip(questions, unbatched, batched, strict=True):
        assert_same_hits(together, alone, question)


def test_questions_arriving_during_a_batch_share_the_next_one_with_one_chroma_query_and_their_own_k(
    dev_set: DevSet, questions: list[str]
) -> None:
    kb = steady(dev_set)
    ks = [1, 2, 3, 5, 8, 13, 21, 34, MAX_K, 4]
    alone = {(q, k): kb.search(q, k=k) for q, k in zip(questions[2:12], ks, strict=True)}

    async def run() -> tuple[dict[str, int], dict[str, int], list[list[SearchHit]]]:
        batcher = kb.batcher()
        start = dict(kb.chroma_calls)
        await kb.asearch(questions[0])  # alone: a batch of its own at once, no wait
        lone = {"batches": batcher.calls, "query": kb.chroma_calls["query"] - start["query"]}
        first = asyncio.create_task(kb.asearch(questions[1]))
        await asyncio.sleep(0)  # the first question's batch is running now
        rest = [asyncio.create_task(kb.asearch(q, k=k)) for q, k in zip(questions[2:12], ks, strict=True)]
        hits = await asyncio.gather(first, *rest)
        after = {"batches": batcher.calls - lone["batches"], "query": kb.chroma_calls["query"] - start["query"]}
        return lone, after, hits[1:]

    lone, after, hits = asyncio.run(run())
    assert lone == {"batches": 1, "query": 1}
    assert after["batches"] == 2, "the first question alone, then the ten that waited for it in one batch"
    assert after["query"] == 3, "one Chroma query for the lone question, one for the first, one for the ten"
    for (question, k), together in zip(alone, hits, strict=True):
        assert len(together) == k
        assert_same_hits(together, alone[(question, k)], question)


def test_a_chroma_failure_reaches_every_waiter_as_the_unbatched_error(tmp_path: Path, chroma_service: Service) -> None:
    """A real Chroma error: the collection holds 3-d vectors, the model's query vectors are 384-d."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        chroma_url=chroma_service.url,
        kb_collection=f"batch-fail-{tmp_path.name}"[-60:].strip("-_."),
    )
    get_collection(settings).add(
        ids=["a", "b"], documents=["reset your password", "invoices"], embeddings=[[1.0, 0, 0], [0, 1.0, 0]]
    )
    kb = KnowledgeBase(settings)
    with pytest.raises(Exception) as unbatched:
        kb.search("reset password")

    async def burst() -> list[object]:
        together = asyncio.gather(*(kb.asearch(f"reset password {n}") for n in range(8)), return_exceptions=True)
        return await asyncio.wait_for(together, 60)  # a waiter never told would hang here

    results = asyncio.run(burst())
    assert all(type(r) is unbatched.type and str(r) == str(unbatched.value) for r in results), results


def test_a_batch_failure_reaches_every_waiter_and_the_batcher_goes_on() -> None:
    calls: list[list[str]] = []

    def process(texts: list[str]) -> list[int]:  # a plain function standing for the batch search
        calls.append(texts)
        if "boom" in texts:
            raise RuntimeError("batch failed")
        return [len(t) for t in texts]

    async def run() -> tuple[list[object], int]:
        batcher: QueryBatcher[str, int] = QueryBatcher(process)
        together = asyncio.gather(batcher.submit("boom"), batcher.submit("ab"), return_exceptions=True)
        results = await asyncio.wait_for(together, 10)  # a waiter never told would hang here
        return results, await batcher.submit("abc")

    results, after = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert after == 3
    assert calls == [["boom", "ab"], ["abc"]]
