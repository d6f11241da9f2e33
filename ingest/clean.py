"""What a document may carry into the knowledge base: one-line titles, no hidden text, only links people can follow.

A page is written for people, so what a reader never sees (HTML comments, control and format characters) is
dropped before anything is chunked, embedded or shown to the model; a title is one line of text; a URL is a
web address (docs/ingestion.md#what-is-cleaned).
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import urljoin, urlsplit

from markdown_it import MarkdownIt

from tools.text import strip_controls

MAX_TITLE_CHARS = 200  # longer titles are cut at a word: a title is repeated on every chunk and in every prompt
_markdown = MarkdownIt("commonmark", {"html": False})
# An inline code span (kept as written) or an HTML comment; an unclosed comment hides the rest, as in a browser.
_SPAN_OR_COMMENT = re.compile(r"(?P<code>(?P<ticks>`+)[\s\S]*?(?P=ticks))|<!--[\s\S]*?(?:-->|\Z)")


class BadDocument(ValueError):
    """The document's front matter cannot be used; the message says what to change."""


def _drop_comments(text: str) -> str:
    return _SPAN_OR_COMMENT.sub(lambda m: m.group(0) if m.group("code") else "", text)


def strip_html_comments(markdown: str) -> str:
    """`<!-- … -->` removed outside code blocks and code spans: a reader never sees it, so neither does the
    model. Code shows HTML as written, so a comment inside an example stays."""
    lines = markdown.splitlines(keepends=True)
    in_code = [False] * len(lines)
    for token in _markdown.parse(markdown):
        if token.type in ("fence", "code_block") and token.map:
            for number in range(*token.map):
                in_code[number] = True
    parts: list[str] = []
    start = 0
    for number in range(len(lines) + 1):  # runs of prose lines cleaned together (a comment may span lines)
        if number == len(lines) or in_code[number]:
            parts.append(_drop_comments("".join(lines[start:number])))
            if number < len(lines):
                parts.append(lines[number])
            start = number + 1
    return "".join(parts)


def clean_text(text: str) -> str:
    """Without control and format characters (bidi overrides, zero-width and Unicode tag characters can hide
    words from a reader but not from the model); newlines and tabs kept."""
    return strip_controls(text)


def clean_title(value: object) -> str:
    """One line of plain text: whitespace runs (newlines included) become one space, at most MAX_TITLE_CHARS.
    A title that is not text (a YAML list or mapping) is refused rather than printed as Python."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | date):
        kind = type(value).__name__
        raise BadDocument(f'front matter title must be text, not a YAML {kind} (put it in quotes: title: "…")')
    title = " ".join(clean_text(str(value)).split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + " …"
    return title


def check_base_url(base_url: str) -> str:
    """--base-url must be an absolute http(s) URL: every relative link is resolved against it."""
    problem = _web_url_problem(base_url)
    if problem:
        raise ValueError(f"--base-url {base_url!r} is not usable: {problem}")
    return base_url


def resolve_url(url: str, base_url: str | None) -> str:
    """A front matter `url:` as the link customers get: an absolute http(s) URL, or a path resolved against
    --base-url. Anything else (javascript:, data:, file:, a host-less or protocol-relative URL) is refused."""
    text = url.strip()
    if any(c.isspace() or not c.isprintable() for c in text):
        raise BadDocument(f"front matter url {url!r} contains spaces or control characters")
    parts = urlsplit(text)
    if parts.scheme or parts.netloc:
        problem = _web_url_problem(text)
        if problem:
            raise BadDocument(f"front matter url {url!r} is not usable: {problem}")
        return text
    if not base_url:
        raise BadDocument(f"front matter url {url!r} is relative: give --base-url to resolve it, or write a full URL")
    return urljoin(base_url.rstrip("/") + "/", text)


def _web_url_problem(url: str) -> str:
    """Why `url` is not an absolute http(s) URL with a host, or "" when it is."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as error:
        return str(error)
    if parts.scheme.lower() not in ("http", "https"):
        return f"only http and https links are allowed (got {parts.scheme + ':' if parts.scheme else 'no scheme'})"
    if not parts.hostname:
        return "it has no host"
    if parts.username is not None or parts.password is not None:
        return "it carries a user name or password"
    return ""
