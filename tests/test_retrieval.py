"""Hybrid knowledge-base search (tools/retrieval.py) against a real Chroma server and the real embedding model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.app_process import HELP_CENTER as SEEDED
from helpers.app_process import seed_knowledge_base
from launcher.services import Service
from settings import Settings
from tools.documents import Chunk, index_text
from tools.retrieval import (
    LEXICAL_WEIGHT,
    KnowledgeBase,
    KnowledgeBaseRetriever,
    LexicalIndex,
    Tokenizer,
    convex_fusion,
    get_knowledge_base,
)

ROOT = Path(__file__).resolve().parents[1]

HELP_CENTER = [
    *SEEDED,
    Chunk(
        "Error ZX-4711 means the device firmware is older than version 3.2. Install the latest firmware "
        "from the Updates tab, then restart the device.",
        "Troubleshooting devices",
        "https://help.example.com/devices/troubleshooting",
        "devices.md",
    ),
    Chunk(
        "Two-factor authentication adds a one-time code from an authenticator app to every sign-in. "
        "Turn it on under Settings > Security.",
        "Account security",
        "https://help.example.com/account/security",
        "account.md",
        position=1,
    ),
]


# --- fusion, tokenisation and indexed text: pure functions -------------------------------------------------------


def test_a_strong_lexical_match_is_not_dragged_down_by_a_weak_dense_list() -> None:
    """BM25 has one clear winner; the dense list is unsure (all similarities within 0.06) and ranks the winner
    last. Reciprocal-rank fusion would put `runner-up` first (2nd in both lists); the score fusion keeps the
    lexical winner, because an unsure list's scores barely differ."""
    lexical = {"winner": 12.0, "runner-up": 3.0}
    similarity = {"dense-only": 0.46, "runner-up": 0.45, "other": 0.44, "winner": 0.40}
    assert convex_fusion(lexical, similarity)[0] == "winner"


def test_a_confident_dense_list_still_decides_between_lexical_near_ties() -> None:
    """When BM25 hardly separates two chunks, a clear dense preference orders them: it is a fusion."""
    lexical = {"a": 10.0, "b": 9.6}
    similarity = {"a": 0.31, "b": 0.78, "c": 0.30}
    assert convex_fusion(lexical, similarity) == ["b", "a", "c"]


def test_fusion_without_lexical_matches_is_the_dense_order() -> None:
    assert convex_fusion({}, {"x": 0.2, "y": 0.7, "z": 0.5}) == ["y", "z", "x"]
    assert 0 < LEXICAL_WEIGHT < 1


def test_the_tokenizer_stems_and_keeps_identifiers_whole_and_in_parts() -> None:
    tokens = Tokenizer()("Caching cached caches: the stop_reason of ZX-4711 on claude-3-haiku")
    assert tokens.count("cach") == 3  # one term for the inflections
    assert {"stop_reason", "stop", "reason"} <= set(tokens)
    assert {"zx-4711", "zx", "4711", "claude-3-haiku", "haiku"} <= set(tokens)
    assert "the" not in tokens and "of" not in tokens
    assert Tokenizer(stem=False, identifiers=False)("Caching stop_reason ZX-4711") == [
        "caching",
        "stop_reason",
        "zx",
        "4711",
    ]


def test_bm25_matches_an_inflected_query_and_an_exact_identifier() -> None:
    index = LexicalIndex(
        ["cache", "code", "other"],
        ["Prompt caching stores the prefix.", "Error ZX-4711 means old firmware.", "Error ZX 4711 4711 zx elsewhere."],
    )
    inflected, exact = (list(index.search(query, 3)) for query in ("how long are prompts cached?", "ZX-4711"))
    assert inflected[:1] == ["cache"]
    assert exact[:1] == ["code"]  # the whole code outweighs its parts repeated


def test_the_indexed_text_starts_with_the_whole_heading_path() -> None:
    assert index_text("Account", "Account › Passwords › Reset link", "It expires.") == (
        "Account › Passwords › Reset link\nIt expires."
    )
    assert index_text("Models", "", "Models\n\nPick one.") == "Models\nModels\n\nPick one."  # always there
    assert index_text("", "", "Just text.") == "Just text."


# --- the knowledge base against the real Chroma server and embedding model --------------------------------------


@pytest.fixture
def kb_settings(tmp_path: Path, chroma_service: Service) -> Settings:
    """The shared Chroma server, a fresh collection; freshness checks on every search so tests need not wait."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        chroma_url=chroma_service.url,
        kb_collection=f"retrieval-{tmp_path.name}"[-60:].strip("-_."),
        kb_refresh_seconds=0.0,
    )


@pytest.fixture
def knowledge_base(kb_settings: Settings) -> KnowledgeBase:
    seed_knowledge_base(kb_settings, HELP_CENTER, version=1)
    return KnowledgeBase(kb_settings)


def test_a_question_finds_the_chunk_that_answers_it_with_all_hit_fields(knowledge_base: KnowledgeBase) -> None:
    """The answering chunk ranks first, and every hit carries title, url, snippet, a score in [0, 1] and
    ranks 1..n with no chunk twice."""
    hits = knowledge_base.search("how long is the link to reset my password valid?", k=3)
    assert hits[0].url == "https://help.example.com/account/password-reset"
    assert hits[0].title == "Resetting your password"
    assert "30 minutes" in hits[0].snippet
    assert [hit.rank for hit in hits] == [1, 2, 3]
    assert len({hit.chunk_id for hit in hits}) == 3
    assert all(0.0 <= hit.score <= 1.0 and hit.url and hit.title and hit.snippet for hit in hits)
    assert hits[0].score >= knowledge_base.settings.relevance_threshold


def test_an_exact_error_code_is_found_through_bm25(knowledge_base: KnowledgeBase) -> None:
    """Codes and identifiers are where lexical search beats embeddings; fusion keeps them on top."""
    hits = knowledge_base.search("ZX-4711", k=2)
    assert hits[0].url == "https://help.example.com/devices/troubleshooting"


def test_a_parent_heading_is_searchable_through_the_heading_path(kb_settings: Settings) -> None:
    """Two chunks say nearly the same; only the parent heading in their heading path tells them apart."""
    chunks = [
        Chunk(
            "The maximum is 40 per hour.",
            "Plans",
            "https://help.example.com/plans#limits",
            "plans.md",
            section="Quibbleflux plan › Limits",
        ),
        Chunk(
            "The maximum is 50 per day.",
            "Plans",
            "https://help.example.com/plans#limits-1",
            "plans.md",
            section="Starter plan › Limits",
            position=1,
        ),
    ]
    seed_knowledge_base(kb_settings, chunks, version=1)
    kb = KnowledgeBase(kb_settings)
    assert kb.search("quibbleflux maximum", k=1)[0].url == "https://help.example.com/plans#limits"
    assert kb.search("starter plan maximum", k=1)[0].url == "https://help.example.com/plans#limits-1"


@pytest.mark.parametrize(
    "query", ["what is the weather in Paris", "write me a poem about cats", "who won the 2018 football world cup"]
)
def test_off_topic_questions_score_below_the_relevance_threshold(knowledge_base: KnowledgeBase, query: str) -> None:
    """The agent says "nothing relevant" when the best score is under RELEVANCE_THRESHOLD."""
    hits = knowledge_base.search(query, k=4)
    assert hits, "search returns the nearest chunks; the threshold is the caller's decision"
    assert max(hit.score for hit in hits) < knowledge_base.settings.relevance_threshold


def test_an_empty_query_finds_nothing_and_a_bad_k_is_refused(knowledge_base: KnowledgeBase) -> None:
    assert knowledge_base.search("   \n ") == []
    with pytest.raises(ValueError, match="k must be between"):
        knowledge_base.search("password", k=0)
    with pytest.raises(ValueError, match="k must be between"):
        knowledge_base.search("password", k=500)


def test_an_empty_knowledge_base_returns_no_hits(kb_settings: Settings) -> None:
    assert KnowledgeBase(kb_settings).search("how do I reset my password?") == []


async def test_async_search_gives_the_same_hits_as_sync_search(knowledge_base: KnowledgeBase) -> None:
    query = "when are invoices issued?"
    assert await knowledge_base.asearch(query, k=2) == knowledge_base.search(query, k=2)


async def test_the_langchain_retriever_returns_documents_with_hit_metadata(knowledge_base: KnowledgeBase) -> None:
    retriever = knowledge_base.as_retriever(k=2)
    assert isinstance(retriever, KnowledgeBaseRetriever)
    for documents in (retriever.invoke("how long does shipping take?"), await retriever.ainvoke("delivery time")):
        assert len(documents) == 2
        first = documents[0]
        assert first.metadata["url"] == "https://help.example.com/shipping"
        assert first.metadata["rank"] == 1 and 0.0 <= first.metadata["score"] <= 1.0
        assert {"title", "chunk_id", "snippet", "source", "section"} <= first.metadata.keys()
        assert first.page_content.startswith("Orders ship")


def test_one_knowledge_base_is_shared_per_chroma_target_and_collection(kb_settings: Settings) -> None:
    same = get_knowledge_base(kb_settings)
    assert get_knowledge_base(kb_settings.model_copy()) is same
    other = kb_settings.model_copy(update={"kb_collection": kb_settings.kb_collection + "-other"})
    assert get_knowledge_base(other) is not same


def test_chunks_added_later_are_found_by_both_retrievers_without_a_new_knowledge_base(
    knowledge_base: KnowledgeBase, kb_settings: Settings
) -> None:
    """A kb_version bump makes the next search rebuild BM25, so a brand-new term is found at once."""
    assert all("gift-cards" not in hit.url for hit in knowledge_base.search("QWX-GIFT-99 voucher", k=5))
    card = Chunk(
        "Redeem code QWX-GIFT-99 at checkout to get a voucher worth ten euros.",
        "Gift cards",
        "https://help.example.com/gift-cards",
        "gift.md",
    )
    seed_knowledge_base(kb_settings, [card], version=2)
    assert knowledge_base.search("QWX-GIFT-99 voucher", k=1)[0].url == "https://help.example.com/gift-cards"


def test_a_document_ingested_by_another_process_becomes_searchable(
    knowledge_base: KnowledgeBase, kb_settings: Settings, tmp_path: Path
) -> None:
    """`python -m ingest` in another process writes through the Chroma server; this KnowledgeBase, created
    before, finds the new document (dense at once, BM25 after its next freshness check)."""
    knowledge_base.search("warmup")  # BM25 is built before the other process writes
    page = tmp_path / "returns.md"
    page.write_text(
        "---\ntitle: Returns policy\nurl: https://help.example.com/returns\n---\n\n"
        "You can return any item within 45 days. Quote the return code RMA-5521 on the parcel.\n"
    )
    env = {**os.environ, "CHROMA_URL": kb_settings.chroma_url or "", "KB_COLLECTION": kb_settings.kb_collection}
    env["DATA_DIR"] = str(kb_settings.data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "ingest", str(page)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    deadline = time.monotonic() + 30
    while True:
        hits = knowledge_base.search("RMA-5521", k=1)
        if (hits and hits[0].url == "https://help.example.com/returns") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert hits[0].url == "https://help.example.com/returns"
    assert hits[0].title == "Returns policy"
    assert knowledge_base.search("how many days do I have to send something back?", k=1)[0].url.endswith("/returns")
