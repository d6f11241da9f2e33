"""Heading-aware splitting: a document becomes sections (heading + anchor + text + heading path), long sections
become pieces.

Each section knows its heading path — the headings above it, "Install › Linux › Troubleshooting" — because a
subsection's own heading ("Troubleshooting") says little without its parents; the path is put before every
chunk's text when it is embedded and BM25-indexed (tools.documents.index_text).

Chunk size: pieces of about CHUNK_WORDS words, a parameter (docs/retrieval.md has the measured value) —
all-MiniLM-L6-v2 reads at most 256 word pieces, so much longer pieces lose their end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from markdown_it import MarkdownIt

from tools.anchors import Anchors, heading_text
from tools.documents import HEADING_SEPARATOR

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[`*])")
_PARAGRAPH = re.compile(r"\n\s*\n")
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")  # the parser api/help.py renders with


@dataclass(frozen=True)
class Section:
    heading: str  # "" for text before the first heading
    anchor: str  # URL fragment without '#', "" when there is none
    text: str
    level: int = 0  # 1 for h1 … 6 for h6, 0 for text before the first heading
    path: tuple[str, ...] = ()  # headings from the outermost down to this one; () for text before any heading

    @property
    def heading_path(self) -> str:
        return HEADING_SEPARATOR.join(self.path)


def with_heading_paths(sections: list[Section]) -> list[Section]:
    """Fill each section's `path` from the heading levels: a heading closes every open heading of its level or
    deeper. Run it before dropping sections without text: an empty parent ("## Install" directly followed by
    "### Linux") still belongs to its children's paths."""
    open_headings: list[tuple[int, str]] = []
    result = []
    for section in sections:
        if section.level <= 0:
            result.append(replace(section, path=(section.heading,) if section.heading else ()))
            continue
        while open_headings and open_headings[-1][0] >= section.level:
            open_headings.pop()
        open_headings.append((section.level, section.heading))
        result.append(replace(section, path=tuple(heading for _, heading in open_headings)))
    return result


def markdown_sections(text: str) -> list[Section]:
    """Split Markdown at its top-level headings (ATX and setext; never inside code fences or lists).

    Section text is the original Markdown between two headings, so code and lists read as written."""
    lines = text.splitlines()
    tokens = _markdown.parse(text)
    anchors = Anchors()
    sections: list[Section] = []
    heading, anchor, level, start = "", "", 0, 0
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or token.level != 0 or token.map is None:
            continue
        sections.append(Section(heading, anchor, "\n".join(lines[start : token.map[0]]).strip(), level))
        heading = heading_text(tokens[index + 1])
        anchor, level, start = anchors(heading), int(token.tag[1]), token.map[1]
    sections.append(Section(heading, anchor, "\n".join(lines[start:]).strip(), level))
    return [section for section in with_heading_paths(sections) if section.text]


def first_heading(sections: list[Section]) -> str:
    """The page's title by its headings: the first h1, else the first heading of any level, else ""."""
    for wanted in (lambda s: s.level == 1, lambda s: s.level > 0):
        for section in sections:
            if wanted(section):
                return section.heading
    return ""


def split_words(text: str, max_words: int) -> list[str]:
    """Pieces of at most ~max_words words, cut at paragraph, then sentence, then word boundaries."""
    if max_words < 1:
        raise ValueError("max_words must be at least 1")
    if len(text.split()) <= max_words:
        return [text]
    units: list[tuple[int, str]] = []  # (paragraph number, text): sentences of one paragraph stay one paragraph
    for number, paragraph in enumerate(_PARAGRAPH.split(text)):
        if len(paragraph.split()) <= max_words:
            units.append((number, paragraph))
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            words = sentence.split()
            units.extend((number, " ".join(words[i : i + max_words])) for i in range(0, len(words), max_words))
    pieces: list[str] = []
    current = ""
    size, last = 0, -1
    for number, unit in units:
        unit_size = len(unit.split())
        if current and size + unit_size > max_words:
            pieces.append(current)
            current, size = "", 0
        current += ("" if not current else " " if number == last else "\n\n") + unit
        size += unit_size
        last = number
    if current:
        pieces.append(current)
    return [piece.strip() for piece in pieces if piece.strip()]
