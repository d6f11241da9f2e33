"""Each retrieval change's effect on the development eval set, with its noise (docs/retrieval.md, "Tuning").

    .venv/bin/python bench/retrieval_ablation.py                      # MiniLM (the default model)
    .venv/bin/python bench/retrieval_ablation.py --model all-mpnet-base-v2 --speed

The eval corpus is indexed once through the real ingestion path (bench/eval_retrieval.py), then every variant
is computed in memory from the stored chunks and embeddings with the product's own parts (`tools.retrieval`:
`Tokenizer`, `LexicalIndex`, `convex_fusion`), so a row differs from the one above it by exactly one change.
The last cumulative row is what `KnowledgeBase.search` does; bench/eval_retrieval.py measures that through the
real search and must print the same figures. Embeddings of the text as it was indexed before (without the
heading path) are computed here once and cached under --cache (a temp folder: never the repository).

Every figure carries a 95 % bootstrap interval over the 100 questions; every Δ is a paired bootstrap (the same
resampled questions for both systems). A tuned constant is cross-validated on the two halves of the questions:
chosen on one half, scored on the other.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import eval_retrieval as ev  # noqa: E402
from bm25s.stopwords import STOPWORDS_EN_PLUS  # noqa: E402

from settings import Settings  # noqa: E402
from tools.documents import index_text  # noqa: E402
from tools.embeddings import get_embeddings  # noqa: E402
from tools.retrieval import CANDIDATES, LEXICAL_WEIGHT, LexicalIndex, Tokenizer, convex_fusion  # noqa: E402
from tools.store import get_collection  # noqa: E402

Ranking = list[list[str]]  # per question, ranked URLs
Scores = tuple[list[float], list[float]]  # per question recall@5, reciprocal rank@10
DEFAULT_MODEL = "all-MiniLM-L6-v2"
WEAK_DENSE_NOISE = 5.0  # query vectors + this much Gaussian noise: a dense list that is nearly useless


def old_index_text(title: str, section: str, text: str) -> str:
    """index_text as it was before heading paths: the heading only when the text does not start with it."""
    heading = " — ".join(part for part in (title, section) if part and part not in text[:200])
    return f"{heading}\n{text}" if heading else text


def rrf(rankings: list[list[int]], weights: list[float], k: int) -> list[int]:
    """The fusion used before: weighted reciprocal ranks."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return sorted(fused, key=lambda item: -fused[item])


class Corpus:
    """The stored chunks, their embeddings (as stored, and of the old index text) and the query vectors."""

    def __init__(self, settings: Settings, cache: Path, questions: list[dict[str, Any]]) -> None:
        collection = get_collection(settings)
        got = collection.get(include=["documents", "metadatas", "embeddings"])
        self.ids: list[str] = list(got["ids"])
        self.texts = [text or "" for text in got["documents"]]
        self.metas = [dict(meta or {}) for meta in got["metadatas"]]
        self.urls = [str(meta.get("url") or "") for meta in self.metas]
        self.embeddings = np.asarray(got["embeddings"], dtype=np.float32)
        self.model = get_embeddings(settings)
        self.cache = cache
        self.new_texts = [self._text(index_text, i) for i in range(len(self.ids))]
        self.old_texts = [self._text(old_index_text, i) for i in range(len(self.ids))]
        self._old_embeddings: np.ndarray | None = None
        started = time.perf_counter()
        self.queries = [q["question"] for q in questions]
        self.query_vectors = self._embed(self.queries, "queries")
        self.query_seconds = time.perf_counter() - started

    @property
    def old_embeddings(self) -> np.ndarray:
        """Embeddings of the text as indexed before heading paths (computed on first use, then cached)."""
        if self._old_embeddings is None:
            self._old_embeddings = self._embed(self.old_texts, "documents")
        return self._old_embeddings

    def _text(self, how: Callable[[str, str, str], str], i: int) -> str:
        meta = self.metas[i]
        return how(str(meta.get("title") or ""), str(meta.get("section") or ""), self.texts[i])

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        key = hashlib.sha256("\x00".join([str(self.model.model_name), kind, *texts]).encode()).hexdigest()[:24]
        path = self.cache / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        if kind == "queries":
            vectors = np.asarray([self.model.embed_query(text) for text in texts], dtype=np.float32)
        else:
            vectors = np.asarray(self.model.embed_documents(texts), dtype=np.float32)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors


class Variant:
    """One retrieval configuration, computed in memory over a Corpus."""

    def __init__(
        self,
        corpus: Corpus,
        *,
        heading_paths: bool = True,
        tokenizer: Tokenizer | None = None,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self.corpus = corpus
        texts = corpus.new_texts if heading_paths else corpus.old_texts
        self.embeddings = corpus.embeddings if heading_paths else corpus.old_embeddings
        self.tokenizer = tokenizer or Tokenizer()
        positions = [str(i) for i in range(len(corpus.ids))]
        self.lexical = LexicalIndex(positions, texts, tokenizer=tokenizer or Tokenizer(), k1=k1, b=b)

    def lists(self, query_vectors: np.ndarray | None = None) -> list[tuple[dict[int, float], dict[int, float]]]:
        """Per question: lexical candidates (position → BM25) and dense candidates (position → cosine)."""
        vectors = self.corpus.query_vectors if query_vectors is None else query_vectors
        cosines = vectors @ self.embeddings.T
        out = []
        for query, cos in zip(self.corpus.queries, cosines, strict=True):
            lexical = {int(i): s for i, s in self.lexical.search(query, CANDIDATES).items()}
            dense = {int(i): float(cos[i]) for i in np.argsort(-cos, kind="stable")[:CANDIDATES]}
            # every candidate's cosine, as the product fetches the lexical-only ones
            similarity = {**dense, **{i: float(cos[i]) for i in lexical if i not in dense}}
            out.append((lexical, similarity))
        return out

    def urls(self, order: list[int]) -> list[str]:
        return [self.corpus.urls[i] for i in order]

    def lexical_only(self) -> Ranking:
        return [self.urls(list(lexical)) for lexical, _ in self.lists()]

    def dense_only(self) -> Ranking:
        cosines = self.corpus.query_vectors @ self.embeddings.T
        return [self.urls(list(np.argsort(-cos, kind="stable")[:CANDIDATES])) for cos in cosines]

    def rrf(self, k: int = 10, query_vectors: np.ndarray | None = None) -> Ranking:
        out = []
        for lexical, similarity in self.lists(query_vectors):
            dense = sorted(similarity, key=lambda i: -similarity[i])[:CANDIDATES]
            out.append(self.urls(rrf([dense, list(lexical)], [0.5, 0.5], k)))
        return out

    def convex(self, weight: float = LEXICAL_WEIGHT, query_vectors: np.ndarray | None = None) -> Ranking:
        out = []
        for lexical, similarity in self.lists(query_vectors):
            fused = convex_fusion(
                {str(i): s for i, s in lexical.items()}, {str(i): s for i, s in similarity.items()}, weight
            )
            out.append(self.urls([int(i) for i in fused]))
        return out


def noisy(vectors: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Query vectors with Gaussian noise (norm ~sigma), renormalised: a stand-in for a model that does not know
    the domain."""
    noise = np.random.default_rng(seed).standard_normal(vectors.shape) * sigma / np.sqrt(vectors.shape[1])
    moved = vectors + noise
    return moved / np.linalg.norm(moved, axis=1, keepdims=True)


def page_aggregated(variant: Variant, second: float) -> Ranking:
    """URL score = best chunk + `second` × second-best chunk (the product uses the best chunk only)."""
    out = []
    for lexical, similarity in variant.lists():
        best = max(lexical.values(), default=0.0) or 1.0
        fused = {
            i: LEXICAL_WEIGHT * lexical.get(i, 0.0) / best + (1 - LEXICAL_WEIGHT) * c for i, c in similarity.items()
        }
        per_url: dict[str, list[float]] = {}
        for i in sorted(fused, key=lambda i: -fused[i]):
            per_url.setdefault(variant.corpus.urls[i], []).append(fused[i])
        score = {url: s[0] + second * (s[1] if len(s) > 1 else 0.0) for url, s in per_url.items()}
        out.append(sorted(score, key=lambda url: -score[url]))
    return out


def cross_validate(
    make: Callable[[float], Ranking], grid: list[float], questions: list[dict[str, Any]], out: Callable[[str], None]
) -> None:
    """Choose the value on one half (recall@5 + MRR@10), score it on the other half."""
    half = ev.halves(questions)
    scored = {value: [np.asarray(x) for x in ev.score_rankings(make(value), questions)] for value in grid}
    for chosen_on in (0, 1):
        mask = half == chosen_on
        best = max(grid, key=lambda v: scored[v][0][mask].mean() + scored[v][1][mask].mean())
        other = half != chosen_on
        out(
            f"  chosen on half {chosen_on}: {best}; on half {1 - chosen_on}: recall@5 "
            f"{scored[best][0][other].mean():.3f}, MRR@10 {scored[best][1][other].mean():.3f}"
        )
    out("  whole set: " + ", ".join(f"{v}: {scored[v][0].mean():.3f}/{scored[v][1].mean():.3f}" for v in grid))


def encode_speeds(settings: Settings, texts: list[str], models: list[str], rounds: int = 3) -> dict[str, float]:
    """Chunk texts embedded per second per model (best of `rounds` after a warm-up). The models take turns
    within each round, so a busy machine slows them alike and their ratio stays fair."""
    loaded = {name: get_embeddings(settings.model_copy(update={"embedding_model": name})) for name in models}
    for model in loaded.values():
        model.embed_documents(texts[:8])
    best = dict.fromkeys(models, float("inf"))
    for _ in range(rounds):
        for name, model in loaded.items():
            started = time.perf_counter()
            model.embed_documents(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="EMBEDDING_MODEL to measure")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "retrieval-ablation")
    parser.add_argument("--speed", action="store_true", help="also time encoding 200 chunks with MiniLM and --model")
    args = parser.parse_args()
    docs, questions = ev.load_eval()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=ROOT / "data",  # DATA_DIR/models holds an unpacked embedding model
            chroma_path=Path(tmp) / "chroma",
            kb_collection="ablation",
            embedding_model=args.model,
        )
        started = time.perf_counter()
        ev.index_corpus(ev.write_corpus(docs, Path(tmp) / "corpus"), settings)
        indexed = time.perf_counter() - started
        corpus = Corpus(settings, args.cache, questions)
    print(
        f"{args.model}: {len(corpus.ids)} chunks indexed in {indexed:.0f} s; 100 queries embedded in "
        f"{corpus.query_seconds:.1f} s (0 if cached)\n"
    )
    bm25 = ev.score_rankings(ev.plain_bm25_rankings(corpus.texts, corpus.metas, corpus.queries), questions)
    score = lambda ranking: ev.score_rankings(ranking, questions)  # noqa: E731
    reference = "plain BM25 (reference)"
    if args.model != DEFAULT_MODEL:  # the model comparison only: the final configuration with this model
        final = Variant(corpus)
        product = score(final.convex())
        ev.comparison_table(
            {
                reference: bm25,
                f"dense alone, {args.model}": score(final.dense_only()),
                "BM25 alone, final": score(final.lexical_only()),
                f"product search, {args.model}": product,
            },
            reference,
            questions,
        )
        compare_models(args.cache, args.model, product, questions)
        print("\nLEXICAL_WEIGHT cross-validated on the halves (grid; recall@5/MRR@10 on the whole set):")
        cross_validate(lambda w: final.convex(w), [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], questions, print)
        if args.speed:
            speeds(settings, corpus.new_texts[:200], args.model)
        return
    before_tokens = Tokenizer(stem=False, identifiers=False, stopwords=frozenset(STOPWORDS_EN_PLUS))
    before = Variant(corpus, heading_paths=False, tokenizer=before_tokens)
    stemmed = Variant(
        corpus, heading_paths=False, tokenizer=Tokenizer(identifiers=False, stopwords=before_tokens.stopwords)
    )
    identifiers = Variant(corpus, heading_paths=False, tokenizer=Tokenizer(stopwords=before_tokens.stopwords))
    stopwords = Variant(corpus, heading_paths=False)
    final = Variant(corpus)
    steps: dict[str, Scores] = {
        reference: bm25,
        "before: RRF k=10 (product until now)": score(before.rrf()),
        "1 fusion: convex combination": score(before.convex()),
        "2 + Snowball stemming": score(stemmed.convex()),
        "3 + identifiers whole and in parts": score(identifiers.convex()),
        "4 + short stopword list (33 words)": score(stopwords.convex()),
        "5 + heading path always indexed": score(final.convex()),
    }
    compare_models(args.cache, args.model, steps["5 + heading path always indexed"], questions)
    print("cumulative changes (each row = the row above + one change):")
    ev.comparison_table(steps, reference, questions)
    print("\neach change against the row above it (paired bootstrap):")
    names = list(steps)
    samples = ev.resamples(len(questions))
    for above, name in itertools.pairwise(names[1:]):
        (r1, m1), (r2, m2) = steps[above], steps[name]
        dr = ev.describe(np.asarray(r2) - np.asarray(r1), samples, True)
        dm = ev.describe(np.asarray(m2) - np.asarray(m1), samples, True)
        print(f"  {name:40} Δ recall@5 {dr}   Δ MRR@10 {dm}")

    print("\nsingle lists and alternatives (final tokenisation and text unless named):")
    ev.comparison_table(
        {
            reference: bm25,
            "BM25 alone, before (EN_PLUS, no stem)": score(before.lexical_only()),
            "BM25 alone, final": score(final.lexical_only()),
            "BM25 alone, final, b = 0.5": score(Variant(corpus, b=0.5).lexical_only()),
            "BM25 alone, final, b = 1.0": score(Variant(corpus, b=1.0).lexical_only()),
            "dense alone, before (old text)": score(before.dense_only()),
            "dense alone, final": score(final.dense_only()),
            "RRF k=10, final lists": score(final.rrf()),
            "RRF k=60, final lists": score(final.rrf(k=60)),
            "page score = best + 0.5 × 2nd chunk": score(page_aggregated(final, 0.5)),
            "convex, b = 1.0": score(Variant(corpus, b=1.0).convex()),
        },
        reference,
        questions,
    )
    print("\nLEXICAL_WEIGHT cross-validated on the halves (grid; recall@5/MRR@10 on the whole set):")
    cross_validate(lambda w: final.convex(w), [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], questions, print)
    print(f"\nweak dense list (query vectors + noise {WEAK_DENSE_NOISE}): can it drag the lexical list down?")
    weak = noisy(corpus.query_vectors, WEAK_DENSE_NOISE)
    cosines = weak @ final.embeddings.T
    ev.comparison_table(
        {
            reference: bm25,
            "weak dense alone": score([final.urls(list(np.argsort(-c)[:CANDIDATES])) for c in cosines]),
            "BM25 alone, final": score(final.lexical_only()),
            "RRF k=10 with the weak dense list": score(final.rrf(query_vectors=weak)),
            "convex with the weak dense list": score(final.convex(query_vectors=weak)),
        },
        reference,
        questions,
    )
    if args.speed:
        speeds(settings, corpus.new_texts[:200], args.model)


def compare_models(cache: Path, model: str, product: Scores, questions: list[dict[str, Any]]) -> None:
    """Keep this model's per-question figures in the cache; print the paired difference to the other models
    measured before (run the default model first, then --model NAME)."""
    path = cache / "product-by-model.json"
    seen = json.loads(path.read_text()) if path.is_file() else {}
    seen[model] = {"recalls": product[0], "reciprocal_ranks": product[1]}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seen))
    samples = ev.resamples(len(questions))
    for other, figures in seen.items():
        if other == model or len(figures["recalls"]) != len(product[0]):
            continue
        dr = ev.describe(np.subtract(product[0], figures["recalls"]), samples, True)
        dm = ev.describe(np.subtract(product[1], figures["reciprocal_ranks"]), samples, True)
        print(f"product search, {model} − {other} (paired): Δ recall@5 {dr}, Δ MRR@10 {dm}")


def speeds(settings: Settings, texts: list[str], model: str) -> None:
    measured = encode_speeds(settings, texts, list(dict.fromkeys([DEFAULT_MODEL, model])))
    for name, speed in measured.items():
        print(f"encode speed {name}: {speed:.1f} chunks/s ({len(texts)} chunks, best of 3, models taking turns)")
    if len(measured) == 2:
        print(f"{model} is {measured[DEFAULT_MODEL] / measured[model]:.1f}× slower to embed than {DEFAULT_MODEL}")


if __name__ == "__main__":
    main()
