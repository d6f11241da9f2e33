"""The product's answer quality, end to end: every dev-set question through the real `/chat` path, graded.

    .venv/bin/python bench/answer_eval.py --limit 25                 # LOCAL_MODEL (default preset) answers
    .venv/bin/python bench/answer_eval.py --judge-url http://gpu:8000/v1 --judge-model llama-3.1-70b
    .venv/bin/python bench/answer_eval.py --llm-url http://127.0.0.1:8081/v1 --out answers.json
    .venv/bin/python bench/answer_eval.py --off-topic     # bench/off_topic_questions.txt: how many are answered

It starts what `./run` starts — a Redis server, a Chroma server, the local LLM server (`LOCAL_MODEL` /
`LOCAL_MODEL_PATH`, unless `--llm-url` names a running one) and the app — indexes the 232 chunks of
../shared/eval/anthropic-docs through the real ingestion path (bench/eval_retrieval.py's writer), then asks
each question in a new conversation and reads the SSE stream as the page does. Per question and in total:

- **outcome**: answered, offered a person (the docs had nothing / the model was unsure), escalated, failed;
- **cites a gold source**: a `[n]` in the reply whose source is one of the question's gold chunks;
  **valid citation**: at least one `[n]` that points at a listed source; **gold listed**: a gold chunk among the
  sources shown;
- **correct**: an LLM judge (any OpenAI-compatible endpoint; the local model by default — a weak judge, said
  so in the output) compares the reply with the gold answer: CORRECT / PARTIAL / WRONG; the judge's model and
  prompt are printed;
- **content recall**: the share of the gold answer's content words found in the reply (deterministic);
- **first token**: seconds from the request to the first `token` event, as the customer waits.

`--off-topic` asks bench/off_topic_questions.txt instead (questions no product manual covers, and greetings, written
for this project) and reports the share *not* answered from unrelated text — the retrieval gate and the model's
own "not sure" together, as the customer meets them (bench/relevance_eval.py measures the gate alone).

Totals carry 95 % bootstrap intervals over questions. The data stays in ../shared (never copied here).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from httpx_sse import connect_sse

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval_retrieval import index_corpus, load_eval, write_corpus  # noqa: E402  (bench/eval_retrieval.py)

from launcher.app_process import run_app  # noqa: E402
from launcher.models import ensure_local_model  # noqa: E402
from launcher.services import free_port, start_chroma, start_llm, start_redis  # noqa: E402
from settings import Settings  # noqa: E402
from tools.text import content_words  # noqa: E402

JUDGE_PROMPT = """You grade an answer of a customer-support assistant against the reference answer.

Question: {question}

Reference answer: {reference}

Answer to grade: {answer}

Does the answer give the facts of the reference answer, without contradicting it? Reply with one word:
CORRECT if it does, PARTIAL if it gives some of them and nothing wrong, WRONG if it is wrong, off the point,
or does not answer."""
VERDICTS = ("CORRECT", "PARTIAL", "WRONG")
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
RESAMPLES = 5000


def ask(client: httpx.Client, question: str) -> dict[str, Any]:
    """One turn in a new conversation, read as the page reads it."""
    started = time.perf_counter()
    first_token: float | None = None
    sources: list[dict[str, Any]] = []
    outcome, done = "answered", {}
    with connect_sse(client, "POST", "/chat", json={"message": question}) as stream:
        for event in stream.iter_sse():
            data = json.loads(event.data)
            if event.event == "sources":
                sources = data["sources"]
            elif event.event == "token" and first_token is None:
                first_token = time.perf_counter() - started
            elif event.event == "offer":
                outcome = "offered"
            elif event.event == "escalated":
                outcome = "escalated"
            elif event.event == "error":
                outcome = "failed"
            elif event.event == "done":
                done = data
    return {
        "answer": done.get("text", ""),
        "sources": sources,
        "outcome": outcome,
        "first_token_s": round(first_token, 2) if first_token is not None else None,
        "total_s": round(time.perf_counter() - started, 2),
    }


def cited(answer: str) -> set[int]:
    return {int(n) for group in _MARKER.findall(answer) for n in re.split(r"\s*,\s*", group)}


def judge(client: httpx.Client, model: str, question: str, reference: str, answer: str) -> str:
    prompt = JUDGE_PROMPT.format(question=question, reference=reference, answer=answer or "(no answer)")
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 4}
    reply = client.post("/chat/completions", json=body, timeout=300).json()["choices"][0]["message"]["content"]
    word = reply.strip().upper()
    return next((v for v in VERDICTS if word.startswith(v)), "WRONG")


def grade(item: dict[str, Any], question: dict[str, Any], verdict: str) -> dict[str, Any]:
    gold = set(question["correct_chunks"])
    shown = {s["n"]: s["url"] for s in item["sources"]}
    numbers = cited(item["answer"])
    reference_words = content_words(question["correct_answer"])
    return item | {
        "id": question["id"],
        "question": question["question"],
        "verdict": verdict,
        "gold_listed": bool(gold & set(shown.values())),
        "valid_citation": bool(numbers & set(shown)),
        "cites_gold": any(shown.get(n) in gold for n in numbers),
        "content_recall": round(len(reference_words & content_words(item["answer"])) / max(1, len(reference_words)), 3),
    }


def interval(values: list[float]) -> str:
    data = np.asarray(values, dtype=float)
    if not len(data):
        return "n/a"
    picks = np.random.default_rng(0).integers(0, len(data), size=(RESAMPLES, len(data)))
    low, high = np.percentile(data[picks].mean(axis=1), [2.5, 97.5])
    return f"{data.mean():.3f} [{low:.3f}, {high:.3f}]"


def summary(results: list[dict[str, Any]]) -> list[str]:
    def share(test: Any) -> str:
        return interval([1.0 if test(r) else 0.0 for r in results])

    first_tokens = [r["first_token_s"] for r in results if r["first_token_s"] is not None]
    scores = [{"CORRECT": 1.0, "PARTIAL": 0.5}.get(r["verdict"], 0.0) for r in results]
    lines = [
        f"questions                      {len(results)}",
        f"answered                       {share(lambda r: r['outcome'] == 'answered')}",
        f"offered a person / escalated   {share(lambda r: r['outcome'] in ('offered', 'escalated'))}",
        f"failed                         {share(lambda r: r['outcome'] == 'failed')}",
        f"correct (verdicts)             {share(lambda r: r['verdict'] == 'CORRECT')}",
        f"correct or partial (verdicts)  {share(lambda r: r['verdict'] in ('CORRECT', 'PARTIAL'))}",
        f"score (1 / 0.5 / 0)            {interval(scores)}",
        f"content recall of gold answer  {interval([r['content_recall'] for r in results])}",
        f"gold chunk among the sources   {share(lambda r: r['gold_listed'])}",
        f"at least one valid [n]         {share(lambda r: r['valid_citation'])}",
        f"cites a gold source            {share(lambda r: r['cites_gold'])}",
    ]
    if first_tokens:
        ordered = sorted(first_tokens)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        lines.append(f"first token (s)               p50 {statistics.median(ordered):.1f}  p90 {p90:.1f}")
    return lines


def off_topic_summary(questions: list[dict[str, Any]], answers: list[dict[str, Any]], out: Path | None) -> None:
    """Answered = the bot wrote an answer from its sources; anything else (a greeting's reply, "not in our
    documentation" with the offer of a person, a refusal) is not answering from unrelated text."""
    records = [a | {"question": q["question"]} for q, a in zip(questions, answers, strict=True)]
    answered = [r for r in records if r["outcome"] == "answered" and r["sources"]]
    print("\noff-topic questions answered from the documentation (should be none):")
    for r in answered:
        print(f"  {r['question']!r} → {r['answer'][:160]!r}")
    share = interval([0.0 if (r["outcome"] == "answered" and r["sources"]) else 1.0 for r in records])
    print(f"not answered from unrelated text: {share} of {len(records)} — goal ≥ 0.95")
    if out:
        out.write_text(json.dumps(records, indent=1, ensure_ascii=False))


def regrade(questions: list[dict[str, Any]], answers: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Grades stored answers — by hand (`--grades`) or by a judge endpoint — without asking them again."""
    by_id = {q["id"]: q for q in questions}
    hand = json.loads(args.grades.read_text()) if args.grades else None
    results = []
    with ExitStack() as stack:
        judge_client = None if hand is not None else stack.enter_context(httpx.Client(base_url=args.judge_url))
        for item in answers:
            question = by_id[item["id"]]
            if judge_client is None:
                verdict = hand.get(item["id"], "UNGRADED")
            else:
                verdict = judge(
                    judge_client, args.judge_model, question["question"], question["correct_answer"], item["answer"]
                )
            results.append(grade(item, question, verdict))
    source = f"hand grades from {args.grades}" if hand is not None else f"{args.judge_model} at {args.judge_url}"
    print(f"{len(results)} stored answers from {args.answers}; verdicts: {source}")
    print("\n".join(["", "answer quality (95 % bootstrap intervals over questions)", *summary(results)]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--llm-url", help="a running OpenAI-compatible server for the answers (else LOCAL_MODEL)")
    parser.add_argument("--judge-url", help="OpenAI-compatible endpoint of the judge (default: the answering LLM)")
    parser.add_argument("--judge-model", default="judge", help="model name sent to the judge")
    parser.add_argument("--out", type=Path, help="write every question's record as JSON here")
    parser.add_argument("--prompt-tokens", type=int, help="LLM_PROMPT_TOKENS for the app (default: the preset's)")
    parser.add_argument("--off-topic", action="store_true", help="ask off-topic questions, count answers")
    parser.add_argument(
        "--questions", type=Path, default=ROOT / "bench" / "off_topic_questions.txt", help="the off-topic questions"
    )
    parser.add_argument(
        "--grades",
        type=Path,
        help="with --answers: verdicts given by hand (JSON: question id → CORRECT/PARTIAL/WRONG) instead of a judge",
    )
    parser.add_argument("--answers", type=Path, help="grade the answers stored by an earlier --out run (no services)")
    args = parser.parse_args()
    if args.grades and not args.answers:
        parser.error("--grades grades stored answers: give the --answers file of an earlier --out run")
    if args.answers and not (args.grades or args.judge_url):
        parser.error("--answers needs --grades (hand verdicts) or --judge-url (a judge endpoint)")

    docs, questions = load_eval()
    if args.answers:
        return regrade(questions, json.loads(args.answers.read_text()), args)
    if args.off_topic:
        lines = args.questions.read_text().splitlines()
        questions = [{"id": f"off-{n}", "question": q} for n, q in enumerate(lines) if q.strip() and q[0] != "#"]
    questions = questions[: args.limit] if args.limit else questions
    settings = Settings()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        redis = start_redis(work / "redis", free_port(), work)
        stack.callback(redis.stop)
        chroma = start_chroma(work / "chroma", free_port(), work)
        stack.callback(chroma.stop)
        llm_url = args.llm_url
        model_name = "given by --llm-url"
        if not llm_url:
            model_path = ensure_local_model(settings)  # a split preset (Qwen) is assembled and checked first
            model_name = model_path.name
            llm = start_llm(model_path, free_port(), work, alias=settings.llm_model)
            stack.callback(llm.stop)
            llm_url = llm.url
        collection = "answer-eval"
        index_settings = Settings(_env_file=None, chroma_url=chroma.url, kb_collection=collection)  # type: ignore[call-arg]
        started = time.perf_counter()
        index_corpus(write_corpus(docs, work / "corpus"), index_settings)
        print(f"indexed {len(docs)} chunks in {time.perf_counter() - started:.0f} s", flush=True)
        env = {
            "REDIS_URL": redis.url,
            "CHROMA_URL": chroma.url,
            "KB_COLLECTION": collection,
            "LLM_BASE_URL": llm_url,
            "LLM_TEMPERATURE": "0",
            "RATE_LIMIT_IP": "100000/minute",
            "RATE_LIMIT_TICKETS_IP": "100000/minute",
        }
        if args.prompt_tokens:
            env["LLM_PROMPT_TOKENS"] = str(args.prompt_tokens)
        print(f"prompt budget: {args.prompt_tokens or settings.llm_prompt_tokens} tokens", flush=True)
        app = stack.enter_context(run_app(work / "app", env))
        judge_url = args.judge_url or llm_url
        print(f"answers: {model_name} at {llm_url}; judge: {args.judge_model} at {judge_url}")
        if not args.judge_url:
            print("note: the answering model judges itself here — a weak judge; pass --judge-url for a larger one")
        print("judge prompt:\n" + JUDGE_PROMPT, flush=True)
        # Every answer first, then every verdict: a judge call between two questions would evict the answer
        # prompt's cached prefix (the instructions) from a one-slot llama.cpp server, which customers asking one
        # after another keep warm.
        answers = []
        with httpx.Client(base_url=app.url, timeout=600) as chat:
            for number, question in enumerate(questions, 1):
                answers.append(ask(chat, question["question"]) | {"id": question["id"]})
                a = answers[-1]
                print(f"{number:3d} {question['id']} {a['outcome']:9s} first-token={a['first_token_s']}s", flush=True)
                if args.out:  # kept as it comes: a 100-question run takes most of an hour on the local model
                    args.out.with_suffix(".answers.json").write_text(json.dumps(answers, indent=1, ensure_ascii=False))
        if args.off_topic:
            return off_topic_summary(questions, answers, args.out)
        results = []
        with httpx.Client(base_url=judge_url) as judge_client:
            for number, (question, item) in enumerate(zip(questions, answers, strict=True), 1):
                verdict = judge(
                    judge_client, args.judge_model, question["question"], question["correct_answer"], item["answer"]
                )
                results.append(grade(item, question, verdict))
                r = results[-1]
                print(
                    f"{number:3d} {r['id']} {r['outcome']:9s} {verdict:7s} gold-listed={int(r['gold_listed'])} "
                    f"cites-gold={int(r['cites_gold'])} recall={r['content_recall']:.2f} "
                    f"first-token={r['first_token_s']}s",
                    flush=True,
                )
    print("\n".join(["", "answer quality (95 % bootstrap intervals over questions)", *summary(results)]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
