"""The knowledge-base store: a Chroma collection reached safely.

Measured: a second process opening the same Chroma folder reads stale data, and two writers damage it
for good. So either a Chroma server owns the folder (`CHROMA_URL`, what the launcher runs), or this process
holds an exclusive lock on the folder and any other process gets a clear error instead of a corruption.
"""

from __future__ import annotations

import fcntl
import os
from functools import lru_cache
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings

from settings import Settings

COLLECTION_CONFIGURATION = {"hnsw": {"space": "cosine"}}
_locks: dict[Path, IO[str]] = {}


class StoreLockedError(RuntimeError):
    """Another process owns the Chroma folder."""


def _lock_folder(path: Path) -> None:
    path = path.resolve()
    if path in _locks:
        return
    path.mkdir(parents=True, exist_ok=True)
    handle = (path / ".owner.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise StoreLockedError(
            f"the Chroma folder {path} is open in another process (pid {owner}); two processes on one folder "
            f"read stale data or corrupt it. Run a Chroma server on it (`chroma run --path {path}`) and set "
            f"CHROMA_URL for every process (the launcher does this), or stop the other process first."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _locks[path] = handle


@lru_cache(maxsize=8)
def _client(chroma_url: str | None, chroma_dir: Path) -> ClientAPI:
    if chroma_url:
        parsed = urlparse(chroma_url)
        return chromadb.HttpClient(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=ChromaSettings(anonymized_telemetry=False),  # one per client: HttpClient writes its port in
        )
    _lock_folder(chroma_dir)
    return chromadb.PersistentClient(path=str(chroma_dir), settings=ChromaSettings(anonymized_telemetry=False))


def get_client(settings: Settings) -> ClientAPI:
    return _client(settings.chroma_url, settings.chroma_dir.resolve())


def get_collection(settings: Settings, name: str | None = None) -> Collection:
    """The raw collection, created with cosine distance; `embedding_function=None` so Chroma never
    attaches (and downloads) its own default model."""
    return get_client(settings).get_or_create_collection(
        name or settings.kb_collection,
        configuration=COLLECTION_CONFIGURATION,  # type: ignore[arg-type]
        embedding_function=None,
    )
