"""Optional cross-encoder reranking of the fused candidates (RERANKER_MODEL, off by default).

A cross-encoder reads query and passage together, which orders candidates better than either retriever alone,
at ~10-50 ms per candidate on CPU. No cross-encoder installs offline from PyPI, so this path is untested here:
it loads `sentence_transformers.CrossEncoder` from a local path (or a hub name, which needs the model in the
local Hugging Face cache because HF_HUB_OFFLINE=1) only when RERANKER_MODEL is set.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

RERANK_DEPTH = 20  # fused candidates handed to the cross-encoder; the rest keep their fused order


@lru_cache(maxsize=2)
def _load(model: str) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(model, device="cpu")


def rerank(model: str, query: str, passages: list[str]) -> list[int]:
    """Indices of `passages`, best first, by cross-encoder relevance to `query`."""
    if not passages:
        return []
    scores = _load(model).predict([(query, passage) for passage in passages], show_progress_bar=False)
    return sorted(range(len(passages)), key=lambda index: -float(scores[index]))
