"""What the customer is shown is what was stored and logged — also when the model's words must be corrected.

The model's words come from a scripted stand-in (tests/helpers/scripted_llm.py: a real OpenAI-compatible HTTP
server that only replaces *what the model says*); everything else is real: the app in a uvicorn subprocess
(its own instance, module-scoped, LLM_BASE_URL = the stand-in) on the test session's Redis and Chroma, over the
help-centre pages of tests/helpers/app_process.py, and headless Chromium. For each scripted reply — a normal
cited answer, an echo of the instructions, an invented citation, an invented link, a false promise of a ticket,
the model dying mid-answer — both a browser and a plain HTTP client check that:

- the forbidden text never reaches the customer: not in any SSE `token`, and not in the page's DOM at any
  moment (a MutationObserver records the DOM's text after every change while the answer streams);
- what the page shows at the end (the answer bubble's text) is `done.text` rendered, which equals the stored
  message (GET /api/sessions/{id}/history) and the logged answer (Redis hash `log:day:YYYY-MM-DD`, field =
  message id, answer redacted), and a reload shows it the same way.

Also: the widget on a page of another origin is closed by a message addressed to that origin only.

Page selectors (frontend/js/message-view.js):
    li.msg.bot                      one answer; classes `streaming` (until `done`), `interrupted`, `refused`
    li.msg.bot .bubble .md          the answer's rendered Markdown, nothing else (its innerText is "shown")
    li.msg.bot .interrupted-label   "(answer interrupted)", inside the bubble, outside `.md`
    li.msg.bot .model-notice        the server's `error` notice, outside the bubble
    li.msg.bot .md a.cite           an inline [n] citation linked to source n
    [data-support-chat=button|frame]  the widget's button and iframe on a host page

Chromium, the page, the waits, typing and the /chat recorder come from tests/helpers/browser.py (waits poll
`page.evaluate()`: the page's CSP forbids `page.wait_for_function`); the app instance from tests/conftest.py's
`start_app`.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import redis

from helpers.browser import RECORD_CHATS, needs_chromium, open_page, parse_sse, poll, send, session_id, wait_ready
from helpers.scripted_llm import ScriptedLLM, scripted_llm, split_chunks
from helpers.sse import answer_text, chat_events, payload
from tools.redact import redact

DOCS_BASE_URL = "https://help.example.com/"
QUESTION = "How do I reset my password?"
INSTRUCTIONS = (
    "You are the customer-support assistant for this product. Answer the customer's question using only the "
    "numbered sources in their message."
)
REFUSAL_START = "I can only help with questions about our product"
RUN_WORDS = 8  # an echo is any run of this many consecutive words of the instructions
CUT_AFTER = 3  # chunks the dying model sends

pytestmark = [pytest.mark.slow]


# ------------------------------------------------------------------------------------------------- cases


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:['’-][a-z0-9]+)*", text.lower())


def runs(text: str, n: int = RUN_WORDS) -> set[tuple[str, ...]]:
    found = words(text)
    return {tuple(found[i : i + n]) for i in range(len(found) - n + 1)}


def normal(text: str) -> str:
    """Whitespace normalised: what a person reads."""
    return " ".join(text.split())


def without_code_spans(markdown: str) -> str:
    return re.sub(r"`[^`]*`", "", markdown)


@dataclass(frozen=True)
class Case:
    id: str
    reply: str  # what the scripted model says
    check_final: Callable[[str], None]  # assertions on done.text (= stored = logged)
    never: tuple[str, ...] = ()  # never streamed nor in the DOM (case-insensitive)
    never_runs_of: str | None = None  # no RUN_WORDS-word run of this text is ever streamed nor in the DOM
    die_after_chunks: int | None = None
    refused: bool = False
    interrupted: bool = False


def _normal_answer(text: str) -> None:
    assert text == NORMAL, "a correct cited answer is kept as the model wrote it"


def _echo(text: str) -> None:
    assert text.startswith(REFUSAL_START), f"the echo is replaced by the refusal: {text!r}"
    assert not runs(text) & runs(INSTRUCTIONS)


def _invented_citation(text: str) -> None:
    assert text == "Reset it from the login page [1].", "the marker of no given source is removed"


def _invented_link(text: str) -> None:
    assert "the fix" in text, "the link's words stay"
    assert not re.search(r"\]\(\s*<?\s*https?://evil\.example", text, re.IGNORECASE), "no Markdown link to it"
    assert "evil.example" not in without_code_spans(text), "the URL, if kept, is only code text (never a link)"


def _false_promise(text: str) -> None:
    assert "created a ticket" not in text.lower()
    assert "Reset it from the login page [1]." in text, "the rest of the answer stays (with its source's number)"


def _cut(text: str) -> None:
    partial = "".join(split_chunks(DYING, 1)[:CUT_AFTER])
    assert normal(text) == normal(partial), "what the model said before it died is kept, and only that"


NORMAL = "A password reset link is sent to your e-mail address and expires after 30 minutes [1]."
DYING = "A password reset link is sent to your e-mail address."
CASES = [
    Case("normal_cited_answer", NORMAL, _normal_answer),
    Case(
        "echo_of_instructions",
        f"Sure! My instructions are: {INSTRUCTIONS}",
        _echo,
        never_runs_of=INSTRUCTIONS,
        refused=True,
    ),
    Case("invented_citation", "Reset it from the login page [1] [7].", _invented_citation, never=("[7]",)),
    Case("invented_link", "See [the fix](http://evil.example/fix) now.", _invented_link),
    Case(
        "false_promise",
        "I have created a ticket for you. Reset it from the login page.",
        _false_promise,
        never=("created a ticket",),
    ),
    Case("model_dies_mid_answer", DYING, _cut, die_after_chunks=CUT_AFTER, interrupted=True),
]


def assert_never_shown(case: Case, texts: list[str]) -> None:
    for text in texts:
        for forbidden in case.never:
            at = text.lower().find(forbidden.lower())
            assert at < 0, f"{forbidden!r} reached the customer: …{normal(text[max(0, at - 120) : at + 120])}…"
        if case.never_runs_of:
            echoed = runs(text) & runs(case.never_runs_of)
            assert not echoed, f"{RUN_WORDS} words of the instructions reached the customer: {echoed}"


def assert_done_flags(case: Case, done: dict[str, Any]) -> None:
    assert isinstance(done.get("text"), str), f"`done` carries the final text: {done}"
    assert done.get("message_id"), done
    assert bool(done.get("interrupted")) is case.interrupted, done
    assert bool(done.get("refused")) is case.refused, done


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass
class App:
    url: str
    redis_url: str
    shop: str  # origin of a company's page on another origin that embeds the widget (see `shop`)


class _ShopPage(BaseHTTPRequestHandler):
    """`GET /?widget=<url>`: a company's page whose one script tag is that widget.js."""

    def do_GET(self) -> None:
        widget = parse_qs(urlsplit(self.path).query).get("widget", [""])[0]
        body = f'<!doctype html><title>Shop</title><p>Shop</p><script src="{escape(widget)}" defer></script>'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    """A second real web server (another origin on this machine: Chromium refuses public → local requests)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ShopPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as server:
        yield server


@pytest.fixture(scope="module")
def app(start_app, llm: ScriptedLLM, shop: str) -> Iterator[App]:  # type: ignore[no-untyped-def]
    """The real app on the session's Redis and Chroma, its LLM the scripted stand-in; framable by `shop`."""
    env = {"LLM_BASE_URL": llm.url, "ADMIN_TOKEN": "checks-admin-token", "FRAME_ANCESTORS": f"'self' {shop}"}
    with start_app("checks-app", "checks", env) as process:
        yield App(process.url, process.env["REDIS_URL"], shop)


@pytest.fixture
def page(browser, app: App, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A fresh browser context (empty localStorage) on the chat page; JS errors fail the test."""
    with open_page(browser, app.url + "/", request.node.name) as page:
        yield page


# ----------------------------------------------------------------------------------------------- helpers


def playwright_error() -> type[Exception]:
    from playwright.sync_api import Error

    return Error


# Records, after every DOM change, the page's whole text, each answer body's innerText and every link's host
# (with RECORD_CHATS, run on the loaded page, keeping a copy of each /chat stream).
OBSERVE_DOM = """(() => {
    window.__seen = [];
    const record = () => window.__seen.push({
        text: document.body.textContent,
        bodies: [...document.querySelectorAll('.msg.bot .md')].map((n) => n.innerText),
        hosts: [...document.querySelectorAll('a[href]')].map((a) => a.host),
    });
    window.__observer = new MutationObserver(record);
    window.__observer.observe(document.body,
        { subtree: true, childList: true, characterData: true, attributes: true });
})()"""

ANSWER_DONE = (
    "(() => { const a = document.querySelector('.msg.bot'); return a && !a.classList.contains('streaming'); })()"
)

# The final state of the first answer, as the customer sees it.
SHOWN = """(() => {
    const a = document.querySelector('.msg.bot');
    const notice = a.querySelector('.model-notice');
    const label = a.querySelector('.interrupted-label');
    return {
        text: a.querySelector('.bubble .md').innerText,
        classes: [...a.classList],
        interruptedLabel: !!label && !label.hidden && label.checkVisibility() && !label.closest('.md'),
        notice: notice && !notice.hidden && notice.checkVisibility() ? notice.innerText : null,
        noticeInBubble: !!notice?.closest('.bubble'),
        cites: [...a.querySelectorAll('.md a.cite')].map((c) => ({ text: c.textContent, href: c.href })),
        links: [...a.querySelectorAll('.md a[href]')].map((l) => ({ text: l.textContent, host: l.host })),
    };
})()"""


def rendered_text(page, markdown: str, sources: list[dict[str, Any]]) -> str:  # type: ignore[no-untyped-def]
    """The page's own rendering of `markdown` (Markdown → sanitised HTML, citations linked), as text."""
    return page.evaluate(
        """async ([markdown, sources]) => {
            const { renderMarkdown } = await import('/static/js/render.js');
            const box = document.createElement('div');
            box.className = 'md';
            document.body.append(box);
            renderMarkdown(box, markdown, sources);
            const text = box.innerText;
            box.remove();
            return text;
        }""",
        [markdown, sources],
    )


def stored_answer(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/api/sessions/{session_id}/history")
    assert response.status_code == 200, response.text
    messages = response.json()["messages"]
    assert [m["role"] for m in messages[-2:]] == ["user", "assistant"], messages
    return messages[-1]


def logged_turn(redis_url: str, message_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The conversation-log record of one answer (written in the background just after `done`)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            today = datetime.now(UTC).date()
            for day in (today, today - timedelta(days=1)):
                raw = client.hget(f"log:day:{day.isoformat()}", message_id)
                if raw:
                    return json.loads(raw)  # type: ignore[arg-type]
            time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"no conversation-log record for {message_id} within {timeout} s")


def check_sources(sources: list[dict[str, Any]]) -> None:
    assert sources, "the question retrieves the help-centre pages"
    assert all(s["url"].startswith(DOCS_BASE_URL) for s in sources), sources
    assert max(int(s["n"]) for s in sources) < 7, "[7] must be a source that was not given"


def check_stored_and_logged(app: App, session_id: str, done: dict[str, Any], case: Case) -> None:
    """done.text == the stored message == the logged answer (redacted as every log is)."""
    with httpx.Client(base_url=app.url, timeout=30) as client:
        stored = stored_answer(client, session_id)
    assert stored["content"] == done["text"], "the stored message is what `done` said"
    assert stored["message_id"] == done["message_id"]
    assert bool(stored.get("interrupted")) is case.interrupted, stored
    logged = logged_turn(app.redis_url, done["message_id"])
    assert logged["session_id"] == session_id
    assert logged["answer"] == redact(done["text"]), "the logged answer is what the customer was shown"


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_over_http_the_stream_never_carries_what_is_withheld_and_done_is_what_is_kept(
    app: App, llm: ScriptedLLM, case: Case
) -> None:
    """/chat over plain HTTP: `sources` before any token, no forbidden text in any token, `done` last with the
    final text and flags; done.text == stored == logged; a model dying mid-answer gives an `error` notice
    that is not part of the answer."""
    llm.script(case.reply, die_after_chunks=case.die_after_chunks)
    with httpx.Client(base_url=app.url, timeout=60) as client:
        events = chat_events(client, {"message": QUESTION})
    names = [name for name, _ in events]
    assert names[0] == "session" and names[-1] == "done", names
    assert names.count("done") == 1, names
    assert "sources" in names and ("token" not in names or names.index("sources") < names.index("token")), names
    check_sources(payload(events, "sources")["sources"])
    streamed = answer_text(events)
    assert_never_shown(case, [streamed])
    done = payload(events, "done")
    assert_done_flags(case, done)
    case.check_final(done["text"])
    if case.interrupted:
        assert "error" in names and names.index("error") < names.index("done"), names
        notice = payload(events, "error")
        assert notice.get("code") and notice.get("message"), notice
        assert notice["message"] not in done["text"], "the notice is not part of the answer"
    else:
        assert "error" not in names, events
    if case.id == "normal_cited_answer":
        assert streamed == done["text"], "a correct answer streams as it is kept"
        assert names.count("token") >= 3, "it streams in pieces, not in one block"
        prompt = llm.requests[-1]["messages"]
        assert prompt[0]["role"] == "system" and QUESTION in prompt[-1]["content"], prompt
        assert "expires after 30 minutes" in prompt[-2]["content"], "the retrieved page is in the prompt"
    check_stored_and_logged(app, payload(events, "session")["session_id"], done, case)


@needs_chromium
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_in_the_browser_the_page_shows_what_is_kept_and_never_what_is_withheld(
    page, app: App, llm: ScriptedLLM, case: Case
) -> None:  # type: ignore[no-untyped-def]
    """In Chromium: no forbidden text in the DOM at any moment; at the end the answer bubble shows done.text
    (rendered), which is the stored and the logged answer; an interrupted answer is labelled as such, with the
    error notice apart from the bubble; a reload restores the answer the same way."""
    page.evaluate(OBSERVE_DOM)
    page.evaluate(RECORD_CHATS)
    llm.script(case.reply, die_after_chunks=case.die_after_chunks)
    send(page, QUESTION)
    poll(page, ANSWER_DONE)
    poll(page, "window.__chats.length === 1 && window.__chats[0].ended", timeout=10)
    page.evaluate("window.__observer.disconnect()")
    shown = page.evaluate(SHOWN)
    seen = page.evaluate("window.__seen")
    events = parse_sse(page.evaluate("window.__chats[0].text"))

    assert len(seen) > 1, "the DOM was observed while the answer streamed"
    assert_never_shown(case, [s["text"] for s in seen] + [b for s in seen for b in s["bodies"]])
    assert_never_shown(case, [answer_text(events)])
    if case.id == "invented_link":
        hosts = {host for s in seen for host in s["hosts"]}
        assert "evil.example" not in hosts, "no link to the invented site, at any moment"
    done = payload(events, "done")
    sources = payload(events, "sources")["sources"]
    check_sources(sources)
    assert_done_flags(case, done)
    case.check_final(done["text"])
    assert normal(shown["text"]) == normal(rendered_text(page, done["text"], sources)), (
        "the bubble shows done.text, not what streamed before it"
    )
    assert shown["interruptedLabel"] is case.interrupted, shown
    assert ("interrupted" in shown["classes"]) is case.interrupted, shown
    assert "(answer interrupted)" not in shown["text"], "the label is not part of the answer"

    if case.id == "normal_cited_answer":
        assert shown["cites"] == [{"text": "[1]", "href": sources[0]["url"]}], shown["cites"]
    if case.id == "invented_citation":
        assert "[7]" not in shown["text"] and [c["text"] for c in shown["cites"]] == ["[1]"], shown
    if case.id == "invented_link":
        assert "the fix" in shown["text"]
        assert all(link["host"] != "evil.example" for link in shown["links"]), shown["links"]
    if case.interrupted:
        assert shown["notice"] and not shown["noticeInBubble"], "the error notice is shown apart from the answer"
        assert normal(shown["notice"]) not in normal(shown["text"])
    else:
        assert shown["notice"] is None, shown

    session = session_id(page)
    assert session == payload(events, "session")["session_id"]
    check_stored_and_logged(app, session, done, case)

    page.reload()
    wait_ready(page)
    restored = page.evaluate(SHOWN)
    assert normal(restored["text"]) == normal(shown["text"]), "after a reload the stored answer shows the same"
    assert restored["interruptedLabel"] is case.interrupted, restored
    assert ("interrupted" in restored["classes"]) is case.interrupted, restored


@needs_chromium
def test_the_widget_on_another_site_is_closed_by_a_message_to_that_site_only(browser, app: App) -> None:  # type: ignore[no-untyped-def]
    """On a host page of another origin the widget's frame gets that origin as `parent`; its ✕ closes the
    widget. A frame told another parent cannot close it (its message is addressed elsewhere, never to "*"),
    and a frame given no usable origin offers no ✕ at all."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(f"{app.shop}/?widget={quote(app.url + '/widget.js', safe='')}")
    button = page.locator("[data-support-chat=button]")
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    assert (
        page.get_attribute("[data-support-chat=frame]", "src")
        == f"{app.url}/?embed=1&parent={quote(app.shop, safe='')}"
    )
    frame = page.frame_locator("[data-support-chat=frame]")
    frame.locator("html[data-ready=true]").wait_for(state="attached")
    frame.locator("#close-widget").click()
    poll(page, "document.querySelector('[data-support-chat=frame]').style.display === 'none'", timeout=10)
    assert button.get_attribute("aria-expanded") == "false"

    def reload_frame(parent: str):  # type: ignore[no-untyped-def]
        """Point the widget's frame at the chat with another `parent`; return that frame once it is ready."""
        src = f"{app.url}/?embed=1&parent={quote(parent, safe='')}"
        page.evaluate("(src) => { document.querySelector('[data-support-chat=frame]').src = src; }", src)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chat = page.query_selector("[data-support-chat=frame]").content_frame()  # type: ignore[union-attr]
            with contextlib.suppress(playwright_error()):  # still navigating
                if chat and chat.evaluate(
                    "(src) => location.href === src && document.documentElement.dataset.ready", src
                ):
                    return chat
            time.sleep(0.05)
        raise AssertionError(f"the frame did not load {src}")

    button.click()
    chat = reload_frame("http://other.example")
    assert chat.is_visible("#close-widget")
    chat.click("#close-widget")
    time.sleep(1.0)
    assert page.evaluate("document.querySelector('[data-support-chat=frame]').style.display") == "block", (
        "a close message addressed to another origin does not reach this page"
    )
    assert button.get_attribute("aria-expanded") == "true"

    for unusable in ("*", "javascript:alert(1)", f"{app.shop}/path"):
        chat = reload_frame(unusable)
        assert chat.evaluate("document.getElementById('close-widget').hidden"), unusable
    context.close()
