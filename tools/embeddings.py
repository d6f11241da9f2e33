"""The embedding model, loaded once per process from a local path (nothing is downloaded)."""

from __future__ import annotations

import os
from functools import lru_cache

from langchain_huggingface import HuggingFaceEmbeddings

from settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@lru_cache(maxsize=4)
def _load(model: str, query_instruction: str) -> HuggingFaceEmbeddings:
    return HuggingFaceEmbeddings(
        model_name=model,
        encode_kwargs={"normalize_embeddings": True},
        query_encode_kwargs={"normalize_embeddings": True, "prompt": query_instruction}
        if query_instruction
        else {"normalize_embeddings": True},
    )


def get_embeddings(settings: Settings) -> HuggingFaceEmbeddings:
    """BGE models get their query instruction on queries only; MiniLM needs none."""
    return _load(settings.embedding_path, settings.query_instruction)
