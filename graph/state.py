"""What the agent remembers about a conversation (checkpointed to Redis after every step).

`typing_extensions.TypedDict`, not `typing.TypedDict`: LangServe cannot build schemas from the latter on 3.11.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class InputState(TypedDict):
    """What a caller sends: the new message, and optionally an explicit request for a person."""

    messages: Annotated[list[AnyMessage], add_messages]
    escalate: NotRequired[bool]


class State(InputState):
    """The whole conversation plus what this turn found and decided."""

    query: NotRequired[str]  # what was searched (the question, with context for follow-ups)
    sources: NotRequired[list[dict[str, Any]]]  # [{n, title, url, snippet, score, text}] shown this turn
    route: NotRequired[str]  # "answer", or the reason to escalate
    failed: NotRequired[str | None]  # error code when the LLM failed this turn
    correction: NotRequired[str | None]  # text appended when the guard removed a false promise
    ticket_id: NotRequired[str | None]
