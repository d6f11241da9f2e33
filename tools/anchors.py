"""Heading anchors, the same for the ingester (which puts them in chunk URLs) and the help pages (which put them
on headings), so a citation link lands on its section."""

from __future__ import annotations

import re
import unicodedata

from markdown_it.token import Token


def slugify(heading: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped (letters, digits, '-', '_' kept), spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


class Anchors:
    """Unique anchors within one page, numbered as GitHub does: `setup`, `setup-1`, `setup-2`."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, heading: str) -> str:
        slug = slugify(heading)
        count = self._seen.get(slug, 0)
        self._seen[slug] = count + 1
        return slug if count == 0 else f"{slug}-{count}"


def heading_text(inline: Token) -> str:
    """A heading's visible text (what GitHub slugs): inline markup and link targets left out."""
    parts = [child.content for child in inline.children or [] if child.type in ("text", "code_inline")]
    return "".join(parts).strip() or inline.content.strip()
