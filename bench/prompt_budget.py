"""What the prompt budget costs and keeps, without running the model: for each `LLM_PROMPT_TOKENS`, the tokens the
LLM server reads per question (the sources' message and the question; the instructions come from its prompt cache)
and the share of the gold answer's content words still in the prompt.

    .venv/bin/python bench/prompt_budget.py                       # budgets 0 (no limit), 500, 600, 650, 700, 800
    .venv/bin/python bench/prompt_budget.py --budgets 0 650 --model data/models/other.gguf

Indexes the dev set's 232 chunks (../shared/eval/anthropic-docs, real ingestion path), retrieves each question's
sources as the `retrieve` node does, builds the real prompt (graph/prompts.py) and counts its tokens with the GGUF's
own tokenizer (loaded vocabulary-only: no weights, a second or two). Divide the tokens by the server's measured
prompt rate for the wait (Qwen2.5-Coder-1.5B on these 2 cores: ~83 tokens/s). The kept share is an upper bound of
what the model can answer from, not a grade: docs/quality.md compares it with graded answers. 95 % bootstrap
intervals over questions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval_retrieval import index_corpus, load_eval, write_corpus  # noqa: E402  (bench/eval_retrieval.py)

from graph.prompts import SYSTEM, answer_prompt  # noqa: E402
from settings import QWEN_CODER_1_5B, Settings  # noqa: E402
from tools.retrieval import KnowledgeBase  # noqa: E402
from tools.sources import from_hits, worth_showing  # noqa: E402
from tools.text import content_words  # noqa: E402

BUDGETS = [0, 500, 600, 650, 700, 800]


def interval(values: list[float], resamples: int = 5000) -> str:
    data = np.asarray(values, dtype=float)
    picks = np.random.default_rng(0).integers(0, len(data), size=(resamples, len(data)))
    low, high = np.percentile(data[picks].mean(axis=1), [2.5, 97.5])
    return f"{data.mean():.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", default=BUDGETS, help="LLM_PROMPT_TOKENS values (0: none)")
    parser.add_argument("--model", type=Path, help="GGUF whose tokenizer counts (default: the Qwen preset's file)")
    args = parser.parse_args()

    import llama_cpp

    docs, questions = load_eval()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=ROOT / "data",
            chroma_path=Path(tmp) / "chroma",
            kb_collection=f"budget-{int(time.time())}",
        )
        model = args.model or settings.data_dir / "models" / QWEN_CODER_1_5B.file
        if not model.is_file():
            sys.exit(f"{model} is missing: run `./run` once (it assembles the Qwen file) or pass --model")
        vocab = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)

        def tokens(text: str) -> int:
            return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

        index_corpus(write_corpus(docs, Path(tmp) / "corpus"), settings)
        kb = KnowledgeBase(settings)
        kb.refresh(force=True)
        cases = []
        for question in questions:
            asked = question["question"]
            hits = kb.search(asked, k=settings.retrieval_k)
            shown = worth_showing(hits, settings.relevance_threshold, asked, question=asked, knows=kb.knows)
            cases.append((asked, set(content_words(question["correct_answer"])), from_hits(shown)))

    print(f"{len(cases)} dev questions; {model.name}'s tokenizer; instructions: {tokens(SYSTEM)} tokens, cached")
    print("budget | tokens read per question p50 / p90 | gold answer's content words kept in the prompt")
    for budget in args.budgets:
        read, kept = [], []
        for asked, gold, sources in cases:
            *_, sources_message, question = answer_prompt([], sources, asked, turns=0, budget_tokens=budget)
            read.append(tokens(str(sources_message.content)) + tokens(str(question.content)) + 10)  # + template
            words = content_words(f"{sources_message.content} {asked}")
            kept.append(len(gold & words) / max(len(gold), 1))
        p90 = sorted(read)[int(0.9 * len(read)) - 1]
        label = "none" if budget <= 0 else str(budget)
        print(f"{label:>6} | {statistics.median(read):6.0f} / {p90:4.0f} | {interval(kept)}")


if __name__ == "__main__":
    main()
