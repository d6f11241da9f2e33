"""The part of each source worth its prompt tokens: on a CPU model every prompt token costs the customer ~20 ms
before the first word, so a source over its share of the budget keeps the sentences that share the most terms
with the question (the retrieval's own stemmed terms), in the document's order, instead of its first N
characters. Sentences that say nothing about the question are what goes."""

from __future__ import annotations

import re

from tools.retrieval import TOKENIZER

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`*\[(\"'])")
_NUMBER = re.compile(r"\d+")
GAP = " … "
REPEAT_MIN_CHARS = 20  # a shorter sentence seen before ("Python", "}") may be structure: it stays
FIRST_SHARE = 0.75  # the top-ranked source may take up to this share of the budget (docs/quality.md)


def _said(text: str) -> str:
    return " ".join(text.lower().split())


def distinct(texts: list[str], titles: list[str]) -> list[str]:
    """The sources' texts without what the prompt already holds: a sentence said before (in this source or an
    earlier one), a line repeating the one above it, an opening line that repeats the title (the source's header
    shows it), runs of blank lines. Scraped pages repeat themselves (tabs, callouts, navigation): measured on the
    dev set, 17 % of the sources' tokens at the median prompt went to such repeats (662 → 547)."""
    seen: set[str] = set()
    out = []
    for text, title in zip(texts, titles, strict=True):
        lines: list[str] = []
        for line in text.splitlines():
            sentences = []
            for sentence in _SENTENCE_END.split(line):
                said = _said(sentence)
                if len(said) >= REPEAT_MIN_CHARS and said in seen:
                    continue
                seen.add(said)
                sentences.append(sentence)
            kept = " ".join(sentences).rstrip()
            if line.strip() and not kept.strip():  # every sentence of it said before
                continue
            if kept.strip() and lines and _said(kept) == _said(lines[-1]):
                continue
            if not kept.strip() and (not lines or not lines[-1].strip()):
                continue
            if not lines and _said(kept) == _said(title):
                continue
            lines.append(kept)
        out.append("\n".join(lines).strip())
    return out


def pieces(text: str) -> list[tuple[int, str]]:
    """(line number, sentence): a table row, a list item or a code line is a piece of its own."""
    return [
        (number, sentence.strip())
        for number, line in enumerate(text.splitlines())
        for sentence in _SENTENCE_END.split(line)
        if sentence.strip()
    ]


def terms(text: str) -> set[str]:
    """The retrieval's terms, plus every number (BM25 drops one-digit words; "tier 2" needs its 2)."""
    return set(TOKENIZER(text)) | set(_NUMBER.findall(text))


def header_row(parts: list[tuple[int, str]], i: int) -> int | None:
    """A table row's header (the first row of its table): a row of numbers means nothing without it."""
    if not parts[i][1].startswith("|"):
        return None
    while i > 0 and parts[i - 1][1].startswith("|") and parts[i - 1][0] == parts[i][0] - 1:
        i -= 1
    return i


def focus(text: str, question: str, max_chars: int) -> str:
    """`text` itself when it fits; else its pieces most about `question`, in order, within `max_chars`."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    asked = terms(question)
    parts = pieces(text)
    overlap = [len(asked & terms(piece)) for _, piece in parts]
    # Most shared terms first; among equals the earlier piece (a section's first lines say what it is about).
    ranked = sorted(range(len(parts)), key=lambda i: (-overlap[i], i))
    kept: list[int] = []
    used = 0
    for i in ranked:
        group = [j for j in dict.fromkeys((header_row(parts, i), i)) if j is not None and j not in kept]
        cost = sum(len(parts[j][1]) + len(GAP) for j in group)
        if group and used + cost <= max_chars:
            kept.extend(group)
            used += cost
    if not kept:  # one piece longer than the share: its start, cut at a word
        return parts[ranked[0]][1][:max_chars].rsplit(" ", 1)[0] + " …"
    out = ""
    for previous, i in zip([None, *sorted(kept)], sorted(kept), strict=False):
        if previous is not None:
            rows = parts[i][1].startswith("|") and parts[previous][1].startswith("|")
            out += "\n" if rows else GAP if i != previous + 1 else "\n" if parts[i][0] != parts[previous][0] else " "
        out += parts[i][1]
    return out if max(kept) == len(parts) - 1 else out + " …"


def shares(lengths: list[int], budget: int) -> list[int]:
    """Split `budget` characters among sources of these lengths, in rank order: the first may take FIRST_SHARE
    (the retrieval's best guess is the likeliest to hold the answer), the others share the rest equally; what a
    short one leaves goes to the others."""
    if len(lengths) > 1:
        first = min(lengths[0], int(budget * FIRST_SHARE))
        return [first, *_equal(lengths[1:], budget - first)]
    return _equal(lengths, budget)


def _equal(lengths: list[int], budget: int) -> list[int]:
    """Equal shares; what a short source leaves goes to the others."""
    result = [0] * len(lengths)
    left, waiting = budget, sorted(range(len(lengths)), key=lambda i: lengths[i])
    while waiting:
        i = waiting.pop(0)
        result[i] = min(lengths[i], left // (len(waiting) + 1))
        left -= result[i]
    return result
