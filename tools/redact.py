"""Personal data out of anything written to logs: emails, phone numbers, card numbers, IBANs, IP addresses,
API keys. Card numbers must pass the Luhn check and IBANs the mod-97 check, so order numbers, versions, dates
and prices stay readable.

A number ends where a sentence does: "card 4111 1111 1111 1111." is a card followed by a full stop, so the
patterns refuse only a dot that continues the number ("3.11"), never one that ends it.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d.+])(?:\d[ -]?){12,18}\d(?!\d|\.\d)")  # "+": a phone number in international form
_PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?!\w|\.\w)"
    r"|(?<![\w.])\+\d{8,15}(?!\w)"
)
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}[./-]\d{2}[./-]\d{2,4}|(?:19|20)\d{2} ?- ?(?:19|20)\d{2}")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_SECRET = re.compile(
    r"\b(?:sk|pk|rk|ghp|gho|xox[abp]|AKIA)[-_A-Za-z0-9]{16,}\b"
    r"|\bBearer\s+[A-Za-z0-9._~+/-]{15,}[A-Za-z0-9_~+/-]=*"  # a token does not end with the sentence's full stop
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    looks_like_date = _DATE_LIKE.fullmatch(text.strip())  # a date, or a range of years
    return "[PHONE]" if 8 <= len(digits) <= 15 and not looks_like_date else text


def redact(text: str) -> str:
    """The text with personal data replaced by typed placeholders ([EMAIL], [PHONE], …)."""
    text = _SECRET.sub("[SECRET]", text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _IBAN.sub(lambda m: "[IBAN]" if _iban_ok(m.group(0)) else m.group(0), text)
    text = _CARD.sub(_card, text)
    text = _IPV4.sub("[IP]", text)
    return _PHONE.sub(_phone, text)
