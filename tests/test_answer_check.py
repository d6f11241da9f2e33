"""The output checks act on the stream itself: whatever the chunking, nothing a check removes is ever released.

Pure text in, text out (no services): each case is fed in pieces of several sizes, and every released piece is
recorded, so "never shown" means never in any piece, not only absent from the final text.
"""

from __future__ import annotations

import pytest

from graph.answer_check import AnswerCheck
from graph.prompts import RULES as SYSTEM

SOURCES = [{"n": 1, "url": "https://help.example.com/account"}, {"n": 2, "url": "https://help.example.com/billing"}]
SIZES = [1, 2, 3, 5, 8, 1000]


def stream(text: str, size: int, check: AnswerCheck | None = None) -> tuple[AnswerCheck, list[str]]:
    """`text` fed in pieces of `size`, as the answer node does: it stops the model on a leak or a copy."""
    check, shown = check or AnswerCheck(SOURCES, SYSTEM), []
    for start in range(0, len(text), size):
        shown.append(check.feed(text[start : start + size]))
        if check.leaked or check.copied:
            break
    shown.append(check.close())
    return check, shown


def shown_at_any_time(shown: list[str]) -> list[str]:
    """Every prefix the customer saw while the answer grew."""
    return ["".join(shown[: i + 1]) for i in range(len(shown))]


@pytest.mark.parametrize("size", SIZES)
def test_a_plain_answer_passes_unchanged_and_what_was_released_is_the_text(size: int) -> None:
    text = "Request a new link from the sign-in page [1]. It expires after 30 minutes [1, 2].\n\n- one\n- two"
    check, shown = stream(text, size)
    assert check.text == "".join(shown) == text
    assert check.fired == [] and not check.leaked


@pytest.mark.parametrize("size", SIZES)
def test_an_echo_of_the_instructions_is_never_released(size: int) -> None:
    check, shown = stream("Sure! My instructions are: " + SYSTEM, size)
    assert check.leaked and "system_prompt_echo" in check.fired
    words = SYSTEM.split()
    runs = {" ".join(words[i : i + 8]) for i in range(len(words) - 7)}
    for seen in shown_at_any_time(shown):
        said = seen.split()
        assert not any(" ".join(said[i : i + 8]) in runs for i in range(len(said))), seen


@pytest.mark.parametrize("size", SIZES)
def test_a_short_quote_of_common_words_is_released_once_the_run_breaks(size: int) -> None:
    text = "You are the owner of the account, so you can close it [1]."
    check, _ = stream(text, size)
    assert check.text == text and not check.leaked


@pytest.mark.parametrize("size", SIZES)
def test_a_citation_of_no_given_source_is_dropped_before_it_is_shown(size: int) -> None:
    check, shown = stream("Reset it from the login page [1] [7]. See [2, 9] too.", size)
    assert check.text == "Reset it from the login page [1]. See [2] too."
    assert not any("7" in s or "9" in s for s in shown)
    assert check.fired.count("invalid_citation") == 2


@pytest.mark.parametrize("size", SIZES)
def test_a_link_to_a_host_no_source_is_on_becomes_text(size: int) -> None:
    check, shown = stream(
        "See [the fix](http://evil.example/fix) or www.evil.example/a. Or [ours](https://help.example.com/x).", size
    )
    assert "](http://evil" not in check.text and "the fix" in check.text
    assert "`http://evil.example/fix`" in check.text and "`www.evil.example/a`." in check.text
    assert "[ours](https://help.example.com/x)" in check.text
    assert not any("](http://evil" in seen for seen in shown_at_any_time(shown))


@pytest.mark.parametrize("size", SIZES)
def test_code_is_shown_as_written(size: int) -> None:
    text = "Run this:\n\n```\nitems[7] = 'http://evil.example'\n```\n\nThen `curl http://localhost:8000/health` [1]."
    check, _ = stream(text, size)
    assert check.text == text


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "promise",
    ["I have created a ticket for you.", "We've escalated your case to a specialist.", "Your ticket number is #4521."],
)
def test_a_promised_ticket_that_does_not_exist_is_never_shown(size: int, promise: str) -> None:
    check, shown = stream(f"Hello. {promise} Reset it from the sign-in page [1].", size)
    assert check.text.split() == ["Hello.", "Reset", "it", "from", "the", "sign-in", "page", "[1]."]
    assert "false_promise" in check.fired
    assert not any("ticket" in seen or "escalated" in seen for seen in shown_at_any_time(shown))


def test_a_sentence_about_tickets_that_claims_nothing_stays() -> None:
    text = "You can open a support ticket from the Help menu [1]."
    assert stream(text, 3)[0].text == text


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("heading", ["Sources:\n", "**Sources:**\n", ""])
def test_a_copy_of_the_prompts_source_block_ends_the_answer_before_it_is_shown(size: int, heading: str) -> None:
    """Small models go on to write out their prompt's sources; the block's key is in no document, so the
    answer ends before the line it opens — and before a "Sources:" line above it, held until then."""
    answer = "Click 'Add Test Case' to add more [1]."
    text = f"{answer}\n\n{heading}zqxvk [1] Creating test cases\nWhen you first open the screen, you see one row."
    # Instructions without the word "sources": the hold must not depend on the echo check holding that word.
    check, shown = stream(text, size, AnswerCheck(SOURCES, "Be brief.", source_key="zqxvk"))
    assert check.copied and check.fired == ["copied_sources"]
    assert check.text.strip() == answer
    assert not any("zqxvk" in seen or "Sources" in seen for seen in shown_at_any_time(shown))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("answer", ["Click 'Add Test Case' to add more [1].\n\n", ""])
def test_a_copy_headed_by_the_rules_name_for_the_key_is_never_shown(size: int, answer: str) -> None:
    """Measured with Qwen 1.5B (dev question 1d6210b8): the copy opened with "CODE [1] Title" — the rules' word
    for the key — instead of the key itself."""
    text = f"{answer}CODE [1] Prompt engineering workflow\nOur workbench houses example prompts.\nCODE [2] Billing"
    # Instructions without the word "CODE": the hold must not depend on the echo check holding that word.
    check, shown = stream(text, size, AnswerCheck(SOURCES, "Be brief.", source_key="zqxvk"))
    assert check.copied and check.fired == ["copied_sources"]
    assert check.text.strip() == answer.strip()
    assert not any("CODE" in seen or "workbench" in seen for seen in shown_at_any_time(shown))


@pytest.mark.parametrize("size", SIZES)
def test_a_line_that_only_starts_like_the_rules_name_for_the_key_is_released(size: int) -> None:
    text = "Use the export button [1].\nCOD files are not supported.\nCODE review is done by a person [2]."
    check, shown = stream(text, size, AnswerCheck(SOURCES, SYSTEM, source_key="zqxvk"))
    assert check.text == "".join(shown) == text and not check.copied


@pytest.mark.parametrize("size", SIZES)
def test_a_sources_line_of_the_models_own_is_released_when_no_copy_follows(size: int) -> None:
    text = "Request a new link [1].\nSources:\n[1] Resetting your password\nThat is all."
    check, shown = stream(text, size, AnswerCheck(SOURCES, SYSTEM, source_key="zqxvk"))
    assert check.text == "".join(shown) == text and not check.copied


DOCS = [
    {"n": 1, "title": "Resetting your password", "url": "https://help.example.com/password",
     "text": "The reset link is sent by e-mail and expires after 30 minutes."},
    {"n": 2, "title": "Invoices", "url": "https://help.example.com/billing",
     "text": "Invoices are emailed on the first day of each month, as PDF."},
]  # fmt: skip


def citing(text: str, size: int, support: float = 0.6) -> tuple[AnswerCheck, list[str]]:
    return stream(text, size, AnswerCheck(DOCS, SYSTEM, cite_support=support))


@pytest.mark.parametrize("size", SIZES)
def test_a_sentence_that_cites_nothing_gets_the_source_that_backs_it_before_its_end_mark(size: int) -> None:
    check, shown = citing("The reset link expires after 30 minutes. Invoices are emailed on the first day!", size)
    assert check.text == "The reset link expires after 30 minutes [1]. Invoices are emailed on the first day [2]!"
    assert all(check.text.startswith(prefix) for prefix in shown_at_any_time(shown))  # never shown without it
    assert check.fired.count("attached_citation") == 2


@pytest.mark.parametrize("size", SIZES)
def test_a_last_sentence_without_an_end_mark_is_cited_when_the_answer_ends(size: int) -> None:
    check, _ = citing("Use `reset()`. The reset link expires after 30 minutes", size)
    assert check.text == "Use `reset()`. The reset link expires after 30 minutes [1]"


@pytest.mark.parametrize("size", SIZES)
def test_the_model_s_own_citations_are_kept_and_never_doubled(size: int) -> None:
    for text in (
        "The reset link expires after 30 minutes [2]. Invoices come monthly.",
        "The reset link expires after 30 minutes. [1] Invoices come monthly.",
    ):
        check, _ = citing(text, size)
        assert check.text == text and "attached_citation" not in check.fired


@pytest.mark.parametrize("size", SIZES)
def test_an_abbreviation_inside_a_sentence_is_not_its_end(size: int) -> None:
    check, _ = citing("The reset link, e.g. the one sent by e-mail, expires after 30 minutes.", size)
    assert check.text == "The reset link, e.g. the one sent by e-mail, expires after 30 minutes [1]."


@pytest.mark.parametrize("size", SIZES)
def test_a_sentence_no_source_backs_stays_uncited(size: int) -> None:
    text = "Sure. The weather in Paris is sunny today, with a light breeze."
    check, _ = citing(text, size)
    assert check.text == text


def test_citing_is_off_at_zero_support() -> None:
    check, _ = citing("The reset link expires after 30 minutes.", 3, support=0)
    assert check.text == "The reset link expires after 30 minutes."
