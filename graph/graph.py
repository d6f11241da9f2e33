"""The support agent: guard input → retrieve → answer → check answer; offer, escalate, small talk and refuse end a turn.

`graph` (no checkpointer) is what `langgraph.json` serves to LangGraph Studio; the server calls
`build_graph(checkpointer)` and passes its parts as the run's context (graph/configuration.py).
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.live import to_lead
from graph.nodes import answer, check_answer, escalate, guard_input, next_step, offer, refuse, retrieve, small_talk
from graph.state import InputState, State
from graph.verified import verified


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    # No `context_schema`: the parts are not settings a caller could send; Studio's empty context means
    # "build them from the environment" (graph/configuration.py).
    builder = StateGraph(State, input_schema=InputState)
    for node in (guard_input, verified, retrieve, answer, check_answer, offer, escalate, small_talk, refuse):
        builder.add_node(node.__name__, node)
    builder.add_node("live", to_lead)  # a support lead holds the conversation (graph/live.py)
    builder.add_edge(START, "guard_input")
    builder.add_conditional_edges("guard_input", next_step, ["verified", "escalate", "small_talk", "refuse", "live"])
    builder.add_conditional_edges("verified", next_step, ["retrieve", END])  # a verified answer ends the turn
    builder.add_conditional_edges("retrieve", next_step, ["answer", "offer", "escalate", "small_talk"])
    builder.add_conditional_edges("answer", next_step, ["check_answer", END])
    builder.add_conditional_edges("check_answer", next_step, ["offer", "escalate", END])
    for last in ("offer", "escalate", "small_talk", "refuse", "live"):
        builder.add_edge(last, END)
    return builder.compile(checkpointer=checkpointer, name="support-agent")


graph = build_graph()
