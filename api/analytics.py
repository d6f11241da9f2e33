"""The support leads' analytics (behind the admin token): per-day figures for the console's charts and as CSV,
and the questions the bot could not answer in that range.

The figures are counted by tools/analytics.py from the one place a finished turn is recorded
(api/after_turn.py) and from ratings (api/feedback.py); counting never breaks a turn or a rating: a failure is
logged and counted in `analytics_record_failures_total`.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

import metrics
from api.deps import RedisDep, Services, SettingsDep
from api.review import unanswered_groups
from api.security import require_admin
from graph.state import EscalationReason
from graph.turns import TurnResult
from settings import Settings
from tools.analytics import Analytics

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["analytics"], dependencies=[Depends(require_admin)])
REASONS: tuple[str, ...] = get_args(EscalationReason)
DEFAULT_DAYS = 30
TOP_UNANSWERED = 10


def analytics_of(redis: Any, settings: Settings) -> Analytics:
    return Analytics(redis, settings.analytics_retention_days, REASONS)


async def count_turn(state: Services, turn: TurnResult, timings: dict[str, Any]) -> None:
    """Count a finished turn; never raises (the turn is over and its other records must still be written)."""
    try:
        await analytics_of(state.redis, state.settings).record_turn(
            session_id=turn.session_id,
            outcome=turn.outcome,
            ticket_id=turn.ticket_id,
            escalation_reason=turn.escalation_reason,
            first_token_ms=timings.get("first_token_ms"),
        )
    except Exception:
        metrics.ANALYTICS_FAILURES.labels(kind="turn").inc()
        log.exception("analytics: counting turn %s failed", turn.message_id)


async def count_rating(state: Services, message_id: str, rating: str) -> None:
    """Count a rating; never raises (the rating itself was stored)."""
    try:
        await analytics_of(state.redis, state.settings).record_rating(message_id, rating)
    except Exception:
        metrics.ANALYTICS_FAILURES.labels(kind="rating").inc()
        log.exception("analytics: counting the rating of %s failed", message_id)


def _day(value: str, name: str) -> date:
    try:
        if len(value) != 10:  # strptime also takes 2025-1-5; fromisoformat also takes week dates (2025-W01-1)
            raise ValueError(value)
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise HTTPException(422, f"'{name}' must be a date written YYYY-MM-DD, e.g. 2025-01-31.") from None


def date_range(first: str | None, last: str | None, retention_days: int) -> tuple[date, date]:
    """The days asked for (default: the last 30 up to today, UTC), or a 422 saying what to change."""
    today = datetime.now(UTC).date()
    end = _day(last, "to") if last else today
    try:
        start = _day(first, "from") if first else end - timedelta(DEFAULT_DAYS - 1)
    except OverflowError:  # `to` in the first days of year 1
        raise HTTPException(422, f"'to' ({end}) is too early: give a 'from' as well.") from None
    if end > today:
        raise HTTPException(422, f"'to' ({end}) is in the future: the last day with figures is today, {today} (UTC).")
    if start > end:
        raise HTTPException(422, f"'from' ({start}) is after 'to' ({end}): swap them.")
    length = (end - start).days + 1
    if length > retention_days:
        raise HTTPException(
            422,
            f"The range is {length} days; figures are kept {retention_days} days (ANALYTICS_RETENTION_DAYS): "
            "choose a shorter range.",
        )
    return start, end


async def top_unanswered(redis: Any, settings: Settings, start: date, end: date) -> list[dict[str, Any]]:
    """The review report's unanswered-question groups (api/review.py), of the items queued in the range."""
    return (await unanswered_groups(redis, settings, start.isoformat(), end.isoformat()))[:TOP_UNANSWERED]


@router.get("/analytics")
async def analytics(
    redis: RedisDep,
    settings: SettingsDep,
    first: Annotated[str | None, Query(alias="from", max_length=20)] = None,
    last: Annotated[str | None, Query(alias="to", max_length=20)] = None,
    unanswered: bool = True,
) -> dict[str, Any]:
    """Per-day figures from `from` to `to` (YYYY-MM-DD, UTC, at most ANALYTICS_RETENTION_DAYS days; default the
    last 30), their totals, and the largest groups of unanswered questions queued in that range (embedding them
    takes a moment: `unanswered=false` leaves them out)."""
    start, end = date_range(first, last, settings.analytics_retention_days)
    report = await analytics_of(redis, settings).report(start, end)
    if not unanswered:
        return report
    try:
        report["unanswered"] = await top_unanswered(redis, settings, start, end)
    except Exception as error:  # the embedding model failed: the figures are still worth showing
        log.exception("analytics: grouping unanswered questions failed")
        report["unanswered"] = None
        report["unanswered_error"] = f"The unanswered questions could not be grouped: {type(error).__name__}."
    return report


def csv_text(report: dict[str, Any]) -> str:
    """One row per day, then a `total` row; numbers and dates only (no text a spreadsheet could run)."""
    reasons = report["reasons"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "date",
            "conversations",
            "answered_conversations",
            "deflected",
            "deflection",
            "escalated_conversations",
            *[f"escalated_{reason}" for reason in reasons],
            "thumbs_up",
            "thumbs_down",
            "turns",
            "first_token_count",
            "first_token_p50_ms",
            "first_token_p95_ms",
        ]
    )
    for name, figures in [*((day["date"], day) for day in report["days"]), ("total", report["totals"])]:
        ftt = figures["first_token_ms"]
        writer.writerow(
            [
                name,
                figures["conversations"],
                figures["answered_conversations"],
                figures["deflected"],
                "" if figures["deflection"] is None else figures["deflection"],
                figures["escalated_conversations"],
                *[figures["escalations"][reason] for reason in reasons],
                figures["thumbs_up"],
                figures["thumbs_down"],
                figures["turns"],
                ftt["count"],
                "" if ftt["p50"] is None else ftt["p50"],
                "" if ftt["p95"] is None else ftt["p95"],
            ]
        )
    return out.getvalue()


@router.get("/analytics.csv", response_class=Response)
async def analytics_csv(
    redis: RedisDep,
    settings: SettingsDep,
    first: Annotated[str | None, Query(alias="from", max_length=20)] = None,
    last: Annotated[str | None, Query(alias="to", max_length=20)] = None,
) -> Response:
    """The same figures as a CSV download (same range rules)."""
    start, end = date_range(first, last, settings.analytics_retention_days)
    report = await analytics_of(redis, settings).report(start, end)
    filename = f"analytics-{start}-{end}.csv"
    return Response(
        csv_text(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
