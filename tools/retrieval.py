"""Hybrid knowledge-base search: Chroma (dense, cosine) and BM25 (lexical), fused by a convex combination of
their scores.

Fusion (docs/retrieval.md has the measurements): fused = LEXICAL_WEIGHT · bm25 / (the query's best bm25)
+ (1 − LEXICAL_WEIGHT) · cosine, over the union of both candidate lists. Each list's influence is the spread of
its own scores: cosine similarity keeps its absolute scale, so a dense list that is unsure (all candidates at
about the same similarity) barely moves the order, while a clear lexical winner stays on top. Reciprocal-rank
fusion, used before, gives an unsure dense list as many votes as a confident lexical one, and on unseen
documents it fell below BM25 alone.

Why the score of a hit is its dense cosine similarity, not the fused value: the fused value is relative to the
query's best BM25 score, while cosine similarity means the same thing for every query, so the agent can
threshold it (RELEVANCE_THRESHOLD) to say "nothing relevant" instead of answering from unrelated text.

BM25 lives in this process, built from the collection's own rows (the same `index_text` that was embedded), and
is rebuilt when ingestion — possibly another process, through the Chroma server — changed the collection: it
bumps the collection metadata `kb_version`; we look at it and at count() at most every KB_REFRESH_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import weakref
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from settings import Settings
from tools.documents import SearchHit, index_text
from tools.embeddings import encode_queries, get_embeddings
from tools.query_batcher import QueryBatcher
from tools.rerank import RERANK_DEPTH, rerank
from tools.store import get_collection

logger = logging.getLogger(__name__)

MAX_K = 50  # hits one search may return
MAX_QUERY_CHARS = 2000  # longer queries are cut (the embedding model reads ~256 word pieces anyway)
CANDIDATES = 50  # depth of each ranked list before fusion
LEXICAL_WEIGHT = 0.5  # fused = w · bm25 / best bm25 + (1 − w) · cosine; 0.4-0.7 measure the same (cross-validated)
BM25_K1, BM25_B = 1.2, 0.75  # the usual values; b = 0.5-1.0 measured within noise on pieces of <= CHUNK_WORDS
BACKGROUND_REBUILD_ROWS = 20_000  # above this, BM25 rebuilds (~1.4 s per 10 k rows) run beside searches
PAGE_SIZE = 5000  # rows per collection.get() page when (re)building BM25

_WORD = re.compile(r"(?u)\b\w\w+\b")
# Identifiers and codes kept whole as well as in parts: ZX-4711, claude-3-haiku, v2.1, api.example.com
_COMPOUND = re.compile(r"(?u)\w+(?:[-.:/]\w+)+")
_STOPWORDS = frozenset(STOPWORDS_EN)  # the short (Lucene) English list: IDF already discounts common words
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


@dataclass(frozen=True)
class Tokenizer:
    """Query and chunk text → BM25 terms. The defaults are the product's; bench/retrieval_ablation.py turns
    each part off to measure it."""

    stem: bool = True  # Snowball English: "caching", "cached" and "caches" are one term
    identifiers: bool = True  # stop_reason → stop_reason + stop + reason; ZX-4711 → zx-4711 + zx + 4711
    stopwords: frozenset[str] = _STOPWORDS

    def __call__(self, text: str) -> list[str]:
        text = text.lower()
        stem = _stem if self.stem else str
        tokens = []
        for word in _WORD.findall(text):
            if "_" in word and self.identifiers:
                tokens.append(word)
                tokens.extend(stem(part) for part in word.split("_") if len(part) > 1 and part not in self.stopwords)
            elif word not in self.stopwords:
                tokens.append(stem(word))
        if self.identifiers:
            tokens.extend(_COMPOUND.findall(text))
        return tokens


TOKENIZER = Tokenizer()


def tokenize(texts: list[str], tokenizer: Tokenizer = TOKENIZER) -> list[list[str]]:
    return [tokenizer(text) for text in texts]


def convex_fusion(lexical: dict[str, float], similarity: dict[str, float], weight: float = LEXICAL_WEIGHT) -> list[str]:
    """The ids of `similarity` (every candidate, with its cosine similarity) ordered by
    weight · bm25 / best bm25 + (1 − weight) · cosine; `lexical` holds the BM25 scores of the lexical candidates."""
    best = max(lexical.values(), default=0.0)
    scale = weight / best if best > 0 else 0.0

    def fused(item: str) -> float:
        return scale * lexical.get(item, 0.0) + (1.0 - weight) * similarity[item]

    return sorted(similarity, key=lambda item: (-fused(item), item))


class LexicalIndex:
    """BM25 over one snapshot of the collection; `state` says which snapshot."""

    def __init__(
        self,
        ids: list[str],
        texts: list[str],
        state: tuple[Any, ...] = (),
        tokenizer: Tokenizer = TOKENIZER,
        k1: float = BM25_K1,
        b: float = BM25_B,
    ) -> None:
        self.ids = ids
        self.state = state
        self.tokenizer = tokenizer
        self._bm25: bm25s.BM25 | None = None
        if ids:
            self._bm25 = bm25s.BM25(k1=k1, b=b)
            self._bm25.index(tokenize(texts, tokenizer), show_progress=False)

    def search(self, query: str, depth: int) -> dict[str, float]:
        """The best `depth` rows with a positive BM25 score: id → score, best first."""
        if self._bm25 is None:
            return {}
        tokens = [token for token in self.tokenizer(query) if token in self._bm25.vocab_dict]
        if not tokens:
            return {}
        scores = self._bm25.get_scores(tokens)
        depth = min(depth, len(scores))
        top = np.argpartition(-scores, depth - 1)[:depth]
        return {self.ids[i]: float(scores[i]) for i in top[np.argsort(-scores[top], kind="stable")] if scores[i] > 0}

    def knows(self, word: str) -> bool:
        """Whether any of the word's terms occurs in the indexed text ("Stripe" does not in docs that never name it);
        a stopword names nothing."""
        terms = self.tokenizer(word)
        return not terms or (self._bm25 is not None and any(term in self._bm25.vocab_dict for term in terms))

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


def _cosine(stored: np.ndarray, vector: np.ndarray) -> float:
    """Cosine similarity of a stored embedding (ingestion normalised it, as the query is) and a query vector:
    the same value Chroma's cosine distance gives for the dense list."""
    return float(stored @ vector / (np.linalg.norm(stored) * np.linalg.norm(vector) or 1.0))


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
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, QueryBatcher] = weakref.WeakKeyDictionary()
        self._calls_lock = threading.Lock()
        self.chroma_calls: Counter[str] = Counter()  # "query" and "get" round trips made (tests, bench)

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
        query = self._clean(query, k)
        if not query:
            return []
        self.refresh()
        return self._search_batch([(query, k)])[0]

    async def asearch(self, query: str, k: int = 5) -> list[SearchHit]:
        """`search` off the event loop, done together with the concurrent questions (tools/query_batcher.py): one
        `encode`, one Chroma `query` and one `get` for all that arrive while a batch runs, in its worker thread."""
        query = self._clean(query, k)
        if not query:
            return []
        if time.monotonic() - self._checked_at >= self.settings.kb_refresh_seconds:
            await asyncio.to_thread(self.refresh)
        return await self.batcher().submit((query, k))

    def knows(self, word: str) -> bool:
        """Whether the documentation mentions this word anywhere (the BM25 vocabulary of the last snapshot)."""
        index = self._lexical
        return index is not None and index.knows(word)

    def batcher(self) -> QueryBatcher[tuple[str, int], list[SearchHit]]:
        """This event loop's search batcher (one per loop: its futures belong to one)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if loop not in self._batchers:
                self._batchers[loop] = QueryBatcher(self._search_batch, name="kb-search")
            return self._batchers[loop]

    @staticmethod
    def _clean(query: str, k: int) -> str:
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        return " ".join(query.split())[:MAX_QUERY_CHARS]

    def _search_batch(self, queries: list[tuple[str, int]]) -> list[list[SearchHit]]:
        """The hits of each (cleaned query, k), in order: one `encode` for all, one Chroma `query` with every
        vector, BM25 per query, one `get` for the lexical-only candidates of all, then fusion per query. A lone
        `search` is a batch of one, so batched and unbatched results come from the same code."""
        texts = [query for query, _ in queries]
        vectors = [np.asarray(vector, dtype=np.float32) for vector in encode_queries(self._embeddings, texts)]
        dense = self._dense(vectors)
        index = self._lexical
        lexical = [index.search(query, CANDIDATES) if index else {} for query in texts]
        # Lexical candidates a query's dense list missed need their cosine similarity before fusing: one `get`
        # for the union over the batch. Rows deleted since BM25 was built are not found and drop out.
        missing = [[c for c in found if c not in near] for found, near in zip(lexical, dense, strict=True)]
        stored = self._fetch(list(dict.fromkeys(chunk_id for ids in missing for chunk_id in ids)))
        return [
            self._ranked(query, vector, k, near, found, {c: stored[c] for c in ids if c in stored})
            for (query, k), vector, near, found, ids in zip(queries, vectors, dense, lexical, missing, strict=True)
        ]

    def _ranked(
        self,
        query: str,
        vector: np.ndarray,
        k: int,
        dense: dict[str, _Row],
        lexical: dict[str, float],
        stored: dict[str, tuple[str, dict[str, Any], np.ndarray]],
    ) -> list[SearchHit]:
        """One query's dense rows, BM25 scores and lexical-only rows (with their stored embedding), fused (and
        reranked when configured)."""
        rows = {**dense}
        for chunk_id, (text, meta, embedding) in stored.items():
            rows[chunk_id] = _Row(chunk_id, text, dict(meta), _cosine(embedding, vector))
        lexical = {chunk_id: score for chunk_id, score in lexical.items() if chunk_id in rows}
        fused = convex_fusion(lexical, {chunk_id: row.similarity for chunk_id, row in rows.items()})
        reranker = self.settings.reranker_model
        pool = fused[: max(k, RERANK_DEPTH) if reranker else k]
        if reranker:
            pool = [pool[i] for i in rerank(reranker, query, [self._indexed(rows[c]) for c in pool])]
        return [self._hit(rank, rows[chunk_id]) for rank, chunk_id in enumerate(pool[:k], start=1)]

    def as_retriever(self, k: int | None = None) -> KnowledgeBaseRetriever:
        return KnowledgeBaseRetriever(knowledge_base=self, k=k or self.settings.retrieval_k)

    # -- helpers -------------------------------------------------------------------------------------------
    def _count(self, call: str) -> None:
        with self._calls_lock:
            self.chroma_calls[call] += 1

    def _dense(self, vectors: list[np.ndarray], retry: bool = True) -> list[dict[str, _Row]]:
        """Per vector, the nearest chunks by cosine similarity (ordered dict, best first), from one Chroma
        `query`. Always passes the vectors: `query_texts` would make Chroma load (and download) its own model."""
        self._count("query")
        try:
            result = self._collection.query(
                query_embeddings=[vector.tolist() for vector in vectors],
                n_results=CANDIDATES,
                include=["documents", "metadatas", "distances"],
            )
        except NotFoundError:  # the collection was deleted (and maybe re-created) by another process
            if not retry:
                raise
            self.refresh(force=True)
            return self._dense(vectors, retry=False)
        lists: list[dict[str, _Row]] = []
        for ids, texts, metas, distances in zip(
            result["ids"], result["documents"] or [], result["metadatas"] or [], result["distances"] or [], strict=True
        ):
            rows: dict[str, _Row] = {}
            for row_id, text, meta, distance in zip(ids, texts, metas, distances, strict=True):
                rows.setdefault(row_id, _Row(row_id, text or "", dict(meta or {}), 1.0 - float(distance)))
            lists.append(rows)
        return lists

    def _fetch(self, ids: list[str]) -> dict[str, tuple[str, dict[str, Any], np.ndarray]]:
        """Rows that only BM25 found: id → (text, metadata, stored embedding), from one `get`."""
        if not ids:
            return {}
        self._count("get")
        result = self._collection.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        return {
            row_id: (text or "", dict(meta or {}), np.asarray(embedding, dtype=np.float32))
            for row_id, text, meta, embedding in zip(
                result["ids"], result["documents"], result["metadatas"], result["embeddings"], strict=True
            )
        }

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
