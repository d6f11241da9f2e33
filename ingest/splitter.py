"""Heading-aware splitting: a document becomes sections (heading + anchor + text), long sections become pieces.

Chunk size: pieces of about CHUNK_WORDS words (150 by default), measured on the eval set — all-MiniLM-L6-v2
reads at most 256 word pieces, so longer pieces lose their end (docs/retrieval.md).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Section:
    heading: str  # "" for text before the first heading
    anchor: str  # URL fragment without '#', "" when there is none
    text: str


def slugify(heading: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r" ", "-", text)


def markdown_sections(text: str) -> tuple[str, list[Section]]:
    """Split Markdown at ATX headings (outside code fences). Returns (first H1 or "", sections)."""
    sections: list[Section] = []
    title = ""
    heading, anchor, lines = "", "", []
    seen: dict[str, int] = {}
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _ATX.match(line)
        if match is None:
            lines.append(line)
            continue
        sections.append(Section(heading, anchor, "\n".join(lines).strip()))
        heading = match.group(2).strip()
        if not title and len(match.group(1)) == 1:
            title = heading
        slug = slugify(heading)
        anchor = slug if slug not in seen else f"{slug}-{seen[slug]}"
        seen[slug] = seen.get(slug, 0) + 1
        lines = []
    sections.append(Section(heading, anchor, "\n".join(lines).strip()))
    return title, [s for s in sections if s.text]


def split_words(text: str, max_words: int) -> list[str]:
    """Pieces of at most ~max_words words, cut at paragraph, then sentence, then word boundaries."""
    if len(text.split()) <= max_words:
        return [text]
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        if len(paragraph.split()) <= max_words:
            units.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            words = sentence.split()
            units.extend(" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words))
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        unit_size = len(unit.split())
        if current and size + unit_size > max_words:
            pieces.append("\n\n".join(current))
            current, size = [], 0
        current.append(unit)
        size += unit_size
    if current:
        pieces.append("\n\n".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]
