"""What a knowledge-base chunk is, shared by ingestion (which writes them) and retrieval (which reads them).

Chroma stores, per chunk: id = `chunk_id`, document = the chunk's text as shown to people, metadata =
`Chunk.metadata()`. The embedding and the BM25 index are computed on `index_text()`, which puts the chunk's
heading path (page title › section › subsection) before the text, so that a chunk that only says "It expires
after 30 minutes" still matches "password reset link".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

HEADING_SEPARATOR = " › "  # between the levels of a heading path, in `Chunk.section` and in `index_text`
# Bump when `index_text` changes: ingestion re-embeds every stored chunk whose `index_version` differs.
INDEX_VERSION = 2


@dataclass(frozen=True)
class Chunk:
    text: str
    title: str
    url: str
    source: str
    section: str = ""  # the heading path inside the page, "Install › Linux" (HEADING_SEPARATOR); "" before any
    file_hash: str = ""
    position: int = 0

    @property
    def chunk_id(self) -> str:
        """Stable across runs: the same source and content always give the same id."""
        digest = hashlib.sha256(f"{self.source}\x00{self.url}\x00{self.section}\x00{self.text}".encode())
        return digest.hexdigest()[:32]

    def metadata(self) -> dict[str, str | int]:
        return {
            "title": self.title,
            "url": self.url,
            "source": self.source,
            "section": self.section,
            "chunk_id": self.chunk_id,
            "file_hash": self.file_hash,
            "position": self.position,
            "index_version": INDEX_VERSION,
        }


def heading_path(title: str, section: str) -> str:
    """`title › section › subsection`, a level equal to the one before it (an h1 repeating the title) once."""
    parts: list[str] = []
    for part in (title, *section.split(HEADING_SEPARATOR)):
        part = " ".join(part.split())
        if part and (not parts or part.casefold() != parts[-1].casefold()):
            parts.append(part)
    return HEADING_SEPARATOR.join(parts)


def index_text(title: str, section: str, text: str) -> str:
    """The text that is embedded and BM25-indexed for a chunk: its heading path, then the text. The path is
    always there, even when the text starts with the same heading: heading words are the strongest evidence of
    what a passage is about, and counting them twice is what a heading-weighted field (BM25F) would do."""
    path = heading_path(title, section)
    return f"{path}\n{text}" if path else text


@dataclass(frozen=True)
class SearchHit:
    """One search result. `score` is in [0, 1] and comparable across queries, so the agent can use it
    as a "nothing relevant" threshold (RELEVANCE_THRESHOLD)."""

    rank: int
    chunk_id: str
    title: str
    url: str
    score: float
    text: str
    source: str = ""
    section: str = ""

    @property
    def snippet(self) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= 300 else flat[:297].rsplit(" ", 1)[0] + "…"
