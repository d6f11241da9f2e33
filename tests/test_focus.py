"""A source over its share of the prompt keeps what is about the question: the sentences and rows that share the
question's terms, in the document's order, a table row with its header — never just its first characters."""

from __future__ import annotations

from graph.focus import distinct, focus, shares

LIMITS = """Rate limits apply per organization and are measured in requests per minute.
Higher tiers are reached automatically as your usage grows.
| Tier | Requests per minute | Tokens per minute |
| Build 1 | 50 | 40000 |
| Build 2 | 1000 | 80000 |
| Build 3 | 2000 | 160000 |
Contact sales for custom limits. Streaming responses count as one request. Batches are billed separately."""


def test_a_source_that_fits_is_passed_whole() -> None:
    assert focus(LIMITS, "What are the rate limits?", len(LIMITS)) == LIMITS


def test_an_answer_past_the_first_characters_is_kept() -> None:
    """Cut at its first 200 characters, the source would lose the row the question asks about."""
    kept = focus(LIMITS, "How many requests per minute does Build 2 allow?", 200)
    assert len(kept) <= 200
    assert "| Build 2 | 1000 | 80000 |" in kept
    assert "Build 2" not in LIMITS[:200]


def test_a_table_row_keeps_its_header() -> None:
    kept = focus(LIMITS, "tokens per minute on Build 3", 170)
    assert "| Tier | Requests per minute | Tokens per minute |\n| Build 3 | 2000 | 160000 |" in kept


def test_kept_pieces_stay_in_the_document_order_with_gaps_marked() -> None:
    kept = focus(LIMITS, "Are streaming responses and batches billed per request?", 160)
    assert kept.index("Streaming") < kept.index("Batches")
    assert "…" in kept and "Build 1" not in kept


def test_the_top_source_takes_up_to_three_quarters_and_what_short_sources_leave_goes_to_the_others() -> None:
    assert shares([1000, 1000], 600) == [450, 150]
    assert shares([1000, 1000, 1000], 800) == [600, 100, 100]
    assert shares([100, 1000, 50], 600) == [100, 450, 50]
    assert shares([2000], 600) == [600]
    assert sum(shares([5000, 70, 9000], 1200)) <= 1200


def test_what_a_source_repeats_is_not_sent_again() -> None:
    """Scraped pages repeat a callout, a tab label, their own title: each repeat costs tokens and says nothing."""
    tip = "A given use case might require several rubrics for holistic evaluation."
    first = f"Grading tips\n\n\n\nHave detailed rubrics. {tip}\n{tip}\nPython\nPython\nEncourage reasoning. {tip}"
    second = f"Write the rubric first. {tip} Then grade."
    kept_first, kept_second = distinct([first, second], ["Grading tips", "Rubrics"])
    assert kept_first == f"Have detailed rubrics. {tip}\nPython\nEncourage reasoning."
    assert kept_second == "Write the rubric first. Then grade."


def test_short_repeated_lines_apart_from_each_other_stay() -> None:
    """A closing brace or a one-word label seen before may be structure (code, a table)."""
    code = "def a():\n    return 1\n}\nprint(a())\n}"
    assert distinct([code], ["Code"]) == [code]


def test_a_small_prompt_budget_keeps_each_source_s_answer_not_its_first_lines() -> None:
    from graph.prompts import answer_prompt

    filler = " ".join(f"Paragraph {n} describes the dashboard layout in general terms." for n in range(30))
    sources = [
        {"n": 1, "title": "Dashboard", "url": "https://docs.example.com/dash", "text": filler},
        {"n": 2, "title": "Limits", "url": "https://docs.example.com/limits", "text": LIMITS},
    ]
    prompt = answer_prompt([], sources, "How many requests per minute does Build 2 allow?", turns=0, budget_tokens=700)
    message = str(prompt[-2].content)  # the sources; the question is the last message
    assert "| Build 2 | 1000 | 80000 |" in message
    assert len(message) < len(filler) + len(LIMITS)


def test_the_prompt_sends_a_sentence_two_pages_share_once() -> None:
    from graph.prompts import answer_prompt

    shared = "Keys are rotated from the console under Settings, API keys."
    sources = [
        {"n": 1, "title": "API keys", "url": "https://docs.example.com/k", "text": f"{shared} Old keys stop at once."},
        {"n": 2, "title": "Security", "url": "https://docs.example.com/s", "text": f"We use TLS. {shared}"},
    ]
    message = str(answer_prompt([], sources, "How do I rotate a key?", turns=0)[-2].content)
    assert message.count(shared) == 1 and "We use TLS." in message and "Old keys stop at once." in message


def test_a_long_conversation_leaves_a_follow_up_its_sources() -> None:
    """Earlier turns take from the sources' share only down to half of it; older turns leave the prompt first."""
    from langchain_core.messages import AIMessage, HumanMessage

    from graph.prompts import answer_prompt

    history = []
    for n in range(6):
        history += [HumanMessage(f"Question {n} about the dashboard?"), AIMessage(f"Answer {n}: " + "words " * 120)]
    sources = [{"n": 1, "title": "Limits", "url": "https://docs.example.com/limits", "text": LIMITS}]
    question = "And how many requests per minute does Build 2 allow?"
    alone = str(answer_prompt([], sources, question, turns=10, budget_tokens=400)[-2].content)
    prompt = answer_prompt(history, sources, question, turns=10, budget_tokens=400)
    message = str(prompt[-2].content)
    assert "| Build 2 | 1000 | 80000 |" in message and len(message) >= len(alone) // 2
    earlier = [str(m.content) for m in prompt[1:-2]]
    assert earlier and earlier[-1].startswith("Answer 5") and not any(e.startswith("Answer 0") for e in earlier)
