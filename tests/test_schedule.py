"""Schedules: one period key per local day (or week), whatever DST does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.schedule import Schedule, parse_duration

BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("text", "kind", "weekday", "hours"),
    [("daily 07:00", "daily", None, None), ("weekdays 9:30", "weekdays", None, None),
     ("weekly Mon 08:00", "weekly", 0, None), ("weekly sunday 23:59", "weekly", 6, None),
     ("every 6 hours", "hours", None, 6), ("  Daily   07:00 ", "daily", None, None)],
)
def test_parse(text: str, kind: str, weekday: int | None, hours: int | None) -> None:
    schedule = Schedule.parse(text)
    assert (schedule.kind, schedule.weekday, schedule.every_hours) == (kind, weekday, hours)


@pytest.mark.parametrize("text", ["daily 24:00", "hourly", "weekly 08:00", "every 5 hours", "daily 7", ""])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(text)


def keys_over(schedule: Schedule, tz: ZoneInfo, start: datetime, hours: int, step_minutes: int = 15) -> list[str]:
    """Walk the clock and collect each distinct period key in the order they became due."""
    keys: list[str] = []
    now = start
    while now < start + timedelta(hours=hours):
        due = schedule.latest_due(now, tz)
        if due and (not keys or keys[-1] != due[0]):
            keys.append(due[0])
        now += timedelta(minutes=step_minutes)
    return keys


@pytest.mark.parametrize("day", ["2026-03-29", "2026-10-25"])  # last Sundays of March and October
def test_berlin_0230_on_dst_days_gives_one_digest_each_day(day: str) -> None:
    schedule = Schedule.parse("daily 02:30")
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00") - timedelta(days=1)
    keys = keys_over(schedule, BERLIN, start, hours=72)
    assert len(keys) == len(set(keys))
    assert day in keys


def test_la_midnight_across_march_change() -> None:
    schedule = Schedule.parse("daily 00:00")
    keys = keys_over(schedule, LA, datetime(2026, 3, 6, tzinfo=UTC), hours=24 * 5)
    assert keys == [f"2026-03-{d:02d}" for d in range(5, 11)]


def test_due_instant_is_local_time() -> None:
    schedule = Schedule.parse("daily 07:00")
    assert schedule.latest_due(datetime(2026, 11, 23, 5, 59, tzinfo=UTC), BERLIN) == (
        "2026-11-22", datetime(2026, 11, 22, 6, 0, tzinfo=UTC))
    assert schedule.latest_due(datetime(2026, 11, 23, 6, 0, tzinfo=UTC), BERLIN) == (
        "2026-11-23", datetime(2026, 11, 23, 6, 0, tzinfo=UTC))


def test_weekdays_skip_the_weekend() -> None:
    schedule = Schedule.parse("weekdays 09:00")
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert schedule.latest_due(saturday_noon, ZoneInfo("UTC")) == ("2026-11-27", datetime(2026, 11, 27, 9, tzinfo=UTC))


def test_weekly_key_is_the_iso_week() -> None:
    schedule = Schedule.parse("weekly mon 08:00")
    due = schedule.latest_due(datetime(2026, 11, 25, tzinfo=UTC), ZoneInfo("UTC"))
    assert due is not None and due[0] == "2026-W48"


def test_every_n_hours_blocks() -> None:
    schedule = Schedule.parse("every 6 hours")
    due = schedule.latest_due(datetime(2026, 11, 23, 13, 5, tzinfo=UTC), ZoneInfo("UTC"))
    assert due == ("2026-11-23T12", datetime(2026, 11, 23, 12, tzinfo=UTC))


@pytest.mark.parametrize(("text", "seconds"),
                         [("30m", 1800), ("1h", 3600), ("2d", 172800), ("90s", 90), ("1w", 604800),
                          ("520w", 520 * 604800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["0m", "soon", "1 hour", "-1h", "521w", "999999999999h", "9" * 30 + "d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):  # a ValueError (not an OverflowError) is what config validation reports
        parse_duration(text)


@pytest.mark.parametrize(("text", "now", "expected"), [
    ("daily 07:00", "2026-11-23T05:59:00+00:00", "2026-11-23T06:00:00+00:00"),
    ("daily 07:00", "2026-11-23T06:00:00+00:00", "2026-11-24T06:00:00+00:00"),
    ("weekdays 07:00", "2026-11-27T07:00:00+00:00", "2026-11-30T06:00:00+00:00"),
    ("weekly wed 08:00", "2026-11-23T00:00:00+00:00", "2026-11-25T07:00:00+00:00"),
    ("every 6 hours", "2026-11-23T13:05:00+00:00", "2026-11-23T17:00:00+00:00"),
])
def test_next_due(text: str, now: str, expected: str) -> None:
    assert Schedule.parse(text).next_due(datetime.fromisoformat(now), BERLIN) == datetime.fromisoformat(expected)
