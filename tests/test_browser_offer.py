"""The offer of a person, as the customer sees it: one click accepts it, any other message ends it.

When the documentation has nothing relevant, or the model says it is unsure, the bot does not open a ticket by
itself: its reply asks "Would you like me to pass this conversation to a person…?", the `/chat` stream carries an
`offer` event ({"reason": "no_relevant_answer" | "model_unsure"}) before `done`, and the stored reply carries
`"offered": <reason>` in the history. The page (frontend/js/chat.js, message-view.js) then shows under that answer
a button "Yes, connect me to a person" (and "No, thanks"); the button sends "Yes, please connect me to a person"
with `escalate: true`, and the `escalated` event shows the ticket's number. The offer holds for the next message
only: any other message hides the button, and a reload shows it again only while the last reply is the offer.

Everything is real except the model's words, which come from the scripted stand-in of
tests/helpers/scripted_llm.py: the app in its own uvicorn subprocess (module-scoped) on the test session's Redis
and Chroma, over the help-centre pages of tests/helpers/app_process.py, and headless Chromium. Whether a ticket
exists is read from the support-lead API (GET /api/tickets with the app's ADMIN_TOKEN) and from Redis
(`ticket:open:<session>`), never from the page alone.

Page selectors (frontend/js/message-view.js):
    li.msg.bot                      one answer; class `offering` while its offer's buttons show
    li.msg.bot .bubble .md          the answer's rendered text
    li.msg.bot .offer               the offer's buttons, under the bubble: .offer-accept, .offer-decline
    li.msg.ticket[data-ticket]      the confirmation that a ticket was opened

Chromium, the page, the waits, typing and the /chat recorder come from tests/helpers/browser.py (waits poll
`page.evaluate()`: the page's CSP forbids `page.wait_for_function`); the app instance from tests/conftest.py's
`start_app`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from helpers import browser as web
from helpers.browser import RECORD_CHATS, needs_chromium, open_page, parse_sse, poll, screenshot, send, wait_ready
from helpers.scripted_llm import ScriptedLLM, scripted_llm

ADMIN_TOKEN = "offer-admin-token"
UNCOVERED = "What is the boiling point of tungsten in kelvin?"  # nothing in the seeded help centre
COVERED = "How do I reset my password?"
OFFER_QUESTION = "Would you like me to pass this conversation to a person from our support team?"
ACCEPT_LABEL = "Yes, connect me to a person"
ACCEPT_MESSAGE = "Yes, please connect me to a person"  # what the button sends, with escalate: true
UNSURE = "I'm not sure about that."
NOT_CALLED = "The scripted model was called although it should not have been."

pytestmark = [
    pytest.mark.slow,
    needs_chromium,
]


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass
class App:
    url: str
    redis_url: str


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as server:
        yield server


@pytest.fixture(scope="module")
def app(start_app, llm: ScriptedLLM) -> Iterator[App]:  # type: ignore[no-untyped-def]
    """The real app on the session's Redis and Chroma, its LLM the scripted stand-in. Offers are the default
    (AUTO_ESCALATE off, set explicitly); rate limits, ticket limits included, are out of the way."""
    env = {"LLM_BASE_URL": llm.url, "ADMIN_TOKEN": ADMIN_TOKEN, "AUTO_ESCALATE": "false"}
    with start_app("offer-app", "offer", env) as process:
        yield App(process.url, process.env["REDIS_URL"])


def open_chat(browser, app: App, request: pytest.FixtureRequest, **context_options: Any) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A fresh browser context (empty localStorage) on the chat page, its /chat traffic recorded (RECORD_CHATS,
    per page load); JS errors fail the test."""
    with open_page(browser, app.url + "/", request.node.name, init_script=RECORD_CHATS, **context_options) as page:
        assert page.evaluate("Array.isArray(window.__chats)"), "the recorder is installed"
        yield page


def bodies(page) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The bodies of the POST /chat requests since the page was loaded."""
    return page.evaluate("window.__chats.map((c) => c.body)")


def stream(page, number: int) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """The events of the `number`-th /chat stream (1-based) since the page was loaded, once it has ended."""
    poll(page, f"window.__chats[{number - 1}]?.ended === true", timeout=30)
    return parse_sse(page.evaluate(f"window.__chats[{number - 1}].text"))


@pytest.fixture
def chat(browser, app: App, request: pytest.FixtureRequest) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    yield from open_chat(browser, app, request)


@pytest.fixture
def phone_chat(browser, app: App, request: pytest.FixtureRequest) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The same at 375 px wide, in dark mode."""
    yield from open_chat(browser, app, request, viewport={"width": 375, "height": 740}, color_scheme="dark")


# ----------------------------------------------------------------------------------------------- helpers


def until(check, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {check}")


def wait_answer(page, count: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until there are `count` answers and the last one is complete."""
    poll(
        page,
        f"""(() => {{ const all = document.querySelectorAll('.msg.bot');
            return all.length === {count} && !all[{count - 1}].classList.contains('streaming')
                && document.getElementById('log').getAttribute('aria-busy') === 'false'; }})()""",
    )


# What the page shows about the offers: every answer's text and whether its offer's buttons are visible.
OFFERS = """(() => [...document.querySelectorAll('.msg.bot')].map((a) => {
    const box = a.querySelector('.offer');
    const accept = box?.querySelector('.offer-accept');
    const decline = box?.querySelector('.offer-decline');
    const shown = (n) => !!n && n.checkVisibility() && n.getBoundingClientRect().height > 0;
    const bubble = a.querySelector('.bubble').getBoundingClientRect();
    return {
        text: a.querySelector('.bubble .md').innerText,
        offering: a.classList.contains('offering'),
        shown: shown(box) && shown(accept),
        accept: accept ? accept.textContent.trim() : null,
        decline: shown(decline) ? decline.textContent.trim() : null,
        inBubble: !!box?.closest('.bubble'),
        below: shown(box) ? box.getBoundingClientRect().top >= bubble.bottom - 1 : null,
        fits: shown(box) ? box.getBoundingClientRect().right <= document.documentElement.clientWidth : null,
    };
}))()"""


def offers(page) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return page.evaluate(OFFERS)


def visible_offers(page) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for answer in offers(page) if answer["shown"])


def session_id(page) -> str:  # type: ignore[no-untyped-def]
    value = web.session_id(page)
    assert value, "the page keeps the session id"
    return value


def tickets_of(app: App, session: str) -> list[dict[str, Any]]:
    """The session's tickets according to the support-lead API."""
    response = httpx.get(f"{app.url}/api/tickets", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return [t for t in response.json()["tickets"] if t.get("session_id") == session]


def open_ticket_pointer(app: App, session: str) -> str | None:
    client = redis.Redis.from_url(app.redis_url, decode_responses=True)
    try:
        return client.get(f"ticket:open:{session}")  # type: ignore[return-value]
    finally:
        client.close()


def assert_no_ticket(app: App, session: str) -> None:
    assert tickets_of(app, session) == [], "no ticket is opened until the customer accepts"
    assert open_ticket_pointer(app, session) is None, "no open ticket in Redis either"


def history(app: App, session: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{app.url}/api/sessions/{session}/history", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def event_names(stream: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in stream]


def payload_of(stream: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    found = [data for event, data in stream if event == name]
    assert found, f"no `{name}` event in {event_names(stream)}"
    return found[0]


def offer_event(stream: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    names = event_names(stream)
    assert "offer" in names and names.index("offer") < names.index("done"), names
    return next(data for name, data in stream if name == "offer")


def focus_by_shift_tab(page, selector: str, presses: int = 30) -> None:  # type: ignore[no-untyped-def]
    """From the message box, Shift+Tab back until `selector` has the focus, as a keyboard user does."""
    page.focus("#message")
    for _ in range(presses):
        page.keyboard.press("Shift+Tab")
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
    raise AssertionError(f"{selector} cannot be reached with the keyboard")


def accept_with_keyboard(page) -> None:  # type: ignore[no-untyped-def]
    focus_by_shift_tab(page, ".msg.bot.offering .offer-accept")
    page.keyboard.press("Enter")


def wait_ticket(page) -> str:  # type: ignore[no-untyped-def]
    return poll(page, "document.querySelector('.msg.ticket')?.dataset.ticket", timeout=60)


# ------------------------------------------------------------------------------------------------- tests


def test_an_uncovered_question_offers_a_person_and_one_click_opens_the_ticket(chat, app: App, llm: ScriptedLLM) -> None:  # type: ignore[no-untyped-def]
    """A question the help centre does not cover gets the offer (no model call, no ticket yet) and, under the
    answer, the button "Yes, connect me to a person", reachable with the keyboard. Pressing it sends "Yes,
    please connect me to a person" with `escalate: true`; the ticket then exists, with the conversation, and
    the page shows its number. The button is gone, and a reload does not bring it back."""
    page = chat
    llm.script(NOT_CALLED)
    calls = len(llm.requests)
    send(page, UNCOVERED)
    wait_answer(page, 1)

    (first,) = offers(page)
    assert first["shown"], f"the offer's button shows under the answer: {first}"
    assert first["accept"] == ACCEPT_LABEL and first["decline"] == "No, thanks", first
    assert first["below"] and not first["inBubble"], "under the bubble, not part of the answer's text"
    assert OFFER_QUESTION in first["text"], "the reply itself asks the question the button answers"
    assert ACCEPT_LABEL not in first["text"]
    assert NOT_CALLED not in page.inner_text("#messages") and len(llm.requests) == calls, "no model call"
    assert offer_event(stream(page, 1)) == {"reason": "no_relevant_answer"}
    assert "escalated" not in event_names(stream(page, 1))
    session = session_id(page)
    assert_no_ticket(app, session)
    assert not page.query_selector(".msg.ticket"), "no ticket notice before the customer accepts"

    accept_with_keyboard(page)
    ticket_id = wait_ticket(page)
    wait_answer(page, 2)
    assert ticket_id in page.inner_text(".msg.ticket"), "the page shows the ticket's number"
    sent = bodies(page)
    assert sent[-1] == {"message": ACCEPT_MESSAGE, "session_id": session, "escalate": True}, sent
    assert page.evaluate("[...document.querySelectorAll('.msg.user .bubble')].map((b) => b.innerText)") == [
        UNCOVERED,
        ACCEPT_MESSAGE,
    ], "the transcript reads as the customer's reply"
    assert visible_offers(page) == 0, "the button is gone once the offer is accepted"
    assert page.evaluate("document.activeElement.id") == "message", "the keyboard stays in the conversation"
    assert payload_of(stream(page, 2), "escalated")["ticket_id"] == ticket_id

    (ticket,) = until(lambda: tickets_of(app, session))
    assert ticket["ticket_id"] == ticket_id
    assert open_ticket_pointer(app, session) == ticket_id
    assert UNCOVERED in str(ticket["transcript"]), "the ticket carries the conversation"

    page.reload()
    wait_ready(page)
    assert page.evaluate("document.querySelector('.msg.ticket')?.dataset.ticket") == ticket_id
    assert len(offers(page)) == 2 and visible_offers(page) == 0, "an accepted offer does not come back"


def test_a_pending_offer_is_back_after_a_reload_and_another_message_ends_it(chat, app: App, llm: ScriptedLLM) -> None:  # type: ignore[no-untyped-def]
    """After a reload the offer of the last reply is shown again (from the history's `offered`). "No, thanks"
    only hides it (nothing is sent, no ticket). Any other message ends the offer: the button goes as soon as
    it is sent, stays gone after the answer and after a reload, and no ticket is opened."""
    page = chat
    llm.script(NOT_CALLED)
    send(page, UNCOVERED)
    wait_answer(page, 1)
    assert visible_offers(page) == 1
    session = session_id(page)
    assert history(app, session)[-1].get("offered") == "no_relevant_answer"

    page.reload()
    wait_ready(page)
    (restored,) = offers(page)
    assert restored["shown"] and restored["accept"] == ACCEPT_LABEL, f"the pending offer is back: {restored}"
    assert OFFER_QUESTION in restored["text"]

    sent = len(bodies(page))
    focus_by_shift_tab(page, ".msg.bot.offering .offer-decline")
    page.keyboard.press("Enter")
    assert visible_offers(page) == 0, "“No, thanks” hides the buttons"
    assert page.evaluate("document.activeElement.id") == "message"
    time.sleep(0.5)
    assert len(bodies(page)) == sent, "declining sends nothing"
    assert_no_ticket(app, session)

    page.reload()  # declining was only on this page: the server still holds the offer for the next message
    wait_ready(page)
    assert visible_offers(page) == 1

    page.focus("#message")
    page.keyboard.type("hello")  # a greeting: the friendly rule-based reply, no model call, not a "yes"
    page.evaluate(  # from now on, sample after every DOM change whether an offer's button is visible
        """(() => {
            window.__offerShown = [];
            new MutationObserver(() => window.__offerShown.push(
                !!document.querySelector('.msg.bot.offering .offer-accept')?.checkVisibility()))
              .observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
        })()"""
    )
    page.keyboard.press("Enter")
    wait_answer(page, 2)
    samples = page.evaluate("window.__offerShown")
    assert samples and not any(samples), "the button went away as the message was sent, and did not come back"
    assert bodies(page) == [{"message": "hello", "session_id": session}], "one message, no escalation"
    second = offers(page)[1]
    assert second["text"].strip() and not second["shown"], second
    last = event_names(stream(page, 1))  # the first since the reload
    assert "done" in last and "offer" not in last and "escalated" not in last, last
    assert visible_offers(page) == 0
    assert_no_ticket(app, session)
    assert not page.query_selector(".msg.ticket")

    page.reload()
    wait_ready(page)
    assert len(offers(page)) == 2 and visible_offers(page) == 0, "the offer lapsed: a reload does not show it"


def test_an_unsure_model_gets_the_offer_under_its_answer_on_a_phone(phone_chat, app: App, llm: ScriptedLLM) -> None:  # type: ignore[no-untyped-def]
    """On a covered question the scripted model says "I'm not sure about that.": its words stay in the bubble,
    above the offer, the sources are listed, and the button shows under it — at 375 px in dark mode, without
    sideways scrolling. No ticket until the button is clicked; then there is one and its number shows."""
    page = phone_chat
    llm.script(UNSURE)
    send(page, COVERED)
    wait_answer(page, 1)

    (answer,) = offers(page)
    assert answer["shown"], f"the offer's button shows under the unsure answer: {answer}"
    assert answer["below"] and answer["fits"], answer
    text = " ".join(answer["text"].split())
    assert text.startswith(UNSURE), f"the model's answer is kept, above the offer: {text!r}"
    assert OFFER_QUESTION in text and text.index(UNSURE) < text.index(OFFER_QUESTION), text
    assert offer_event(stream(page, 1)) == {"reason": "model_unsure"}
    assert page.evaluate("document.querySelectorAll('.msg.bot .sources a').length") >= 1, "its sources stay"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "no sideways scrolling at 375 px"
    accept = page.locator(".msg.bot.offering .offer-accept")
    colours = accept.evaluate(
        "(b) => ({ bg: getComputedStyle(b).backgroundColor, page: getComputedStyle(document.body).backgroundColor })"
    )
    assert colours["bg"] != colours["page"], f"the button stands out in dark mode: {colours}"
    screenshot(page, "chat-offer-mobile.png")
    session = session_id(page)
    assert_no_ticket(app, session)

    accept.click()
    ticket_id = wait_ticket(page)
    wait_answer(page, 2)
    assert bodies(page)[-1] == {"message": ACCEPT_MESSAGE, "session_id": session, "escalate": True}
    assert visible_offers(page) == 0
    assert offers(page)[0]["text"] == answer["text"], "the answer with its offer stays as it was"
    (ticket,) = until(lambda: tickets_of(app, session))
    assert ticket["ticket_id"] == ticket_id and open_ticket_pointer(app, session) == ticket_id
    assert ticket_id in page.inner_text(".msg.ticket")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
