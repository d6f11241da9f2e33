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
