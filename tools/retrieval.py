"""Hybrid knowledge-base search: Chroma (dense, cosine) fused with BM25 (lexical) by reciprocal-rank fusion.

Why both: on the eval set (docs/performance.md) MiniLM alone finds 0.75 of the gold pages in the top 5, BM25
alone 0.75, their fusion ~0.82: dense matches paraphrases, BM25 matches exact names (`stop_reason`, model ids).
Why the score is the dense cosine similarity of the hit, not the fused value: RRF values only order one query's
list, while cosine similarity means the same thing for every query, so the agent can threshold it
(RELEVANCE_THRESHOLD) to say "nothing relevant" instead of answering from unrelated text.

BM25 lives in this process, built from the collection's own rows (the same `index_text` that was embedded), and
is rebuilt when ingestion — possibly another process, through the Chroma server — changed the collection: it
bumps the collection metadata `kb_version`; we look at it and at count() at most every KB_REFRESH_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN_PLUS
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from settings import Settings
from tools.documents import SearchHit, index_text
from tools.embeddings import get_embeddings
from tools.rerank import RERANK_DEPTH, rerank
from tools.store import get_collection

logger = logging.getLogger(__name__)

MAX_K = 50  # hits one search may return
MAX_QUERY_CHARS = 2000  # longer queries are cut (the embedding model reads ~256 word pieces anyway)
CANDIDATES = 50  # depth of each ranked list before fusion
RRF_K = 10  # reciprocal-rank fusion constant: score = sum(weight / (RRF_K + rank)); tuned on the eval set
DENSE_WEIGHT = 0.5
LEXICAL_WEIGHT = 0.5
BM25_K1, BM25_B = 1.2, 0.75
BACKGROUND_REBUILD_ROWS = 20_000  # above this, BM25 rebuilds (~1.4 s per 10 k rows) run beside searches
PAGE_SIZE = 5000  # rows per collection.get() page when (re)building BM25
_STOPWORDS = sorted(STOPWORDS_EN_PLUS)


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased word tokens without English stopwords (bm25s's larger list measured a little better)."""
    return bm25s.tokenize(texts, stopwords=_STOPWORDS, return_ids=False, show_progress=False)  # type: ignore[return-value]


def reciprocal_rank_fusion(rankings: list[list[str]], weights: list[float], k: int = RRF_K) -> list[str]:
    """Ids ordered by the weighted sum of 1 / (k + rank) over the lists they appear in."""
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return sorted(fused, key=lambda item: -fused[item])


class LexicalIndex:
    """BM25 over one snapshot of the collection; `state` says which snapshot."""

    def __init__(self, ids: list[str], texts: list[str], state: tuple[Any, ...]) -> None:
        self.ids = ids
        self.state = state
        self._bm25: bm25s.BM25 | None = None
        if ids:
            self._bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
            self._bm25.index(tokenize(texts), show_progress=False)

    def search(self, query: str, depth: int) -> list[str]:
        """Ids of the best `depth` rows with a positive BM25 score."""
        if self._bm25 is None:
            return []
        tokens = [token for token in tokenize([query])[0] if token in self._bm25.vocab_dict]
        if not tokens:
            return []
        scores = self._bm25.get_scores(tokens)
        depth = min(depth, len(scores))
        top = np.argpartition(-scores, depth - 1)[:depth]
        return [self.ids[i] for i in top[np.argsort(-scores[top])] if scores[i] > 0]

    @classmethod
    def build(cls, collection: Collection, state: tuple[Any, ...]) -> LexicalIndex:
        """Read every row page by page and index the same text that was embedded."""
        started = time.perf_counter()
        ids: list[str] = []
        texts: list[str] = []
        seen: set[str] = set()
        offset = 0
        while True:
            page = collection.get(include=["documents", "metadatas"], limit=PAGE_SIZE, offset=offset)
            for row_id, text, meta in zip(page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True):
                if row_id in seen:
                    continue
                seen.add(row_id)
                meta = meta or {}
                ids.append(row_id)
                texts.append(index_text(str(meta.get("title") or ""), str(meta.get("section") or ""), text or ""))
            if len(page["ids"]) < PAGE_SIZE:
                break
            offset += PAGE_SIZE
        index = cls(ids, texts, state)
        logger.info("BM25 index built: %d chunks in %.2f s", len(ids), time.perf_counter() - started)
        return index


@dataclass
class _Row:
    """A candidate with what a SearchHit needs."""

    chunk_id: str
    text: str
    metadata: dict[str, Any]
    similarity: float


class KnowledgeBase:
    """Search over one Chroma collection. Thread-safe; one per (Chroma target, collection), see
    `get_knowledge_base`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._embeddings = get_embeddings(settings)
        self._lock = threading.Lock()
        self._collection: Collection = get_collection(settings)
        self._lexical: LexicalIndex | None = None
        self._checked_at = float("-inf")
        self._rebuilding = False

    # -- freshness ---------------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Re-read the collection handle (its metadata carries `kb_version`) and count(); rebuild BM25 when
        either changed. Cheap unless something changed; called by `search` at most every KB_REFRESH_SECONDS."""
        if not force and time.monotonic() - self._checked_at < self.settings.kb_refresh_seconds:
            return
        with self._lock:
            if not force and time.monotonic() - self._checked_at < self.settings.kb_refresh_seconds:
                return
            collection = get_collection(self.settings)
            state = (collection.id, (collection.metadata or {}).get("kb_version"), collection.count())
            self._collection = collection
            self._checked_at = time.monotonic()
            if self._lexical is not None and self._lexical.state == state:
                return
            if self._lexical is not None and state[2] > BACKGROUND_REBUILD_ROWS:
                if not self._rebuilding:  # big: keep serving the old BM25 index while the new one builds
                    self._rebuilding = True
                    threading.Thread(target=self._rebuild, args=(collection, state), daemon=True).start()
            else:
                self._lexical = LexicalIndex.build(collection, state)

    def _rebuild(self, collection: Collection, state: tuple[Any, ...]) -> None:
        try:
            self._lexical = LexicalIndex.build(collection, state)
        except Exception:  # the next freshness check tries again
            logger.exception("BM25 rebuild failed")
        finally:
            self._rebuilding = False

    # -- search --------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The k best chunks for `query`, rank 1 first, each once; [] for an empty query or knowledge base."""
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        query = " ".join(query.split())[:MAX_QUERY_CHARS]
        if not query:
            return []
        self.refresh()
        vector = np.asarray(self._embeddings.embed_query(query), dtype=np.float32)
        dense = self._dense(vector)
        lexical = self._lexical.search(query, CANDIDATES) if self._lexical else []
        fused = reciprocal_rank_fusion([list(dense), lexical], [DENSE_WEIGHT, LEXICAL_WEIGHT])
        reranker = self.settings.reranker_model
        pool = fused[: max(k, RERANK_DEPTH) if reranker else k]
        rows = {**dense, **self._fetch([chunk_id for chunk_id in pool if chunk_id not in dense], vector)}
        pool = [chunk_id for chunk_id in pool if chunk_id in rows]  # rows deleted since BM25 was built drop out
        if reranker:
            pool = [pool[i] for i in rerank(reranker, query, [self._indexed(rows[c]) for c in pool])]
        return [self._hit(rank, rows[chunk_id]) for rank, chunk_id in enumerate(pool[:k], start=1)]

    async def asearch(self, query: str, k: int = 5) -> list[SearchHit]:
        """`search` in a worker thread: embedding and Chroma calls block."""
        return await asyncio.to_thread(self.search, query, k)

    def as_retriever(self, k: int | None = None) -> KnowledgeBaseRetriever:
        return KnowledgeBaseRetriever(knowledge_base=self, k=k or self.settings.retrieval_k)

    # -- helpers -------------------------------------------------------------------------------------------
    def _dense(self, vector: np.ndarray, retry: bool = True) -> dict[str, _Row]:
        """Nearest chunks by cosine similarity (ordered dict, best first). Always passes the vector:
        `query_texts` would make Chroma load (and download) its own model."""
        try:
            result = self._collection.query(
                query_embeddings=[vector.tolist()],
                n_results=CANDIDATES,
                include=["documents", "metadatas", "distances"],
            )
        except NotFoundError:  # the collection was deleted (and maybe re-created) by another process
            if not retry:
                raise
            self.refresh(force=True)
            return self._dense(vector, retry=False)
        rows: dict[str, _Row] = {}
        for row_id, text, meta, distance in zip(
            result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
        ):
            rows.setdefault(row_id, _Row(row_id, text or "", dict(meta or {}), 1.0 - float(distance)))
        return rows

    def _fetch(self, ids: list[str], vector: np.ndarray) -> dict[str, _Row]:
        """Rows that only BM25 found, with their cosine similarity computed from the stored embeddings."""
        if not ids:
            return {}
        result = self._collection.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        rows = {}
        for row_id, text, meta, embedding in zip(
            result["ids"], result["documents"], result["metadatas"], result["embeddings"], strict=True
        ):
            stored = np.asarray(embedding, dtype=np.float32)
            similarity = float(stored @ vector / (np.linalg.norm(stored) * np.linalg.norm(vector) or 1.0))
            rows[row_id] = _Row(row_id, text or "", dict(meta or {}), similarity)
        return rows

    @staticmethod
    def _indexed(row: _Row) -> str:
        return index_text(str(row.metadata.get("title") or ""), str(row.metadata.get("section") or ""), row.text)

    @staticmethod
    def _hit(rank: int, row: _Row) -> SearchHit:
        meta = row.metadata
        return SearchHit(
            rank=rank,
            chunk_id=str(meta.get("chunk_id") or row.chunk_id),
            title=str(meta.get("title") or ""),
            url=str(meta.get("url") or ""),
            score=round(min(1.0, max(0.0, row.similarity)), 4),
            text=row.text,
            source=str(meta.get("source") or ""),
            section=str(meta.get("section") or ""),
        )


class KnowledgeBaseRetriever(BaseRetriever):
    """LangChain view of a KnowledgeBase: Documents whose metadata holds the SearchHit fields and the snippet."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    knowledge_base: KnowledgeBase
    k: int = 4

    @staticmethod
    def _documents(hits: list[SearchHit]) -> list[Document]:
        return [
            Document(page_content=hit.text, metadata={**asdict(hit), "snippet": hit.snippet}, id=hit.chunk_id)
            for hit in hits
        ]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(self.knowledge_base.search(query, self.k))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self._documents(await self.knowledge_base.asearch(query, self.k))


_instances: dict[tuple[str, str], KnowledgeBase] = {}
_instances_lock = threading.Lock()


def get_knowledge_base(settings: Settings) -> KnowledgeBase:
    """One KnowledgeBase (and so one BM25 index) per Chroma target and collection in this process."""
    key = (settings.chroma_url or str(settings.chroma_dir.resolve()), settings.kb_collection)
    with _instances_lock:
        if key not in _instances:
            _instances[key] = KnowledgeBase(settings)
        return _instances[key]
