"""Two cycles at once never make two digests: two `digestbot once` processes at the same moment, and a daemon
tick that finds the previous cycle still running."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import App
from bot.config import load_config
from bot.models import Source
from bot.notify.maildir import MaildirSink
from bot.scheduler import ConfigWatcher, Daemon
from bot.sources.refresh import refresh_interval
from tests.support.localhttp import LocalHTTPServer, Reply

FIXTURES = Path(__file__).parent / "data" / "fixtures"


@pytest.fixture
async def mail(tmp_path: Path) -> AsyncIterator[MaildirSink]:
    async with MaildirSink(tmp_path / "Maildir") as sink:
        yield sink


def write_config(tmp_path: Path, db_url: str, source_url: str, smtp_port: int) -> Path:
    path = tmp_path / "config.toml"
    subscribers = "".join(f'''
[[subscribers]]
name = "s{i}"
email = "s{i}@example.org"
profiles = ["agents"]
schedule = "daily 07:00"
timezone = "UTC"
''' for i in range(5))
    path.write_text(f'''
[bot]
database = "{db_url}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "digest@example.org"

[[sources]]
name = "hf"
kind = "hf_api"
url = "{source_url}"

[profiles.agents]
keywords = ["agent", "agents", "model"]
{subscribers}''')
    return path


async def once(config: Path, now: str) -> subprocess.CompletedProcess[bytes]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "once", "--config", str(config),
                                                "--now", now, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return subprocess.CompletedProcess([], proc.returncode or 0, out, err)


async def test_two_once_at_the_same_moment_send_one_digest_each(db_url: str, tmp_path: Path,
                                                                 mail: MaildirSink) -> None:
    with LocalHTTPServer(directory=FIXTURES) as server:
        config = write_config(tmp_path, db_url, server.url("/hf_api_daily_papers_2026-06-12.json"), mail.port)
        first = await once(config, "2026-11-22T12:00:00+00:00")  # meet the subscribers, store the items
        assert first.returncode == 0, first.stderr
        results = await asyncio.gather(once(config, "2026-11-23T07:00:00+00:00"),
                                       once(config, "2026-11-23T07:00:00+00:00"))
    for result in results:
        assert result.returncode == 0, result.stderr.decode()
    recipients = sorted(str(m["To"]) for m in mail.messages())
    assert recipients == [f"s{i}@example.org" for i in range(5)]  # each exactly once


async def test_a_tick_while_the_cycle_runs_is_skipped(db_url: str, tmp_path: Path, mail: MaildirSink) -> None:
    with LocalHTTPServer() as server:
        body = (FIXTURES / "hf_api_daily_papers_2026-06-12.json").read_bytes()
        server.route("/slow.json", Reply(200, body, delay=1.0))
        path = write_config(tmp_path, db_url, server.url("/slow.json"), mail.port)
        config = load_config(path)
        async with App(config) as app:
            daemon = Daemon(app, ConfigWatcher(path, config), tick_seconds=0.1)
            await asyncio.gather(daemon.tick(), daemon.tick(), daemon.tick())
        assert daemon.cycles == 1
        assert len(server.requests_for("/slow.json")) == 1


def test_refresh_interval_has_a_fixed_jitter_per_source() -> None:
    a = Source("a", "feed", "http://x", every=timedelta(hours=1))
    b = Source("b", "feed", "http://x", every=timedelta(hours=1))
    assert refresh_interval(a) == refresh_interval(a)
    assert refresh_interval(a) != refresh_interval(b)
    for source in (a, b):
        assert timedelta(minutes=54) <= refresh_interval(source) <= timedelta(hours=1)
