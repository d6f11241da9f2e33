"""The support agent: retrieve → answer | escalate | refuse, and answer → escalate when the model is unsure.

`graph` (no checkpointer) is what `langgraph.json` serves to LangGraph Studio; the server calls
`build_graph(checkpointer, settings)` with the Redis checkpointer.
"""

from __future__ import annotations

from functools import partial

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.nodes import Deps, after_answer, after_retrieve, answer, escalate, refuse, retrieve
from graph.state import InputState, State
from settings import Settings, get_settings


def build_graph(
    checkpointer: BaseCheckpointSaver | None = None, settings: Settings | None = None
) -> CompiledStateGraph:
    deps = Deps(settings or get_settings())
    builder = StateGraph(State, input_schema=InputState)
    builder.add_node("retrieve", partial(retrieve, deps=deps))
    builder.add_node("answer", partial(answer, deps=deps))
    builder.add_node("escalate", partial(escalate, deps=deps))
    builder.add_node("refuse", refuse)
    builder.add_edge(START, "retrieve")
    builder.add_conditional_edges("retrieve", after_retrieve, ["answer", "escalate", "refuse"])
    builder.add_conditional_edges("answer", after_answer, ["escalate", END])
    builder.add_edge("escalate", END)
    builder.add_edge("refuse", END)
    compiled = builder.compile(checkpointer=checkpointer, name="support-agent")
    compiled.deps = deps  # type: ignore[attr-defined]  # run_turn and tests reach the parts through the graph
    return compiled


graph = build_graph()
