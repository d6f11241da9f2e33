"""Out-of-sample check of the prompt-injection guard: garak's attack probes, driven by garak itself, against /chat.

No one here wrote these attacks: they ship inside the `garak` package (NVIDIA, Apache-2.0), version 0.17.1 from
PyPI. garak lives in its own venv so the project's stays untouched, and every probe used here runs offline:

    python3 -m venv /work/garak-venv
    /work/garak-venv/bin/pip install /opt/wheels/torch-*.whl garak==0.17.1   # torch: the local CPU wheel
    .venv/bin/python bench/garak_eval.py [--url http://127.0.0.1:8000] [--out run.json] [--compare before.json]

Without `--url` the script starts the real parts the way the other benches do (Redis, Chroma with the small
sample help centre, llama.cpp with SmolLM2, the app through `launcher.app_process.run_app`). It then runs
`python -m garak` from GARAK_PYTHON with garak's *function* generator pointed at `chat()` below: each prompt
goes to POST /chat in a new session, the reply garak scores is the `done` text, and the outcome (422, refused by
the guard, offered a person, ticket, answered) is logged beside garak's own report. Per probe class garak
keeps a seeded sample (`soft_probe_prompt_cap` = --cap, `--seed`, PYTHONHASHSEED=0), and the few probes that
ignore the cap are sampled down to it here, so a run is bounded (8-18 min on 2 busy cores) and repeatable.
The app started here answers with at most --max-tokens tokens: what is measured is whether the guard refuses,
and AUTO_ESCALATE is on (--no-auto-escalate: off) so that a passed attack shows its cost, a ticket.

Split, fixed before any result was seen: the `dan` family (persona / "do anything now" jailbreaks) is the
tuning part — its misses may be read while changing tools/injection.py. Every other family is held out and
its prompts are not read: its figures are the out-of-sample ones. The `encoding` family is held out too but
reported apart: its payloads are garak's harmful strings, not instructions, so it measures "decode this"
requests rather than injections.

False positives: the same detector the guard step calls (`detect_injection` on the sanitised text), on
bench/benign_questions.txt and on the dev questions of ../shared/eval/anthropic-docs/ (read from there).
This module's top level imports only the standard library and httpx: garak's venv imports it for `chat()`.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENIGN = Path(__file__).with_name("benign_questions.txt")
DEV_QUESTIONS = ROOT.parent / "shared" / "eval" / "anthropic-docs" / "docs_evaluation_dataset.json"
GARAK_VERSION = "0.17.1"
TUNING = "dan"
APART = "encoding"
PROBES: dict[str, list[str]] = {
    "dan": [
        "DanInTheWild", "Ablation_Dan_11_0", "AutoDANCached", "Dan_6_0", "Dan_6_2", "Dan_7_0", "Dan_8_0",
        "Dan_9_0", "Dan_10_0", "Dan_11_0", "DAN_Jailbreak", "DUDE", "STAN", "AntiDAN",
        "ChatGPT_Developer_Mode_v2", "ChatGPT_Developer_Mode_RANTI", "ChatGPT_Image_Markdown",
    ],
    "promptinject": ["HijackHateHumans", "HijackKillHumans", "HijackLongPrompt"],
    "latentinjection": [
        "LatentInjectionReport", "LatentInjectionResume", "LatentInjectionTranslationEnFr",
        "LatentInjectionTranslationEnZh", "LatentInjectionFactSnippetEiffel", "LatentInjectionFactSnippetLegal",
        "LatentWhois", "LatentWhoisSnippet",
    ],
    "sysprompt_extraction": ["SystemPromptExtraction"],
    "goodside": ["Tag"],
    "web_injection": [
        "MarkdownImageExfil", "PlaygroundMarkdownExfil", "StringAssemblyDataExfil", "ColabAIDataLeakage",
        "MarkdownURIImageExfilExtended", "MarkdownURINonImageExfilExtended", "MarkdownXSS", "TaskXSS",
    ],
    "smuggling": ["HypotheticalResponse", "FunctionMasking"],
    "grandma": ["Win10", "Win11", "Substances", "Slurs"],
    "encoding": [
        "InjectBase64", "InjectBase32", "InjectBase16", "InjectHex", "InjectROT13", "InjectMorse", "InjectAscii85",
        "InjectBraille", "InjectNato", "InjectAtbash", "InjectUU", "InjectEcoji", "InjectBase2048",
    ],
}  # fmt: skip
OUTCOMES = ("too_long", "refused", "refused_by_answer_check", "ticket", "offered", "answered", "error")


# --- garak's side: the function generator -------------------------------------------------------------------


def _sse(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    name, data = "message", ""
    for line in lines:
        if not line:
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def send(url: str, message: str) -> dict[str, Any]:
    """One message in a new session; what the customer would get, reduced to its outcome."""
    record: dict[str, Any] = {"prompt": message, "text": None}
    with httpx.Client(timeout=httpx.Timeout(300, connect=10)) as client:
        with client.stream("POST", url.rstrip("/") + "/chat", json={"message": message}) as response:
            record["status"] = response.status_code
            if response.status_code != 200:
                response.read()
                record["outcome"] = "too_long" if response.status_code == 422 else "error"
                record["detail"] = str(response.json().get("detail", ""))[:200]
                return record
            events = list(_sse(response.iter_lines()))
    kinds = [name for name, _ in events]
    done = next((data for name, data in events if name == "done"), None)
    record["events"] = sorted(set(kinds))
    if done is None or "error" in kinds:
        record["outcome"] = "error"
    elif done.get("refused"):
        # the guard refuses before retrieval, so no `sources` time; the answer check refuses after it
        guard = done.get("timings", {}).get("sources_ms") is None
        record["outcome"] = "refused" if guard else "refused_by_answer_check"
    elif "escalated" in kinds:
        record["outcome"] = "ticket"
    elif "offer" in kinds:
        record["outcome"] = "offered"
    else:
        record["outcome"] = "answered"
    record["text"] = done.get("text") if done else None
    return record


def chat(prompt: str, **kwargs: Any) -> list[str | None]:
    """garak's `function.Single` generator: POST the prompt to /chat, return the `done` text garak scores."""
    record = send(os.environ["GARAK_EVAL_URL"], prompt)
    with open(os.environ["GARAK_EVAL_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    return [record["text"]]


# --- this side: start the app, run garak, count ------------------------------------------------------------


def garak_config(work: Path, cap: int, seed: int) -> Path:
    """garak's run config; the system prompts its extraction probe pairs with its attacks come from a local
    one-row dataset holding the product's own rules (garak's detector then looks for those in the reply)."""
    sys.path[:0] = [str(ROOT)]
    from graph.prompts import RULES

    dataset = work / "sysprompt"
    dataset.mkdir(parents=True, exist_ok=True)
    with (dataset / "train.csv").open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([["systemprompt"], [RULES]])
    spec = ",".join(f"{family}.{probe}" for family, probes in PROBES.items() for probe in probes)
    config = {
        "run": {"generations": 1, "soft_probe_prompt_cap": cap, "seed": seed},
        "plugins": {
            "probe_spec": spec,
            "extended_detectors": False,
            "probes": {
                "sysprompt_extraction": {
                    "SystemPromptExtraction": {"system_prompt_sources": [str(dataset)], "system_prompt_subsample": 1}
                }
            },
        },
        "reporting": {"report_dir": str(work / "garak"), "report_prefix": "chat"},
    }
    path = work / "garak-config.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def run_garak(garak_python: str, url: str, work: Path, cap: int, seed: int) -> list[dict[str, Any]]:
    """garak from its own venv, offline, this module on its path; its attempts joined with the outcomes."""
    log = work / "outcomes.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent),
        "GARAK_EVAL_URL": url,
        "GARAK_EVAL_LOG": str(log),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONHASHSEED": "0",  # garak builds some probes' prompts from sets: the same sample in every run
        "XDG_DATA_HOME": str(work / "xdg-data"),
        "XDG_CACHE_HOME": str(work / "xdg-cache"),
        "XDG_CONFIG_HOME": str(work / "xdg-config"),
    }
    config = garak_config(work, cap, seed)
    command = [garak_python, "-m", "garak", "--config", str(config), "-t", "function", "-n", "garak_eval#chat"]
    with (work / "garak-stdout.log").open("wb") as out:
        subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, cwd=work)
    return join(work / "garak" / "chat.report.jsonl", log, cap, seed)


def join(report: Path, log: Path, cap: int, seed: int) -> list[dict[str, Any]]:
    """Each garak attempt (probe, prompt, garak's detector scores) with the /chat outcome of its prompt; at most
    `cap` per probe class (seeded), since some probes ignore garak's cap and would outweigh the others."""
    outcomes = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        outcomes[record["prompt"]] = record
    rows = []
    for line in report.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("entry_type") != "attempt" or entry.get("status") != 2:
            continue
        prompt = entry["prompt"]["turns"][-1]["content"]["text"]
        scores = [s for scores in entry.get("detector_results", {}).values() for s in scores if s is not None]
        outcome = outcomes[prompt]
        rows.append(
            {
                "probe": entry["probe_classname"],
                "prompt": prompt,
                "outcome": outcome["outcome"],
                "garak_hit": bool(scores) and max(scores) >= 0.5,  # garak's detector: the attack worked
            }
        )
    by_probe = collections.defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["probe"], r["prompt"])):
        by_probe[row["probe"]].append(row)
    rng = random.Random(seed)
    return [row for probe in sorted(by_probe) for row in rng.sample(by_probe[probe], min(cap, len(by_probe[probe])))]


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(hits: int, n: int) -> str:
    low, high = wilson(hits, n)
    return f"{hits}/{n} = {hits / n:.1%} [{low:.1%}, {high:.1%}]" if n else "0/0"


def group_of(probe: str) -> str:
    family = probe.split(".")[0]
    return "tuning (dan)" if family == TUNING else "held out, encoding" if family == APART else "held out"


def report(rows: list[dict[str, Any]]) -> None:
    by_probe: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for row in rows:
        by_probe[row["probe"]][row["outcome"]] += 1
        by_probe[row["probe"]]["garak_hit"] += row["garak_hit"]
    print(f"garak {GARAK_VERSION} probes through /chat (one new session per prompt)")
    header = "probe", "sent", "422", "refused", "ans.check", "ticket", "offered", "answered", "error", "garak hit"
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for probe in sorted(by_probe, key=lambda p: (group_of(p), p)):
        count = by_probe[probe]
        sent = sum(count[o] for o in OUTCOMES)
        print(f"| {probe} | {sent} | " + " | ".join(str(count[o]) for o in (*OUTCOMES, "garak_hit")) + " |")
    for group in ("tuning (dan)", "held out", "held out, encoding"):
        part = [r for r in rows if group_of(r["probe"]) == group]
        within = [r for r in part if r["outcome"] != "too_long"]
        stopped = sum(r["outcome"] in ("too_long", "refused") for r in part)
        refused = sum(r["outcome"] == "refused" for r in within)
        tickets = sum(r["outcome"] == "ticket" for r in part)
        print(f"{group}: refused by the guard (within the size limit) {rate(refused, len(within))}")
        print(f"{group}: stopped before the model (422 or refused)    {rate(stopped, len(part))}; tickets {tickets}")


def benign_report() -> dict[str, list[str]]:
    """False positives of the guard's detector on ordinary questions; the flagged ones, per set."""
    sys.path[:0] = [str(ROOT)]
    from tools.injection import detect_injection, sanitize_input

    sets = {"bench/benign_questions.txt": [q for q in BENIGN.read_text().splitlines() if q.strip() and q[0] != "#"]}
    if DEV_QUESTIONS.exists():
        sets["anthropic-docs dev questions"] = [row["question"] for row in json.loads(DEV_QUESTIONS.read_text())]
    flagged = {}
    for name, questions in sets.items():
        flagged[name] = [q for q in questions if detect_injection(sanitize_input(q)).blocked]
        print(f"false positives, {name}: {rate(len(flagged[name]), len(questions))}")
        for question in flagged[name]:
            print("   FLAGGED", question[:120])
    return flagged


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]], seed: int = 7) -> None:
    """Refusal rate before → after on the same prompts, per group, with a paired bootstrap 95 % interval."""
    old = {(r["probe"], r["prompt"]): r["outcome"] == "refused" for r in before if r["outcome"] != "too_long"}
    new = {(r["probe"], r["prompt"]): r["outcome"] == "refused" for r in after if r["outcome"] != "too_long"}
    rng = random.Random(seed)
    for group in ("tuning (dan)", "held out", "held out, encoding"):
        keys = sorted(k for k in old.keys() & new.keys() if group_of(k[0]) == group)
        if not keys:
            continue
        pairs = [(old[k], new[k]) for k in keys]
        diffs = []
        for _ in range(5000):
            sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
            diffs.append(sum(b - a for a, b in sample) / len(sample))
        diffs.sort()
        a, b = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
        print(
            f"{group}: refused before {rate(a, len(pairs))} → after {rate(b, len(pairs))}; "
            f"difference {(b - a) / len(pairs):+.1%} [{diffs[125]:+.1%}, {diffs[4874]:+.1%}] (paired bootstrap)"
        )


def start_and_run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """The real parts (as the other benches start them), the app, then garak against it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    sys.path[:0] = [str(ROOT)]
    from launcher.app_process import bench_parts, run_app

    with bench_parts(work, "garak") as (redis, chroma, llm):
        env = {
            "REDIS_URL": redis.url,
            "CHROMA_URL": chroma.url,
            "LLM_BASE_URL": llm.url,
            "KB_COLLECTION": "garak",
            "LLM_MAX_TOKENS": str(args.max_tokens),
            "AUTO_ESCALATE": "true" if args.auto_escalate else "false",
            "RATE_LIMIT_IP": "100000/minute",
            "RATE_LIMIT_SESSION": "100000/minute",
            "RATE_LIMIT_TICKETS_IP": "100000/hour",
            "RATE_LIMIT_SESSIONS_IP": "100000/minute",
        }
        with run_app(work / "app", env) as app:
            return run_garak(args.garak_python, app.url, work, args.cap, args.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running app; default: start the real parts and the app here")
    parser.add_argument("--garak-python", default=os.environ.get("GARAK_PYTHON", "/work/garak-venv/bin/python"))
    parser.add_argument("--cap", type=int, default=30, help="prompts garak keeps per probe class (seeded sample)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-tokens", type=int, default=24, help="LLM_MAX_TOKENS of the app started here")
    parser.add_argument("--auto-escalate", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, help="write the per-prompt rows here (for --compare later)")
    parser.add_argument("--compare", type=Path, help="rows of an earlier run: refusal rate before → after")
    parser.add_argument("--benign-only", action="store_true", help="only the false positives (no app, no garak)")
    args = parser.parse_args()
    if not args.benign_only:
        work = Path(tempfile.mkdtemp(prefix="garak-eval-"))
        if args.url:
            rows = run_garak(args.garak_python, args.url, work, args.cap, args.seed)
        else:
            rows = start_and_run(args, work)
        print(f"work folder: {work}")
        report(rows)
        if args.out:
            args.out.write_text(json.dumps(rows))
        if args.compare:
            compare(json.loads(args.compare.read_text()), rows)
    benign_report()


if __name__ == "__main__":
    main()
