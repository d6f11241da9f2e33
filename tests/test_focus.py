"""A source over its share of the prompt keeps what is about the question: the sentences and rows that share the
question's terms, in the document's order, a table row with its header — never just its first characters."""

from __future__ import annotations

from graph.focus import focus, shares

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


def test_the_budget_is_shared_and_what_short_sources_leave_goes_to_the_long_one() -> None:
    assert shares([100, 1000, 50], 600) == [100, 450, 50]
    assert shares([1000, 1000], 600) == [300, 300]
    assert sum(shares([5000, 70, 9000], 1200)) <= 1200


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
