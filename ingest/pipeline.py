"""Files → chunks → embeddings → Chroma, incrementally.

What makes a re-run cheap and a crash harmless:
- every chunk id is stable (source + content), and each chunk records a `file_hash` of the file's bytes and the
  splitting parameters, so an unchanged file is recognised without parsing or embedding it;
- a changed file's new chunks are written before its stale ones are deleted, so an interrupted run leaves a
  usable index and the next run finishes the job;
- after any change the collection's `kb_version` metadata is bumped, so searching processes rebuild BM25.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chromadb.api.models.Collection import Collection
from tqdm import tqdm

from ingest.loaders import SUFFIXES, Loaded, Unreadable, load
from ingest.splitter import split_words
from settings import Settings
from tools.documents import Chunk, index_text
from tools.embeddings import get_embeddings
from tools.store import get_collection

log = logging.getLogger(__name__)

EMBED_BATCH = 64  # chunks embedded (and written) per call
PAGE = 5000  # rows per collection.get()/delete() call (Chroma's limit is 5 461)
SPLITTER_VERSION = "1"


class StoreUnavailable(RuntimeError):
    """The Chroma store cannot be reached or opened."""


@dataclass
class IngestReport:
    files: int = 0  # supported files looked at
    added: int = 0  # chunks embedded for files new to the index
    updated: int = 0  # chunks embedded for files that changed
    unchanged: int = 0  # chunks kept as they were
    deleted: int = 0  # stale chunks removed (changed or pruned files)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    def __str__(self) -> str:
        return (
            f"{self.files} files: {self.added} chunks added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deleted} deleted, {len(self.skipped)} files skipped, {self.seconds:.1f} s"
        )


@dataclass
class _Pending:
    """A file whose new chunks are being written; its stale ids go once they are all in."""

    chunks: list[Chunk]
    stale: list[str]
    changed: bool


def discover(paths: Iterable[Path], report: IngestReport) -> list[tuple[Path, Path]]:
    """(file, root) pairs: folders walked (hidden entries skipped), unsupported files in folders ignored."""
    found: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_file():
            if path.suffix.lower() in SUFFIXES:
                found.append((path, path.parent))
            else:
                report.skipped.append((str(path), f"unsupported file type {path.suffix or '(none)'}"))
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path).parts
                if file.is_file() and file.suffix.lower() in SUFFIXES and not any(p.startswith(".") for p in relative):
                    found.append((file, path))
        else:
            report.skipped.append((str(path), "no such file or folder"))
    return found


def _url(loaded: Loaded, file: Path, root: Path, base_url: str | None, anchor: str) -> str:
    if loaded.url and "#" in loaded.url:
        return loaded.url
    page = loaded.url or (
        f"{base_url.rstrip('/')}/{file.relative_to(root).as_posix()}" if base_url else file.resolve().as_uri()
    )
    return f"{page}#{anchor}" if anchor else page


def chunk_file(file: Path, root: Path, loaded: Loaded, file_hash: str, base_url: str | None, words: int) -> list[Chunk]:
    chunks: dict[str, Chunk] = {}  # by id: a file repeating a passage gets one row
    source = str(file.resolve())
    for section in loaded.sections:
        url = _url(loaded, file, root, base_url, section.anchor)
        for piece in split_words(section.text, words):
            chunk = Chunk(piece, loaded.title, url, source, section.heading, file_hash, len(chunks))
            chunks.setdefault(chunk.chunk_id, chunk)
    return list(chunks.values())


def _existing(collection: Collection) -> dict[str, dict[str, str]]:
    """source → {chunk id: file_hash} for every row, read page by page."""
    rows: dict[str, dict[str, str]] = {}
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        for chunk_id, metadata in zip(page["ids"], page["metadatas"] or [], strict=False):
            metadata = metadata or {}
            rows.setdefault(str(metadata.get("source", "")), {})[chunk_id] = str(metadata.get("file_hash", ""))
        if len(page["ids"]) < PAGE:
            return rows
        offset += PAGE


def _delete(collection: Collection, ids: list[str]) -> None:
    for start in range(0, len(ids), PAGE):
        collection.delete(ids=ids[start : start + PAGE])


def _flush(collection: Collection, settings: Settings, pending: list[_Pending], report: IngestReport) -> None:
    chunks = [chunk for item in pending for chunk in item.chunks]
    if chunks:
        vectors = get_embeddings(settings).embed_documents([index_text(c.title, c.section, c.text) for c in chunks])
        collection.upsert(
            ids=[c.chunk_id for c in chunks],
            embeddings=vectors,  # type: ignore[arg-type]
            documents=[c.text for c in chunks],
            metadatas=[c.metadata() for c in chunks],  # type: ignore[misc]
        )
    for item in pending:
        if item.changed:
            report.updated += len(item.chunks)
        else:
            report.added += len(item.chunks)
        _delete(collection, item.stale)
        report.deleted += len(item.stale)
    pending.clear()


def open_collection(settings: Settings, collection: str | Collection | None) -> Collection:
    if isinstance(collection, Collection):
        return collection
    try:
        return get_collection(settings, collection)
    except Exception as error:  # connection refused, folder locked, bad name: all end the run the same way
        where = settings.chroma_url or settings.chroma_dir
        raise StoreUnavailable(f"cannot open the knowledge base at {where}: {error}") from error


def ingest(
    paths: list[Path],
    settings: Settings,
    *,
    base_url: str | None = None,
    collection: str | Collection | None = None,
    prune: bool = False,
    show_progress: bool = False,
) -> IngestReport:
    """Bring the collection in line with the files under `paths`; see the module docstring."""
    started = time.perf_counter()
    report = IngestReport()
    store = open_collection(settings, collection)
    existing = _existing(store)
    files = discover(paths, report)
    report.files = len(files)
    seen: set[str] = set()
    pending: list[_Pending] = []
    params = f"|words={settings.chunk_words}|splitter={SPLITTER_VERSION}|base={base_url or ''}"
    changed = False
    try:
        for file, root in tqdm(files, desc="ingest", unit="file", disable=not show_progress):
            source = str(file.resolve())
            seen.add(source)
            try:
                raw_hash = hashlib.sha256(file.read_bytes()).hexdigest()
            except OSError as error:
                report.skipped.append((str(file), f"cannot read: {error.strerror}"))
                continue
            file_hash = hashlib.sha256((raw_hash + params).encode()).hexdigest()[:32]
            old = existing.get(source, {})
            if old and all(h == file_hash for h in old.values()):
                report.unchanged += len(old)
                continue
            try:
                loaded = load(file, int(settings.ingest_max_file_mb * 1e6))
            except Unreadable as error:
                report.skipped.append((str(file), str(error)))
                continue
            chunks = chunk_file(file, root, loaded, file_hash, base_url, settings.chunk_words)
            new = [c for c in chunks if c.chunk_id not in old]
            report.unchanged += len(chunks) - len(new)
            stale = [chunk_id for chunk_id in old if chunk_id not in {c.chunk_id for c in chunks}]
            pending.append(_Pending(new, stale, changed=bool(old)))
            changed = True
            if sum(len(item.chunks) for item in pending) >= EMBED_BATCH:
                _flush(store, settings, pending, report)
        _flush(store, settings, pending, report)
        if prune:
            roots = [str(p.resolve()) for p in paths if p.exists()]
            gone = [s for s in existing if s not in seen and any(s == r or s.startswith(r + "/") for r in roots)]
            for source in gone:
                _delete(store, list(existing[source]))
                report.deleted += len(existing[source])
            changed = changed or bool(gone)
    finally:
        if changed:
            store.modify(metadata={**(store.metadata or {}), "kb_version": str(time.time_ns())})
        report.seconds = time.perf_counter() - started
    return report
