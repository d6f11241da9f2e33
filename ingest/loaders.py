"""Read one file into a title, an optional URL from front matter, and heading-aware sections.

Every loader raises `Unreadable` with a reason a person can act on; the pipeline reports it and goes on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import frontmatter
from bs4 import BeautifulSoup
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from ingest.splitter import Section, markdown_sections, slugify

SUFFIXES = {".md", ".markdown", ".html", ".htm", ".txt", ".text", ".pdf"}
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_MARK = "\x00HEADING\x00"


class Unreadable(ValueError):
    """The file cannot be ingested; the message says why."""


@dataclass(frozen=True)
class Loaded:
    title: str
    url: str | None  # from front matter; None → derived from --base-url
    sections: list[Section]


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise Unreadable("binary file (NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Unreadable(f"not UTF-8 text ({error.reason} at byte {error.start})") from None


def load_markdown(raw: bytes, path: Path) -> Loaded:
    try:
        post = frontmatter.loads(_decode(raw))
    except Unreadable:
        raise
    except Exception as error:  # malformed YAML front matter
        raise Unreadable(f"bad front matter: {error}") from None
    first_heading, sections = markdown_sections(post.content)
    title = str(post.get("title") or first_heading or path.stem)
    url = post.get("url")
    return Loaded(title, str(url) if url else None, sections)


def load_html(raw: bytes, path: Path) -> Loaded:
    soup = BeautifulSoup(_decode(raw), "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "template"]):
        tag.decompose()
    for link in soup.select("a.headerlink"):  # Sphinx's "¶" links
        link.decompose()
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    first_h1 = ""
    for heading in soup.find_all(_HEADINGS):
        text = heading.get_text(" ", strip=True)
        anchor = heading.get("id") or (heading.parent.get("id") if heading.parent else None) or slugify(text)
        if heading.name == "h1" and not first_h1:
            first_h1 = text
        heading.replace_with(f"\n{_MARK}{anchor}{_MARK}{text}\n")
    body = soup.body or soup
    sections: list[Section] = []
    heading, anchor, lines = "", "", []
    for line in body.get_text("\n").splitlines():
        if line.startswith(_MARK):
            sections.append(Section(heading, anchor, "\n".join(lines).strip()))
            _, anchor, heading = line.split(_MARK, 2)
            lines = []
        elif line.strip():
            lines.append(line.strip())
    sections.append(Section(heading, anchor, "\n".join(lines).strip()))
    return Loaded(first_h1 or page_title or path.stem, None, [s for s in sections if s.text])


def load_text(raw: bytes, path: Path) -> Loaded:
    return Loaded(path.stem.replace("_", " ").replace("-", " "), None, [Section("", "", _decode(raw).strip())])


def load_pdf(raw: bytes, path: Path) -> Loaded:
    """One section per page, anchored `#page=N` (what PDF viewers understand)."""
    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
        raise Unreadable(f"broken PDF: {error}") from None
    sections = [Section("", f"page={n}", text.strip()) for n, text in enumerate(pages, 1) if text.strip()]
    return Loaded(str(title), None, sections)


LOADERS = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".txt": load_text,
    ".text": load_text,
    ".pdf": load_pdf,
}


def load(path: Path, max_bytes: int) -> Loaded:
    size = path.stat().st_size
    if size > max_bytes:
        raise Unreadable(f"larger than the limit ({size / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB, INGEST_MAX_FILE_MB)")
    raw = path.read_bytes()
    loaded = LOADERS[path.suffix.lower()](raw, path)
    if not any(section.text.strip() for section in loaded.sections):
        raise Unreadable("empty (no text)")
    return loaded
