"""Verified answers: texts a support lead wrote or approved, streamed as they are (no LLM call) when a customer's
question matches one of their question variants.

Store (Redis, no expiry: curated content, not per-session data): `verified:item:<id>` (JSON), `verified:order`
(sorted set, score = creation time) and `verified:version`, a counter every change increments. Made from a
customer's turn (an answer record or a ticket), the texts pass through `tools.redact.redact` first
(api/verified.py).

Matching (docs/verified-answers.md has the measurements): a question matches a variant when the embedding
similarity (the knowledge base's model, `tools.embeddings`) is at least VERIFIED_MIN_SIMILARITY and the lexical
overlap — the share of the variant's content words (`tools.text.content_words`) the question contains — is at
least VERIFIED_MIN_OVERLAP; of the variants that pass, the most similar one wins. Question and variants are
embedded the same way (`embed_documents`): both are questions, so a query instruction (BGE) would only skew one.

Each process keeps the variants' vectors in memory and reloads them when `verified:version` moved, so an edit
made through another app process is seen by the next question here.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from tools.text import content_words, one_line, strip_controls

PREFIX = "verified"
MAX_ANSWERS = 500  # verified answers in all
MAX_VARIANTS = 20  # question variants per answer
MAX_VARIANT_CHARS = 300
MAX_ANSWER_CHARS = 4000
MAX_SOURCES = 10
MAX_TITLE_CHARS = 200
MAX_URL_CHARS = 2000
ID_PATTERN = r"^v_[0-9a-f]{16}$"

Embed = Callable[[list[str]], Sequence[Sequence[float]]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class VerifiedSource(BaseModel):
    title: str = ""
    url: str


class Origin(BaseModel):
    """Where a lead made it from: typed in, an answer (message id) or a ticket."""

    kind: Literal["manual", "message", "ticket"] = "manual"
    id: str | None = None


class VerifiedAnswer(BaseModel):
    id: str
    questions: list[str]
    answer: str
    sources: list[VerifiedSource] = Field(default_factory=list)
    enabled: bool = True
    created_at: str = Field(default_factory=_now)
    updated_at: str = Field(default_factory=_now)
    created_from: Origin = Field(default_factory=Origin)


class VerifiedProblem(ValueError):
    """Input a lead must fix; the message is the sentence to show."""


class VerifiedLimit(VerifiedProblem):
    """MAX_ANSWERS reached."""


def clean_questions(questions: Sequence[str]) -> list[str]:
    """Trimmed, de-duplicated (case-insensitively) variants; a VerifiedProblem names what is wrong."""
    kept: dict[str, str] = {}
    for question in questions:
        text = one_line(question)
        if len(text) > MAX_VARIANT_CHARS:
            raise VerifiedProblem(
                f"A question variant is {len(text)} characters long; the limit is {MAX_VARIANT_CHARS}."
            )
        if text:
            kept.setdefault(text.casefold(), text)
    if not kept:
        raise VerifiedProblem("Give at least one question variant (the questions this answer answers).")
    if len(kept) > MAX_VARIANTS:
        raise VerifiedProblem(f"{len(kept)} question variants; the limit is {MAX_VARIANTS} per answer.")
    return list(kept.values())


def clean_answer(answer: str) -> str:
    text = strip_controls(answer).strip()
    if not text:
        raise VerifiedProblem("The answer text is empty.")
    if len(text) > MAX_ANSWER_CHARS:
        raise VerifiedProblem(f"The answer is {len(text)} characters long; the limit is {MAX_ANSWER_CHARS}.")
    return text


def clean_sources(sources: Sequence[dict[str, str] | VerifiedSource]) -> list[VerifiedSource]:
    """Absolute http(s) links, each once; a missing title becomes the URL."""
    kept: dict[str, VerifiedSource] = {}
    for source in sources:
        item = source if isinstance(source, VerifiedSource) else VerifiedSource.model_validate(source)
        url, title = item.url.strip(), one_line(item.title)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_CHARS:
            raise VerifiedProblem(
                f"Source URL {url[:100]!r} is not an http:// or https:// link with a host "
                f"(at most {MAX_URL_CHARS} characters)."
            )
        if len(title) > MAX_TITLE_CHARS:
            raise VerifiedProblem(f"A source title is {len(title)} characters long; the limit is {MAX_TITLE_CHARS}.")
        kept.setdefault(url, VerifiedSource(title=title or url, url=url))
    if len(kept) > MAX_SOURCES:
        raise VerifiedProblem(f"{len(kept)} sources; the limit is {MAX_SOURCES} per answer.")
    return list(kept.values())


class VerifiedStore:
    def __init__(self, redis: aioredis.Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, answer_id: str) -> str:
        return f"{self.prefix}:item:{answer_id}"

    @property
    def _order(self) -> str:
        return f"{self.prefix}:order"

    @property
    def _version(self) -> str:
        return f"{self.prefix}:version"

    async def version(self) -> int:
        return int(await self.redis.get(self._version) or 0)

    async def list(self) -> list[VerifiedAnswer]:
        """Newest first."""
        ids = await self.redis.zrevrange(self._order, 0, -1)
        if not ids:
            return []
        raws = await self.redis.mget([self._key(i if isinstance(i, str) else i.decode()) for i in ids])
        return [VerifiedAnswer.model_validate_json(raw) for raw in raws if raw]

    async def get(self, answer_id: str) -> VerifiedAnswer | None:
        raw = await self.redis.get(self._key(answer_id))
        return VerifiedAnswer.model_validate_json(raw) if raw else None

    async def _save(self, item: VerifiedAnswer, new: bool = False) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._key(item.id), item.model_dump_json())
        if new:
            pipe.zadd(self._order, {item.id: time.time()})
        pipe.incr(self._version)
        await pipe.execute()

    async def create(
        self,
        *,
        questions: Sequence[str],
        answer: str,
        sources: Sequence[dict[str, str] | VerifiedSource] = (),
        enabled: bool = True,
        created_from: Origin | None = None,
    ) -> VerifiedAnswer:
        """A new verified answer, texts as given (api/verified.py redacts a customer's)."""
        if await self.redis.zcard(self._order) >= MAX_ANSWERS:
            raise VerifiedLimit(f"There are already {MAX_ANSWERS} verified answers (the limit); delete some first.")
        item = VerifiedAnswer(
            id=f"v_{secrets.token_hex(8)}",
            questions=clean_questions(questions),
            answer=clean_answer(answer),
            sources=clean_sources(sources),
            enabled=enabled,
            created_from=created_from or Origin(),
        )
        await self._save(item, new=True)
        return item

    async def update(
        self,
        answer_id: str,
        *,
        questions: Sequence[str] | None = None,
        answer: str | None = None,
        sources: Sequence[dict[str, str] | VerifiedSource] | None = None,
        enabled: bool | None = None,
    ) -> VerifiedAnswer | None:
        """The edited answer (None when there is no such one); fields left None stay as they are."""
        item = await self.get(answer_id)
        if item is None:
            return None
        changes: dict[str, object] = {"updated_at": _now()}
        if questions is not None:
            changes["questions"] = clean_questions(questions)
        if answer is not None:
            changes["answer"] = clean_answer(answer)
        if sources is not None:
            changes["sources"] = clean_sources(sources)
        if enabled is not None:
            changes["enabled"] = enabled
        item = item.model_copy(update=changes)
        await self._save(item)
        return item

    async def delete(self, answer_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._key(answer_id))
        pipe.zrem(self._order, answer_id)
        pipe.incr(self._version)
        deleted, *_ = await pipe.execute()
        return bool(deleted)


# -- matching ------------------------------------------------------------------------------------------------


def overlap(asked: set[str], variant: set[str]) -> float:
    """The share of the variant's content words that the question contains (0 when the variant has none)."""
    return len(asked & variant) / len(variant) if variant else 0.0


@dataclass(frozen=True)
class Candidate:
    """One variant of one verified answer, scored against a question."""

    answer: VerifiedAnswer
    question: str
    similarity: float
    overlap: float


@dataclass(frozen=True)
class Variants:
    """The enabled answers' variants as one matrix (rows normalised), with their content words."""

    answers: list[VerifiedAnswer]
    owners: list[int]  # row → index in `answers`
    texts: list[str]
    words: list[set[str]]
    vectors: np.ndarray

    @classmethod
    def of(cls, answers: list[VerifiedAnswer], vectors: dict[str, np.ndarray]) -> Variants:
        """`answers`' variants, each vector taken from `vectors` (variant text → unit vector)."""
        owners = [n for n, item in enumerate(answers) for _ in item.questions]
        texts = [question for item in answers for question in item.questions]
        matrix = np.stack([vectors[text] for text in texts]) if texts else np.zeros((0, 1), np.float32)
        return cls(answers, owners, texts, [content_words(t) for t in texts], matrix)

    def candidates(self, vector: np.ndarray, asked: set[str]) -> list[Candidate]:
        """Every variant scored, most similar first."""
        similarities = self.vectors @ vector if len(self.texts) else np.zeros(0)
        order = np.argsort(-similarities, kind="stable")
        return [
            Candidate(
                self.answers[self.owners[i]], self.texts[i], float(similarities[i]), overlap(asked, self.words[i])
            )
            for i in order
        ]


def decide(candidates: Sequence[Candidate], min_similarity: float, min_overlap: float) -> Candidate | None:
    """The most similar variant that passes both thresholds, if any."""
    passing = [c for c in candidates if c.similarity >= min_similarity and c.overlap >= min_overlap]
    return max(passing, key=lambda c: c.similarity, default=None)


def unit(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


class Matcher:
    """The best verified answer for a question, with the variants' vectors cached per process."""

    def __init__(self, store: VerifiedStore, embed: Embed, *, min_similarity: float, min_overlap: float) -> None:
        self.store = store
        self.embed = embed
        self.min_similarity = min_similarity
        self.min_overlap = min_overlap
        self._version: int | None = None
        self._variants: Variants | None = None
        self._vectors: dict[str, np.ndarray] = {}  # variant text → vector, kept across reloads
        self._lock = asyncio.Lock()

    async def variants(self) -> Variants:
        """The enabled answers' variants, reloaded when another change was made (in any process)."""
        version = await self.store.version()
        if self._variants is not None and version == self._version:
            return self._variants
        async with self._lock:
            if self._variants is None or version != self._version:
                self._variants = await self._load()
                self._version = version  # read before the items: a change made meanwhile reloads next time
        return self._variants

    async def _load(self) -> Variants:
        answers = [item for item in await self.store.list() if item.enabled]
        texts = [question for item in answers for question in item.questions]
        missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
        if missing:
            fresh = unit(await asyncio.to_thread(self.embed, missing))
            self._vectors.update(zip(missing, fresh, strict=True))
        self._vectors = {text: self._vectors[text] for text in texts}  # forget deleted variants
        return Variants.of(answers, self._vectors)

    async def candidates(self, question: str) -> list[Candidate]:
        variants = await self.variants()
        if not variants.texts:
            return []  # nothing verified (or all disabled): no embedding, one GET per question
        vector = unit(await asyncio.to_thread(self.embed, [question]))[0]
        return variants.candidates(vector, content_words(question))

    async def match(self, question: str) -> Candidate | None:
        return decide(await self.candidates(question), self.min_similarity, self.min_overlap)


def answer_json(item: VerifiedAnswer) -> dict[str, object]:
    return json.loads(item.model_dump_json())
