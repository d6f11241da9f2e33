"""The ingestion scan: which chunks carry instructions injected for the model, so they are quarantined, not indexed.

"Injected instructions" is what the chat's detector (tools/injection.py) flags, read the way a document is
written — for people, sometimes about attacks — with four generic rules (docs/security.md#documents):

1. The title is scanned as written, every tag in it ending a line (`"></source> SYSTEM: …` is a title that
   tries to start a line of its own).
2. The text is scanned as prose: code blocks, code spans and quotations are examples a page shows, not words
   it says to its reader (a page about prompt injection quotes "developer mode"; an API page shows
   `"role": "system"`). Tags end a line here too.
3. Exfiltration patterns do not count: a document has nothing to exfiltrate, and their words (password,
   API key, e-mail, "show your instructions") are everyday support-page vocabulary. The system prompt is
   guarded by the answer's own echo check.
4. The other-language patterns count only in paragraphs that are not English: on English text they match
   words the English patterns leave alone on purpose ("system-prompt", "ignores your instructions").

It is a tripwire for the usual phrasings, not a wall: a paraphrase, or an instruction put in quotes or code,
passes. What holds then is the prompt's format — per-request delimiters a document cannot know — and the rule
that sources are data (graph/prompts.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

from tools.injection import detect_all

IGNORED_KINDS = {"prompt_exfiltration"}
FOREIGN_KINDS = {"other_language"}
EXCERPT_CHARS = 160

_markdown = MarkdownIt("commonmark", {"html": False})
_TAG = re.compile(r"</?[A-Za-z][^<>\n]*>")
# Double quotes, straight or curly, within one paragraph.
_QUOTED = re.compile(r'"(?:[^"\n]|\n(?!\s*\n)){1,500}?"|“(?:[^”\n]|\n(?!\s*\n)){1,500}?”')
_WORD = re.compile(r"[a-z']+")
# Words that are frequent in English and are not words of German, French, Spanish or Italian.
_ENGLISH = frozenset("the and of to is are that this with for you your be by it its not from can will".split())


@dataclass(frozen=True)
class Finding:
    kind: str  # the detector's kind (instruction_override, role_hijack, indirect_injection, …)
    match: str  # what it matched
    where: str  # "title" or "text"

    @property
    def reason(self) -> str:
        return f"{self.kind} in the {self.where}: {' '.join(self.match.split())[:80]!r}"


def prose(markdown: str) -> str:
    """The text a reader reads as sentences: Markdown without code blocks, code spans and quotations; a
    paragraph per block, its line breaks kept (the model sees them, and role markers are line-initial)."""
    paragraphs = []
    for token in _markdown.parse(markdown):
        if token.type != "inline":
            continue
        parts = []
        for child in token.children or []:
            if child.type == "code_inline":
                parts.append(" ")
            elif child.type in ("softbreak", "hardbreak"):
                parts.append("\n")
            else:
                parts.append(child.content)
        paragraphs.append(_QUOTED.sub(" ", "".join(parts)))
    return "\n\n".join(paragraphs)


def _english(paragraph: str) -> bool:
    words = _WORD.findall(paragraph.lower())
    return len(words) >= 4 and sum(word in _ENGLISH for word in words) / len(words) >= 0.08


def _finding(text: str, where: str) -> Finding | None:
    """Each paragraph as the model reads it (its line breaks) and as a reader does (a wrapped line joined to
    the next: "ignore your previous⏎instructions")."""
    text = _TAG.sub("\n", text)
    flat = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    if not detect_all(f"{text}\n\n{flat}"):  # the common case in one pass; paragraphs only to weigh a match
        return None
    for paragraph in [*re.split(r"\n\s*\n", text), *re.split(r"\n\s*\n", flat)]:
        for kind, matches in detect_all(paragraph).items():
            if kind in IGNORED_KINDS or (kind in FOREIGN_KINDS and _english(paragraph)):
                continue
            return Finding(kind, matches[0], where)
    return None


def scan_chunk(title: str, text: str) -> Finding | None:
    """The first injected instruction in a chunk's title or prose, or None for an ordinary chunk."""
    return _finding(title, "title") or _finding(prose(text), "text")


def excerpt(text: str, match: str) -> str:
    """About EXCERPT_CHARS characters of the chunk around what matched (or its start), on one line."""
    flat = " ".join(text.split())
    at = flat.lower().find(" ".join(match.split()).lower())
    start = max(at - EXCERPT_CHARS // 3, 0) if at >= 0 else 0
    piece = flat[start : start + EXCERPT_CHARS]
    return ("…" if start else "") + piece + ("…" if start + EXCERPT_CHARS < len(flat) else "")
