"""Quarantined chunks: written by ingestion instead of indexing them, listed for support leads.

They live beside the knowledge base, in the Chroma collection `<KB_COLLECTION>-quarantine` (one row per chunk,
id = the chunk's id), so ingestion needs nothing it did not need before and every app process sees the same
list. The rows carry a constant one-number vector: they are records, never searched, and no text of theirs is
ever embedded or retrieved (docs/ingestion.md#quarantine).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError

from settings import Settings
from tools.store import get_client, get_collection

SUFFIX = "-quarantine"
PAGE = 5000  # rows per get/delete call (Chroma's limit is 5 461)
_VECTOR = [1.0]


@dataclass(frozen=True)
class Quarantined:
    chunk_id: str
    source: str  # the file's absolute path
    url: str
    title: str
    section: str
    kind: str  # the detector's kind, e.g. indirect_injection
    reason: str  # one line a person can read: kind, where, what matched
    excerpt: str  # a short piece of the chunk around what matched
    file_hash: str
    quarantined_at: str  # ISO 8601, UTC


def collection_name(kb_collection: str) -> str:
    return f"{kb_collection}{SUFFIX}"


def open_quarantine(settings: Settings, kb: Collection | str | None = None) -> Collection:
    """The quarantine beside `kb` (a collection or its name; default KB_COLLECTION), on the same Chroma."""
    name = kb.name if isinstance(kb, Collection) else kb or settings.kb_collection
    return get_collection(settings, collection_name(name))


def by_source(quarantine: Collection) -> dict[str, dict[str, Quarantined]]:
    """source → {chunk id: record} for every quarantined chunk, in one paged read."""
    found: dict[str, dict[str, Quarantined]] = {}
    names = Quarantined.__dataclass_fields__
    for chunk_id, metadata in _rows(quarantine):
        record = Quarantined(**{name: str(metadata.get(name, "")) for name in names})
        found.setdefault(record.source, {})[chunk_id] = record
    return found


def replace(quarantine: Collection, records: list[Quarantined], old_ids: list[str]) -> None:
    """Make `records` the quarantined chunks of a file read again: new rows in, its other rows out."""
    if records:
        quarantine.upsert(
            ids=[record.chunk_id for record in records],
            embeddings=[_VECTOR] * len(records),  # type: ignore[arg-type]
            documents=[record.excerpt for record in records],
            metadatas=[asdict(record) for record in records],  # type: ignore[misc]
        )
    stale = sorted(set(old_ids) - {record.chunk_id for record in records})
    remove(quarantine, stale)


def remove(quarantine: Collection, ids: list[str]) -> None:
    for start in range(0, len(ids), PAGE):
        quarantine.delete(ids=ids[start : start + PAGE])


def list_quarantined(settings: Settings, limit: int = 500) -> list[dict[str, Any]]:
    """The quarantined chunks, newest first (what the console lists)."""
    try:  # a read never creates the collection
        name = collection_name(settings.kb_collection)
        quarantine = get_client(settings).get_collection(name, embedding_function=None)
    except NotFoundError:
        return []  # nothing was ever quarantined
    rows = [metadata for _, metadata in _rows(quarantine)]
    rows.sort(key=lambda row: (str(row.get("quarantined_at", "")), str(row.get("chunk_id", ""))), reverse=True)
    return rows[:limit]


def _rows(quarantine: Collection) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    offset = 0
    while True:
        page = quarantine.get(include=["metadatas"], limit=PAGE, offset=offset)  # type: ignore[list-item]
        rows.extend((i, dict(m or {})) for i, m in zip(page["ids"], page["metadatas"] or [], strict=False))
        if len(page["ids"]) < PAGE:
            return rows
        offset += PAGE
