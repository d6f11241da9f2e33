"""Live takeover in headless Chromium: a customer's chat page and a lead's console, two browser contexts on the
real app (`app_server`: SmolLM2, real Redis and Chroma). The lead joins, both write, both see the other typing,
the lead hands back and the bot replies again; after a reload each side shows the whole thread."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import browser as web
from helpers.browser import needs_chromium, open_page, screenshot, send, session_id, wait_ready

pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.llm, pytest.mark.slow, needs_chromium]


def poll(page: Any, script: str, timeout: float = 30.0) -> Any:
    return web.poll(page, script, timeout, interval=0.1)


def texts(page: Any, selector: str) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll({selector!r})].map(n => n.innerText)")


def test_a_lead_takes_over_the_chat_both_write_hand_back_and_a_reload_keeps_the_whole_thread(
    browser: Any, app_server: Any
) -> None:
    url = app_server.url
    with (
        open_page(browser, url + "/", "live-customer") as customer,
        open_page(browser, url + "/console", "live-console") as console,
    ):
        send(customer, "I want to talk to a person")
        poll(customer, "!!document.querySelector('.msg.ticket')")
        session = session_id(customer)

        console.fill("#token", app_server.env["ADMIN_TOKEN"])
        console.keyboard.press("Enter")
        poll(console, "!document.getElementById('workspace').hidden")
        console.click("#tab-live")
        console.fill("#live-lead-name", "Alex")
        row = f'.live-row[data-session="{session}"]'
        poll(console, f"!!document.querySelector('{row}')")
        assert "waiting" in console.inner_text(row)
        console.click(row)
        poll(console, "!document.getElementById('live-join').hidden && !!document.querySelector('.live-turn')")
        console.click("#live-join")

        poll(customer, "!!document.querySelector('.msg.notice.live.joined')")
        assert "Alex joined" in customer.inner_text(".msg.notice.live.joined")

        console.focus("#live-reply")
        console.keyboard.type("Hello, this is Alex from support.")
        poll(customer, "!!document.querySelector('.msg.typing-indicator')")
        assert "Alex is typing" in customer.inner_text(".msg.typing-indicator")
        console.keyboard.press("Enter")
        poll(customer, "!!document.querySelector('.msg.lead .bubble')")
        assert texts(customer, ".msg.lead .bubble") == ["Hello, this is Alex from support."]
        assert "Alex" in customer.inner_text(".msg.lead .lead-name")
        assert not customer.is_visible(".msg.typing-indicator"), "the message replaces the typing indicator"

        customer.focus("#message")
        customer.keyboard.type("My order 4711 is late")
        poll(console, "document.getElementById('live-typing').innerText.includes('typing')")
        customer.keyboard.press("Enter")
        poll(console, "[...document.querySelectorAll('.live-turn.user')].some(n => n.innerText.includes('4711'))")
        poll(customer, "document.getElementById('send').hidden === false")
        assert len(texts(customer, ".msg.bot")) == 1, "no bot bubble for a message the lead answers"

        console.click("#live-hand-back")
        poll(customer, "!!document.querySelector('.msg.notice.live.handed-back')")
        send(customer, "Thank you!")  # the bot's own reply (no LLM call: the API test counts the model's)
        poll(customer, "document.querySelectorAll('.msg.bot:not(.streaming)').length === 2")
        screenshot(customer, "live-customer-before-reload.png")

        customer.reload()
        wait_ready(customer)
        poll(customer, "document.querySelectorAll('.msg').length > 0")
        thread = customer.evaluate(
            """[...document.querySelectorAll('#messages > .msg')].map(n =>
                n.classList.contains('lead') ? 'lead' : n.classList.contains('joined') ? 'joined'
                : n.classList.contains('handed-back') ? 'handed_back' : n.classList.contains('user') ? 'user'
                : n.classList.contains('bot') ? 'bot' : n.classList.contains('ticket') ? 'ticket' : n.className)"""
        )
        assert thread == ["user", "bot", "ticket", "joined", "lead", "user", "handed_back", "user", "bot"], thread
        assert texts(customer, ".msg.lead .bubble") == ["Hello, this is Alex from support."]

        console.reload()
        wait_ready(console)
        poll(console, "!document.getElementById('workspace').hidden")
        console.click("#tab-live")
        poll(console, f"!!document.querySelector('{row}')")
        console.click(row)
        poll(console, "document.querySelectorAll('.live-turn').length >= 8")
        kinds = console.evaluate("[...document.querySelectorAll('.live-turn')].map(n => n.className.split(' ')[1])")
        assert kinds == ["user", "bot", "event", "human", "user", "event", "user", "bot"], kinds
        assert "Alex (person)" in console.inner_text(".live-turn.human")
        assert console.input_value("#live-lead-name") == "Alex", "the lead's name is kept as their profile"
