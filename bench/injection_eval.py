"""Detection and false-positive rates of tools/injection.py on a public prompt-injection corpus.

Corpus: `bastioncorpus` 0.6.0 from PyPI (MIT; file `bastioncorpus/corpus/injections.jsonl`, 181 labelled texts:
118 attacks in 8 categories, 63 benign look-alikes), installed with the dev extra or
`.venv/bin/pip install bastioncorpus==0.6.0`; read from the installed package, never copied here. Plus
bench/benign_questions.txt: ordinary support questions written for this project, some worded like attacks.

    .venv/bin/python bench/injection_eval.py [--show-misses]
"""

from __future__ import annotations

import argparse
import collections
import json
from importlib.resources import files
from pathlib import Path

from tools.injection import detect_injection

BENIGN = Path(__file__).with_name("benign_questions.txt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    corpus = files("bastioncorpus").joinpath("corpus/injections.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in corpus.splitlines() if line.strip()]
    per_category: dict[str, list[bool]] = collections.defaultdict(list)
    misses, false_alarms = [], []
    for row in rows:
        hit = detect_injection(row["text"]).blocked
        key = ("attack: " if row["label"] == "malicious" else "benign: ") + row["category"]
        per_category[key].append(hit)
        if row["label"] == "malicious" and not hit:
            misses.append(row)
        if row["label"] != "malicious" and hit:
            false_alarms.append(row["text"])
    questions = [q for q in BENIGN.read_text().splitlines() if q.strip() and not q.startswith("#")]
    support_alarms = [q for q in questions if detect_injection(q).blocked]

    attacks = [hit for key, hits in per_category.items() if key.startswith("attack") for hit in hits]
    benign = [hit for key, hits in per_category.items() if key.startswith("benign") for hit in hits]
    print("bastioncorpus 0.6.0 (tools/injection.py heuristics)")
    for key in sorted(per_category):
        hits = per_category[key]
        print(f"  {key:34} {sum(hits):3}/{len(hits):<3} flagged")
    print(
        f"detection rate (attacks flagged):          {sum(attacks)}/{len(attacks)} = {sum(attacks) / len(attacks):.1%}"
    )
    print(f"false positives (corpus benign flagged):   {sum(benign)}/{len(benign)} = {sum(benign) / len(benign):.1%}")
    print(
        f"false positives (support questions):       {len(support_alarms)}/{len(questions)} = "
        f"{len(support_alarms) / len(questions):.1%}"
    )
    if args.show_misses:
        for row in misses:
            print("MISS", row["category"], row["lang"], row["text"][:120].replace("\n", " "))
        for text in false_alarms + support_alarms:
            print("FALSE ALARM", text[:120])


if __name__ == "__main__":
    main()
