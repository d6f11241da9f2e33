"""What a finished turn leaves outside the conversation, written in one place once `done` was sent: the answer
record feedback refers to, the conversation log, the review queue and the ticket webhook.

It runs in the background (the customer never waits for it) and takes its texts from the turn's result — the
stored question and reply — so every store keeps the same text (the log and the answer record redacted).
"""

from __future__ import annotations

import logging
from typing import Any

from api import sessions
from api.analytics import count_turn
from api.deps import Services
from api.starters import starters_of
from api.webhook import announce_ticket
from graph.turns import TurnResult
from tools.answers import AnswerRecords
from tools.conversation_log import ConversationLog
from tools.review import ReviewQueue, should_sample

log = logging.getLogger(__name__)


async def record_turn(state: Services, turn: TurnResult, timings: dict[str, Any]) -> None:
    await count_turn(state, turn, timings)  # counters only (no text, no ids): counted even if erased meanwhile
    try:
        if not await sessions.known(state.redis, turn.session_id):
            return  # erased (DELETE /api/sessions/{id}) before this ran: nothing of it may come back
        if turn.message_id:
            await AnswerRecords(state.redis, state.settings.session_ttl_seconds).remember(
                session_id=turn.session_id,
                message_id=turn.message_id,
                question=turn.question,
                answer=turn.answer,
                sources=list(turn.sources),
            )
        await ConversationLog(state.redis, state.settings.log_retention_days).log_turn(
            session_id=turn.session_id,
            message_id=turn.message_id or "",
            question=turn.question,
            answer=turn.answer,
            sources=list(turn.sources),
            timings=timings,
            flags={
                "outcome": turn.outcome,
                "escalated": turn.ticket_id,
                "failed": turn.failed,
                "checks": turn.checks,
                "unsupported_sentences": turn.unsupported,
            },
        )
        await queue_for_review(state, turn)
        if not await sessions.known(state.redis, turn.session_id):  # erased while this was writing
            await sessions.erase_session(state, turn.session_id)
        elif suggestible_turn(state, turn):  # after the erase check: a failure here cannot skip the erase
            await starters_of(state).record(turn.session_id, turn.question)
        if turn.ticket_id:
            await announce_ticket(state, turn.ticket_id)
    except Exception:
        log.exception("recording turn %s of %s failed", turn.message_id, turn.session_id)


def suggestible_turn(state: Services, turn: TurnResult) -> bool:
    """Starter suggestions (tools/starters.py) come from questions answered from good sources only: never a
    refused, escalated, offered or failed turn, nor an answer from weak sources (a gap in the docs)."""
    return turn.outcome == "answered" and not weak_sources(state, turn)


def weak_sources(state: Services, turn: TurnResult) -> bool:
    return turn.best_score is not None and turn.best_score < state.settings.low_relevance_score


async def queue_for_review(state: Services, turn: TurnResult) -> None:
    """Every escalation and offer of a person, every low-relevance answer and a QUALITY_SAMPLE_RATE share of the
    other answers."""
    record = {
        "session_id": turn.session_id,
        "message_id": turn.message_id,
        "question": turn.question,
        "answer": turn.answer,
    }
    queue = ReviewQueue(state.redis, retention_days=state.settings.log_retention_days)
    if turn.ticket_id:
        await queue.add("escalation", record | {"ticket_id": turn.ticket_id})
    elif turn.outcome == "offered":  # the docs had nothing (or the model was unsure): a gap for the report
        await queue.add("low_relevance", record | {"best_score": turn.best_score, "offered": True})
    elif turn.outcome != "answered":
        return
    elif weak_sources(state, turn):
        await queue.add("low_relevance", record | {"best_score": turn.best_score})
    elif should_sample(state.settings.quality_sample_rate):
        await queue.add("sampled", record)
