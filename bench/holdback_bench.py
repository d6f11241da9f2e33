"""How long the streaming output check (graph/answer_check.py) holds each word back, on real answer text.

    .venv/bin/python bench/holdback_bench.py                  # the eval set's gold answers, SmolLM2's tokenizer
    .venv/bin/python bench/holdback_bench.py --texts docs --pace-ms 12 50

bench/load_bench.py measures the hold-back with words no check ever touches (one stamped word per chunk), so
it sees the minimum: each word waits for the next piece. Real text is held longer where the checks need more
of it: a trailing run of words that also occurs in the instructions (the echo check) waits until the run
breaks, a sentence in the first person or about a ticket until its end, an unclosed `[` until it closes.

This script needs no server. It takes answer-like prose — by default the 100 gold answers of the eval set in
../shared/eval/anthropic-docs (written by someone else; read at run time), or with `--texts docs` prose
paragraphs of docs/*.md — skipping texts with links, brackets or code (so the check passes them unchanged),
cuts each into the pieces an LLM streams (SmolLM2's tokenizer through llama.cpp, vocab only) and feeds them
to `AnswerCheck(sources, prompts.RULES)` as graph/nodes.py does. For every word it counts how many further
pieces arrived before the word was shown (0 = with its own last piece, or at the end of the stream): with the
product's instructions and, to tell the echo check's share apart, with empty instructions. Times are those
counts times a pace per token. It also prints the check's CPU cost per piece.
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graph import prompts  # noqa: E402
from graph.answer_check import AnswerCheck  # noqa: E402
from settings import Settings  # noqa: E402

EVAL_DIR = ROOT.parent / "shared" / "eval" / "anthropic-docs"
SOURCES = [{"n": 1, "title": "Docs", "url": "https://docs.example.com/", "snippet": ""}]


def usable(block: str) -> bool:
    """Prose the check passes unchanged: no links, brackets, code or tables."""
    return len(block.split()) >= 8 and not re.search(r"[\[\]<>`|]|https?://|www\.", block)


def gold_answers(limit: int) -> list[str]:
    """The eval set's 100 gold answers (written by someone else; read at run time, never copied)."""
    path = EVAL_DIR / "docs_evaluation_dataset.json"
    if not path.exists():
        return []
    answers = [" ".join(str(q["correct_answer"]).split()) for q in json.loads(path.read_text())]
    return [a for a in answers if usable(a)][:limit]


def doc_paragraphs(limit: int) -> list[str]:
    """Prose paragraphs (≥ 20 words) of docs/*.md without code, tables, headings, links or square brackets."""
    found: list[str] = []
    for path in sorted((ROOT / "docs").glob("**/*.md")):
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        for block in re.split(r"\n\s*\n", text):
            block = " ".join(line.strip() for line in block.splitlines()).replace("**", "")
            if len(block.split()) >= 20 and not block.startswith(("#", "|")) and usable(block):
                found.append(block)
                if len(found) >= limit:
                    return found
    return found


def tokenizer():  # type: ignore[no-untyped-def]
    """text -> the pieces an LLM streams (SmolLM2's tokenizer); whole words when llama.cpp is missing."""
    try:
        from llama_cpp import Llama

        model = Llama(model_path=str(Settings().gguf_path), vocab_only=True, verbose=False)
    except Exception as error:  # llama-cpp-python is an optional extra
        print(f"(no llama.cpp tokenizer: {error}; pieces are whole words with their leading space)")
        return lambda text: re.findall(r"\s*\S+", text), "whole words"

    def pieces(text: str) -> list[str]:
        decoder, out = codecs.getincrementaldecoder("utf-8")(errors="replace"), []
        for token in model.tokenize(text.encode(), add_bos=False):
            piece = decoder.decode(model.detokenize([token]))
            if piece:
                out.append(piece)
        return out

    return pieces, f"{Path(str(Settings().gguf_path)).name} tokenizer"


def holds(pieces: list[str], rules: str) -> tuple[list[int], list[float], bool]:
    """Per word: further pieces before it was shown; per feed(): seconds; whether the text came out unchanged."""
    check = AnswerCheck(SOURCES, rules)
    raw, shown_upto, arrival, costs = "", [], [], []
    for piece in pieces:
        raw += piece
        started = time.perf_counter()
        check.feed(piece)
        costs.append(time.perf_counter() - started)
        shown_upto.append(len(check.text))
        arrival.append(len(raw))
    check.close()
    unchanged = check.text == raw
    counts = []
    for match in re.finditer(r"\S+", raw):
        end = match.end()
        got = next(i for i, length in enumerate(arrival) if length >= end)  # the piece that completed the word
        shown = next((i for i, length in enumerate(shown_upto) if length >= end), len(pieces) - 1)  # or at close
        counts.append(max(shown - got, 0))
    return counts, costs, unchanged


def summary(counts: list[int]) -> str:
    ordered = sorted(counts)
    share = {k: sum(c == k for c in counts) / len(counts) * 100 for k in (0, 1, 2, 3)}
    more = sum(c >= 4 for c in counts) / len(counts) * 100
    return (
        f"shown after 0 / 1 / 2 / 3 / ≥4 further pieces: {share[0]:.0f} / {share[1]:.0f} / {share[2]:.0f} / "
        f"{share[3]:.0f} / {more:.0f} % of words; mean {statistics.fmean(counts):.2f}, "
        f"p50 {ordered[len(ordered) // 2]}, p95 {ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]}, "
        f"max {ordered[-1]} pieces"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", choices=["answers", "docs"], default="answers")
    parser.add_argument("--limit", type=int, default=200, help="at most this many texts")
    parser.add_argument("--pace-ms", type=float, nargs="+", default=[12.0, 50.0], help="time per token to convert")
    args = parser.parse_args()
    texts = gold_answers(args.limit) if args.texts == "answers" else doc_paragraphs(args.limit)
    source = f"gold answers of {EVAL_DIR.relative_to(ROOT.parent)}" if args.texts == "answers" else "docs/*.md"
    if not texts:
        texts, source = doc_paragraphs(args.limit), "docs/*.md (no eval set found)"
    cut, name = tokenizer()
    pieced = [cut(text) for text in texts]
    print(
        f"{len(texts)} texts ({source}), {sum(map(len, pieced))} pieces ({name}), "
        f"{sum(len(t.split()) for t in texts)} words"
    )
    for label, rules in (("product instructions (prompts.RULES)", prompts.RULES), ("empty instructions", "")):
        counts, costs, changed = [], [], 0
        for pieces in pieced:
            c, t, unchanged = holds(pieces, rules)
            counts += c
            costs += t
            changed += not unchanged
        mean = statistics.fmean(counts)
        print(f"\n{label}: {summary(counts)}")
        print(
            "  mean hold in time: " + ", ".join(f"{mean * pace:.0f} ms at {pace:g} ms/token" for pace in args.pace_ms)
        )
        print(
            f"  AnswerCheck.feed() CPU p50 {statistics.median(costs) * 1e6:.0f} µs, "
            f"mean {statistics.fmean(costs) * 1e6:.0f} µs per piece; {changed} paragraphs came out changed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
