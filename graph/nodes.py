"""The agent's steps. Each reads the state and the run's context (graph/configuration.py) and returns a partial
state; what the customer sees — sources, answer text, a ticket, an error — it writes to LangGraph's custom
stream as it happens (`{"event": …}` dicts, relayed by the API as Server-Sent Events)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.runtime import Runtime

from graph import guard, live, prompts
from graph.answer_check import AnswerCheck
from graph.citations import adds_from_sources, check_citations, grounding
from graph.configuration import Context, context_of
from graph.state import State
from graph.transcript import shown_sources, text_of, transcript
from metrics import ESCALATION_REASONS, INJECTION_BLOCKED, LLM_ERRORS, OUTPUT_CHECKS, UNSUPPORTED_SENTENCES
from tools.injection import REFUSAL, Verdict, detect_injection, llm_flags_injection, sanitize_input
from tools.redact import redact
from tools.sources import from_hits, public, worth_showing

log = logging.getLogger(__name__)
# A stream cut mid-answer raises the HTTP library's own error: httpx's, or httpx2's in the OpenAI SDK's newer releases.
HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError,)
with contextlib.suppress(ImportError):
    import httpx2

    HTTP_ERRORS += (httpx2.HTTPError,)
LLM_FAILURES = (openai.APIError, *HTTP_ERRORS, TimeoutError, ConnectionError, OSError)
_ANAPHORA = {"it", "its", "it's", "that", "this", "they", "them", "those", "these", "there", "one", "same"}


def new_message_id() -> str:
    return f"m_{uuid.uuid4().hex}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _token(text: str) -> dict[str, Any]:
    return {"event": "token", "text": text}


def search_query(messages: list[AnyMessage]) -> str:
    """The question, with the previous question in front when it looks like a follow-up ("how long is it
    valid?"): short or pronoun-led questions lean on context the search would otherwise lack. Costs nothing,
    unlike an LLM rewrite, which would double the time to first token on CPU."""
    questions = [text_of(m) for m in messages if isinstance(m, HumanMessage)]
    question = questions[-1]
    words = [w.strip("?.,!").lower() for w in question.split()]
    if len(questions) > 1 and (len(words) <= 8 or _ANAPHORA & set(words)):
        return f"{questions[-2]} {question}"
    return question


async def guard_input(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict[str, Any]:
    """Clean the new message (the one cleaning every store keeps) and decide whether it needs the LLM at all:
    while a support lead holds the conversation it goes to them (graph/live.py); an injection attempt is refused,
    a request for a person escalates; anything else is searched."""
    context = context_of(runtime)
    message = state["messages"][-1]
    text = sanitize_input(text_of(message))
    cleaned = HumanMessage(text, id=message.id, response_metadata={"at": _now(), **(message.response_metadata or {})})
    turn = {
        "messages": [cleaned],
        "query": text,
        "sources": [],
        "failed": None,
        "ticket_id": None,
        "escalate": False,
        "offered": None,  # an offer of a person holds for the next message only
        "live": False,
    }
    if await live.held_by_lead(context, config):  # before any check that may ask the LLM
        return turn | {"next_step": "live", "escalation_reason": None}
    verdict = detect_injection(text)
    if (
        not verdict.blocked
        and context.settings.injection_llm_check
        and await llm_flags_injection(context.classifier, text)
    ):
        verdict = Verdict(True, "llm_classifier")
    if verdict.blocked:
        INJECTION_BLOCKED.labels(kind=verdict.kind).inc()
        log.warning("prompt injection refused (%s): %s", verdict.kind, [redact(m) for m in verdict.matches])
        return turn | {"next_step": "refuse", "escalation_reason": None}
    if state.get("escalate") or guard.asks_for_person(text):
        reason = "caller_request" if state.get("escalate") else "customer_request"
        return turn | {"next_step": "escalate", "escalation_reason": reason}
    if state.get("offered") and guard.accepts_offer(text):
        return turn | {"next_step": "escalate", "escalation_reason": state["offered"]}
    if guard.small_talk(text):
        return turn | {"next_step": "small_talk", "escalation_reason": None}
    return turn | {"next_step": "verified", "escalation_reason": None}  # a verified answer, else retrieve


def _hand_over(context: Context, reason: str) -> dict[str, Any]:
    """Offer a person, or (AUTO_ESCALATE) open the ticket at once."""
    return {"next_step": "escalate" if context.settings.auto_escalate else "offer", "escalation_reason": reason}


async def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Find the sources worth showing; when none is relevant — or the question names something the documentation
    never mentions — a person is offered (no LLM call), unless the message was chat (a greeting in any language,
    a word about the bot), which gets a reply in kind."""
    context = context_of(runtime)
    query = search_query(state["messages"])
    knowledge_base = await context.knowledge_base()
    hits = await knowledge_base.asearch(query, k=context.settings.retrieval_k)
    knows = knowledge_base.knows if context.settings.relevance_names else None
    question = text_of(state["messages"][-1])
    shown = worth_showing(hits, context.settings.relevance_threshold, query, question=question, knows=knows)
    sources = from_hits(shown)
    runtime.stream_writer({"event": "sources", "sources": public(sources)})
    if not sources and guard.chat_kind(question):  # "merci !", "are you a bot?": chat
        return {"query": query, "sources": [], "next_step": "small_talk"}
    if not sources:
        return {"query": query, "sources": []} | _hand_over(context, "no_relevant_answer")
    return {"query": query, "sources": sources, "next_step": "answer"}


async def answer(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict[str, Any]:
    """Stream the model's answer through the output checks (graph/answer_check.py): the customer sees only
    text that passed them. An echo of the instructions stops the model and becomes a refusal. The session (the
    thread) picks the LLM instance, so each turn lands where the conversation's prefix is cached (graph/llm_pool.py)."""
    context, write = context_of(runtime), runtime.stream_writer
    sources = state.get("sources", [])
    history, question = state["messages"][:-1], text_of(state["messages"][-1])
    settings = context.settings
    prompt = prompts.answer_prompt(history, sources, question, settings.history_turns, settings.llm_prompt_tokens)
    check = AnswerCheck(
        sources, prompts.RULES, source_key=prompts.key_of(prompt), cite_support=settings.cite_min_support
    )
    try:
        session = (config.get("configurable") or {}).get("thread_id")
        async with contextlib.aclosing(context.llm.astream(prompt, session=session)) as stream:
            async for chunk in stream:
                if shown := check.feed(text_of(chunk)):
                    write(_token(shown))
                if check.leaked or check.copied:  # refused, or the answer is over (its source block follows)
                    break
            if tail := check.close():
                write(_token(tail))
    except LLM_FAILURES as error:
        return _llm_failed(check, error, write, sources)
    for name in check.fired:
        OUTPUT_CHECKS.labels(check=name).inc()
    if check.leaked:
        INJECTION_BLOCKED.labels(kind="system_prompt_echo").inc()
        return {"messages": [_refusal()], "next_step": "end"}
    meta = {"sources": public(sources), "at": _now(), "checks": sorted(set(check.fired))}
    return {
        "messages": [AIMessage(check.text, id=new_message_id(), response_metadata=meta)],
        "next_step": "check_answer",
    }


def _llm_failed(check: AnswerCheck, error: Exception, write: Any, sources: list[Any]) -> dict[str, Any]:
    """Keep what the customer already saw, marked interrupted; with nothing shown, the fallback is the reply.
    Either way the error event carries the fallback text, shown apart from the answer."""
    code = "llm_unavailable" if isinstance(error, openai.APIConnectionError | ConnectionError) else "llm_error"
    log.warning("LLM call failed (%s): %s", code, error)
    LLM_ERRORS.labels(code=code).inc()
    if tail := check.close():
        write(_token(tail))
    write({"event": "error", "code": code, "message": prompts.FALLBACK})
    if check.text.strip():
        meta = {"interrupted": True, "sources": public(sources), "at": _now()}
        reply = AIMessage(check.text, id=new_message_id(), response_metadata=meta)
    else:
        write(_token(prompts.FALLBACK))
        reply = AIMessage(prompts.FALLBACK, id=new_message_id(), response_metadata={"fallback": True, "at": _now()})
    return {"messages": [reply], "failed": code, "next_step": "end"}


async def check_answer(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """What follows a full answer: a person offered when the model says it is unsure or nothing is left to show, or
    instead of an answer whose words mostly are not in its sources, or whose words beyond the question are in none
    (ANSWER_MIN_GROUNDING: withdrawn, the page ends on the offer); a correction when a promised ticket was dropped;
    sentences their cited source does not back are flagged."""
    context = context_of(runtime)
    reply = state["messages"][-1]
    text, meta = text_of(reply), dict(reply.response_metadata or {})
    report = check_citations(text, state.get("sources", []))
    if report.unsupported:
        UNSUPPORTED_SENTENCES.inc(len(report.unsupported))
        meta["unsupported"] = report.unsupported
    sources, question = state.get("sources", []), text_of(state["messages"][-2])
    share = grounding(text, sources, question)
    least = context.settings.answer_min_grounding
    if least > 0 and ((share is not None and share < least) or not adds_from_sources(text, sources, question)):
        # Not from the documentation: withdrawn (the page ends on the stored reply, which is the offer alone).
        OUTPUT_CHECKS.labels(check="ungrounded").inc()
        meta |= {"withdrawn": True, "grounding": share}
        return {"messages": [AIMessage("", id=reply.id, response_metadata=meta)]} | _hand_over(context, "model_unsure")
    if guard.model_is_unsure(text) or not text.strip():  # nothing left: the model only copied its sources
        return {"messages": [AIMessage(text, id=reply.id, response_metadata=meta)]} | _hand_over(
            context, "model_unsure"
        )
    if "false_promise" in meta.get("checks", []):
        runtime.stream_writer(_token(f"\n\n{guard.CORRECTION}"))
        text = f"{text}\n\n{guard.CORRECTION}"
    return {"messages": [AIMessage(text, id=reply.id, response_metadata=meta)], "next_step": "end"}


async def offer(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Say the documentation does not have it and offer a person; the ticket waits for the customer's yes
    (a reply "yes", or the page's button, which sends `escalate: true`)."""
    reason = state.get("escalation_reason") or "no_relevant_answer"
    reply = _add_to_reply(state["messages"], prompts.offer_text(reason), {"offered": reason}, runtime.stream_writer)
    runtime.stream_writer({"event": "offer", "reason": reason})
    return {"messages": [reply], "offered": reason, "next_step": "end"}


async def escalate(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict[str, Any]:
    """Open (or add to) the session's ticket and tell the customer its id — in the turn's one reply, after the
    model's answer when there was one. New tickets are limited per session and per client address."""
    context, write = context_of(runtime), runtime.stream_writer
    reason = state.get("escalation_reason") or "caller_request"
    session_id, client = config["configurable"]["thread_id"], config["configurable"].get("client")
    messages = state["messages"]
    if (
        context.ticket_quota is not None
        and await context.tickets.open_ticket_for(session_id) is None
        and not await context.ticket_quota(session_id, client)
    ):
        reply = _add_to_reply(messages, prompts.TICKET_LIMIT, {"ticket_limited": True}, write)
        return {"messages": [reply], "next_step": "end"}
    ticket, created = await context.tickets.open_or_update(
        session_id,
        reason=reason,
        transcript=transcript(messages),
        sources=shown_sources(messages, state.get("sources", [])),
    )
    ESCALATION_REASONS.labels(reason=reason).inc()
    log.info("ticket %s %s for %s", ticket.ticket_id, "opened" if created else "updated", reason)
    availability, opens_at = live.availability(context.settings)  # OFFICE_HOURS: a person now, or from when
    notice = prompts.escalation_text(ticket.ticket_id, reason, created, availability)
    reply = _add_to_reply(messages, notice, {"ticket_id": ticket.ticket_id, "escalation_reason": reason}, write)
    opens = opens_at.isoformat() if opens_at else None
    write({"event": "escalated", "ticket_id": ticket.ticket_id, "reason": reason, "person_from": opens})
    return {"messages": [reply], "ticket_id": ticket.ticket_id, "next_step": "end"}


async def small_talk(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """A friendly reply to a greeting, thanks, goodbye or a word about the bot: no LLM, no ticket (and no search
    when the strict rule knew it before retrieval)."""
    message = text_of(state["messages"][-1])
    kind = guard.small_talk(message) or guard.chat_kind(message) or "greeting"
    runtime.stream_writer(_token(prompts.SMALL_TALK[kind]))
    meta = {"small_talk": kind, "at": _now()}
    return {
        "messages": [AIMessage(prompts.SMALL_TALK[kind], id=new_message_id(), response_metadata=meta)],
        "next_step": "end",
    }


def _add_to_reply(messages: list[AnyMessage], text: str, meta: dict[str, Any], write: Any) -> AIMessage:
    """The turn's one reply: `text` after the model's answer when there is one, else a reply of its own."""
    last = messages[-1]
    meta = meta | {"at": _now()}
    if isinstance(last, AIMessage):  # after the answer; one withdrawn by check_answer is empty: `text` alone
        write(_token(f"\n\n{text}"))
        content = f"{text_of(last)}\n\n{text}" if text_of(last).strip() else text
        return AIMessage(content, id=last.id, response_metadata=last.response_metadata | meta)
    write(_token(text))
    return AIMessage(text, id=new_message_id(), response_metadata=meta)


async def refuse(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """A polite refusal of a prompt-injection attempt; no LLM call, no ticket."""
    runtime.stream_writer(_token(REFUSAL))
    return {"messages": [_refusal()], "next_step": "end"}


def _refusal() -> AIMessage:
    """Refused turns stay in the transcript; prompts.recent_turns never sends them to the model again."""
    return AIMessage(REFUSAL, id=new_message_id(), response_metadata={"refused": True, "sources": [], "at": _now()})


def next_step(state: State) -> str:
    """Every step names the next one; routing only reads it."""
    step = state.get("next_step", "end")
    return END if step == "end" else step
