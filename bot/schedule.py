"""Schedules in the recipient's own time zone, as period keys.

A schedule never says "run now"; it says which period the present instant falls in and when that period's
delivery became due. Whether it was already sent is the database's business (a unique key per recipient,
channel and period), so restarts, second processes and DST changes cannot produce a second digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_TIME = r"(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)"
_PATTERNS = {
    "daily": re.compile(rf"^daily\s+{_TIME}$"),
    "weekdays": re.compile(rf"^weekdays\s+{_TIME}$"),
    "weekly": re.compile(rf"^weekly\s+(?P<day>[a-z]+)\s+{_TIME}$"),
    "hours": re.compile(r"^every\s+(?P<n>\d+)\s+hours?$"),
}

SCHEDULE_FORMS = '"daily HH:MM", "weekdays HH:MM", "weekly DAY HH:MM" or "every N hours"'


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed `schedule` string. `weekday` is 0 for Monday; `every_hours` only for "every N hours"."""

    kind: str
    at: time = time(0, 0)
    weekday: int | None = None
    every_hours: int | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Parse a schedule string; ValueError names the accepted forms."""
        norm = " ".join(text.strip().lower().split())
        for kind, pattern in _PATTERNS.items():
            m = pattern.match(norm)
            if not m:
                continue
            if kind == "hours":
                n = int(m["n"])
                if not 1 <= n <= 24 or 24 % n:
                    raise ValueError(f"'every N hours' needs N dividing 24 (1, 2, 3, 4, 6, 8, 12, 24), got {n}")
                return cls(kind=kind, every_hours=n)
            at = time(int(m["h"]), int(m["m"]))
            if kind == "weekly":
                day = m["day"]
                names = [d for d in (*WEEKDAYS, *_FULL_DAYS) if d == day or (len(day) >= 3 and d.startswith(day))]
                if not names:
                    raise ValueError(f"unknown day {day!r} in {text!r}; use mon, tue, wed, thu, fri, sat or sun")
                return cls(kind=kind, at=at, weekday=WEEKDAYS.index(names[0][:3]))
            return cls(kind=kind, at=at)
        raise ValueError(f"unknown schedule {text!r}; expected {SCHEDULE_FORMS}")

    def latest_due(self, now: datetime, tz: ZoneInfo) -> tuple[str, datetime] | None:
        """The most recent period whose scheduled instant is at or before `now`: (period key, due instant UTC).

        Period keys are dates in the recipient's zone ("2026-11-23"), ISO weeks ("2026-W48") or hour blocks
        ("2026-11-23T06"), so each local day (or week) has exactly one key whatever DST does to its length.
        """
        local = now.astimezone(tz)
        if self.kind == "hours":
            assert self.every_hours is not None
            block = local.hour - local.hour % self.every_hours
            start = datetime.combine(local.date(), time(block), tzinfo=tz)
            return f"{local.date().isoformat()}T{block:02d}", start.astimezone(ZoneInfo("UTC"))
        for back in range(0, 8):
            day = local.date() - timedelta(days=back)
            if not self._runs_on(day):
                continue
            due = _local_instant(day, self.at, tz)
            if due <= now:
                return self._key(day), due.astimezone(ZoneInfo("UTC"))
        return None

    def next_due(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The first scheduled instant after `now` (UTC), for `digestbot status`."""
        local = now.astimezone(tz)
        if self.kind == "hours":
            assert self.every_hours is not None
            block = local.hour - local.hour % self.every_hours + self.every_hours
            start = datetime.combine(local.date(), time(0), tzinfo=tz) + timedelta(hours=block)
            return start.astimezone(ZoneInfo("UTC"))
        for ahead in range(0, 9):
            day = local.date() + timedelta(days=ahead)
            if self._runs_on(day):
                due = _local_instant(day, self.at, tz)
                if due > now:
                    return due.astimezone(ZoneInfo("UTC"))
        raise AssertionError("every schedule runs at least once a week")

    def _runs_on(self, day: date) -> bool:
        if self.kind == "weekdays":
            return day.weekday() < 5
        if self.kind == "weekly":
            return day.weekday() == self.weekday
        return True

    def _key(self, day: date) -> str:
        if self.kind == "weekly":
            year, week, _ = day.isocalendar()
            return f"{year}-W{week:02d}"
        return day.isoformat()

    def __str__(self) -> str:
        if self.kind == "hours":
            return f"every {self.every_hours} hours"
        hhmm = self.at.strftime("%H:%M")
        if self.kind == "weekly":
            assert self.weekday is not None
            return f"weekly {WEEKDAYS[self.weekday]} {hhmm}"
        return f"{self.kind} {hhmm}"


def _local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant `at` on `day` in `tz`.

    An ambiguous wall time (clocks going back) is its first occurrence; a skipped one (clocks going forward)
    resolves with the offset before the jump, i.e. one hour later on the wall clock. Either way, one instant.
    """
    return datetime.combine(day, at, tzinfo=tz)


_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST = 520 * 604800


def parse_duration(text: str) -> timedelta:
    """"30m", "1h", "2d", "90s", "1w" → timedelta; ValueError says the accepted form."""
    m = _DURATION.match(text)
    if not m or int(m[1]) <= 0:
        raise ValueError(f"expected a duration like \"30m\", \"1h\" or \"2d\", got {text!r}")
    seconds = int(m[1]) * _UNITS[m[2].lower()]
    if seconds > _LONGEST:  # past what a timedelta holds, and past any sensible refresh or age
        raise ValueError(f"a duration of at most 10 years (\"520w\") was expected, got {text!r}")
    return timedelta(seconds=seconds)
