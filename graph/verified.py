"""The `verified` step: between guard_input and retrieve, a question that matches a verified answer
(tools/verified.py) gets that answer streamed as it is — its sources, its text in small pieces, no LLM call —
marked `verified` (the answer's id) in the stored reply. Anything else goes on to retrieve unchanged.

A follow-up that leans on the conversation ("how do I delete it?") is not matched: its meaning is in the earlier
turns, which the variants know nothing of. A failure here (Redis, the embedding model) is logged and the
question is answered the usual way.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.runtime import Runtime

from graph.configuration import Context, context_of
from graph.nodes import _ANAPHORA, new_message_id
from graph.state import State
from graph.transcript import text_of
from tools.embeddings import get_embeddings
from tools.sources import public
from tools.verified import Candidate, Matcher, VerifiedStore

log = logging.getLogger(__name__)
PIECE_WORDS = 3  # words per `token` event
PACE_SECONDS = 0.01  # between pieces (~300 words/s): the page shows it streaming, the first piece goes at once


def leans_on_context(messages: list[AnyMessage]) -> bool:
    """A follow-up whose words point back into the conversation."""
    if sum(isinstance(m, HumanMessage) for m in messages) < 2:
        return False
    words = {w.strip("?.,!").lower() for w in text_of(messages[-1]).split()}
    return bool(_ANAPHORA & words)


def pieces(text: str, words: int = PIECE_WORDS) -> list[str]:
    """`text` in pieces of `words` words, each with the whitespace after it: joined they give `text` back."""
    parts = re.findall(r"\s*\S+\s*", text) or [text]
    return ["".join(parts[i : i + words]) for i in range(0, len(parts), words)]


async def matcher_for(context: Context) -> Matcher:
    """The app's matcher (kept on its context: the variants' vectors stay in memory), on the knowledge base's
    embedding model (loaded once, through the knowledge base, so that no second copy is ever loaded beside it)."""
    if context.verified_matcher is None:
        try:
            await context.knowledge_base()  # loads the model under the context's lock
        except Exception as error:  # Chroma down: the model itself was loaded before the collection was asked for
            log.warning("knowledge base not loaded for verified answers: %s", error)
        settings = context.settings
        embeddings = await asyncio.to_thread(get_embeddings, settings)  # loaded already, unless that failed
        context.verified_matcher = Matcher(
            VerifiedStore(context.redis),
            embeddings.embed_documents,
            min_similarity=settings.verified_min_similarity,
            min_overlap=settings.verified_min_overlap,
        )
    return context.verified_matcher


def _sources(match: Candidate) -> list[dict[str, Any]]:
    """The answer's sources as a turn keeps them (numbered; `score` is the match's similarity, no text)."""
    return [
        {"n": n, "title": s.title, "url": s.url, "snippet": "", "score": round(match.similarity, 4), "text": ""}
        for n, s in enumerate(match.answer.sources, start=1)
    ]


async def verified(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Stream the matching verified answer, or go on to retrieve."""
    context, write = context_of(runtime), runtime.stream_writer
    messages = state["messages"]
    if leans_on_context(messages):
        return {"next_step": "retrieve"}
    try:
        match = await (await matcher_for(context)).match(text_of(messages[-1]))
    except Exception as error:
        log.warning("verified answers unavailable, answering the usual way: %s", error)
        match = None
    if match is None:
        return {"next_step": "retrieve"}
    sources = _sources(match)
    shown = public(sources)
    write({"event": "sources", "sources": shown})
    for n, piece in enumerate(pieces(match.answer.answer)):
        if n:
            await asyncio.sleep(PACE_SECONDS)
        write({"event": "token", "text": piece})
    meta = {"sources": shown, "at": datetime.now(UTC).isoformat(), "verified": match.answer.id}
    reply = AIMessage(match.answer.answer, id=new_message_id(), response_metadata=meta)
    return {"messages": [reply], "sources": sources, "next_step": "end"}
