"""Ingestion throughput vs the embedding model's own speed, and the cost of re-ingesting an unchanged corpus.

    .venv/bin/python bench/ingest_bench.py                 # first 60 files of the Python 3.11 HTML docs
    .venv/bin/python bench/ingest_bench.py --files 200     # more files, proportionally longer

Corpus: Debian's python3.11-doc HTML (/usr/share/doc/python3.11/html, library/*.html sorted by name), LIMITED to
the first --files files so that a run takes a few minutes on 2 cores; without that package, the eval set's
chunks (../shared/eval/anthropic-docs) written as Markdown files. Steps, in one process, on an embedded Chroma
folder in a temp dir:
1. first ingest through `ingest.pipeline.ingest` -> chunks/s;
2. the embedding model alone encodes the very texts that were stored (index_text of every stored chunk), in
   the same batches as a plain `embed_documents` call -> chunks/s; goal: step 1 >= 0.8 x step 2;
3. ingest the unchanged corpus again -> seconds; goal: <= 5 % of step 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from settings import Settings  # noqa: E402
from tools.documents import index_text  # noqa: E402
from tools.embeddings import get_embeddings  # noqa: E402
from tools.store import get_collection  # noqa: E402

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/library")


def corpus(limit: int, scratch: Path) -> tuple[list[Path], str]:
    if PYTHON_DOCS.is_dir():
        files = sorted(path for path in PYTHON_DOCS.glob("*.html") if path.stat().st_size > 2000)[:limit]
        return files, f"first {len(files)} of {PYTHON_DOCS}/*.html (files > 2 kB, sorted by name)"
    sys.path.insert(0, str(ROOT / "bench"))
    import eval_retrieval

    docs, _ = eval_retrieval.load_eval()
    return eval_retrieval.write_corpus(docs, scratch / "corpus"), "the eval set's 232 chunks as Markdown files"


def stored_texts(settings: Settings) -> list[str]:
    collection = get_collection(settings)
    texts, offset = [], 0
    while True:
        page = collection.get(include=["documents", "metadatas"], limit=5000, offset=offset)
        for text, meta in zip(page["documents"] or [], page["metadatas"] or [], strict=True):
            texts.append(index_text(str(meta.get("title") or ""), str(meta.get("section") or ""), text or ""))
        if len(page["ids"]) < 5000:
            return texts
        offset += 5000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=60, help="how many corpus files to ingest")
    args = parser.parse_args()
    from ingest.pipeline import ingest

    with tempfile.TemporaryDirectory() as tmp:
        files, described = corpus(args.files, Path(tmp))
        settings = Settings(_env_file=None, data_dir=Path(tmp) / "data", kb_collection="ingest-bench")  # type: ignore[call-arg]
        embeddings = get_embeddings(settings)
        embeddings.embed_documents(["warm up the model"])
        collection = get_collection(settings)
        print(f"corpus: {described}, {sum(path.stat().st_size for path in files) / 1e6:.1f} MB")

        began = time.perf_counter()
        ingest(files, settings, collection=collection)
        first = time.perf_counter() - began
        texts = stored_texts(settings)
        print(f"1. first ingest: {len(texts)} chunks in {first:.1f} s = {len(texts) / first:.1f} chunks/s")

        began = time.perf_counter()
        embeddings.embed_documents(texts)
        encode = time.perf_counter() - began
        ratio = (len(texts) / first) / (len(texts) / encode)
        print(
            f"2. model alone on the same texts: {encode:.1f} s = {len(texts) / encode:.1f} chunks/s; "
            f"ingest reaches {ratio:.2f} x of it (goal >= 0.80)"
        )

        began = time.perf_counter()
        ingest(files, settings, collection=collection)
        again = time.perf_counter() - began
        print(
            f"3. re-ingest unchanged: {again:.2f} s = {100 * again / first:.1f} % of the first (goal <= 5 %); "
            f"{get_collection(settings).count()} chunks stored"
        )


if __name__ == "__main__":
    main()
