"""Personal data is redacted from logs; ordinary numbers are not."""

import pytest

from tools.redact import redact


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
    ],
)
def test_each_kind_of_personal_data_is_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order 12345 arrived",
        "Python 3.11.7 is required",
        "Invoice dated 2026-11-24",
        "It costs $1,299.00 per year",
        "Wait 30 minutes and try again",
        "The code 4111 1111 1111 1112 is not a valid card",  # fails the Luhn check
        "Ticket T-ABCD1234 is open",
        "Version 1.5.9 of chromadb",
    ],
)
def test_ordinary_numbers_stay_readable(text: str) -> None:
    assert redact(text) == text
