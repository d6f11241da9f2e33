"""How a lead's turns read back (graph/live.py, graph/transcript.py, graph/prompts.py): marked in every transcript,
the join / hand-back records kept out of the model's prompt."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage

from graph.live import lead_message
from graph.prompts import recent_turns
from graph.transcript import transcript


def conversation() -> list:
    return [
        HumanMessage("I need a person", id="h1"),
        AIMessage("Your ticket is T-AAAAAAAA.", id="a1"),
        lead_message("", "Alex", "joined"),
        HumanMessage("My parcel is late", id="h2"),
        lead_message("It left the warehouse today.", "Alex"),
        HumanMessage("Are you still there?", id="h3"),
        lead_message("", "Alex", "handed_back"),  # right after a customer's message: not its answer
    ]


def test_a_leads_reply_and_records_are_marked_with_the_leads_name_and_the_bots_turns_are_not() -> None:
    entries = transcript(conversation())
    assert [(e["role"], e.get("by"), e.get("event")) for e in entries] == [
        ("user", None, None),
        ("assistant", None, None),
        ("event", "human", "joined"),
        ("user", None, None),
        ("assistant", "human", None),
        ("user", None, None),
        ("event", "human", "handed_back"),
    ]
    assert entries[2]["name"] == "Alex" and "Alex joined" in entries[2]["content"] and entries[2]["at"]
    assert entries[4]["name"] == "Alex" and entries[4]["content"] == "It left the warehouse today."


def test_the_model_reads_the_leads_reply_as_history_but_never_the_join_and_hand_back_records() -> None:
    prompt = [str(m.content) for m in recent_turns(conversation(), 10)]
    assert prompt == [
        "I need a person",
        "Your ticket is T-AAAAAAAA.",
        "My parcel is late",
        "It left the warehouse today.",
    ]
