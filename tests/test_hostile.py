"""Hostile scraped text travels the whole pipeline and arrives inert in every channel.

A feed item's title carries a header injection, a script tag and a Slack broadcast; the alert it triggers is
checked as the recipient sees it: one-line subject and no Bcc in the mail, escaped HTML, literal Slack text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from bot.app import App
from bot.config import parse_config
from bot.notify.maildir import MaildirSink
from bot.notify.slack_sink import SlackSink
from bot.sources.fetch import Fetcher
from tests.support.localhttp import LocalHTTPServer, Reply

HOSTILE = "Evil x\r\nBcc: a@evil.example <script>alert(1)</script> <!channel> & <https://evil.example|x>"
FEED = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile</title><link>https://example.org/</link><description>t</description>
<item><title>{escape(HOSTILE, {chr(13): "&#13;", chr(10): "&#10;"})}</title>
<link>https://example.org/papers/1</link>
<description>{escape("An evil abstract <img src=x onerror=alert(2)> about evil things.")}</description>
</item></channel></rss>""".encode()
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_SLACK_TOKEN", "xoxb-hostile")


@pytest.fixture
async def ends(tmp_path: Path) -> AsyncIterator[tuple[MaildirSink, SlackSink]]:
    async with MaildirSink(tmp_path / "Maildir") as mail, SlackSink() as slack:
        yield mail, slack


async def test_hostile_title_arrives_inert(db_url: str, ends: tuple[MaildirSink, SlackSink]) -> None:
    mail, slack = ends
    with LocalHTTPServer() as server:
        server.route("/feed.xml", Reply(200, FEED, {"Content-Type": "application/rss+xml"}))
        config = parse_config({
            "bot": {"database": db_url},
            "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none", "sender": "digest@example.org"},
            "slack": {"token_env": "HOSTILE_SLACK_TOKEN", "base_url": slack.base_url},
            "sources": [{"name": "hostile", "kind": "feed", "url": server.url("/feed.xml")}],
            "profiles": {"evil": {"keywords": ["evil"]}},
            "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["evil"],
                             "alert_min_score": 1.0}],
            "slack_channels": [{"channel": "C0ALERTS", "profiles": ["evil"], "alert_min_score": 1.0}],
        })
        async with Fetcher("test", min_host_interval=0.0) as fetcher, App(config, fetcher=fetcher) as app:
            report = await app.cycle(now=NOW)
    assert sorted((d.kind, d.channel, d.status) for d in report.delivered) == [
        ("alert", "email", "sent"), ("alert", "slack", "sent")]

    [message] = mail.messages()
    subject = str(message["Subject"])
    assert "\r" not in subject and "\n" not in subject and "Bcc" in subject  # the text is kept, on one line
    assert message["Bcc"] is None
    assert [k for k in message if k.lower() == "bcc"] == []
    html = message.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "<script>" not in content and "&lt;script&gt;" in content
    assert "<img" not in content

    [post] = slack.posts
    dumped = str(post.body)
    assert "<!channel>" not in dumped and "&lt;!channel&gt;" in dumped
    assert "<https://evil.example|x>" not in dumped
    assert "&amp;" in dumped
