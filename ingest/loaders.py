"""Read one file into a title, an optional URL from front matter, and heading-aware sections.

Every loader raises `Unreadable` with a reason a person can act on; the pipeline reports it and goes on.
What a reader of the page never sees (HTML comments, hidden elements, control characters) is left out, and a
title is one line (ingest/clean.py).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter
from bs4 import BeautifulSoup, Comment, Tag
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from ingest.clean import BadDocument, clean_text, clean_title, strip_html_comments
from ingest.splitter import Section, first_heading, markdown_sections, with_heading_paths
from tools.anchors import Anchors

SUFFIXES = {".md", ".markdown", ".html", ".htm", ".txt", ".text", ".pdf"}
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_BLOCKS = ["p", "div", "li", "pre", "blockquote", "table", "tr", "dd", "dt", "section", "article", "br", "hr"]
_DROP = ["script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form"]
_MARK = "\x00HEADING\x00"


class Unreadable(ValueError):
    """The file cannot be ingested; the message says why."""


@dataclass(frozen=True)
class Loaded:
    title: str
    url: str | None  # from front matter; None → derived from --base-url or the file's path
    sections: list[Section]


def _decode(raw: bytes) -> str:
    """UTF-8 text only: a NUL byte means binary, anything else undecodable is named with its position."""
    if b"\x00" in raw[:8192]:
        raise Unreadable("binary file (NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Unreadable(f"not UTF-8 text ({error.reason} at byte {error.start})") from None


def load_markdown(raw: bytes, path: Path) -> Loaded:
    """Front matter `title:` and `url:` win; else the first heading, else the file name."""
    try:
        post = frontmatter.loads(_decode(raw))
    except Unreadable:
        raise
    except Exception as error:  # malformed YAML in the front matter
        raise Unreadable(f"bad front matter: {' '.join(str(error).split())}") from None
    sections = markdown_sections(strip_html_comments(clean_text(post.content)))
    url = post.get("url")
    if url is not None and not isinstance(url, str):
        raise Unreadable(f"front matter url must be text, not a YAML {type(url).__name__}")
    try:
        title = clean_title(post.get("title") or "")
    except BadDocument as error:
        raise Unreadable(str(error)) from None
    return Loaded(title or first_heading(sections) or _name(path), (url or "").strip() or None, sections)


def _html_anchor(heading: Tag, anchors: Anchors, text: str) -> str:
    """The page's own id (on the heading, or on its wrapping <section> as Sphinx does), else a GitHub slug."""
    wrapper = heading.parent if heading.parent is not None and heading.parent.name == "section" else None
    own = heading.get("id") or (wrapper.get("id") if wrapper is not None else None)
    return str(own) if own else anchors(text)


def load_html(raw: bytes, path: Path) -> Loaded:
    """Sections by h1-h6; page chrome (nav, header, footer, scripts) left out; blocks become paragraphs."""
    soup = BeautifulSoup(clean_text(_decode(raw)), "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_DROP):
        tag.decompose()
    for comment in soup.find_all(string=lambda text: isinstance(text, Comment)):
        comment.extract()
    for tag in soup.find_all(_hidden):
        tag.decompose()
    for link in soup.select("a.headerlink"):  # Sphinx's "¶" links
        link.decompose()
    anchors = Anchors()
    levels: dict[str, int] = {}
    for heading in soup.find_all(_HEADINGS):
        text = " ".join(heading.get_text(" ").split())
        anchor = _html_anchor(heading, anchors, text)
        levels[anchor] = levels.get(anchor) or int(heading.name[1])
        heading.replace_with(f"\n\n{_MARK}{anchor}{_MARK}{text}\n\n")
    for block in soup.find_all(_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    body = soup.body or soup
    sections: list[Section] = []
    heading, anchor, paragraphs = "", "", []
    for paragraph in re.split(r"\n\s*\n", body.get_text()):
        if paragraph.strip().startswith(_MARK):
            sections.append(Section(heading, anchor, "\n\n".join(paragraphs), levels.get(anchor, 0)))
            _, anchor, heading = paragraph.strip().split(_MARK, 2)
            paragraphs = []
        elif paragraph.strip():
            paragraphs.append(" ".join(paragraph.split()))
    sections.append(Section(heading, anchor, "\n\n".join(paragraphs), levels.get(anchor, 0)))
    sections = [section for section in with_heading_paths(sections) if section.text]
    return Loaded(first_heading(sections) or page_title or _name(path), None, sections)


def _hidden(tag: Tag) -> bool:
    """An element the browser does not show: `hidden`, or an inline style that hides it."""
    style = str(tag.get("style") or "").replace(" ", "").lower()
    return tag.has_attr("hidden") or "display:none" in style or "visibility:hidden" in style


def load_text(raw: bytes, path: Path) -> Loaded:
    """Plain text is shown as written, so an HTML comment in it is text a reader sees and is kept."""
    return Loaded(_name(path), None, [Section("", "", clean_text(_decode(raw)).strip())])


def _pdf_outline(reader: PdfReader) -> dict[int, tuple[str, ...]]:
    """0-based page number → heading path of the last bookmark that starts on it (the PDF's outline, which
    manuals usually have); {} when there is none or it cannot be read."""
    starts: dict[int, tuple[str, ...]] = {}

    def walk(items: list[Any], parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if isinstance(item, list):  # the children of the item before it
                walk(item, last)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            page = reader.get_destination_page_number(item) if title else None
            if title and page is not None and page >= 0:
                last = (*parents, title)
                starts[page] = last

    try:
        walk(list(reader.outline), ())
    except Exception:  # a damaged outline only costs the heading paths
        return {}
    return starts


def load_pdf(raw: bytes, path: Path) -> Loaded:
    """One section per page, anchored `#page=N` (what PDF viewers understand); title from the PDF's metadata.
    A page's heading path comes from the PDF's bookmarks: that of the last bookmark starting on or before it."""
    try:
        reader = PdfReader(io.BytesIO(raw), strict=False)
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or _name(path)
    except Exception as error:  # pypdf raises many types on damaged files (PdfReadError, ValueError, KeyError…)
        kind = "" if isinstance(error, PyPdfError) else f"{type(error).__name__}: "
        raise Unreadable(f"broken PDF ({kind}{error})") from None
    outline = _pdf_outline(reader)
    sections: list[Section] = []
    current: tuple[str, ...] = ()
    for number, text in enumerate(pages):
        current = outline.get(number, current)
        text = clean_text(text)
        if text.strip():
            heading = current[-1] if current else ""
            sections.append(Section(heading, f"page={number + 1}", text.strip(), 0, current))
    return Loaded(str(title), None, sections)


def _name(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


LOADERS = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".txt": load_text,
    ".text": load_text,
    ".pdf": load_pdf,
}


def check_size(path: Path, max_bytes: int) -> None:
    """Refuse an empty file or one over INGEST_MAX_FILE_MB without reading it."""
    size = path.stat().st_size
    if size > max_bytes:
        raise Unreadable(f"larger than the limit ({size / 1e6:.1f} MB > {max_bytes / 1e6:g} MB, INGEST_MAX_FILE_MB)")
    if size == 0:
        raise Unreadable("empty file")


def load(path: Path, max_bytes: int) -> Loaded:
    """Load one supported file, refusing oversized, empty, binary and undecodable ones with a reason."""
    check_size(path, max_bytes)
    loaded = LOADERS[path.suffix.lower()](path.read_bytes(), path)
    if not loaded.sections:
        raise Unreadable("no text (empty after front matter and markup)")
    try:  # one line of text, whichever loader found it (HTML <title>, PDF metadata, a heading)
        title = clean_title(loaded.title) or _name(path)
    except BadDocument as error:
        raise Unreadable(str(error)) from None
    return Loaded(title, loaded.url, loaded.sections)
