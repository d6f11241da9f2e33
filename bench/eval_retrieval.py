"""Retrieval quality on the development eval set: recall@5 and MRR@10 over distinct source URLs.

    .venv/bin/python bench/eval_retrieval.py            # embedded Chroma in a temp folder
    .venv/bin/python bench/eval_retrieval.py --verbose  # also list the misses

The data is read from ../shared/eval/anthropic-docs at run time (never copied into the repository). Each of its
232 chunks is written as a Markdown file (front matter `title: <chunk_heading>`, `url: <chunk_link>`) and indexed
through the real ingestion path (`ingest.pipeline.ingest`), then every question is searched through
`KnowledgeBase.search`. Scoring follows the set's README: a question's recall@5 = gold URLs among the first 5
distinct URLs / gold URLs; MRR@10 = 1 / rank of the first gold URL among the first 10 distinct URLs.
tests/test_retrieval_quality.py imports this module.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from settings import Settings  # noqa: E402
from tools.retrieval import KnowledgeBase  # noqa: E402

EVAL_DIR = ROOT.parent / "shared" / "eval" / "anthropic-docs"
AGENT_K = 4  # hits the agent sees (RETRIEVAL_K default); "nothing relevant" = the best of them below threshold
SEARCH_DEPTH = 25  # chunks fetched per question; the first 10 distinct URLs among them are scored
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
    """Index through `ingest.pipeline.ingest`; says which path was used. Until that module exists, a minimal
    stand-in (word windows of CHUNK_WORDS, the same ids/metadata/index_text) keeps the eval usable."""
    from tools.store import get_collection

    collection = get_collection(settings)
    try:
        from ingest.pipeline import ingest
    except ImportError:
        _index_directly(paths, settings, collection)
        return "a minimal stand-in indexer (ingest.pipeline missing)"
    ingest(paths, settings, collection=collection)
    return "ingest.pipeline.ingest"


def _index_directly(paths: list[Path], settings: Settings, collection: Any) -> None:
    from tools.documents import Chunk, index_text
    from tools.embeddings import get_embeddings

    chunks = []
    for path in paths:
        post = frontmatter.load(path)
        words = post.content.split()
        for position, start in enumerate(range(0, max(len(words), 1), settings.chunk_words)):
            text = " ".join(words[start : start + settings.chunk_words])
            chunks.append(Chunk(text, str(post["title"]), str(post["url"]), path.name, position=position))
    chunks = list({chunk.chunk_id: chunk for chunk in chunks}.values())  # repeated text in one file: one row
    texts = [index_text(chunk.title, chunk.section, chunk.text) for chunk in chunks]
    vectors = get_embeddings(settings).embed_documents(texts)
    collection.add(
        ids=[chunk.chunk_id for chunk in chunks],
        documents=[chunk.text for chunk in chunks],
        metadatas=[chunk.metadata() for chunk in chunks],  # type: ignore[misc]
        embeddings=vectors,  # type: ignore[arg-type]
    )


def distinct_urls(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def evaluate(kb: KnowledgeBase, questions: list[dict[str, Any]]) -> EvalResult:
    recalls, reciprocal_ranks, gold_scores, top_scores, misses = [], [], [], [], []
    for question in questions:
        hits = kb.search(question["question"], k=SEARCH_DEPTH)
        urls = distinct_urls([hit.url for hit in hits])
        gold = set(question["correct_chunks"])
        recalls.append(len(gold & set(urls[:5])) / len(gold))
        first = next((rank for rank, url in enumerate(urls[:10], start=1) if url in gold), None)
        reciprocal_ranks.append(1 / first if first else 0.0)
        if hits:
            top_scores.append(max(hit.score for hit in hits[:AGENT_K]))
        gold_hit = next((hit for hit in hits if hit.url in gold), None)
        if gold_hit:
            gold_scores.append(gold_hit.score)
        if gold - set(urls[:5]):
            misses.append({"question": question["question"], "missing": sorted(gold - set(urls[:5])), "top": urls[:5]})
    return EvalResult(
        statistics.fmean(recalls), statistics.fmean(reciprocal_ranks), len(questions), gold_scores, top_scores, misses
    )


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
            data_dir=Path(tmp) / "data",
            chroma_url=args.chroma_url,
            kb_collection=f"eval-{int(time.time())}",
        )
        started = time.perf_counter()
        how = index_corpus(write_corpus(docs, Path(tmp) / "corpus"), settings)
        kb = KnowledgeBase(settings)
        kb.refresh(force=True)
        indexed = time.perf_counter() - started
        chunks = kb._collection.count()
        started = time.perf_counter()
        result = evaluate(kb, questions)
        searched = time.perf_counter() - started
        off_topic_hits = {query: max(kb.search(query, k=AGENT_K), key=lambda hit: hit.score) for query in OFF_TOPIC}
        off_topic = [hit.score for hit in off_topic_hits.values()]
    print(
        f"indexed {len(docs)} eval chunks as {chunks} pieces (chunk_words={settings.chunk_words}) via {how} "
        f"in {indexed:.1f} s; {result.questions} questions searched in {searched:.1f} s"
    )
    print(f"recall@5 {result.recall_at_5:.3f}  MRR@10 {result.mrr_at_10:.3f}")
    print(f"score of the best gold hit ({len(result.gold_scores)} questions): {quantiles(result.gold_scores)}")
    print(f"best score in the top {AGENT_K}, all questions:       {quantiles(result.top_scores)}")
    print(f"best score in the top {AGENT_K}, {len(OFF_TOPIC)} off-topic queries: {quantiles(off_topic)}")
    print(f"relevance threshold in settings: {settings.relevance_threshold}")
    if args.verbose:
        for query, hit in off_topic_hits.items():
            print(f"off-topic {hit.score:.3f} {query!r} -> {hit.title!r}")
        for miss in result.misses:
            print(f"- {miss['question']}\n    missing {miss['missing']}\n    top     {miss['top']}")


if __name__ == "__main__":
    main()
