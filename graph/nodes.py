"""The agent's steps. Each takes the state and the app's parts (`Deps`) and returns a partial state."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import httpx
import openai
import redis.asyncio as aioredis
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig

from graph import guard, prompts
from graph.citations import check_citations
from graph.llm import chat_model
from graph.llm_pool import LLMPool
from graph.metrics import CITATIONS_REMOVED, ESCALATION_REASONS, GUARD_CORRECTIONS, LLM_ERRORS, UNSUPPORTED_SENTENCES
from graph.state import State
from settings import Settings
from tools.injection import BLOCKED, REFUSAL, Verdict, detect_injection, leaks_system_prompt, llm_flags_injection
from tools.redis_client import connect
from tools.tickets import TicketStore

log = logging.getLogger(__name__)
_ANAPHORA = {"it", "its", "it's", "that", "this", "they", "them", "those", "these", "there", "one", "same"}


@dataclass
class Deps:
    """The parts the nodes use, built lazily so that importing the graph needs no running service."""

    settings: Settings
    _redis: aioredis.Redis | None = field(default=None, repr=False)

    @cached_property
    def knowledge_base(self) -> Any:
        from tools.retrieval import get_knowledge_base

        return get_knowledge_base(self.settings)

    @cached_property
    def tickets(self) -> TicketStore:
        url = self.settings.redis_url or "redis://127.0.0.1:6379/0"
        self._redis = connect(url, decode_responses=True)
        return TicketStore(self._redis)

    @cached_property
    def classifier(self) -> LLMPool:
        """The same LLM instances, asked for a one-word verdict (INJECTION_LLM_CHECK)."""
        terse = self.settings.model_copy(update={"llm_max_tokens": 3, "llm_temperature": 0.0})
        return LLMPool(self.settings.llm_base_url, lambda url: chat_model(terse, url))

    @cached_property
    def llm(self) -> LLMPool:
        return LLMPool(self.settings.llm_base_url, lambda url: chat_model(self.settings, url))


def _text(message: AnyMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


def search_query(messages: list[AnyMessage]) -> str:
    """The question, with the previous question in front when it looks like a follow-up ("how long is it
    valid?"): short or pronoun-led questions lean on context the search would otherwise lack. Costs nothing,
    unlike an LLM rewrite, which would double the time to first token on CPU."""
    questions = [_text(m) for m in messages if isinstance(m, HumanMessage)]
    question = questions[-1]
    words = [w.strip("?.,!").lower() for w in question.split()]
    if len(questions) > 1 and (len(words) <= 8 or _ANAPHORA & set(words)):
        return f"{questions[-2]} {question}"
    return question


async def retrieve(state: State, *, deps: Deps) -> dict[str, Any]:
    """Find sources for the question, or decide at once that a person must take over (no LLM call)."""
    question = _text(state["messages"][-1])
    verdict = detect_injection(question)
    if (
        not verdict.blocked
        and deps.settings.injection_llm_check
        and await llm_flags_injection(deps.classifier, question)
    ):
        verdict = Verdict(True, "llm_classifier")
    if verdict.blocked:
        BLOCKED.labels(kind=verdict.kind).inc()
        log.warning("prompt injection refused (%s): %s", verdict.kind, verdict.matches)
        return {"sources": [], "route": "refuse", "query": question}
    if state.get("escalate"):
        return {"sources": [], "route": "caller_request", "query": question}
    if guard.asks_for_person(question):
        return {"sources": [], "route": "customer_request", "query": question}
    query = search_query(state["messages"])
    knowledge_base = await asyncio.to_thread(lambda: deps.knowledge_base)  # the first load reads the model (~10 s)
    hits = await knowledge_base.asearch(query, k=deps.settings.retrieval_k)
    relevant = [hit for hit in hits if hit.score >= deps.settings.relevance_threshold]
    sources = [
        {"n": n, "title": h.title, "url": h.url, "snippet": h.snippet, "score": round(h.score, 4), "text": h.text}
        for n, h in enumerate(relevant, start=1)
    ]
    return {"sources": sources, "query": query, "route": "answer" if sources else "no_relevant_answer"}


async def answer(state: State, config: RunnableConfig, *, deps: Deps) -> dict[str, Any]:
    """Stream the LLM's answer from the sources; fall back (and offer a person) when the LLM fails."""
    settings = deps.settings
    history, question = state["messages"][:-1], _text(state["messages"][-1])
    prompt = prompts.answer_prompt(history, state.get("sources", []), question, settings.history_turns)
    message_id = f"m_{uuid.uuid4().hex}"
    public_sources = [{k: v for k, v in s.items() if k != "text"} for s in state.get("sources", [])]
    try:
        response: AIMessageChunk | None = None
        async for chunk in deps.llm.astream(prompt, config):
            response = chunk if response is None else response + chunk
    except (openai.APIError, httpx.HTTPError, TimeoutError, ConnectionError, OSError) as error:
        # before any token: every instance refused (AllInstancesDown); after: the stream broke mid-answer
        code = "llm_unavailable" if isinstance(error, openai.APIConnectionError | ConnectionError) else "llm_error"
        log.warning("LLM call failed (%s): %s", code, error)
        LLM_ERRORS.labels(code=code).inc()
        fallback = AIMessage(prompts.FALLBACK, id=message_id, response_metadata={"fallback": True})
        return {"messages": [fallback], "failed": code, "route": "answer", "correction": None}
    raw = _text(response) if response is not None else ""
    if leaks_system_prompt(raw, prompts.SYSTEM):  # the output check: never echo the instructions
        BLOCKED.labels(kind="system_prompt_echo").inc()
        refusal = AIMessage(REFUSAL, id=message_id, response_metadata={"sources": []})
        return {"messages": [refusal], "failed": None, "route": "answer", "correction": REFUSAL}
    route = "model_unsure" if guard.model_is_unsure(raw) else "answer"
    text, corrected = guard.remove_false_promises(raw)
    if corrected:
        GUARD_CORRECTIONS.inc()
    citations = check_citations(text, state.get("sources", []))
    CITATIONS_REMOVED.inc(citations.removed_markers)
    if citations.unsupported:
        UNSUPPORTED_SENTENCES.inc(len(citations.unsupported))
        log.info("answer %s has sentences its sources do not back: %s", message_id, citations.unsupported)
    stored = citations.text + (f"\n\n{guard.CORRECTION}" if corrected and route == "answer" else "")
    meta = {"sources": public_sources, "unsupported": citations.unsupported}
    message = AIMessage(stored, id=message_id, response_metadata=meta)
    return {
        "messages": [message],
        "failed": None,
        "route": route,
        "correction": guard.CORRECTION if corrected and route == "answer" else None,
    }


def transcript(messages: list[AnyMessage]) -> list[dict[str, Any]]:
    """The whole stored conversation, as a ticket keeps it."""
    entries = []
    for message in messages:
        if isinstance(message, HumanMessage | AIMessage):
            meta = getattr(message, "response_metadata", {}) or {}
            entries.append(
                {
                    "role": "user" if isinstance(message, HumanMessage) else "assistant",
                    "content": _text(message),
                    "at": meta.get("at"),
                    "interrupted": bool(meta.get("interrupted")),
                }
            )
    return entries


def shown_sources(messages: list[AnyMessage], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every source the customer was shown in this conversation, once each, numbered in order."""
    seen: dict[str, dict[str, Any]] = {}
    for message in messages:
        for source in (getattr(message, "response_metadata", {}) or {}).get("sources", []):
            seen.setdefault(source["url"], source)
    for source in current:
        seen.setdefault(source["url"], source)
    return [
        {"n": n, "title": s["title"], "url": s["url"], "snippet": s.get("snippet", "")}
        for n, s in enumerate(seen.values(), 1)
    ]


async def escalate(state: State, config: RunnableConfig, *, deps: Deps) -> dict[str, Any]:
    """Open (or add to) the session's ticket and tell the customer its id."""
    reason = state.get("route") or "caller_request"
    session_id = config["configurable"]["thread_id"]
    started = time.perf_counter()
    ticket, created = await deps.tickets.open_or_update(
        session_id,
        reason=reason,
        transcript=transcript(state["messages"]),
        sources=shown_sources(state["messages"], state.get("sources", [])),
    )
    ESCALATION_REASONS.labels(reason=reason).inc()
    log.info(
        "ticket %s %s for %s (%.0f ms)",
        ticket.ticket_id,
        "opened" if created else "updated",
        reason,
        (time.perf_counter() - started) * 1000,
    )
    text = prompts.escalation_text(ticket.ticket_id, reason, created)
    meta = {"ticket_id": ticket.ticket_id, "escalation_reason": reason, "at": datetime.now(UTC).isoformat()}
    return {
        "messages": [AIMessage(text, id=f"m_{uuid.uuid4().hex}", response_metadata=meta)],
        "ticket_id": ticket.ticket_id,
        "escalate": False,
    }


async def refuse(state: State) -> dict[str, Any]:
    """A polite refusal of a prompt-injection attempt; no LLM call, no ticket."""
    return {"messages": [AIMessage(REFUSAL, id=f"m_{uuid.uuid4().hex}", response_metadata={"refused": True})]}


def after_retrieve(state: State) -> str:
    route = state.get("route")
    return route if route in ("answer", "refuse") else "escalate"


def after_answer(state: State) -> str:
    return "escalate" if state.get("route") == "model_unsure" else "__end__"
