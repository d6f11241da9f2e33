"""TICKET_WEBHOOK_URL: each new ticket is POSTed as JSON to a URL of the company's (helpdesk, chat channel).

Runs in the background with retries and exponential backoff (tenacity); the ticket is already stored in
Redis before, so a failing webhook never loses it. A ticket is announced once: `webhook:sent:<id>` is set
with NX before the first try, whether the ticket came from POST /api/tickets or from the agent escalating.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

import metrics

log = logging.getLogger(__name__)


def ticket_json(ticket: Any) -> dict[str, Any]:
    return ticket.model_dump(mode="json")


async def announce_ticket(state: Any, ticket_id: str) -> None:
    """POST the ticket to the webhook once, retrying; failures are logged and counted, never raised."""
    settings = state.settings
    if not settings.ticket_webhook_url:
        return
    if not await state.redis.set(f"webhook:sent:{ticket_id}", "1", nx=True):
        return
    from tools.tickets import TicketStore

    ticket = await TicketStore(state.redis).get(ticket_id)
    if ticket is None:
        return
    payload = {"event": "ticket.created", "ticket": ticket_json(ticket)}
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(settings.ticket_webhook_attempts),
                wait=wait_exponential(multiplier=settings.ticket_webhook_backoff_seconds, max=60),
                retry=retry_if_exception_type(httpx.HTTPError),
                reraise=True,
            ):
                with attempt:
                    (await client.post(settings.ticket_webhook_url, json=payload)).raise_for_status()
        metrics.WEBHOOK.labels(result="delivered").inc()
    except httpx.HTTPError as error:
        metrics.WEBHOOK.labels(result="failed").inc()
        log.error("ticket %s webhook failed after %d attempts: %s", ticket_id, settings.ticket_webhook_attempts, error)
