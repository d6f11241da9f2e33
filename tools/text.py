"""Cleaning text that customers send: what reaches prompts, tickets and the console."""

from __future__ import annotations

import unicodedata

KEPT_CONTROLS = {"\n", "\t"}


def strip_controls(text: str) -> str:
    """Drop control and format characters (NUL, terminal escapes, bidi overrides) but keep newlines and tabs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c in KEPT_CONTROLS or unicodedata.category(c) not in ("Cc", "Cf"))
