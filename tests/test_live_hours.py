"""Office hours (OFFICE_HOURS, OFFICE_TIMEZONE): when a person answers an escalation (tools/live.py, graph/live.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from graph import prompts
from graph.live import availability
from settings import Settings, SettingsError, get_settings
from tools.live import next_opening

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = "Mon-Fri 09:00-17:00"


def at(text: str, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        ("2026-12-02 10:30", None),  # a Wednesday, inside
        ("2026-12-02 08:59", "2026-12-02 09:00"),  # before opening: today
        ("2026-12-02 17:00", "2026-12-03 09:00"),  # the end is outside: tomorrow
        ("2026-12-04 18:00", "2026-12-07 09:00"),  # Friday evening: Monday
        ("2026-12-05 12:00", "2026-12-07 09:00"),  # Saturday
    ],
)
def test_the_next_opening_is_the_start_of_the_next_window_in_the_office_time_zone(now: str, opens: str | None) -> None:
    found = next_opening(WEEKDAYS, "Europe/Berlin", at(now))
    assert found == (at(opens) if opens else None)
    if found:
        assert found.utcoffset() == at(opens).utcoffset()


def test_hours_are_read_in_the_office_time_zone_not_the_servers() -> None:
    # 08:30 UTC on a winter Wednesday is 09:30 in Berlin: open there, though not yet 09:00 in UTC.
    assert next_opening(WEEKDAYS, "Europe/Berlin", datetime(2026, 12, 2, 8, 30, tzinfo=UTC)) is None
    assert next_opening(WEEKDAYS, "UTC", datetime(2026, 12, 2, 8, 30, tzinfo=UTC)) is not None


def test_several_windows_lists_and_a_range_across_the_week_end() -> None:
    hours = "Mon,Wed 09:00-12:00; Sat-Sun 10:00-14:00"
    assert next_opening(hours, "UTC", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)) == datetime(2026, 12, 2, 9, tzinfo=UTC)
    assert next_opening(hours, "UTC", datetime(2026, 12, 6, 11, 0, tzinfo=UTC)) is None  # a Sunday
    assert next_opening("Fri-Mon 09:00-10:00", "UTC", datetime(2026, 12, 6, 11, tzinfo=UTC)) == datetime(
        2026, 12, 7, 9, tzinfo=UTC
    )


def test_across_a_clock_change_the_opening_stays_at_local_nine() -> None:
    # Berlin leaves summer time on Sunday 25 October 2026: Monday opens at 09:00 CET (+01:00), not 09:00 CEST.
    opens = next_opening(WEEKDAYS, "Europe/Berlin", at("2026-10-24 12:00"))
    assert opens is not None and (opens.hour, opens.utcoffset().total_seconds()) == (9, 3600)


def test_no_hours_means_a_person_is_there_now_and_the_text_says_so() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert next_opening("", "UTC") is None
    assert availability(settings) == (prompts.PERSON_FETCHED, None)


def test_outside_the_hours_the_text_names_the_opening_and_the_zone() -> None:
    settings = Settings(_env_file=None, office_hours=WEEKDAYS, office_timezone="Europe/Berlin")  # type: ignore[call-arg]
    text, opens = availability(settings, at("2026-12-04 18:00"))
    assert opens == at("2026-12-07 09:00")
    assert "Monday 7 December, 09:00" in text and "Europe/Berlin" in text and WEEKDAYS in text


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("OFFICE_HOURS", "Mon-Fri 9-17", "DAYS HH:MM-HH:MM"),
        ("OFFICE_HOURS", "Mon-Fry 09:00-17:00", "not a day"),
        ("OFFICE_HOURS", "Mon 17:00-09:00", "end after they start"),
        ("OFFICE_HOURS", "Mon 09:00-25:00", "00:00-24:00"),
        ("OFFICE_TIMEZONE", "Mars/Olympus", "IANA time zone"),
    ],
)
def test_bad_office_hours_stop_the_start_with_a_line_naming_the_rule(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as refused:
            get_settings()
    finally:
        get_settings.cache_clear()
    (line,) = [p for p in refused.value.problems if p.startswith(name)]
    assert says in line, line
