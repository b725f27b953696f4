"""Chaos: `digestbot once` killed (SIGKILL) at random points of delivery, again and again, then left to finish.

Real parts: `once` as a subprocess on a SQLite file and on PostgreSQL, the source over local HTTP, an SMTP server
and a Slack API (with channel history) in this test's event loop. 30 subscribers and 6 Slack channels are due
at 07:00. Each round kills the process the moment one of the servers has received the k-th message of the
round (k drawn from a seeded generator): the message is stored (the mail accepted, the post in the channel) but
never answered, which is the worst moment, as the process cannot know. Then the next minute's `once` runs.

Checked at the servers, as readers would see it: every email owed arrived, with its original Message-ID, and
more than once only for a message that was in flight when a process died (at most `concurrency` per kill);
every Slack post owed arrived exactly once; the outbox holds nothing unsent.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.notify.maildir import MaildirSink
from bot.notify.slack_sink import SlackRequest, SlackSink
from bot.store import Store
from tests.support.localhttp import LocalHTTPServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "data" / "fixtures"
SUBSCRIBERS, CHANNELS, KILLS, CONCURRENCY = 30, 6, 6, 3
DAY = datetime(2026, 6, 12, tzinfo=UTC)

CONFIG = """
[bot]
database = "{database}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "Paper digest <digest@example.org>"
concurrency = {concurrency}

[slack]
token_env = "CHAOS_SLACK_TOKEN"
base_url = "{slack_url}"

[[sources]]
name = "hf"
kind = "hf_api"
url = "{source_url}"

[profiles.agents]
keywords = ["agent", "agents", "reasoning", "model"]
"""
SUBSCRIBER = """
[[subscribers]]
name = "s{i:02d}"
email = "s{i:02d}@example.org"
profiles = ["agents"]
schedule = "daily 07:00"
"""
CHANNEL = """
[[slack_channels]]
channel = "C{i:02d}"
profiles = ["agents"]
schedule = "daily 07:00"
"""


class Chaos:
    """Counts what reaches the servers in a round and kills the process on the k-th email or Slack post."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.kill_on, self.kill_at = "mail", 0
        self.seen = {"mail": 0, "slack": 0}
        self.release = asyncio.Event()  # lets the servers' hung answers end when the test is over

    def arrived(self, what: str) -> bool:
        """Count one message; True (after killing the process) if it is the round's k-th of its kind."""
        self.seen[what] += 1
        if self.pid is not None and what == self.kill_on and self.seen[what] == self.kill_at:
            os.kill(self.pid, signal.SIGKILL)
            return True
        return False


class ChaosMail(MaildirSink):
    def __init__(self, directory: Path, chaos: Chaos) -> None:
        super().__init__(directory)
        self.chaos = chaos

    async def on_data(self, server: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)  # a relay that takes its time
        reply = await super().on_data(server, envelope)  # stored: the server has the message ...
        if self.chaos.arrived("mail"):
            await self.chaos.release.wait()  # ... but the "250" never reaches the (dead) client
        return reply


class ChaosSlack(SlackSink):
    def __init__(self, chaos: Chaos) -> None:
        super().__init__()
        self.chaos = chaos

    async def respond(self, request: SlackRequest, http: web.Request) -> web.StreamResponse:
        if request.method == "chat.postMessage":
            await asyncio.sleep(0.1)  # as slow as Slack
        response = self.accept(request)  # in the channel ...
        if request.method == "chat.postMessage" and self.chaos.arrived("slack"):
            await self.chaos.release.wait()  # ... but the answer never reaches the (dead) client
        return response

    async def stop(self) -> None:
        self.chaos.release.set()
        await super().stop()


async def once(config: Path, now: datetime, chaos: Chaos, log: Path) -> int:
    with log.open("ab") as out:
        out.write(f"\n=== once --now {now.isoformat()} (kill at message {chaos.kill_at or 'never'})\n".encode())
        out.flush()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "once", "--config", str(config), "--now", now.isoformat(),
            cwd=ROOT, stdout=out, stderr=out, env={**os.environ, "CHAOS_SLACK_TOKEN": "xoxb-chaos"})
        chaos.pid, chaos.seen = proc.pid, {"mail": 0, "slack": 0}
        try:
            return await asyncio.wait_for(proc.wait(), timeout=60)
        finally:
            chaos.pid = None


@pytest.mark.timeout(300)
async def test_once_killed_at_random_points_of_delivery_loses_nothing_and_posts_once(db_url: str,
                                                                                      tmp_path: Path) -> None:
    rng = random.Random(13)
    chaos = Chaos()
    log = tmp_path / "once.log"
    with LocalHTTPServer(directory=FIXTURES) as pages:
        async with ChaosMail(tmp_path / "Maildir", chaos) as mail, ChaosSlack(chaos) as slack:
            config = tmp_path / "config.toml"
            config.write_text(CONFIG.format(database=db_url, smtp_port=mail.port, slack_url=slack.base_url,
                                            concurrency=CONCURRENCY,
                                            source_url=pages.url("/hf_api_daily_papers_2026-06-12.json"))
                              + "".join(SUBSCRIBER.format(i=i) for i in range(SUBSCRIBERS))
                              + "".join(CHANNEL.format(i=i) for i in range(CHANNELS)))
            assert await once(config, DAY.replace(hour=6), chaos, log) == 0, log.read_text()  # meets everyone
            owed = SUBSCRIBERS + CHANNELS  # one digest each (a Slack digest may be posted in several parts)
            kills = {"mail": 0, "slack": 0}
            for round_ in range(KILLS):  # kill on the kind killed least so far that still has something to send
                left = {"mail": SUBSCRIBERS - len({str(m["To"]) for m in mail.messages()}),
                        "slack": CHANNELS - len({r.body["channel"] for r in slack.posts
                                                 if r.method == "chat.postMessage"})}
                waiting = sorted((kind for kind in left if left[kind] > 0), key=lambda kind: kills[kind])
                if not waiting:
                    break
                chaos.kill_on = waiting[0]
                # Early in what this round still has to send: email and Slack go out side by side, so a late kill
                # on one lets the other finish everything it had (and leaves nothing of it to kill on later).
                chaos.kill_at = rng.randint(1, max(1, left[chaos.kill_on] // 2))
                code = await once(config, DAY.replace(hour=7, minute=5 + round_), chaos, log)
                kills[chaos.kill_on] += code == -signal.SIGKILL
            chaos.kill_at = 0
            assert await once(config, DAY.replace(hour=7, minute=30), chaos, log) == 0, log.read_text()
            assert await once(config, DAY.replace(hour=7, minute=31), chaos, log) == 0, log.read_text()
            assert kills["mail"] >= 2 and kills["slack"] >= 2, f"too few kills {kills}:\n{log.read_text()}"
            assert log.read_text().count("found in the channel") >= kills["slack"], log.read_text()

            emails = mail.messages()
            ids = {str(m["To"]): set() for m in emails}
            for m in emails:
                ids[str(m["To"])].add(str(m["Message-ID"]))
            assert sorted(ids) == sorted(f"s{i:02d}@example.org" for i in range(SUBSCRIBERS)), log.read_text()
            assert all(len(found) == 1 for found in ids.values()), ids  # resent only with the original Message-ID
            # Any kill (a Slack one too: email goes out beside it) leaves at most one email per SMTP lane received
            # but not recorded, sent again with its Message-ID.
            assert len(emails) - SUBSCRIBERS <= (kills["mail"] + kills["slack"]) * CONCURRENCY, log.read_text()

            posts = [r for r in slack.posts if r.method == "chat.postMessage"]
            tags = Counter((r.body["channel"], r.body["metadata"]["event_payload"]["key"],
                            r.body["metadata"]["event_payload"]["part"]) for r in posts)
            assert max(tags.values()) == 1, [tag for tag, n in tags.items() if n > 1]  # no post twice
            assert {channel for channel, _, _ in tags} == {f"C{i:02d}" for i in range(CHANNELS)}
            for channel, key in {(c, k) for c, k, _ in tags}:
                parts = sorted(p for c, k, p in tags if (c, k) == (channel, key))
                assert parts == list(range(len(parts))), (channel, parts)  # no part missing

    with Store.open(db_url) as store:
        rows = store.deliveries(limit=1000)
    assert len(rows) == owed and {d.state for d in rows} == {"sent"}, [(d.key, d.state, d.last_error) for d in rows]
    assert "Traceback" not in log.read_text()
