"""The whole pipeline with real parts: pages over local HTTP, a real database, an SMTP server, a Slack API.

What the recipients got is asserted the way they would see it: subjects, both parts, links, matched terms;
then the same cycle again sends nothing, and a broken source is said in the digest without costing the rest.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from bot.app import App, CycleReport
from bot.config import Config, parse_config
from bot.notify.maildir import MaildirSink
from bot.notify.slack_sink import SlackSink
from bot.sources.fetch import Fetcher
from bot.store import Store
from bot.tokens import load_secret
from bot.web import WebServer, make_app
from tests.support.localhttp import LocalHTTPServer, Reply

FIXTURES = Path(__file__).parent / "data" / "fixtures"
T0 = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)  # the bot starts (and meets its recipients)
T1 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 07:00 in Berlin, 06:00 UTC: digests are due


@pytest.fixture
def pages() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(directory=FIXTURES) as server:
        server.route("/broken", Reply(503, b"upstream down"))
        yield server


@dataclass
class Ends:
    mail: MaildirSink
    slack: SlackSink


@pytest.fixture
async def ends(tmp_path: Path) -> AsyncIterator[Ends]:
    async with MaildirSink(tmp_path / "Maildir") as mail, SlackSink() as slack:
        yield Ends(mail, slack)


def make_config(db_url: str, pages: LocalHTTPServer, ends: Ends, *, broken: bool = False,
                alert_min_score: float | None = None) -> Config:
    sources = [
        {"name": "hf-daily", "kind": "hf_papers", "url": pages.url("/hf_papers_daily_2024-08-01.html")},
        {"name": "hf-api", "kind": "hf_api", "url": pages.url("/hf_api_daily_papers_2026-06-12.json")},
        {"name": "arxiv", "kind": "arxiv_feed",
         "url": pages.url("/arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml")},
    ]
    if broken:
        sources.append({"name": "flaky", "kind": "feed", "url": pages.url("/broken")})
    return parse_config({
        "bot": {"database": db_url},
        "smtp": {"host": "127.0.0.1", "port": ends.mail.port, "security": "none",
                 "sender": "Paper digest <digest@example.org>"},
        "slack": {"token_env": "E2E_SLACK_TOKEN", "base_url": ends.slack.base_url},
        "sources": sources,
        "profiles": {
            "agents": {"keywords": ["agent", "multi-agent", "web agent", "tool"], "exclude": ["drone"]},
            "video": {"keywords": ["video", "diffusion"]},
        },
        "subscribers": [
            {"name": "ada", "email": "ada@example.org", "profiles": ["agents"], "schedule": "daily 07:00",
             "timezone": "Europe/Berlin", "max_items": 5,
             **({"alert_min_score": alert_min_score} if alert_min_score else {})},
            {"name": "lin", "email": "lin@example.org", "profiles": ["video", "agents"],
             "schedule": "daily 01:00", "timezone": "America/New_York"},
        ],
        "slack_channels": [{"channel": "C0PAPERS", "profiles": ["video"], "schedule": "daily 06:00",
                            "timezone": "UTC"}],
    })


async def cycle(config: Config, now: datetime) -> CycleReport:
    async with Fetcher(config.bot.user_agent, min_host_interval=0.0, backoff_base=0.01, max_retries=1) as fetcher, \
            App(config, fetcher=fetcher) as app:
        return await app.cycle(now=now)


def by_recipient(mail: MaildirSink) -> dict[str, EmailMessage]:
    return {str(m["To"]): m for m in mail.messages()}


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.fixture(autouse=True)
def slack_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_SLACK_TOKEN", "xoxb-e2e-test-token")


async def test_one_cycle_delivers_then_the_same_cycle_sends_nothing(db_url: str, pages: LocalHTTPServer,
                                                                    ends: Ends) -> None:
    config = make_config(db_url, pages, ends)
    first = await cycle(config, T0)
    assert {r.source: (r.status, r.new) for r in first.refreshed} == {
        "hf-daily": ("ok", 13), "hf-api": ("ok", 30), "arxiv": ("ok", 3)}
    assert first.delivered == []  # the recipients' hours have not come yet

    report = await cycle(config, T1)
    assert sorted((d.recipient, d.status) for d in report.delivered) == [
        ("C0PAPERS", "sent"), ("ada", "sent"), ("lin", "sent")]

    mails = by_recipient(ends.mail)
    assert set(mails) == {"ada@example.org", "lin@example.org"}
    ada = mails["ada@example.org"]
    assert ada["Subject"].startswith("digestbot: ") and "agents" in ada["Subject"]
    assert ada["From"] == "Paper digest <digest@example.org>"
    assert ada["Message-ID"] and ada["Date"] and "mailto:" in ada["List-Unsubscribe"]
    assert ada.get_content_type() == "multipart/alternative"
    text, html = parts(ada)
    # WebChallenger (arXiv 2606.10423) is a web agent paper from the HF API page.
    assert "WebChallenger: A Reliable and Efficient Generalist Web Agent" in text
    assert "https://huggingface.co/papers/2606.10423" in text
    assert 'href="https://huggingface.co/papers/2606.10423"' in html
    assert "web agent in title" in text, text
    assert "web agent in title" in html, html
    assert "drone" not in text.lower()  # excluded (MuJoCo-Drones-Gym)
    lin_text, _ = parts(mails["lin@example.org"])
    assert "video in title" in lin_text or "diffusion in title" in lin_text

    posts = ends.slack.posts
    assert len(posts) >= 1
    assert all(p.body["channel"] == "C0PAPERS" for p in posts)
    assert posts[0].body.get("unfurl_links") in (False, "false", "0", 0)
    assert posts[0].headers["authorization"] == "Bearer xoxb-e2e-test-token"

    # The same moment again, and a little later: nothing new is sent anywhere.
    count_mail, count_slack = len(ends.mail.messages()), len(ends.slack.requests)
    again = await cycle(config, T1)
    later = await cycle(config, T1 + timedelta(hours=2))  # sources due again: 304s, no new items
    assert again.delivered == [] and later.delivered == []
    assert {r.status for r in later.refreshed} == {"not-modified"}
    assert len(ends.mail.messages()) == count_mail
    assert len(ends.slack.requests) == count_slack


async def test_a_broken_source_is_said_in_the_digest_and_costs_nothing_else(db_url: str, pages: LocalHTTPServer,
                                                                             ends: Ends) -> None:
    config = make_config(db_url, pages, ends, broken=True)
    first = await cycle(config, T0)
    status = {r.source: r.status for r in first.refreshed}
    assert status == {"hf-daily": "ok", "hf-api": "ok", "arxiv": "ok", "flaky": "failed"}
    report = await cycle(config, T1)
    assert {d.status for d in report.delivered} == {"sent"}
    text, html = parts(by_recipient(ends.mail)["ada@example.org"])
    assert "1 source could not be read: flaky" in text and "flaky" in html
    assert "503" not in text  # readers get plain words; the admin gets the error and its fix


async def test_one_click_unsubscribe_from_the_mail_stops_the_next_digest(db_url: str, pages: LocalHTTPServer,
                                                                          ends: Ends) -> None:
    config = make_config(db_url, pages, ends)
    config = config.model_copy(update={"bot": config.bot.model_copy(update={"public_url": "https://digest.example.org"})})
    await cycle(config, T0)
    await cycle(config, T1)
    ada = by_recipient(ends.mail)["ada@example.org"]
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    links = [part.strip(" <>") for part in str(ada["List-Unsubscribe"]).split(",")]
    https = next(link for link in links if link.startswith("https://digest.example.org/unsubscribe/"))
    _, html = parts(ada)
    assert https in html  # the footer links to the same page

    with Store.open(db_url) as store:
        async with WebServer(make_app(store, load_secret(store, None)), port=0) as server, httpx.AsyncClient() as http:
            path = https.removeprefix("https://digest.example.org")
            assert (await http.get(server.url + path)).status_code == 200
            assert not store.is_unsubscribed("ada@example.org")  # GET changes nothing
            reply = await http.post(server.url + path, data={"List-Unsubscribe": "One-Click"})
            assert reply.status_code == 200
            assert store.is_unsubscribed("ada@example.org")

    report = await cycle(config, T1 + timedelta(days=1))
    assert "ada" not in {d.recipient for d in report.delivered}
    assert sum(1 for m in ends.mail.messages() if m["To"] == "ada@example.org") == 1


async def test_alert_at_once_then_the_digest_marks_it(db_url: str, pages: LocalHTTPServer, ends: Ends) -> None:
    config = make_config(db_url, pages, ends, alert_min_score=8.0)
    report = await cycle(config, T0)  # new items arrive at 05:00 UTC: high scorers go out at once
    [alert] = [d for d in report.delivered if d.kind == "alert"]
    assert (alert.recipient, alert.status) == ("ada", "sent") and alert.items >= 1
    [alert_mail] = by_recipient(ends.mail).values()
    assert str(alert_mail["Subject"]).strip().startswith("digestbot alert")
    again = await cycle(config, T0 + timedelta(minutes=30))
    assert [d for d in again.delivered if d.kind == "alert"] == []  # not alerted twice
    assert len(ends.mail.messages()) == 1

    await cycle(config, T1)
    digest = next(m for m in ends.mail.messages() if str(m["To"]) == "ada@example.org"
                  and not str(m["Subject"]).strip().startswith("digestbot alert"))  # ada's, whichever came first
    text, html = parts(digest)
    assert "(already sent as an alert)" in text and "already sent as an alert" in html


async def test_every_link_to_the_bot_in_a_mail_answers_and_see_them_all_shows_every_match(
        db_url: str, pages: LocalHTTPServer, ends: Ends) -> None:
    """ada's digest carries 5 of more matches: "N more matched — see them all" and "View in a browser" lead to the
    whole digest as a page (it pointed at `public_url`'s root, which answers 404), signed for that digest."""
    config = make_config(db_url, pages, ends)
    config = config.model_copy(update={"bot": config.bot.model_copy(update={"public_url": "https://digest.example.org"})})
    await cycle(config, T0)
    await cycle(config, T1)
    ada = by_recipient(ends.mail)["ada@example.org"]
    text, html = parts(ada)
    more = re.search(r"(\d+) more matched: (https://digest\.example\.org/digest/\S+)", text)
    assert more is not None, text
    links = set(re.findall(r'href="(https://digest\.example\.org/[^"]+)"', html))
    rate = {link for link in links if "/rate/" in link}
    assert more[2] in links and len(links - rate) == 2  # the digest page and the unsubscribe page
    assert len(rate) == 2 * 5 and {link.rsplit("/", 1)[1] for link in rate} == {"up", "down"}  # 👍 / 👎 per paper
    with Store.open(db_url) as store:
        async with App(config, store=store) as app:
            web_app = make_app(store, load_secret(store, None), digest_page=app.digest_page)
            async with WebServer(web_app, port=0) as server, httpx.AsyncClient() as http:
                for link in links:
                    reply = await http.get(server.url + link.removeprefix("https://digest.example.org"))
                    assert reply.status_code == 200, (link, reply.text[:300])
                page = (await http.get(server.url + more[2].removeprefix("https://digest.example.org"))).text
                forged = await http.get(server.url + more[2].removeprefix("https://digest.example.org")[:-3] + "abc")
                assert forged.status_code == 400
    titles_in_page = re.findall(r'href="(https://(?:huggingface\.co|arxiv\.org)/[^"]+)"', page)
    assert len(set(titles_in_page)) == 5 + int(more[1]), (len(set(titles_in_page)), more[1])
    assert "more matched" not in page  # everything is there
    assert len(set(re.findall(r'href="https://digest\.example\.org/rate/[^"]+/up"', page))) == 5 + int(more[1])
    for link in re.findall(r'href="(https://(?:huggingface\.co|arxiv\.org)/[^"]+)"', html):
        assert link in page  # the mail's papers, in the page too


async def test_a_cycle_says_what_it_is_doing_as_it_goes(db_url: str, pages: LocalHTTPServer, ends: Ends) -> None:
    """`once` on a terminal shows this (it was silent for a minute while a slow source timed out)."""
    config = make_config(db_url, pages, ends)
    heard: list[tuple[str, int, int]] = []
    async with Fetcher(config.bot.user_agent, min_host_interval=0.0, backoff_base=0.01, max_retries=1) as fetcher, \
            App(config, fetcher=fetcher) as app:
        await app.cycle(now=T0)
        await app.cycle(now=T1, progress=lambda stage, done, total: heard.append((stage, done, total)))
    stages = [stage for stage, _, _ in heard]
    assert stages[0] == "fetching sources" and "planning digests and alerts" in stages
    fetched = [(done, total) for stage, done, total in heard if stage.startswith(("fetched:", "not due:"))]
    assert fetched[-1] == (3, 3)
    sent = [(done, total) for stage, done, total in heard if stage.startswith("sent:")]
    assert sent and sent[-1][0] <= sent[-1][1] and max(done for done, _ in sent) == len(sent)
