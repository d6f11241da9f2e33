"""What counts as a name in a customer's question (tools/text.py `names`): the words the relevance gate checks
against the documentation's vocabulary (tools/sources.py `unknown_names`)."""

from __future__ import annotations

from tools.sources import unknown_names
from tools.text import names


def test_a_name_is_capitalised_inside_a_sentence_written_in_capitals_or_a_code() -> None:
    assert names("How do I send an SMS with the Twilio API from Python?") == ["SMS", "Twilio", "API", "Python"]
    assert names("Windows update fails with error 0x80070643") == ["0x80070643"]
    assert names("what is openai's pricing") == []  # lower case says nothing


def test_the_first_word_of_each_sentence_is_not_a_name() -> None:
    assert names("Stripe keeps failing. Webhooks never arrive! Why?") == []
    assert names("Hello there: Refunds take how long?") == []


def test_days_and_months_are_times_not_names() -> None:
    assert names("Is support open on Saturdays and in December?") == []


def test_in_capitals_or_title_case_only_codes_count() -> None:
    assert names("HOW DO I GET AN API KEY FOR ERROR E42") == ["E42"]
    assert names("How To Reset My Password On Windows") == []


def test_the_customer_s_own_name_is_not_a_subject() -> None:
    assert names("Hi, this is Tom from Acme Corp. How do I rotate my API key?") == ["API"]
    assert names("hi I'm Jane Doe, where do I find invoices?") == []
    assert names("Where do I find invoices? Thanks, Bob") == []
    assert names("This is broken in Safari") == ["Safari"]  # "this is" + a lower-case word is not an introduction


def test_unknown_names_are_the_names_the_documentation_does_not_use() -> None:
    def knows(word: str) -> bool:
        return word.lower() in {"api", "python", "windows"}

    assert unknown_names("How do I call the API from Python with Twilio?", knows) == ["Twilio"]
    assert unknown_names("Does the API work on Windows?", knows) == []
