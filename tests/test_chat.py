"""Chat that is not a question (graph/guard.py): what the agent replies in kind once the documentation had
nothing, and what it does not mistake for a request for a person."""

from __future__ import annotations

import pytest

from graph.guard import asks_for_person, chat_kind


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("hey there 👋", "greeting"),
        ("Buenos días!", "greeting"),
        ("你好", "greeting"),
        ("danke schön, schönes Wochenende", "thanks"),
        ("thanks, bye!", "thanks"),
        ("ok, see you later", "bye"),
        ("ok cool", "ack"),
        ("got it, thanks!", "thanks"),
        ("hey, how's your day going?", "greeting"),
        ("🙂🙂", "ack"),
        ("are you a bot?", "bot"),
        ("what's your name", "bot"),
    ],
)
def test_short_chat_in_any_language_has_a_kind(message: str, kind: str) -> None:
    assert chat_kind(message) == kind


@pytest.mark.parametrize(
    "message",
    [
        "What is the boiling point of tungsten in kelvin?",
        "hello, I was charged twice for the same order last month and nobody answers my emails about it",
        "4411",
        "it keeps crashing",  # "it" was read as the ack in "got it"
        "can I pay later?",
        "logo upload fails",
        "ok so how do I get a refund for my order",
    ],
)
def test_a_question_or_a_long_message_is_not_chat(message: str) -> None:
    assert chat_kind(message) is None


def test_asking_whether_the_bot_is_a_person_is_not_asking_for_one() -> None:
    assert not asks_for_person("are you a real person or a robot haha")
    assert not asks_for_person("Am I talking to a human?")
    assert asks_for_person("are you a bot? I want to talk to a real person")
    assert asks_for_person("I want to speak to a human")
