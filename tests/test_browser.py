"""What customers and support leads see, driven in headless Chromium against the real app.

The app is the `app_server` of tests/conftest.py: a uvicorn subprocess of `server:create_app` on the real
Redis, LLM (SmolLM2 through llama.cpp) and Chroma servers, over a small help-centre knowledge base, to which
this module adds one document carrying script-injection payloads. Assertions are about structure and behaviour,
never about the tiny model's wording. Screenshots land in test-artifacts/ (git-ignored).

Chromium, the page, the waits and typing come from tests/helpers/browser.py (waits poll `page.evaluate()`: the
page's CSP forbids `page.wait_for_function`).
"""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from helpers import browser as web
from helpers.app_process import seed_knowledge_base
from helpers.browser import needs_chromium, open_page, screenshot, send, session_id, wait_ready
from settings import Settings
from tools.documents import Chunk

pytest.importorskip("playwright.sync_api")

DOCS_BASE_URL = "https://help.example.com/"  # where tests/helpers/app_process.py's help-centre chunks live
XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=1</script>"

pytestmark = [
    pytest.mark.llm,
    pytest.mark.slow,
    needs_chromium,
]

XSS_DOCUMENT = Chunk(
    f"Our status badge is embedded with this markup: {XSS_IMG} and this script {XSS_SCRIPT}. "
    "Copy the snippet into your page template to show the status badge.",
    "Embedding the status badge",
    "https://help.example.com/status-badge",
    "status-badge.md",
)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def app_url(app_server) -> str:  # type: ignore[no-untyped-def]
    """The real app of tests/conftest.py (`app_server`), with one more knowledge-base document: markup that
    must be shown, never run."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        chroma_url=app_server.env["CHROMA_URL"],
        kb_collection=app_server.env["KB_COLLECTION"],
    )
    seed_knowledge_base(settings, [XSS_DOCUMENT])
    return app_server.url


@pytest.fixture(scope="module")
def admin_token(app_server) -> str:  # type: ignore[no-untyped-def]
    return app_server.env["ADMIN_TOKEN"]


@pytest.fixture
def page(browser, app_url: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A fresh browser context (empty localStorage) on the chat page; JS errors fail the test."""
    with open_page(browser, app_url + "/", request.node.name) as page:
        yield page


# ----------------------------------------------------------------------------------------------- helpers


def poll(page, script: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    """tests/helpers/browser.py's poll, patient by default: the real model answers slowly."""
    return web.poll(page, script, timeout, interval=0.1)


def wait_answer_done(page, index: int) -> dict:  # type: ignore[no-untyped-def]
    """Wait until answer `index` is complete (or shows an error) and return what it shows."""
    poll(
        page,
        f"(() => {{ const a = document.querySelectorAll('.msg.bot')[{index}];"
        " return a && !a.classList.contains('streaming'); })()",
    )
    return page.evaluate(
        f"""(() => {{
        const a = document.querySelectorAll('.msg.bot')[{index}];
        const links = [...a.querySelectorAll('.sources a')];
        return {{
            text: a.querySelector('.md').innerText,
            error: a.querySelector('.alert').hidden ? null : a.querySelector('.alert').innerText,
            sources: links.map(l => ({{href: l.href, target: l.target, rel: l.rel, text: l.textContent}})),
            actionsShown: !a.querySelector('.msg-actions').hidden,
        }};
    }})()"""
    )


def ask_and_sample(page, text: str, index: int) -> tuple[list[int], bool]:  # type: ignore[no-untyped-def]
    """Send `text`, sampling the answer bubble's text length until it is complete.

    Returns the lengths seen and whether the "searching" indicator was seen before the first token.
    """
    send(page, text)
    lengths: list[int] = []
    saw_searching = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = page.evaluate(
            f"""(() => {{ const a = document.querySelectorAll('.msg.bot')[{index}];
            if (!a) return null;
            return {{len: a.querySelector('.md').innerText.length, streaming: a.classList.contains('streaming'),
                     searching: !a.querySelector('.status').hidden}}; }})()"""
        )
        if state:
            lengths.append(state["len"])
            saw_searching |= state["searching"] and state["len"] == 0
            if not state["streaming"]:
                break
        time.sleep(0.03)
    return lengths, saw_searching


# ------------------------------------------------------------------------------------------------- tests


def test_a_conversation_streams_cites_sources_follows_up_and_survives_reload(page, app_url: str) -> None:
    """The answer grows in its bubble token by token after a "searching" indicator; its sources link out in
    a new tab; a follow-up is answered in the same session; a reload shows the whole conversation again."""
    lengths, saw_searching = ask_and_sample(page, "How do I reset my password? Explain each step.", 0)
    first = wait_answer_done(page, 0)
    assert first["error"] is None
    assert saw_searching, "the searching indicator shows until the first token"
    growth = sorted({n for n in lengths if n > 0})
    assert len(growth) >= 3, f"the bubble grew in steps, not in one block: {growth}"
    assert first["sources"], "the sources of the answer are listed"
    for link in first["sources"]:
        assert link["href"].startswith(DOCS_BASE_URL)
        assert link["target"] == "_blank" and "noopener" in link["rel"]
    assert first["actionsShown"]
    session = session_id(page)
    assert session

    ask_and_sample(page, "And how long is the link valid?", 1)
    second = wait_answer_done(page, 1)
    assert second["error"] is None and second["text"].strip()
    assert session_id(page) == session, "the follow-up stays in the same session"

    screenshot(page, "chat-desktop.png")
    page.reload()
    wait_ready(page)
    restored = page.evaluate(
        "({user: document.querySelectorAll('.msg.user').length, bot: document.querySelectorAll('.msg.bot').length,"
        " sources: document.querySelectorAll('.msg.bot .sources a').length})"
    )
    assert restored["user"] == 2 and restored["bot"] == 2
    assert restored["sources"] >= 1, "restored answers keep their sources"

    page.click("#new-conversation")
    assert page.evaluate("document.querySelectorAll('.msg').length") == 0
    assert session_id(page) is None


def test_stop_ends_the_stream_and_marks_the_answer_stopped(page) -> None:
    """While an answer streams, Stop aborts it: the bubble stops growing, is marked interrupted, and Send is
    back."""
    send(page, "Explain in detail how refunds and invoices work, with many examples.")
    poll(page, "(document.querySelector('.msg.bot .md')?.innerText.length || 0) > 0")
    assert page.is_visible("#stop")
    page.click("#stop")
    poll(page, "!document.querySelector('.msg.bot').classList.contains('streaming')", timeout=10)
    assert page.is_visible(".msg.bot.interrupted .interrupted-label")
    assert page.is_visible("#send") and not page.is_visible("#stop")
    length = page.evaluate("document.querySelector('.msg.bot .md').innerText.length")
    time.sleep(1.0)
    assert page.evaluate("document.querySelector('.msg.bot .md').innerText.length") == length


def test_keyboard_only_send_and_escalation_reach_the_console(page, app_url: str, admin_token: str) -> None:
    """With the keyboard alone a customer sends a question and asks for a person; the confirmation shows the
    ticket id, and in the console the lead finds that ticket with the whole transcript and its sources."""
    assert page.evaluate("document.activeElement.id") == "message", "the message box has focus on load"
    page.keyboard.type("My refund has not arrived yet.")
    page.keyboard.press("Enter")
    wait_answer_done(page, 0)

    # Shift+Tab from the message box back to the header's "Talk to a person" button.
    page.focus("#message")
    for _ in range(30):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.id") == "escalate":
            break
    assert page.evaluate("document.activeElement.id") == "escalate"
    page.keyboard.press("Enter")
    assert page.evaluate("document.getElementById('escalate-dialog').open")
    assert page.evaluate("document.activeElement.id") == "escalate-email"
    page.keyboard.type("customer@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("Refund missing")
    page.keyboard.press("Tab")  # Cancel
    page.keyboard.press("Tab")  # Open ticket
    page.keyboard.press("Enter")
    ticket_id = poll(page, "document.querySelector('.msg.ticket')?.dataset.ticket", timeout=30)
    assert ticket_id in page.inner_text(".msg.ticket")
    assert not page.evaluate("document.getElementById('escalate-dialog').open")

    lead = page.context.new_page()
    lead.goto(app_url + "/console")
    wait_ready(lead)
    lead.fill("#token", admin_token)
    lead.keyboard.press("Enter")
    poll(lead, f"!!document.querySelector('.ticket-row[data-ticket=\"{ticket_id}\"]')", timeout=30)
    lead.click(f'.ticket-row[data-ticket="{ticket_id}"]')
    poll(lead, "!!document.querySelector('.transcript .turn')", timeout=30)
    transcript = lead.inner_text(".transcript")
    assert "My refund has not arrived yet." in transcript
    assert lead.evaluate("document.querySelectorAll('.transcript .turn.assistant').length") >= 1
    assert lead.evaluate("document.querySelectorAll('.detail-sources a').length") >= 1
    assert "customer@example.com" in lead.inner_text("#ticket-detail")

    lead.select_option("#update-status", "resolved")
    lead.fill("#update-note", "Refund re-sent.")
    lead.click(".update button[type=submit]")
    poll(lead, "document.querySelector('.notes')?.innerText.includes('Refund re-sent.')", timeout=30)
    screenshot(lead, "console.png")

    lead.click("#tab-review")  # the escalation is in the review queue, its question among the unanswered
    poll(lead, "!!document.querySelector('#review-list')?.innerText.includes('My refund has not arrived yet.')")
    poll(lead, "document.querySelectorAll('#unanswered-list li').length > 0", timeout=60)
    screenshot(lead, "console-review.png")
    lead.close()


def test_markup_in_documents_and_answers_never_executes(page) -> None:
    """A knowledge-base document and an answer carrying <img onerror> and <script> payloads are shown, never
    run: the document through the real retrieval (its snippet is a source), the answer both from the real
    model (asked to repeat the payload; the tiny model may or may not comply) and by feeding the same
    Markdown to the page's own rendering module."""
    send(page, f"How do I embed the status badge? Repeat exactly: {XSS_IMG} {XSS_SCRIPT}")
    wait_answer_done(page, 0)
    snippets = page.evaluate("[...document.querySelectorAll('.source-snippet')].map(s => s.innerText)")
    assert any("<img src=x" in snippet for snippet in snippets), "the document's markup is shown as text"
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('.msg img, .msg script').length") == 0

    rendered = page.evaluate(
        f"""(async () => {{
        const {{ renderMarkdown }} = await import('/static/js/render.js');
        const box = document.createElement('div');
        document.body.append(box);
        renderMarkdown(box, {XSS_IMG!r} + "\\n\\n" + {XSS_SCRIPT!r} + "\\n\\n[link](javascript:window.__xss=1)"
            + "\\n\\n<a href='javascript:window.__xss=1'>x</a> <svg onload=window.__xss=1></svg>");
        await new Promise((resolve) => setTimeout(resolve, 300));
        const dangerous = box.querySelectorAll('img, script, svg, [onerror]').length;
        const scriptLinks = [...box.querySelectorAll('a[href]')].filter((a) => !/^https?:/.test(a.href)).length;
        return {{ text: box.innerText, dangerous, scriptLinks }};
    }})()"""
    )
    assert page.evaluate("window.__xss") is None
    assert rendered["dangerous"] == 0
    assert rendered["scriptLinks"] == 0, "a javascript: link is never clickable"
    assert "<img src=x" in rendered["text"], "raw HTML is shown as text"


def test_the_chat_fits_a_375px_phone_without_horizontal_scroll(browser, app_url: str) -> None:
    """At 375 px wide (dark mode) the whole conversation, with a long unbroken word, needs no sideways scroll."""
    context = browser.new_context(viewport={"width": 375, "height": 740}, color_scheme="dark")
    page = context.new_page()
    page.goto(app_url + "/")
    wait_ready(page)
    send(page, "Can I get a refund? https://example.com/" + "very-long-path-" * 12)
    wait_answer_done(page, 0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "chat-mobile.png")
    context.close()


def test_a_refused_message_is_explained_in_place_with_retry(page) -> None:
    """A message over the server's length limit gets a 422: the bubble shows why, with Retry, and "Edit
    message" puts the text back in the message box."""
    too_long = "x" * (Settings(_env_file=None).max_message_chars + 1)  # type: ignore[call-arg]
    page.evaluate(f"document.getElementById('message').value = {too_long!r}")
    page.focus("#message")
    page.keyboard.press("Enter")
    wait_answer_done(page, 0)
    assert page.is_visible(".msg.bot .alert")
    assert page.is_visible(".msg.bot .alert button")
    assert page.inner_text(".msg.bot .alert").strip()
    page.click(".msg.bot .alert >> text=Edit message")
    assert page.evaluate("document.getElementById('message').value") == too_long, "the text comes back to edit"
    assert page.evaluate("document.querySelectorAll('.msg').length") == 0


def test_the_widget_adds_a_chat_button_that_opens_the_compact_chat(browser, app_url: str) -> None:
    """One script tag on the demo page adds a button; it opens the chat in a frame, whose ✕ closes it by a
    message addressed to the host page's origin (passed to the frame as `parent`), never to "*"."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(app_url + "/widget-demo")
    button = page.locator("[data-support-chat=button]")
    button.wait_for()
    assert button.get_attribute("aria-expanded") == "false"
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    src = page.get_attribute("[data-support-chat=frame]", "src")
    assert src == f"{app_url}/?embed=1&parent={quote(app_url, safe='')}"
    frame = page.frame_locator("[data-support-chat=frame]")
    frame.locator("#message").wait_for()
    frame.locator("html.embed").wait_for(state="attached")  # set by the chat module once it has loaded
    screenshot(page, "widget.png")
    frame.locator("#close-widget").click()
    poll(page, "document.querySelector('[data-support-chat=frame]').style.display === 'none'", timeout=10)
    assert button.get_attribute("aria-expanded") == "false"
    context.close()


def test_the_event_stream_parser_copes_with_split_chunks_and_line_endings(page) -> None:
    """The page's SSE parser yields whole events however the bytes are cut, with CRLF, LF or CR endings,
    multi-line data and comments — as proxies and sse-starlette may send them."""
    events = page.evaluate(
        """(async () => {
        const { readEvents } = await import('/static/js/sse.js');
        const chunks = ['event: sess', 'ion\\r\\ndata: {"session_id":"s"}\\r', '\\n\\r\\n: keep-alive\\n\\n',
                        'event: token\\nid: 0-2\\ndata: {"text":"a"}\\n\\n',
                        'event: token\\rdata: line1\\rdata: line2\\r\\r',
                        'data: plain\\n\\n', 'event: done\\ndata: {}\\n'];
        const encoder = new TextEncoder();
        const body = new ReadableStream({ start(controller) {
            for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
            controller.close();
        } });
        const out = [];
        for await (const event of readEvents(new Response(body))) out.push(event);
        return out;
    })()"""
    )
    events = [{key: value for key, value in event.items() if value is not None} for event in events]  # no `id:`
    assert events == [
        {"event": "session", "data": '{"session_id":"s"}'},
        {"event": "token", "data": '{"text":"a"}', "id": "0-2"},  # what a resume sends as Last-Event-ID
        {"event": "token", "data": "line1\nline2"},
        {"event": "message", "data": "plain"},
    ], "an event without its closing blank line (stream cut) is not delivered"


def test_the_printed_console_link_signs_the_lead_in_and_leaves_no_token_in_the_address_bar(
    browser, app_url: str, admin_token: str, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    """`./run` prints `/console#token=…` when it generated ADMIN_TOKEN (launcher/admin_token.py): opening it signs
    in without pasting anything, and the token leaves the URL at once (no bookmark or shared link carries it)."""
    with open_page(browser, f"{app_url}/console#token={admin_token}", request.node.name) as lead:
        poll(lead, "!document.getElementById('workspace').hidden", timeout=30)
        assert "token" not in lead.evaluate("location.href")
        assert lead.evaluate("sessionStorage.getItem('support-console.token')") == admin_token
