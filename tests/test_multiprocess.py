"""Three `digestbot run` processes on one PostgreSQL, the leader killed mid-cycle: every digest sent exactly once.

Real parts throughout: three daemons as subprocesses, PostgreSQL (a schema of its own), the source over local
HTTP, an SMTP server in this test's event loop. The subscribers' hour is the next minute, so the daemons meet
them first (a new recipient's first digest is at their first scheduled time after that meeting).

The leader is caught mid-cycle: its source fetch just before the due minute is held open by the HTTP server,
so it is stuck in `refresh` with the digests due and not yet planned, and is killed there (SIGKILL: no clean-up,
its session and advisory lock die with it). A survivor must take the lead, refresh, plan and send; the other
survivor keeps delivering. Then each subscriber has exactly one digest, and no more arrive.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest

from bot.lead import Leadership
from bot.notify.maildir import MaildirSink
from bot.store import Store
from tests.conftest import PG_ENV, _pg_schema_url
from tests.support.localhttp import LocalHTTPServer, Reply, Request

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "data" / "fixtures" / "hf_api_daily_papers_2026-06-12.json"
SUBSCRIBERS = 20
PROCESSES = 3
HOLD_FROM = 4.0  # seconds before the due minute from which a source fetch is held open (> the source's every)
MIN_LEAD_TIME = 15.0  # the daemons need this long before the due minute to start and meet the subscribers
LEAD_TAKEN = "scheduler lead taken"

CONFIG = """
[bot]
database = "{database}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "Paper digest <digest@example.org>"

[[sources]]
name = "hf"
kind = "hf_api"
url = "{source_url}"
every = "3s"

[profiles.agents]
keywords = ["agent"]
"""

SUBSCRIBER = """
[[subscribers]]
name = "{name}"
email = "{name}@example.org"
profiles = ["agents"]
schedule = "daily {hhmm}"
timezone = "UTC"
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    yield from _pg_schema_url(base)


class HeldSource:
    """Serves the fixture; a request from `hold_from` on waits until `release` (that is the leader, mid-cycle)."""

    def __init__(self, hold_from: float) -> None:
        self.hold_from = hold_from
        self.body = FIXTURE.read_bytes()
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: Request) -> Reply:
        if time.time() >= self.hold_from and not self.release.is_set():
            self.holding.set()
            self.release.wait(timeout=15)  # below the fetcher's read timeout: the fetch itself never fails
        return Reply(200, self.body, {"Content-Type": "application/json"})


def due_minute(now: datetime) -> datetime:
    """The next whole minute that leaves the daemons MIN_LEAD_TIME to start."""
    due = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return due if (due - now).total_seconds() >= MIN_LEAD_TIME else due + timedelta(minutes=1)


async def until(predicate: object, what: str, timeout: float, logs: list[Path]) -> None:
    """Poll without blocking the loop (the SMTP sink runs on it)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n" + dump(logs))


def dump(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in logs if log.exists())


def planner_met_everyone(url: str) -> bool:
    with Store.open(url) as store:
        met = store.first_met()
        return all(("email", f"s{i:02d}") in met for i in range(SUBSCRIBERS))


@pytest.mark.timeout(180)
async def test_three_processes_leader_killed_mid_cycle_every_digest_once(pg_url: str, tmp_path: Path) -> None:
    due = due_minute(datetime.now(UTC))
    source = HeldSource(hold_from=due.timestamp() - HOLD_FROM)
    logs = [tmp_path / f"daemon{i}.log" for i in range(PROCESSES)]
    procs: list[subprocess.Popen[bytes]] = []
    outs: list[IO[bytes]] = []
    leader: subprocess.Popen[bytes] | None = None
    codes: dict[int, int] = {}
    with LocalHTTPServer() as pages:
        pages.route("/hf.json", handler=source)
        async with MaildirSink(tmp_path / "Maildir") as sink:
            config = tmp_path / "config.toml"
            config.write_text(CONFIG.format(database=pg_url, smtp_port=sink.port, source_url=pages.url("/hf.json"))
                              + "".join(SUBSCRIBER.format(name=f"s{i:02d}", hhmm=due.strftime("%H:%M"))
                                        for i in range(SUBSCRIBERS)))
            try:
                for log in logs:
                    outs.append(log.open("wb"))
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "bot", "run", "--config", str(config), "--tick", "0.5"],
                        cwd=ROOT, stdout=outs[-1], stderr=subprocess.STDOUT))
                await until(lambda: planner_met_everyone(pg_url), "the planner to meet every subscriber", 20, logs)
                assert time.time() < source.hold_from, "the daemons started too slowly for this test's clock"
                leaders = [i for i, log in enumerate(logs) if LEAD_TAKEN in log.read_text()]
                assert len(leaders) == 1, dump(logs)
                leader = procs[leaders[0]]
                with Leadership.for_url(pg_url) as probe:  # the database agrees on who leads
                    holder = probe.holder_info()
                    assert holder is not None and holder.pid == leader.pid, (holder, leader.pid)

                # The leader's fetch before the due minute is held; past the minute, it is mid-cycle with the
                # digests due and unplanned. Nobody else refreshes or plans meanwhile.
                await until(lambda: source.holding.is_set() and time.time() >= due.timestamp() + 1.0,
                            "the leader to be mid-cycle after the due minute", 90, logs)
                assert sink.messages() == [], "a digest went out while the leader was stuck"
                leader.send_signal(signal.SIGKILL)
                leader.wait(timeout=10)
                source.release.set()

                await until(lambda: len(sink.paths()) >= SUBSCRIBERS, "every digest to arrive", 45, logs)
                await asyncio.sleep(5)  # ten more ticks of two processes: nothing more may arrive

                survivors = [p for p in procs if p is not leader]
                assert all(p.poll() is None for p in survivors), dump(logs)
                took_over = [i for i, log in enumerate(logs) if i != leaders[0] and LEAD_TAKEN in log.read_text()]
                assert len(took_over) == 1, dump(logs)

                received = Counter(str(m["To"]) for m in sink.messages())
                expected = {f"s{i:02d}@example.org": 1 for i in range(SUBSCRIBERS)}
                assert dict(received) == expected, dump(logs)
                subjects = {str(m["Subject"]) for m in sink.messages()}
                assert all(s.startswith("digestbot: ") for s in subjects), subjects
                with Store.open(pg_url) as store:
                    rows = [d for d in store.deliveries(limit=1000) if d.kind == "digest"]
                assert len(rows) == SUBSCRIBERS and {d.state for d in rows} == {"sent"}
                assert {d.period_key for d in rows} == {due.strftime("%Y-%m-%d")}, {d.period_key for d in rows}
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                for i, proc in enumerate(procs):
                    try:
                        codes[i] = await asyncio.to_thread(proc.wait, 40)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        codes[i] = proc.wait()
                for out in outs:
                    out.close()
    survivors_codes = [code for i, code in codes.items() if procs[i] is not leader]
    assert survivors_codes == [0] * (PROCESSES - 1), dump(logs)
    for log in logs:
        assert "Traceback" not in log.read_text(), dump(logs)
    assert not re.search(r"\bERROR\b", "".join(log.read_text() for log in logs)), dump(logs)
