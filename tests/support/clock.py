"""A clock for the fetcher's tests: waits are recorded and time moves on at once, so a test of a 1 s
Retry-After takes no second and checks the exact wait."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.sources.fetch import Clock


class FakeClock(Clock):
    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC)  # wall times stay comparable with the real clock's
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.elapsed += seconds
        await asyncio.sleep(0)  # others run, as they would while this one waits
