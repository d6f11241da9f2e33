"""Personal data is redacted from logs; ordinary numbers are not — also where a sentence's punctuation or a quote
follows them."""

import pytest

from tools.redact import redact

# One example of every kind, with the placeholder it becomes.
KINDS = [
    ("ana.maria+help@example.co.uk", "[EMAIL]"),
    ("+44 20 7946 0958", "[PHONE]"),
    ("(555) 123-4567", "[PHONE]"),
    ("030 1234 5678", "[PHONE]"),
    ("+4915112345678", "[PHONE]"),  # passes the Luhn check, but a card number never starts with "+"
    ("4111 1111 1111 1111", "[CARD]"),
    ("4111111111111111", "[CARD]"),
    ("5500-0000-0000-0004", "[CARD]"),
    ("DE89 3704 0044 0532 0130 00", "[IBAN]"),
    ("GB82WEST12345698765432", "[IBAN]"),
    ("192.168.10.25", "[IP]"),
    ("sk-live_abcdefghijklmnop1234", "[SECRET]"),
    ("Bearer abcdefghijklmnopqrstuvwxyz0123", "[SECRET]"),
]
PUNCTUATION = [".", ",", ";", ":", "!", "?", ")", '"', "'", "...", ").", '".']

# Numbers that are not personal data.
ORDINARY = [
    "Order 12345",
    "Python 3.11.7",
    "Version 1.5.9 of chromadb",
    "Invoice dated 2026-11-24",
    "Invoice dated 24.11.2026",
    "It costs $1,299.00 per year",
    "It costs 1.299,00 €",
    "Wait 30 minutes and try again",
    "The code 4111 1111 1111 1112 is not a valid card",  # fails the Luhn check
    "IBAN DE00 3704 0044 0532 0130 00 is mistyped",  # fails the mod-97 check
    "Ticket T-ABCD1234 is open",
    "Plans from 2019-2024",
    "Open 9-17 on weekdays",
    "99.95% uptime",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail me at ana.maria+help@example.co.uk please", "Mail me at [EMAIL] please"),
        ("Call +44 20 7946 0958 after five", "Call [PHONE] after five"),
        ("my number is (555) 123-4567", "my number is [PHONE]"),
        ("Tel. 030 1234 5678", "Tel. [PHONE]"),
        ("card 4111 1111 1111 1111 expired", "card [CARD] expired"),
        ("card 5500-0000-0000-0004", "card [CARD]"),
        ("IBAN DE89 3704 0044 0532 0130 00 for the refund", "IBAN [IBAN] for the refund"),
        ("GB82WEST12345698765432", "[IBAN]"),
        ("from 192.168.10.25 today", "from [IP] today"),
        ("key sk-live_abcdefghijklmnop1234", "key [SECRET]"),
        ("card 4111 1111 1111 1111.", "card [CARD]."),  # the log once kept "card [PHONE] 1111."
    ],
)
def test_each_kind_of_personal_data_is_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("after", PUNCTUATION)
@pytest.mark.parametrize(("value", "placeholder"), KINDS, ids=[kind for kind, _ in KINDS])
def test_each_kind_is_replaced_whole_before_punctuation(value: str, placeholder: str, after: str) -> None:
    assert redact(f"It is {value}{after}") == f"It is {placeholder}{after}"


@pytest.mark.parametrize(("before", "after"), [('"', '"'), ("'", "'"), ("(", ")"), ("<", ">"), ("«", "»")])
@pytest.mark.parametrize(("value", "placeholder"), KINDS, ids=[kind for kind, _ in KINDS])
def test_each_kind_is_replaced_inside_quotes_and_brackets(
    value: str, placeholder: str, before: str, after: str
) -> None:
    assert redact(f"mine: {before}{value}{after} ok") == f"mine: {before}{placeholder}{after} ok"


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_numbers_stay_readable(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("after", PUNCTUATION)
@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_numbers_stay_readable_before_punctuation(text: str, after: str) -> None:
    assert redact(f"{text}{after}") == f"{text}{after}"


def test_several_kinds_in_one_sentence_are_each_replaced() -> None:
    text = "I'm ana@example.com, card 4111 1111 1111 1111; call +44 20 7946 0958 (from 10.0.0.7)."
    assert redact(text) == "I'm [EMAIL], card [CARD]; call [PHONE] (from [IP])."
