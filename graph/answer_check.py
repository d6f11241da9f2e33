"""The output checks, applied to the answer *while* it streams, so the customer only ever sees checked text.

`AnswerCheck.feed(piece)` takes the model's next piece and returns the text that may be shown now; it holds
back only what a check still needs to decide:

- **echo of the instructions**: a trailing run of words that also occurs in the system prompt is held; once
  `ECHO_WORDS` consecutive words match, `leaked` is set and nothing of the run is ever released (the caller
  stops the model and refuses);
- **citations**: text from an unclosed `[` is held; a `[n]` pointing at no given source is dropped; a sentence
  that cites nothing gets the `[n]` of the source holding at least `cite_support` of its content words (small
  models rarely write `[n]`: 13 of 100 dev answers did), so the customer sees where each sentence came from —
  its end mark is held until the next word shows the model did not cite it itself;
- **links**: a Markdown link, `<autolink>` or bare URL whose host is no source's host is shown as code text,
  not a link (`[the fix](http://evil/x)` → ``the fix (`http://evil/x`)``);
- **copied sources**: small models sometimes go on to write out their prompt's source block ("Sources:",
  then `qzmfk [1] Title` and the text). The block's key (graph/prompts.py) occurs in no document, so it in the
  output means exactly that: the answer ends before that line, and before a "Sources:" line just above it,
  which is held until the next line shows whether the block follows (`copied` is set; the caller stops the
  model and keeps the answer). A copy sometimes opens its lines with the rules' name for the key
  (`CODE [1] Title`, graph/prompts.py KEY_PLACEHOLDER) instead of the key: a line that starts so is a copy too,
  and a line that may still become one is held;
- **false promises**: a sentence that mentions a ticket / hand-over, or says I / we / your / our, is held to
  its end; if it claims a ticket or hand-over (graph/guard.py), it is dropped. (A sentence whose first words
  carried no sign of a claim may already be partly shown; only its rest can then be dropped.)

The last word and trailing whitespace are always held until the next piece (a word may be cut mid-way), so
the cost is about one token of delay. Text inside code spans and fenced blocks is shown as written.
`close()` flushes the rest at the end of the stream. The text released over the whole stream is `text`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from graph import guard
from graph.prompts import KEY_PLACEHOLDER
from tools.text import content_words

ECHO_WORDS = 8  # this many consecutive words of the system prompt make an echo
MAX_BRACKET_HOLD = 300  # an unclosed "[" longer than this is plain text
_WORD = re.compile(r"\w+")
_LAST_CHUNK = re.compile(r"\s*\S*\Z")
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
_MAY_CLAIM = re.compile(r"\b(i|we|i've|we've|i'll|we'll|i'm|we're|your|our)\b|#\s?\d", re.IGNORECASE)
_OPEN_BRACKET = re.compile(r"\[[^\]\n]*\Z|\[[^\]\n]*\]\Z|\[[^\]\n]*\]\([^)\s]*\Z")
_MARKER = re.compile(r"[ \t]*\[(\d+(?:\s*,\s*\d+)*)\]")
# Where a sentence that cites nothing gets its [n]: before its end mark (with a "[n]" the model put after it)
_CITE_AT = re.compile(r"[.!?]+(?:[ \t]*\[\d+(?:\s*,\s*\d+)*\])?(?=\s|\Z)|\n")
_ENDS_SENTENCE = re.compile(r"[.!?]+\Z")
CITE_MIN_WORDS = 3  # a sentence with fewer content words ("Yes, you can.") says too little to attribute
_MD_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
_AUTOLINK = re.compile(r"<((?:https?://|www\.)[^>\s]+)>")
_BARE_URL = re.compile(r"(?<![\w`(/])((?:https?://|www\.)[^\s<>()\[\]`]+)")
# A last line "Sources:" (also **Sources:**, "Source:"), perhaps with the next line begun: what precedes a copy.
_SOURCES_LINE = re.compile(r"(?:\A|\n)[ \t#*]*sources?[ \t*]*:[ \t*]*(?:\n[^\n]*)?\Z", re.IGNORECASE)
_PLACEHOLDER_HEADER = re.compile(rf"^[ \t#*]*{KEY_PLACEHOLDER} \[\d", re.MULTILINE)
_PLACEHOLDER_PREFIX = f"{KEY_PLACEHOLDER} ["
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*(?:`|\Z|(?=\n))", re.DOTALL)


def host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
    except ValueError:
        return None
    return (parts.hostname or "").lower() or None


@dataclass
class AnswerCheck:
    sources: list[dict[str, Any]]
    system_prompt: str
    source_key: str = ""  # the prompt's source-block key (graph/prompts.py new_key); "" turns the check off
    cite_support: float = 0.0  # CITE_MIN_SUPPORT: attach [n] to sentences citing nothing; 0 turns it off
    text: str = ""  # released so far
    leaked: bool = False
    copied: bool = False  # the model began to copy its source block: the answer ended before it
    fired: list[str] = field(default_factory=list)  # checks that changed the text, once per change
    _raw: str = ""
    _done: int = 0  # how much of _raw has been released (or dropped)
    _sentence: str = ""  # the released prose of the sentence still being written (for attaching its [n])

    def __post_init__(self) -> None:
        self._valid = {int(s["n"]) for s in self.sources}
        self._words = {  # for attaching [n]: only when that is on
            int(s["n"]): content_words(f"{s.get('title', '')} {s.get('text') or s.get('snippet') or ''}")
            for s in (self.sources if self.cite_support else [])
        }
        self._hosts = {h for s in self.sources if (h := host_of(str(s.get("url", ""))))}
        self._prompt_runs = _prompt_runs(self.system_prompt)

    # ------------------------------------------------------------------------------------------------ public

    def feed(self, piece: str) -> str:
        """The newly releasable text after `piece` ("" while held back, or for good once `leaked`)."""
        if self.leaked or self.copied:
            return ""
        self._raw += piece
        if self._cut_copied_sources():
            return self._release(self._snap(len(self._raw)), final=True)
        echo_start = self._echo_run_start()
        if self.leaked:
            return ""
        return self._release(self._snap(min(self._boundary(), echo_start)))

    def close(self) -> str:
        """End of stream: release what is left, deciding every pending check now."""
        if not self.leaked:
            self._echo_run_start(complete=True)
        if self.leaked:
            return ""
        return self._release(len(self._raw), final=True)

    # ------------------------------------------------------------------------------------------ hold-back

    def _cut_copied_sources(self) -> bool:
        """Drop the raw text from the line where the prompt's source key appears (and a "Sources:" line above)."""
        if not self.source_key:
            return False
        start = max(self._done - len(self.source_key), 0)  # only the unreleased tail: this runs on every piece
        at = self._raw[start:].lower().find(self.source_key)
        at = at + start if at >= 0 else len(self._raw)
        line_start = self._raw.rfind("\n", 0, self._done) + 1
        if placeholder := _PLACEHOLDER_HEADER.search(self._raw, line_start):
            at = min(at, placeholder.start())
        if at == len(self._raw):
            return False
        cut = self._raw.rfind("\n", 0, at) + 1
        heading = _SOURCES_LINE.search(self._raw, 0, cut)
        if heading:
            cut = heading.start()
        self._raw = self._raw[: max(cut, self._done)].rstrip(" \t")
        self.copied = True
        self.fired.append("copied_sources")
        return True

    def _echo_run_start(self, complete: bool = False) -> int:
        """Where the trailing run of system-prompt words starts (len(raw) when there is none). A word still
        being written ("sour…") is not part of the run yet: the boundary holds it anyway."""
        tail = self._raw[max(self._done - 200, 0) :]
        offset = len(self._raw) - len(tail)
        words = [(m.group(0).lower(), m.start() + offset) for m in _WORD.finditer(tail)]
        if words and not complete and _WORD.fullmatch(self._raw[-1]):
            words.pop()
        for size in range(min(ECHO_WORDS, len(words)), 0, -1):
            run = tuple(w for w, _ in words[-size:])
            if run in self._prompt_runs:
                if size == ECHO_WORDS:
                    self.leaked = True
                    self.fired.append("system_prompt_echo")
                start = words[-size][1]
                return start if start >= self._done else len(self._raw)
        return len(self._raw)

    def _boundary(self) -> int:
        """The end of what every check but the echo check can decide on now: not the last word (it may be cut
        mid-way), not a sentence that may still turn out to be a false promise."""
        raw = self._raw
        end = _LAST_CHUNK.search(raw, self._done).start()  # type: ignore[union-attr]
        if self.source_key and (heading := _SOURCES_LINE.search(raw, self._done)):
            end = min(end, heading.start())  # a "Sources:" line waits for the line after it
        line_start = raw.rfind("\n") + 1
        if self.source_key and line_start >= self._done and _may_open_copy(raw[line_start:]):
            end = min(end, line_start)  # "CODE [" may be the start of a copied source header
        if not self._in_code(len(raw)):
            sentence = self._sentence_start(len(raw))
            if _may_promise(raw[sentence:]):
                end = min(end, sentence)
        return max(end, self._done)

    def _snap(self, upto: int) -> int:
        """Never release half a word, half a link or citation, or half a sentence a check may still drop."""
        raw = self._raw
        while self._done < upto < len(raw) and not raw[upto - 1].isspace() and not raw[upto].isspace():
            upto -= 1
        if not self._in_code(upto):
            head = raw[self._done : upto]
            bracket = _OPEN_BRACKET.search(head)
            if bracket and len(head) - bracket.start() <= MAX_BRACKET_HOLD:
                upto = self._done + bracket.start()
                while upto > self._done and raw[upto - 1] in " \t":
                    upto -= 1
        sentence = self._sentence_start(upto)
        following = _SENTENCE_END.search(raw, upto)
        if sentence < upto and _may_promise(raw[sentence : following.end() if following else len(raw)]):
            upto = sentence
        return upto

    def _sentence_start(self, position: int) -> int:
        """Where the sentence that `position` is in starts (not before what was released)."""
        last = _last(_SENTENCE_END.finditer(self._raw, self._done, position))
        return last.end() if last else self._done

    def _in_code(self, position: int) -> bool:
        """True when `position` is inside a code span or fenced block that is still open there."""
        last = _last(_CODE.finditer(self._raw, 0, position))
        if last is None or last.end() < position:
            return False
        code = last.group(0)
        fence = code.startswith("```")
        return not (len(code) >= (6 if fence else 2) and code.endswith("```" if fence else "`"))

    # ----------------------------------------------------------------------------------------- releasing

    def _release(self, upto: int, final: bool = False) -> str:
        raw = self._raw
        if self.cite_support and not final and not self._in_code(upto) and not raw[upto:].strip():
            if mark := _ENDS_SENTENCE.search(raw, self._done, upto):  # did it end uncited? the next word tells
                upto = mark.start()
        if upto <= self._done:
            return ""
        segment, before, at = raw[self._done : upto], raw[: self._done], self._done
        self._done = upto
        parts = []
        for part, is_code in _split_code(segment, before):
            at += len(part)
            last = final and at >= upto
            parts.append(part if is_code else self._cite(self._clean_prose(part), raw[at : at + 40], last))
        out = "".join(parts)
        self.text += out
        return out

    def _cite(self, prose: str, after: str, final: bool) -> str:
        """`prose` with `[n]` put before the end mark of each sentence that cites nothing and that one source
        backs. `after`: the raw text that follows `prose` (what tells whether a sentence ended, and whether the
        model cites it after its end mark); `final`: the answer ends after `prose`, a last sentence without an end
        mark with it."""
        if not self.cite_support:
            return prose
        out, start = [], 0
        for mark in _CITE_AT.finditer(prose):
            following = prose[mark.end() :] + after
            if re.match(r"[ \t]+[a-z]", following):  # "e.g. the", "v1.2 or": the sentence goes on
                continue
            sentence = self._sentence + prose[start : mark.start()]
            out.append(prose[start : mark.start()])
            ended = final if not following.strip() else re.match(r"\s+[^\s\[]", following) is not None
            if mark.group(0) != "\n" and ended and (n := self._backing(sentence + mark.group(0))):
                out.append(f" [{n}]")
                self.fired.append("attached_citation")
            out.append(mark.group(0))
            start, self._sentence = mark.end(), ""
        rest = prose[start:]
        self._sentence += rest
        if final and rest.strip() and (n := self._backing(self._sentence)):
            stripped = rest.rstrip()
            rest = f"{stripped} [{n}]{rest[len(stripped) :]}"
            self.fired.append("attached_citation")
        return "".join(out) + rest

    def _backing(self, sentence: str) -> int | None:
        """The source (lowest [n] on a tie) holding at least `cite_support` of the sentence's content words, if it
        cites nothing yet."""
        if _MARKER.search(sentence):
            return None
        words = content_words(sentence)
        if len(words) < CITE_MIN_WORDS:
            return None
        share, n = max(((len(words & found) / len(words), -n) for n, found in self._words.items()), default=(0, 0))
        return -n if share >= self.cite_support else None

    def _clean_prose(self, text: str) -> str:
        kept = []
        for sentence in _sentences(text):
            if guard.is_false_promise(sentence):
                self.fired.append("false_promise")
                before = self.text + "".join(kept)
                if before and not before[-1].isspace():
                    kept.append(sentence[len(sentence.rstrip()) :])  # "Your" + " " + "Bye": keep the gap
                continue
            kept.append(sentence)
        text = "".join(kept)
        text = _MARKER.sub(self._marker, text)
        text = _MD_LINK.sub(self._md_link, text)
        text = _AUTOLINK.sub(lambda m: self._bare(m.group(1)), text)
        return _BARE_URL.sub(lambda m: self._bare(m.group(1)), text)

    def _marker(self, match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*,\s*", match.group(1))]
        good = [n for n in numbers if n in self._valid]
        if len(good) < len(numbers):
            self.fired.append("invalid_citation")
        if not good:
            return ""
        lead = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip(" \t"))]
        return f"{lead}[{', '.join(map(str, good))}]"

    def _allowed(self, url: str) -> bool:
        return url.lower().startswith(("http://", "https://")) and host_of(url) in self._hosts

    def _md_link(self, match: re.Match[str]) -> str:
        image, label, url = match.groups()
        if self._allowed(url) and not image:
            return match.group(0)
        self.fired.append("foreign_link")
        return f"{label} (`{url}`)" if label.strip() else f"`{url}`"

    def _bare(self, url: str) -> str:
        trimmed = url.rstrip(".,;:!?")
        rest = url[len(trimmed) :]
        if self._allowed(trimmed):
            return trimmed + rest
        self.fired.append("foreign_link")
        return f"`{trimmed}`{rest}"


def _may_open_copy(line: str) -> bool:
    """True while `line` (the line being written) may still turn out to be `CODE [n] …`."""
    line = line.lstrip(" \t#*")
    return bool(line) and (
        _PLACEHOLDER_PREFIX.startswith(line) or bool(re.fullmatch(rf"{KEY_PLACEHOLDER} \[\d*", line))
    )


@functools.lru_cache(maxsize=8)
def _prompt_runs(system_prompt: str) -> frozenset[tuple[str, ...]]:
    """Every run of 1..ECHO_WORDS consecutive words of the instructions. The same instructions serve every turn,
    so this is built once per text, not once per answer (it was a visible per-turn cost under load)."""
    words = _WORD.findall(system_prompt.lower())
    return frozenset(tuple(words[i : i + n]) for n in range(1, ECHO_WORDS + 1) for i in range(len(words)))


def _last(matches: Iterable[re.Match[str]]) -> re.Match[str] | None:
    found = None
    for found in matches:  # noqa: B007 (the loop keeps the last match)
        pass
    return found


def _split_code(segment: str, before: str) -> Iterable[tuple[str, bool]]:
    """(part, is_code) pieces of `segment`, knowing whether the text before left a code span open."""
    whole = before + segment
    offset = len(before)
    position = offset
    for match in _CODE.finditer(whole):
        start, end = max(match.start(), offset), match.end()
        if end <= offset:
            continue
        if start > position:
            yield whole[position:start], False
        yield whole[start:end], True
        position = end
    if position < len(whole):
        yield whole[position:], False


def _may_promise(sentence: str) -> bool:
    return _MAY_CLAIM.search(sentence) is not None or guard.mentions_handover(sentence)


def _sentences(text: str) -> list[str]:
    """Sentences with their trailing whitespace, so joining them gives the text back."""
    parts, start = [], 0
    for match in re.finditer(r"(?<=[.!?])\s+|\n+", text):
        parts.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts
