"""When does the bot answer, and when does it say the documentation has nothing (and offer a person)?

    .venv/bin/python bench/relevance_eval.py
    .venv/bin/python bench/relevance_eval.py --questions bench/off_topic_heldout.txt   # a set written blind

Indexes the dev set's 232 chunks (../shared/eval/anthropic-docs, real ingestion path) and runs the agent's
own decisions without the LLM: the small-talk rule (graph/guard.py), then retrieval and `worth_showing`
(tools/sources.py) at RELEVANCE_THRESHOLD. Reported with 95 % intervals:

- dev questions (all answerable): share offered a person instead of an answer — goal ≤ 3 %;
- bench/off_topic_questions.txt (questions no product manual covers, plus greetings; written for this project):
  share *not* answered from unrelated text — goal ≥ 95 %. `--questions` asks another such file instead, e.g.
  bench/off_topic_heldout.txt, written by a helper session that had seen neither this method nor the other list.

`--small-talk FILE` ('kind<TAB>message' lines) asks instead whether chat — greetings, thanks, a word about the bot,
in any language — gets a reply in kind rather than the offer of a person, and whether questions wrapped in chat
("hola, how do I stream responses?") are still answered.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval_retrieval import index_corpus, load_eval, write_corpus  # noqa: E402  (bench/eval_retrieval.py)

from graph.guard import chat_kind, small_talk  # noqa: E402
from settings import Settings  # noqa: E402
from tools.retrieval import KnowledgeBase  # noqa: E402
from tools.sources import worth_showing  # noqa: E402

OFF_TOPIC = Path(__file__).with_name("off_topic_questions.txt")


def share_with_interval(flags: list[bool], resamples: int = 5000) -> str:
    data = np.asarray(flags, dtype=float)
    picks = np.random.default_rng(0).integers(0, len(data), size=(resamples, len(data)))
    low, high = np.percentile(data[picks].mean(axis=1), [2.5, 97.5])
    return f"{data.mean():.3f} [{low:.3f}, {high:.3f}] ({int(data.sum())}/{len(data)})"


def decide(kb: KnowledgeBase, settings: Settings, message: str) -> str:
    """What the agent would do with this message before any LLM call: small_talk, answer or offer."""
    if small_talk(message):
        return "small_talk"
    hits = kb.search(message, k=settings.retrieval_k)
    knows = kb.knows if settings.relevance_names else None
    if worth_showing(hits, settings.relevance_threshold, message, knows=knows):
        return "answer"
    return "small_talk" if chat_kind(message) else "offer"


def decisions(messages: list[str]) -> tuple[Settings, list[str]]:
    """The agent's decision for each message, over a fresh index of the dev set's chunks."""
    docs, _ = load_eval()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=ROOT / "data",
            chroma_path=Path(tmp) / "chroma",
            kb_collection=f"relevance-{int(time.time())}",
        )
        index_corpus(write_corpus(docs, Path(tmp) / "corpus"), settings)
        kb = KnowledgeBase(settings)
        kb.refresh(force=True)
        return settings, [decide(kb, settings, message) for message in messages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, default=OFF_TOPIC, help="off-topic questions, one per line")
    parser.add_argument("--small-talk", type=Path, help="'kind<TAB>message' lines: small_talk or question")
    args = parser.parse_args()
    if args.small_talk:
        return small_talk_eval(args.small_talk)
    _, questions = load_eval()
    lines = args.questions.read_text().splitlines()
    off_topic = [line for line in lines if line.strip() and not line.startswith("#")]
    settings, decided = decisions([q["question"] for q in questions] + off_topic)
    dev, other = decided[: len(questions)], decided[len(questions) :]
    print(f"relevance threshold {settings.relevance_threshold}, retrieval_k {settings.retrieval_k}")
    print(f"dev questions offered a person (goal <= 0.03):      {share_with_interval([d != 'answer' for d in dev])}")
    print(f"off-topic + greetings not answered (goal >= 0.95):  {share_with_interval([d != 'answer' for d in other])}")
    print(f"  of them by the small-talk rule: {sum(d == 'small_talk' for d in other)}")
    for question, decision in zip(off_topic, other, strict=True):
        if decision == "answer":
            print(f"  answered from unrelated text: {question!r}")
    for question, decision in zip(questions, dev, strict=True):
        if decision != "answer":
            print(f"  dev question not answered: {question['question']!r}")


def small_talk_eval(path: Path) -> None:
    """Chat (greetings, thanks, a word about the bot, in any language) should get a reply in kind, not the offer
    of a person; a question wrapped in chat ("hola, how do I stream responses?") should still be answered."""
    rows = [line.split("\t", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    _, decided = decisions([message for _, message in rows])
    chat = [d == "small_talk" for (kind, _), d in zip(rows, decided, strict=True) if kind == "small_talk"]
    asked = [d == "answer" for (kind, _), d in zip(rows, decided, strict=True) if kind == "question"]
    print(f"chat replied in kind (not offered a person): {share_with_interval(chat)}")
    print(f"questions wrapped in chat answered:          {share_with_interval(asked)}")
    for (kind, message), decision in zip(rows, decided, strict=True):
        if (kind == "small_talk") != (decision == "small_talk") or (kind == "question" and decision != "answer"):
            print(f"  {kind:10} → {decision:10} {message!r}")


if __name__ == "__main__":
    main()
