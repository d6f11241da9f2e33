"""Citations that hold: the sentence should say something the cited source says. (Markers that point at no
given source never reach the customer: graph/answer_check.py drops them while the answer streams.)

Support is lexical: the share of the sentence's content words found in the cited source(s). Cheap enough for
every answer on CPU; a sentence under SUPPORT_THRESHOLD is flagged (logged, counted in /metrics), not removed —
the tiny test model paraphrases freely, and a person reviewing the log decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tools.text import content_words

SUPPORT_THRESHOLD = 0.35
GROUNDING_MIN_WORDS = 4  # an answer shorter than this ("Yes, from the Billing page.") is not judged by its words
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class SentenceSupport:
    sentence: str
    cited: list[int]
    support: float | None  # None: the sentence cites nothing


@dataclass
class CitationReport:
    sentences: list[SentenceSupport] = field(default_factory=list)

    @property
    def unsupported(self) -> list[str]:
        return [s.sentence for s in self.sentences if s.support is not None and s.support < SUPPORT_THRESHOLD]


def check_citations(answer: str, sources: list[dict[str, Any]]) -> CitationReport:
    """`sources`: [{n, text or snippet, …}] as given to the model."""
    texts = {int(s["n"]): str(s.get("text") or s.get("snippet") or "") for s in sources}
    report = CitationReport()
    for sentence in _SENTENCE.split(answer.strip()):
        numbers = {int(n) for group in _MARKER.findall(sentence) for n in re.split(r"\s*,\s*", group)}
        cited = sorted(numbers & set(texts))
        words = content_words(_MARKER.sub("", sentence))
        support = None
        if cited and words:
            source_words = set().union(*(content_words(texts[n]) for n in cited))
            support = round(len(words & source_words) / len(words), 3)
        report.sentences.append(SentenceSupport(sentence, cited, support))
    return report


def grounding(answer: str, sources: list[dict[str, Any]], question: str = "") -> float | None:
    """The share of the answer's content words that occur in the sources given to the model or in the question
    (None for an answer too short to say). An answer written from its sources re-uses their words; one whose
    words are mostly its own (the population of Canada, a poem, the worked example's reply about a reset link)
    did not come from the documentation, whatever it cites."""
    words = content_words(_MARKER.sub("", answer))
    if len(words) < GROUNDING_MIN_WORDS:
        return None
    given = content_words(" ".join(str(s.get("text") or s.get("snippet") or "") for s in sources) + " " + question)
    return round(len(words & given) / len(words), 3)


def adds_from_sources(answer: str, sources: list[dict[str, Any]], question: str = "") -> bool:
    """False when the answer's words beyond the question's (at least two) occur in none of its sources: it
    restates the question and adds its own claim ("The current share price of ACME is $10.54."), which the
    grounding share misses because the question's words count there. Measured on the 100 dev answers: one
    (graded wrong) adds nothing from its sources (docs/quality.md)."""
    added = content_words(_MARKER.sub("", answer)) - content_words(question)
    if len(added) < 2:
        return True
    given = content_words(" ".join(f"{s.get('title', '')} {s.get('text') or s.get('snippet') or ''}" for s in sources))
    return bool(added & given)
