"""Files → chunks → embeddings → Chroma, incrementally (docs/ingestion.md).

What makes a re-run cheap and a crash harmless:
- every chunk records `file_hash` (the file's bytes + the splitting parameters) and `file_chunks` (how many
  chunks the file has), read back with one paged `collection.get`; a file whose stored chunks all carry its
  current hash and are all there is skipped without being parsed or embedded;
- chunk ids are stable (source + URL + section + text), so a changed file only embeds the chunks that are new;
- a changed file's new chunks are written before its stale ones are deleted, so an interrupted run leaves a
  usable index and the next run finishes the job;
- after any change the collection's `kb_version` metadata is bumped, so searching processes rebuild BM25.

What never reaches the index: a document whose front matter `url:` is no web address (skipped), and a chunk
whose title or prose carries injected instructions (ingest/scan.py) — quarantined in `<collection>-quarantine`
(tools/quarantine.py), listed in the summary and the console, and not counted in `file_chunks`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chromadb.api.models.Collection import Collection
from tqdm import tqdm

from ingest.clean import BadDocument, check_base_url, resolve_url
from ingest.loaders import SUFFIXES, Loaded, Unreadable, check_size, load
from ingest.scan import excerpt, scan_chunk
from ingest.splitter import split_words
from settings import Settings
from tools import quarantine as quarantine_store
from tools.documents import INDEX_VERSION, Chunk, index_text
from tools.embeddings import get_embeddings
from tools.quarantine import Quarantined
from tools.store import get_collection

log = logging.getLogger(__name__)

EMBED_BATCH = 256  # chunks embedded and written per call: larger batches let the model sort by length (less padding)
PAGE = 5000  # rows per collection.get()/delete() call (Chroma's limit is 5 461)
SPLITTER_VERSION = "4"  # bump when the splitting changes, so every file is re-chunked once (4: hidden text out)

Metadata = dict[str, Any]


class StoreUnavailable(RuntimeError):
    """The Chroma store cannot be reached or opened."""


@dataclass
class IngestReport:
    added: int = 0  # chunks embedded for files new to the index
    updated: int = 0  # chunks embedded for files that changed
    unchanged: int = 0  # chunks kept as they were (not embedded again)
    deleted: int = 0  # stale chunks removed (changed or pruned files)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    files: int = 0  # supported files found under the paths
    seconds: float = 0.0
    embedded: int = 0  # texts sent to the embedding model (= added + updated)
    quarantined: list[Quarantined] = field(default_factory=list)  # chunks of the seen files kept out of the index

    def __str__(self) -> str:
        return (
            f"ingest: {self.files} files seen, {len(self.skipped)} skipped; chunks: {self.added} added, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.deleted} deleted, "
            f"{len(self.quarantined)} quarantined; {self.seconds:.1f} s"
        )


@dataclass
class CheckReport(IngestReport):
    """What `check` found: every chunk of the files read, none written."""

    chunks: int = 0

    def __str__(self) -> str:
        return (
            f"check: {self.files} files seen, {len(self.skipped)} skipped; chunks: {self.chunks} read, "
            f"{len(self.quarantined)} would be quarantined; nothing written; {self.seconds:.1f} s"
        )


@dataclass
class _FileJob:
    """One changed or new file: its chunks still to write, then what to finish once they are in."""

    new_file: bool
    waiting: int  # chunks of this file not yet written
    kept: list[tuple[str, Metadata]]  # existing ids whose metadata is refreshed (no embedding)
    stale: list[str]  # ids removed once the new chunks are in


@contextmanager
def _store(action: str) -> Iterator[None]:
    """Turn any failure of a store call into StoreUnavailable, so the CLI prints one line instead of a traceback."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as error:
        raise StoreUnavailable(f"the knowledge base failed while {action}: {type(error).__name__}: {error}") from error


def discover(paths: list[Path], report: IngestReport) -> list[tuple[Path, Path]]:
    """(file, root) pairs, each file once: folders walked recursively (hidden entries and unsupported file types
    ignored); a named file of an unsupported type or a missing path is reported as skipped."""
    found: dict[Path, Path] = {}
    for path in paths:
        if path.is_file():
            if path.suffix.lower() in SUFFIXES:
                found.setdefault(path.resolve(), path.parent)
            else:
                report.skipped.append((str(path), f"unsupported file type {path.suffix or '(none)'}"))
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
                if not hidden and file.suffix.lower() in SUFFIXES and file.is_file():
                    found.setdefault(file.resolve(), path)
        else:
            report.skipped.append((str(path), "no such file or folder"))
    return [(file, root.resolve()) for file, root in found.items()]


def page_url(loaded: Loaded, file: Path, root: Path, base_url: str | None, anchor: str) -> str:
    """Front matter `url` (kept as written when it has a '#'), else base URL + path relative to the PATH
    argument's folder, else the file's absolute file:// URI; plus `#anchor` of the section."""
    if loaded.url and "#" in loaded.url:
        return loaded.url
    page = loaded.url or (f"{base_url.rstrip('/')}/{file.relative_to(root).as_posix()}" if base_url else file.as_uri())
    return f"{page}#{anchor}" if anchor else page


def why_skipped(file: Path, error: Exception) -> str:
    """The line the summary prints for a file that cannot be ingested."""
    if isinstance(error, Unreadable | BadDocument):
        return str(error)
    if isinstance(error, OSError):
        return f"cannot read: {error.strerror or error}"
    log.debug("cannot parse %s", file, exc_info=True)
    return f"cannot parse: {type(error).__name__}: {error}"


def checked_url(loaded: Loaded, base_url: str | None) -> Loaded:
    """The front matter `url:` made a web address (a relative one against --base-url); BadDocument if it is none."""
    return loaded if loaded.url is None else replace(loaded, url=resolve_url(loaded.url, base_url))


def chunk_file(file: Path, root: Path, loaded: Loaded, file_hash: str, base_url: str | None, words: int) -> list[Chunk]:
    """Sections split into pieces of ~`words` words; a passage repeated in one section is kept once."""
    chunks: dict[str, Chunk] = {}
    for section in loaded.sections:
        url = page_url(loaded, file, root, base_url, section.anchor)
        for piece in split_words(section.text, words):
            chunk = Chunk(piece, loaded.title, url, str(file), section.heading_path, file_hash, len(chunks))
            chunks.setdefault(chunk.chunk_id, chunk)
    return list(chunks.values())


def file_hash(file: Path, settings: Settings, base_url: str | None) -> str:
    """Changes when the file or anything that shapes its chunks changes."""
    with file.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    shape = f"|words={settings.chunk_words}|splitter={SPLITTER_VERSION}|index={INDEX_VERSION}|base={base_url or ''}"
    digest.update(shape.encode())
    return digest.hexdigest()[:32]


def read_state(collection: Collection) -> dict[str, dict[str, Metadata]]:
    """source → {chunk id: metadata} for every row: one paged `get`, not one query per file."""
    rows: dict[str, dict[str, Metadata]] = {}
    offset = 0
    with _store("reading the existing chunks"):
        while True:
            page = collection.get(include=["metadatas"], limit=PAGE, offset=offset)  # type: ignore[list-item]
            for chunk_id, metadata in zip(page["ids"], page["metadatas"] or [], strict=False):
                metadata = dict(metadata or {})
                rows.setdefault(str(metadata.get("source", "")), {})[chunk_id] = metadata
            if len(page["ids"]) < PAGE:
                return rows
            offset += PAGE


def is_complete(old: dict[str, Metadata], current_hash: str, held: dict[str, Quarantined] | None = None) -> bool:
    """All of the file's chunks are stored (indexed, or quarantined), from this very version of it."""
    held = held or {}
    return (
        bool(old or held)
        and all(meta.get("file_hash") == current_hash and meta.get("file_chunks") == len(old) for meta in old.values())
        and all(record.file_hash == current_hash for record in held.values())
    )


def _metadata(chunk: Chunk, total: int) -> Metadata:
    return {**chunk.metadata(), "file_chunks": total}


def quarantine_injected(chunks: list[Chunk], kept: dict[str, Quarantined]) -> tuple[list[Chunk], list[Quarantined]]:
    """The chunks to index, and the records of those that carry injected instructions (a chunk quarantined
    before keeps its first date)."""
    clean: list[Chunk] = []
    held: list[Quarantined] = []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for chunk in chunks:
        finding = scan_chunk(chunk.title, chunk.text)
        if finding is None:
            clean.append(chunk)
            continue
        earlier = kept.get(chunk.chunk_id)
        held.append(
            Quarantined(
                chunk_id=chunk.chunk_id,
                source=chunk.source,
                url=chunk.url,
                title=chunk.title,
                section=chunk.section,
                kind=finding.kind,
                reason=finding.reason,
                excerpt=excerpt(chunk.title if finding.where == "title" else chunk.text, finding.match),
                file_hash=chunk.file_hash,
                quarantined_at=earlier.quarantined_at if earlier else now,
            )
        )
    return clean, held


class _Writer:
    """Embeds and writes chunks in batches of EMBED_BATCH across files; finishes a file once all its chunks
    are in (refresh kept rows' metadata, then delete stale ids)."""

    def __init__(self, collection: Collection, settings: Settings, report: IngestReport) -> None:
        self.collection, self.settings, self.report = collection, settings, report
        self.queue: list[tuple[Chunk, Metadata, _FileJob]] = []
        self.open_jobs: list[_FileJob] = []
        self.changed = False

    def add(self, job: _FileJob, chunks: list[tuple[Chunk, Metadata]]) -> None:
        self.open_jobs.append(job)
        self.queue.extend((chunk, metadata, job) for chunk, metadata in chunks)
        while len(self.queue) >= EMBED_BATCH:
            self._write(self.queue[:EMBED_BATCH])
            del self.queue[:EMBED_BATCH]
        self._finish_done()

    def flush(self) -> None:
        if self.queue:
            self._write(self.queue)
            self.queue = []
        self._finish_done()

    def delete(self, ids: list[str]) -> None:
        with _store("deleting stale chunks"):
            for start in range(0, len(ids), PAGE):
                self.collection.delete(ids=ids[start : start + PAGE])
        self.report.deleted += len(ids)
        self.changed = self.changed or bool(ids)

    def _write(self, batch: list[tuple[Chunk, Metadata, _FileJob]]) -> None:
        texts = [index_text(chunk.title, chunk.section, chunk.text) for chunk, _, _ in batch]
        vectors = get_embeddings(self.settings).embed_documents(texts)
        with _store("writing chunks"):
            self.collection.upsert(
                ids=[chunk.chunk_id for chunk, _, _ in batch],
                embeddings=vectors,  # type: ignore[arg-type]
                documents=[chunk.text for chunk, _, _ in batch],
                metadatas=[metadata for _, metadata, _ in batch],  # type: ignore[arg-type]
            )
        self.changed = True
        self.report.embedded += len(batch)
        for _, _, job in batch:
            job.waiting -= 1
            if job.new_file:
                self.report.added += 1
            else:
                self.report.updated += 1

    def _finish_done(self) -> None:
        for job in [job for job in self.open_jobs if job.waiting == 0]:
            if job.kept:
                with _store("updating chunk metadata"):
                    self.collection.update(ids=[i for i, _ in job.kept], metadatas=[m for _, m in job.kept])
                self.changed = True
            self.delete(job.stale)
            self.open_jobs.remove(job)


def plan_file(chunks: list[Chunk], old: dict[str, Metadata]) -> tuple[list[tuple[Chunk, Metadata]], _FileJob]:
    """Which chunks to embed (new ids, or a changed title or `index_text` version, which change the embedded
    text), which stored rows only need fresh metadata, and which are stale."""
    to_embed: list[tuple[Chunk, Metadata]] = []
    kept: list[tuple[str, Metadata]] = []
    for chunk in chunks:
        metadata = _metadata(chunk, len(chunks))
        stored = old.get(chunk.chunk_id)
        if stored is None or any(stored.get(key) != metadata[key] for key in ("title", "index_version")):
            to_embed.append((chunk, metadata))
        elif any(stored.get(key) != value for key, value in metadata.items()):
            kept.append((chunk.chunk_id, metadata))
    ids = {chunk.chunk_id for chunk in chunks}
    stale = [chunk_id for chunk_id in old if chunk_id not in ids]
    return to_embed, _FileJob(new_file=not old, waiting=len(to_embed), kept=kept, stale=stale)


def open_collection(settings: Settings, collection: str | Collection | None) -> Collection:
    """`collection` may be a name (default KB_COLLECTION) or an already opened Chroma collection."""
    if isinstance(collection, Collection):
        return collection
    try:
        return get_collection(settings, collection)
    except Exception as error:  # connection refused, folder locked, bad name: all end the run the same way
        where = settings.chroma_url or settings.chroma_dir
        raise StoreUnavailable(f"cannot open the knowledge base at {where}: {error}") from error


def bump_version(collection: Collection) -> None:
    """Tell searching processes (tools/retrieval.py) to rebuild their BM25 index. `modify` keeps the
    collection's cosine configuration; only the metadata is replaced, so the other keys are carried over."""
    with _store("bumping kb_version"):
        collection.modify(metadata={**(collection.metadata or {}), "kb_version": str(time.time_ns())})


def ingest(
    paths: list[Path],
    settings: Settings,
    *,
    base_url: str | None = None,
    collection: str | Collection | None = None,
    prune: bool = False,
    show_progress: bool = False,
) -> IngestReport:
    """Bring the collection in line with the files under `paths`. Bad files are reported in `skipped`, never
    raised; StoreUnavailable is raised when Chroma cannot be reached."""
    started = time.perf_counter()
    if settings.chunk_words < 1:
        raise ValueError(f"CHUNK_WORDS must be at least 1 (got {settings.chunk_words})")
    if base_url is not None:
        check_base_url(base_url)
    paths = [Path(path) for path in paths]
    report = IngestReport()
    store = open_collection(settings, collection)
    existing = read_state(store)
    with _store("reading the quarantine"):
        held = quarantine_store.open_quarantine(settings, store)
        quarantined = quarantine_store.by_source(held)
    files = discover(paths, report)
    report.files = len(files)
    writer = _Writer(store, settings, report)
    max_bytes = int(settings.ingest_max_file_mb * 1_000_000)
    try:
        progress = tqdm(files, desc="ingest", unit="file", disable=not show_progress)
        for file, root in progress:
            progress.set_postfix(embedded=report.embedded, refresh=False)
            old = existing.get(str(file), {})
            old_held = quarantined.get(str(file), {})
            try:
                check_size(file, max_bytes)  # before hashing: never read a huge file
                current_hash = file_hash(file, settings, base_url)
                if is_complete(old, current_hash, old_held):
                    report.unchanged += len(old)
                    report.quarantined.extend(old_held.values())
                    continue
                loaded = checked_url(load(file, max_bytes), base_url)
            except Exception as error:  # a bad file, or a parser choking on odd input: never stops the run
                report.skipped.append((str(file), why_skipped(file, error)))
                report.quarantined.extend(old_held.values())  # a file that turned bad keeps what it had
                continue
            chunks = chunk_file(file, root, loaded, current_hash, base_url, settings.chunk_words)
            chunks, records = quarantine_injected(chunks, old_held)
            with _store("writing the quarantine"):  # before the file's chunks are indexed or removed
                quarantine_store.replace(held, records, list(old_held))
            report.quarantined.extend(records)
            to_embed, job = plan_file(chunks, old)
            report.unchanged += len(chunks) - len(to_embed)
            writer.add(job, to_embed)
        writer.flush()
        if prune:
            roots = [path.resolve() for path in paths]
            seen = {str(file) for file, _ in files}
            for source, rows in existing.items():
                if source not in seen and any(Path(source).is_relative_to(root) for root in roots):
                    writer.delete(list(rows))
            gone = [
                chunk_id
                for source, records in quarantined.items()
                if source not in seen and any(Path(source).is_relative_to(root) for root in roots)
                for chunk_id in records
            ]
            with _store("pruning the quarantine"):
                quarantine_store.remove(held, gone)
    except BaseException:  # Ctrl-C or a store failure: what was written stays; searchers should still see it
        if writer.changed:
            with suppress(Exception):
                bump_version(store)
        raise
    if writer.changed:
        bump_version(store)
    report.seconds = time.perf_counter() - started
    return report


def check(paths: list[Path], settings: Settings, *, base_url: str | None = None) -> CheckReport:
    """Read, clean, chunk and scan `paths` as `ingest` would, without the knowledge base: which files would be
    skipped and which chunks quarantined (`python -m ingest --check`)."""
    started = time.perf_counter()
    if base_url is not None:
        check_base_url(base_url)
    report = CheckReport()
    files = discover([Path(path) for path in paths], report)
    report.files = len(files)
    max_bytes = int(settings.ingest_max_file_mb * 1_000_000)
    for file, root in files:
        try:
            loaded = checked_url(load(file, max_bytes), base_url)
        except Exception as error:
            report.skipped.append((str(file), why_skipped(file, error)))
            continue
        chunks = chunk_file(file, root, loaded, "", base_url, settings.chunk_words)
        report.chunks += len(chunks)
        report.quarantined.extend(quarantine_injected(chunks, {})[1])
    report.seconds = time.perf_counter() - started
    return report
