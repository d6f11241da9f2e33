"""What a source is: the internal record a turn keeps (with the chunk's text, for the prompt) and the public view
every surface shows (the chat's `sources` event, history, tickets, the answer record, the log).

The public view is the one projection of a source: nothing outside the graph ever sees `text` or `score`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from typing_extensions import TypedDict

from tools.documents import SearchHit
from tools.text import content_words, names

PUBLIC_FIELDS = ("n", "title", "url", "snippet")


class PublicSource(TypedDict):
    n: int
    title: str
    url: str
    snippet: str


class Source(PublicSource):
    score: float
    text: str


NEAR_MISS = 0.10  # a hit this far below the threshold still counts when it contains the question's words
COVERAGE = 0.6  # … this share of them


def coverage(query: str, text: str) -> float:
    """The share of the question's content words that occur in `text` (case-insensitive, whole words)."""
    asked = content_words(query)
    return len(asked & content_words(text)) / len(asked) if asked else 0.0


def unknown_names(question: str, knows: Callable[[str], bool]) -> list[str]:
    """The names in the question (tools/text.py `names`: a product, company, place or code) that the documentation
    never mentions. Asked about Twilio, Vodafone or error 0x80070643, docs that never name them cannot answer,
    however close their other words come ("send an SMS with the … API from Python")."""
    return [name for name in names(question) if not knows(name)]


def worth_showing(
    hits: Iterable[SearchHit],
    threshold: float,
    query: str = "",
    *,
    question: str | None = None,
    knows: Callable[[str], bool] | None = None,
) -> list[SearchHit]:
    """The hits the agent answers from; none means "the documentation has nothing on this" (a person is offered).

    Three kinds of evidence: the fused score; for a hit just under the threshold, whether it contains most of the
    question's words ("change the port" on the page that documents `PORT`); and, given `knows`, whether the
    question (the customer's last message, `query` when not given) names something the documentation never
    mentions — then nothing is shown. One rule, shared by the agent and bench/relevance_eval.py."""
    if knows is not None and unknown_names(query if question is None else question, knows):
        return []
    return [
        hit
        for hit in hits
        if hit.score >= threshold
        or (query and hit.score >= threshold - NEAR_MISS and coverage(query, f"{hit.title} {hit.text}") >= COVERAGE)
    ]


def page_of(url: str) -> str:
    return url.split("#", 1)[0]


def from_hits(hits: Iterable[SearchHit]) -> list[Source]:
    """One source per page, numbered from 1 in rank order (the numbers the model cites as [n]): a page's
    best section leads — its URL, anchor and score — and its other hit sections follow in its text, so the
    customer sees each page once and the prompt carries no page twice."""
    pages: dict[str, list[SearchHit]] = {}
    for hit in hits:
        pages.setdefault(page_of(hit.url), []).append(hit)
    sources = []
    for n, group in enumerate(pages.values(), start=1):
        best = group[0]
        text = "\n…\n".join(h.text for h in group)
        sources.append(
            Source(n=n, title=best.title, url=best.url, snippet=best.snippet, score=round(best.score, 4), text=text)
        )
    return sources


def public(sources: Iterable[dict[str, Any]]) -> list[PublicSource]:
    return [PublicSource(**{key: source.get(key, "") for key in PUBLIC_FIELDS}) for source in sources]  # type: ignore[typeddict-item]


def best_score(sources: Iterable[dict[str, Any]]) -> float | None:
    return max((float(s.get("score", 0)) for s in sources), default=None)


def all_shown(
    earlier: Iterable[Iterable[dict[str, Any]]], current: Iterable[dict[str, Any]] = ()
) -> list[PublicSource]:
    """Every source a conversation showed, once per URL, renumbered in order (what a ticket lists)."""
    seen: dict[str, dict[str, Any]] = {}
    for group in [*earlier, current]:
        for source in group:
            seen.setdefault(source["url"], source)
    return [PublicSource(**(public([s])[0] | {"n": n})) for n, s in enumerate(seen.values(), start=1)]  # type: ignore[typeddict-item]
