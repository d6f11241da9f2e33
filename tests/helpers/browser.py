"""Driving the chat page in headless Chromium (Playwright's sync API, Debian's /usr/bin/chromium).

Shared by the browser tests: the Chromium they launch (the `browser` fixture of tests/conftest.py), a fresh page
on the chat whose JS errors fail the test, waits that poll `page.evaluate()` (under the page's CSP
`page.wait_for_function("…")` needs eval and throws), typing a message, and a recorder of the /chat streams.
Playwright is imported only when Chromium is launched, so importing this module needs no Playwright.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots (git-ignored)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SESSION_KEY = "support-chat.session-id"  # where the page keeps its session id (localStorage)

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Headless Debian Chromium (never Playwright's own download); skips the test without Playwright."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def open_page(browser, url: str, name: str, init_script: str | None = None, **context_options: Any) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A fresh browser context (empty localStorage, 1100×800 unless `context_options` say otherwise) on `url`,
    ready; `init_script` runs before the page's own scripts on every load. After the block: a screenshot
    `<name>.png` in test-artifacts/, and uncaught JS errors on the page fail the test."""
    context = browser.new_context(**({"viewport": {"width": 1100, "height": 800}} | context_options))
    if init_script:
        context.add_init_script(script=init_script)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.text} {m.location.get('url', '')}") if m.type == "error" else None)
    page.goto(url)
    try:
        wait_ready(page)
    except AssertionError as error:
        raise AssertionError(f"the chat page did not start: {errors} {console}") from error
    yield page
    screenshot(page, f"{name}.png")
    context.close()
    assert not errors, f"uncaught errors on the page: {errors}"


def screenshot(page, filename: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / filename))


def poll(page, script: str, timeout: float = 60.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Evaluate `script` until it returns something truthy (CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(script)
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for: {script}")


def wait_ready(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the page's module has started (it sets <html data-ready="true">)."""
    poll(page, "document.documentElement.dataset.ready === 'true'", timeout=30)


def send(page, text: str) -> None:  # type: ignore[no-untyped-def]
    """Type a message and press Enter, as a person does."""
    page.focus("#message")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def session_id(page) -> str | None:  # type: ignore[no-untyped-def]
    """The session id the page keeps, None before the first answer."""
    return page.evaluate(f"localStorage.getItem({SESSION_KEY!r})")


def record_streams(target: str, url_pattern: str) -> str:
    """An init script that keeps a copy of each response whose URL matches the JS regex `url_pattern` — its
    request body as sent and its whole body as received — in `window[target]` as {url, body, text, ended}; the
    page reads its own copy as usual. As an init script it is not subject to the CSP."""
    return """(() => {
    window.TARGET = [];
    const fetch = window.fetch;
    window.fetch = async (url, options = {}) => {
        const response = await fetch(url, options);
        if (!/PATTERN/.test(String(url)) || !response.body) return response;
        const record = { url: String(url), body: JSON.parse(options.body || 'null'), text: '', ended: false };
        window.TARGET.push(record);
        const [mine, theirs] = response.body.tee();
        (async () => {
            const reader = mine.pipeThrough(new TextDecoderStream()).getReader();
            for (;;) {
                const { value, done } = await reader.read();
                if (done) break;
                record.text += value;
            }
        })().catch(() => {}).finally(() => { record.ended = true; });
        return new Response(theirs, { status: response.status, headers: response.headers });
    };
})()""".replace("TARGET", target).replace("PATTERN", url_pattern)


RECORD_CHATS = record_streams("__chats", r"\/chat$")  # each POST /chat and its event stream


def parse_sse(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """The events of a text/event-stream body (as sse-starlette writes it), e.g. one recorded by RECORD_CHATS."""
    events = []
    for block in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events
