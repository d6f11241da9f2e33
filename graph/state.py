"""What the agent remembers about a conversation (checkpointed to Redis after every step).

A turn adds exactly one human message and one AI message; the per-turn fields below are reset by the first
step of every turn. `typing_extensions.TypedDict`, not `typing.TypedDict`: LangServe cannot build schemas from
the latter on 3.11.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from tools.sources import Source

Step = Literal[
    "retrieve", "answer", "check_answer", "offer", "escalate", "small_talk", "refuse", "live", "verified", "end"
]
EscalationReason = Literal["customer_request", "caller_request", "no_relevant_answer", "model_unsure"]


class InputState(TypedDict):
    """What a caller sends: the new message, and optionally an explicit request for a person."""

    messages: Annotated[list[AnyMessage], add_messages]
    escalate: NotRequired[bool]


class State(InputState):
    """The whole conversation plus what this turn found and decided."""

    next_step: NotRequired[Step]
    escalation_reason: NotRequired[EscalationReason | None]
    query: NotRequired[str]  # what was searched (the question, with context for follow-ups)
    sources: NotRequired[list[Source]]  # given to the model this turn, numbered as it cites them
    failed: NotRequired[str | None]  # error code when the LLM failed this turn
    ticket_id: NotRequired[str | None]  # the ticket this turn opened or updated
    offered: NotRequired[EscalationReason | None]  # this turn offered a person for this reason; a "yes" accepts
    live: NotRequired[bool]  # a support lead holds the conversation: this message went to them (graph/live.py)
