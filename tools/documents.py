"""What a knowledge-base chunk is, shared by ingestion (which writes them) and retrieval (which reads them).

Chroma stores, per chunk: id = `chunk_id`, document = the chunk's text as shown to people, metadata =
`Chunk.metadata()`. The embedding is computed on `index_text()`, which adds the title and section so that
a chunk that only says "It expires after 30 minutes" still matches "password reset link".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    text: str
    title: str
    url: str
    source: str
    section: str = ""
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
        }


def index_text(title: str, section: str, text: str) -> str:
    """The text that is embedded and BM25-indexed for a chunk."""
    heading = " — ".join(part for part in (title, section) if part and part not in text[:200])
    return f"{heading}\n{text}" if heading else text


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
