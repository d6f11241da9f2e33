"""The ticket webhooks: each new ticket is POSTed to TICKET_WEBHOOK_URL as signed JSON (for a helpdesk relay),
and/or to TICKET_SLACK_WEBHOOK_URL as a Slack message (for a support channel). docs/helpdesk.md tells receivers
how to verify and consume it.

Signature: `X-Support-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">` with TICKET_WEBHOOK_SECRET, and
`X-Support-Timestamp: <unix seconds>`, made anew for each try, so a receiver can refuse old (replayed) requests.
The Slack message carries the ticket id, its reason (redacted, cut short) and a console link, never the
transcript or the e-mail address: a channel is read by more people than the helpdesk's agents.

Runs in the background with retries and exponential backoff (tenacity) on network errors, 5xx and 429 — other
answers are final. The ticket is stored in Redis before, so a failing webhook never loses it. A ticket is
announced once: `webhook:sent:<id>` is set with NX before the first try, whether the ticket came from
POST /api/tickets or from the agent escalating.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

import metrics
from tools.redact import redact
from tools.text import one_line

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Support-Signature"
TIMESTAMP_HEADER = "X-Support-Timestamp"
MAX_WAIT_SECONDS = 60.0
SLACK_REASON_CHARS = 200


def ticket_json(ticket: Any) -> dict[str, Any]:
    return ticket.model_dump(mode="json")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Support-Signature` value: v1= and the hex HMAC-SHA256 of `timestamp + "." + body`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_headers(secret: str | None, body: bytes, event: str, delivery: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Support-Event": event, "X-Support-Delivery": delivery}
    timestamp = str(int(time.time()))
    headers[TIMESTAMP_HEADER] = timestamp
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def slack_escape(text: str) -> str:
    """Slack's three control characters in message text (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(ticket: dict[str, Any], console_url: str | None) -> dict[str, Any]:
    """A Slack incoming-webhook message: who needs whom, without the conversation's personal data."""
    reason = one_line(redact(str(ticket.get("reason") or "")))
    if len(reason) > SLACK_REASON_CHARS:
        reason = reason[: SLACK_REASON_CHARS - 1] + "…"
    turns = len(ticket.get("transcript") or [])
    contact = " · the customer left an e-mail address" if ticket.get("contact_email") else ""
    lines = [
        f"New support ticket *{ticket['ticket_id']}*",
        f"Reason: {slack_escape(reason) or 'none given'}",
        f"Conversation: {turns} messages{contact}",
    ]
    if console_url:
        lines.append(f"<{console_url}|Open the support console>")
    return {"text": "\n".join(lines), "unfurl_links": False, "unfurl_media": False}


class RetryableStatus(httpx.HTTPStatusError):
    """A 5xx or 429 answer: worth another try."""


def _retryable(error: BaseException) -> bool:
    return isinstance(error, (httpx.TransportError, RetryableStatus))


def _wait(backoff: float) -> Callable[[RetryCallState], float]:
    """Exponential backoff, or the receiver's Retry-After when it asks for longer (at most a minute)."""
    exponential = wait_exponential(multiplier=backoff, max=MAX_WAIT_SECONDS)

    def wait(state: RetryCallState) -> float:
        seconds = exponential(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableStatus):
            after = error.response.headers.get("Retry-After", "")
            if after.isdigit():
                seconds = max(seconds, min(float(after), MAX_WAIT_SECONDS))
        return seconds

    return wait


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    attempts: int,
    backoff: float,
    headers: Callable[[], dict[str, str]],
) -> httpx.Response:
    """POST `body` until a 2xx, retrying network errors, 5xx and 429; `headers()` is called per try (a fresh
    timestamp and signature). Raises the last error."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=_wait(backoff),
        retry=retry_if_exception(_retryable),
        reraise=True,
    ):
        with attempt:
            response = await client.post(url, content=body, headers=headers())
            if response.status_code >= 500 or response.status_code == 429:
                message = f"{response.status_code} from the receiver"
                raise RetryableStatus(message, request=response.request, response=response)
            response.raise_for_status()
    return response


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def _send(name: str, ticket_id: str, delivery: Awaitable[httpx.Response]) -> None:
    try:
        await delivery
        metrics.WEBHOOK.labels(result="delivered").inc()
    except httpx.HTTPError as error:
        metrics.WEBHOOK.labels(result="failed").inc()
        log.error("ticket %s: %s webhook failed: %s", ticket_id, name, error)


async def announce_ticket(state: Any, ticket_id: str) -> None:
    """POST the ticket to the webhooks once, retrying; failures are logged and counted, never raised."""
    settings = state.settings
    url, slack_url = settings.ticket_webhook_url, settings.ticket_slack_webhook_url
    if not url and not slack_url:
        return
    if not await state.redis.set(f"webhook:sent:{ticket_id}", "1", nx=True):
        return
    from tools.tickets import TicketStore

    ticket = await TicketStore(state.redis).get(ticket_id)
    if ticket is None:
        return
    data = ticket_json(ticket)
    retries = {"attempts": settings.ticket_webhook_attempts, "backoff": settings.ticket_webhook_backoff_seconds}
    async with httpx.AsyncClient(timeout=10) as client:
        jobs = []
        if url:
            body = _body({"event": "ticket.created", "ticket": data})
            headers = partial(signed_headers, settings.ticket_webhook_secret, body, "ticket.created", ticket_id)
            jobs.append(_send("generic", ticket_id, deliver(client, url, body, headers=headers, **retries)))
        if slack_url:
            console = f"{settings.public_url.rstrip('/')}/console" if settings.public_url else None
            body = _body(slack_message(data, console))
            headers = partial(dict, {"Content-Type": "application/json"})
            jobs.append(_send("Slack", ticket_id, deliver(client, slack_url, body, headers=headers, **retries)))
        await asyncio.gather(*jobs)
