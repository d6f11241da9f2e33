"""Cleaning text that customers send: what reaches prompts, tickets and the console."""

from __future__ import annotations

import re
import unicodedata

KEPT_CONTROLS = {"\n", "\t"}


def strip_controls(text: str) -> str:
    """Drop control and format characters (NUL, terminal escapes, bidi overrides) but keep newlines and tabs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c in KEPT_CONTROLS or unicodedata.category(c) not in ("Cc", "Cf"))


def one_line(text: str) -> str:
    """Controls removed and every run of whitespace (newlines too) one space: a title, a button, a variant."""
    return " ".join(strip_controls(text).split())


_WORD = re.compile(r"[a-z0-9][a-z0-9'_-]*")
_STOP = set(
    "a an the and or but if then of to in on at by for with from as is are was were be been being it its this that "
    "these those you your we our they their i me my he she his her them can could will would should may might must "
    "do does did done have has had not no yes so than too very just also there here what which who whom how when "
    "where why all any each some more most other such only own same into over under about after before again".split()
)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


_NAME_WORD = re.compile(r"[^\W_][\w'’]*")
_SENTENCE = re.compile(r"(?<=[.!?:;])\s+|\n+")
# A customer naming themselves is not a subject: "I'm Jane (from Acme)", "this is Tom", "thanks, Bob".
_INTRO = re.compile(
    r"(?i:\b(?:i'm|i am|my name is|this is|name's))\s+[A-Z]\w*(?:\s+[A-Z]\w*)?"
    r"(?:\s+(?i:from|at|with)\s+[A-Z][\w&.-]*(?:\s+[A-Z]\w*)*)?"
    r"|(?i:\b(?:thanks|thank you|regards|cheers|best))[,!.]?\s+[A-Z]\w*\s*[.!]?\s*$"
)

_CALENDAR = set(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july august "
    "september october november december".split()
)  # capitalised in English, yet they name a time, not a subject


def names(text: str) -> list[str]:
    """Words that name something — a product, a company, a place, an error code: capitalised inside a sentence,
    written in capitals ("SMS", "OpenAI"), or letters mixed with digits ("0x80070643"). In a message typed in capitals
    or Title Case the case says nothing, so only codes count; a customer's own name (`_INTRO`) and days and months
    are left out."""
    text = _INTRO.sub(" ", text)
    letters = [c for c in text if c.isalpha()]
    words = _NAME_WORD.findall(text)
    shouting = bool(letters) and sum(c.isupper() for c in letters) > 0.6 * len(letters)
    titled = len(words) >= 3 and sum(w[0].isupper() for w in words) > 0.6 * len(words)  # "How To Reset My Key"
    found = []
    for sentence in _SENTENCE.split(text):
        for position, word in enumerate(_NAME_WORD.findall(sentence)):
            word = re.split(r"['’]", word)[0]
            capitals = sum(c.isupper() for c in word)
            code = any(c.isdigit() for c in word) and any(c.isalpha() for c in word)
            inside = capitals >= 2 or (capitals == 1 and word[0].isupper() and position > 0)
            cased = inside and not (shouting or titled)
            if len(word) > 1 and (code or cased) and word.lower().rstrip("s") not in _CALENDAR:
                found.append(word)
    return found
