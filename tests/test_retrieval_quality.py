"""Retrieval quality gate on the development eval set (../shared/eval/anthropic-docs, read at run time).

Indexes the 232 eval chunks through the real ingestion path into the test Chroma server (~30-60 s of embedding
on 2 cores), then scores all 100 questions as bench/eval_retrieval.py does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from launcher.services import Service
from settings import Settings
from tools.retrieval import KnowledgeBase

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("eval_retrieval", ROOT / "bench" / "eval_retrieval.py")
assert _spec and _spec.loader
eval_retrieval = importlib.util.module_from_spec(_spec)
sys.modules["eval_retrieval"] = eval_retrieval  # dataclasses look their module up there
_spec.loader.exec_module(eval_retrieval)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not eval_retrieval.EVAL_DIR.is_dir(),
        reason=f"the development eval set is not at {eval_retrieval.EVAL_DIR} (it lives in shared/, not the repo)",
    ),
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, chroma_service: Service) -> tuple[object, list[float]]:
    """Index once, search every question once; returns the result and the off-topic best scores."""
    folder = tmp_path_factory.mktemp("eval")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=folder / "data",
        chroma_url=chroma_service.url,
        kb_collection=f"eval-quality-{folder.name}"[-60:].strip("-_."),
    )
    docs, questions = eval_retrieval.load_eval()
    eval_retrieval.index_corpus(eval_retrieval.write_corpus(docs, folder / "corpus"), settings)
    kb = KnowledgeBase(settings)
    off_topic = [max(hit.score for hit in kb.search(query, k=4)) for query in eval_retrieval.OFF_TOPIC]
    return eval_retrieval.evaluate(kb, questions), off_topic


def test_hybrid_retrieval_finds_at_least_80_percent_of_gold_pages_in_the_top_5(evaluated: tuple) -> None:
    result, _ = evaluated
    assert result.questions == 100
    assert result.recall_at_5 >= 0.80, f"recall@5 {result.recall_at_5:.3f}, MRR@10 {result.mrr_at_10:.3f}"
    assert result.mrr_at_10 >= 0.80, f"MRR@10 {result.mrr_at_10:.3f}"


def test_the_relevance_threshold_keeps_real_questions_and_rejects_most_off_topic_ones(evaluated: tuple) -> None:
    """Every eval question has a hit above RELEVANCE_THRESHOLD; most chit-chat has none (two off-topic
    queries match real text of this corpus: a weather tool example, a poem in eval tips)."""
    result, off_topic = evaluated
    threshold = Settings(_env_file=None).relevance_threshold  # type: ignore[call-arg]
    assert min(result.top_scores) >= threshold
    assert sum(score < threshold for score in off_topic) >= 0.75 * len(off_topic)
