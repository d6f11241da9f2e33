"""Retrieval quality on the development eval set: recall@5 and MRR@10 over distinct source URLs, for the
product's search and for plain BM25 on the same chunks, with 95 % bootstrap intervals.

    .venv/bin/python bench/eval_retrieval.py            # embedded Chroma in a temp folder
    .venv/bin/python bench/eval_retrieval.py --verbose  # also list the misses and the off-topic matches
    EMBEDDING_MODEL=all-mpnet-base-v2 .venv/bin/python bench/eval_retrieval.py   # another embedding model

The data is read from ../shared/eval/anthropic-docs at run time (never copied into the repository). Each of its
232 chunks is written as a Markdown file (front matter `title: <chunk_heading>`, `url: <chunk_link>`) and indexed
through the real ingestion path (`ingest.pipeline.ingest`), then every question is searched through
`KnowledgeBase.search`. Scoring follows the set's README: a question's recall@5 = gold URLs among the first 5
distinct URLs / gold URLs; MRR@10 = 1 / rank of the first gold URL among the first 10 distinct URLs.

The reference is plain BM25 over the same stored chunks, as it was measured before any tuning: bm25s's default
tokeniser and English stopword list, bm25s's default k1 = 1.5, b = 0.75, on `title + "\n" + text`. The paired
difference (product − BM25) is bootstrapped over questions with the same resamples, which is what tells whether
a gain is more than the luck of these 100 questions. The two halves (by question id hash) are reported apart.
tests/test_retrieval_quality.py and bench/retrieval_ablation.py import this module.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import frontmatter
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from settings import Settings  # noqa: E402
from tools.retrieval import KnowledgeBase  # noqa: E402

EVAL_DIR = ROOT.parent / "shared" / "eval" / "anthropic-docs"
AGENT_K = 4  # hits the agent sees (RETRIEVAL_K default); "nothing relevant" = the best of them below threshold
SEARCH_DEPTH = 25  # chunks fetched per question; the first 10 distinct URLs among them are scored
RESAMPLES = 10_000  # bootstrap resamples over questions
OFF_TOPIC = [
    "what is the weather in Paris",
    "write me a poem about cats",
    "who won the football world cup in 2018",
    "give me a recipe for chocolate cake",
    "how tall is the Eiffel tower",
    "recommend a good science fiction novel",
    "what time is it in Tokyo",
    "tell me a joke about penguins",
    "how do I bake sourdough bread",
    "what is the capital of Australia",
    "translate good morning into Italian",
    "best hiking trails near Denver",
]


@dataclass
class EvalResult:
    recall_at_5: float
    mrr_at_10: float
    questions: int
    gold_scores: list[float]  # the score of the best-ranked gold hit, per question that found one
    top_scores: list[float]  # the best score among the first AGENT_K hits, per question
    misses: list[dict[str, Any]]
    recalls: list[float]  # per question, in the order of the questions
    reciprocal_ranks: list[float]


def load_eval(folder: Path = EVAL_DIR) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    docs = json.loads((folder / "anthropic_docs.json").read_text())
    questions = json.loads((folder / "docs_evaluation_dataset.json").read_text())
    return docs, questions


def write_corpus(docs: list[dict[str, str]], folder: Path) -> list[Path]:
    """One Markdown file per eval chunk, with the chunk's heading and link as front matter."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, doc in enumerate(docs):
        slug = re.sub(r"[^a-z0-9]+", "-", doc["chunk_link"].split("/en/")[-1].lower()).strip("-")[:80]
        path = folder / f"{number:03d}-{slug}.md"
        post = frontmatter.Post(doc["text"], title=doc["chunk_heading"], url=doc["chunk_link"])
        path.write_text(frontmatter.dumps(post) + "\n")
        paths.append(path)
    return paths


def index_corpus(paths: list[Path], settings: Settings) -> str:
    """Index through the real ingestion path, `ingest.pipeline.ingest`; says so."""
    from ingest.pipeline import ingest
    from tools.store import get_collection

    ingest(paths, settings, collection=get_collection(settings))
    return "ingest.pipeline.ingest"


def distinct_urls(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def score_rankings(rankings: list[list[str]], questions: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Per question: recall@5 and reciprocal rank@10 of a ranked list of URLs (repeats are dropped here)."""
    recalls, reciprocal_ranks = [], []
    for ranked, question in zip(rankings, questions, strict=True):
        urls = distinct_urls(ranked)
        gold = set(question["correct_chunks"])
        recalls.append(len(gold & set(urls[:5])) / len(gold))
        first = next((rank for rank, url in enumerate(urls[:10], start=1) if url in gold), None)
        reciprocal_ranks.append(1 / first if first else 0.0)
    return recalls, reciprocal_ranks


def evaluate(kb: KnowledgeBase, questions: list[dict[str, Any]]) -> EvalResult:
    rankings, gold_scores, top_scores, misses = [], [], [], []
    for question in questions:
        hits = kb.search(question["question"], k=SEARCH_DEPTH)
        urls = distinct_urls([hit.url for hit in hits])
        rankings.append(urls)
        gold = set(question["correct_chunks"])
        if hits:
            top_scores.append(max(hit.score for hit in hits[:AGENT_K]))
        gold_hit = next((hit for hit in hits if hit.url in gold), None)
        if gold_hit:
            gold_scores.append(gold_hit.score)
        if gold - set(urls[:5]):
            misses.append({"question": question["question"], "missing": sorted(gold - set(urls[:5])), "top": urls[:5]})
    recalls, reciprocal_ranks = score_rankings(rankings, questions)
    return EvalResult(
        statistics.fmean(recalls),
        statistics.fmean(reciprocal_ranks),
        len(questions),
        gold_scores,
        top_scores,
        misses,
        recalls,
        reciprocal_ranks,
    )


# -- the reference: plain BM25 on the same stored chunks -----------------------------------------------------------
def stored_chunks(collection: Any) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """ids, texts and metadata of every stored chunk, page by page."""
    ids: list[str] = []
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = collection.get(include=["documents", "metadatas"], limit=5000, offset=offset)
        ids += page["ids"]
        texts += [text or "" for text in page["documents"] or []]
        metas += [dict(meta or {}) for meta in page["metadatas"] or []]
        if len(page["ids"]) < 5000:
            return ids, texts, metas
        offset += 5000


def plain_bm25_rankings(texts: list[str], metas: list[dict[str, Any]], queries: list[str]) -> list[list[str]]:
    """Ranked URLs per query by plain BM25 (bm25s defaults, English stopwords) over title + text."""
    corpus = [f"{meta.get('title') or ''}\n{text}" for text, meta in zip(texts, metas, strict=True)]
    model = bm25s.BM25()
    model.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    urls = [str(meta.get("url") or "") for meta in metas]
    rankings = []
    for tokens in bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False):
        known = [token for token in tokens if token in model.vocab_dict]
        scores = model.get_scores(known) if known else np.zeros(len(urls))
        order = np.argsort(-scores, kind="stable")
        rankings.append([urls[i] for i in order[:SEARCH_DEPTH] if scores[i] > 0])
    return rankings


# -- noise ---------------------------------------------------------------------------------------------------------
def resamples(questions: int, count: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Question indices of `count` bootstrap resamples; share them between systems to pair the comparison."""
    return np.random.default_rng(seed).integers(0, questions, size=(count, questions))


def interval(values: list[float] | np.ndarray, samples: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % percentile bootstrap interval."""
    array = np.asarray(values, dtype=float)
    means = array[samples].mean(axis=1)
    return float(array.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def halves(questions: list[dict[str, Any]]) -> np.ndarray:
    """0 or 1 per question, from a hash of its id: two fixed halves to check that a change helps in both."""
    return np.array([int(hashlib.sha256(str(q["id"]).encode()).hexdigest(), 16) % 2 for q in questions])


def describe(values: list[float], samples: np.ndarray, signed: bool = False) -> str:
    mean, low, high = interval(values, samples)
    number = "{:+.3f}" if signed else "{:.3f}"
    return f"{number.format(mean)} [{number.format(low)}, {number.format(high)}]"


def comparison_table(
    systems: dict[str, tuple[list[float], list[float]]],
    reference: str,
    questions: list[dict[str, Any]],
    out: Callable[[str], None] = print,
) -> None:
    """recall@5 and MRR@10 with 95 % intervals, the paired difference to `reference`, and the two halves."""
    samples = resamples(len(questions))
    half = halves(questions)
    base_recall, base_rr = (np.asarray(v) for v in systems[reference])
    out(
        f"{'':38} {'recall@5 [95% CI]':22} {'MRR@10 [95% CI]':22} {'Δ recall@5 vs ' + reference:28} "
        f"{'Δ MRR@10':24} halves R@5 | MRR"
    )
    for name, (recall, rr) in systems.items():
        recall_a, rr_a = np.asarray(recall), np.asarray(rr)
        delta = (
            f"{describe(recall_a - base_recall, samples, True):28} {describe(rr_a - base_rr, samples, True):24}"
            if name != reference
            else f"{'':28} {'':24}"
        )
        split = " / ".join(f"{recall_a[half == h].mean():.3f}" for h in (0, 1))
        split_rr = " / ".join(f"{rr_a[half == h].mean():.3f}" for h in (0, 1))
        out(f"{name:38} {describe(recall, samples):22} {describe(rr, samples):22} {delta} {split} | {split_rr}")


def quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"min {ordered[0]:.3f}  p10 {pick(0.1):.3f}  p50 {pick(0.5):.3f}  p90 {pick(0.9):.3f}  max {ordered[-1]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="list the questions whose gold URLs were missed")
    parser.add_argument("--chroma-url", help="use this Chroma server instead of an embedded temp folder")
    args = parser.parse_args()
    if not EVAL_DIR.is_dir():
        sys.exit(f"eval set not found at {EVAL_DIR}")
    docs, questions = load_eval()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=ROOT / "data",  # only for DATA_DIR/models (an unpacked embedding model is kept there)
            chroma_path=Path(tmp) / "chroma",
            chroma_url=args.chroma_url,
            kb_collection=f"eval-{int(time.time())}",
        )  # EMBEDDING_MODEL and CHUNK_WORDS from the environment; everything else as the product defaults
        started = time.perf_counter()
        how = index_corpus(write_corpus(docs, Path(tmp) / "corpus"), settings)
        kb = KnowledgeBase(settings)
        kb.refresh(force=True)
        indexed = time.perf_counter() - started
        _, texts, metas = stored_chunks(kb._collection)
        started = time.perf_counter()
        result = evaluate(kb, questions)
        searched = time.perf_counter() - started
        off_topic_hits = {query: max(kb.search(query, k=AGENT_K), key=lambda hit: hit.score) for query in OFF_TOPIC}
        off_topic = [hit.score for hit in off_topic_hits.values()]
    bm25 = score_rankings(plain_bm25_rankings(texts, metas, [q["question"] for q in questions]), questions)
    print(
        f"indexed {len(docs)} eval chunks as {len(texts)} pieces (chunk_words={settings.chunk_words}, "
        f"embedding_model={settings.embedding_model}) via {how} in {indexed:.1f} s; "
        f"{result.questions} questions searched in {searched:.1f} s"
    )
    comparison_table(
        {"plain BM25 (same chunks)": bm25, "product search": (result.recalls, result.reciprocal_ranks)},
        "plain BM25 (same chunks)",
        questions,
    )
    print(f"score of the best gold hit ({len(result.gold_scores)} questions): {quantiles(result.gold_scores)}")
    print(f"best score in the top {AGENT_K}, all questions:       {quantiles(result.top_scores)}")
    print(f"best score in the top {AGENT_K}, {len(OFF_TOPIC)} off-topic queries: {quantiles(off_topic)}")
    threshold = settings.relevance_threshold
    kept = sum(score >= threshold for score in result.top_scores)
    rejected = sum(score < threshold for score in off_topic)
    print(
        f"relevance threshold {threshold}: keeps {kept}/{len(result.top_scores)} eval questions, "
        f"rejects {rejected}/{len(off_topic)} off-topic queries"
    )
    if args.verbose:
        for query, hit in off_topic_hits.items():
            print(f"off-topic {hit.score:.3f} {query!r} -> {hit.title!r}")
        for miss in result.misses:
            print(f"- {miss['question']}\n    missing {miss['missing']}\n    top     {miss['top']}")


if __name__ == "__main__":
    main()
