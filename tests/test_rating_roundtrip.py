"""A rating's whole trip through real parts: a digest mailed to the local SMTP server, its 👍 link followed on the
bot's own endpoint (GET shows the page and records nothing; POST records), and the next digest listening.

Two readers share one profile and schedule; only ada rates. Their first digests are the same; after ada's
ratings, her next digest is moved by them and says so, and bob's is what the profile alone gives.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from bot.app import App
from bot.config import Config, parse_config
from bot.notify.maildir import MaildirSink
from bot.sources.fetch import Fetcher
from bot.store import Store
from bot.tokens import load_secret
from bot.web import WebServer, make_app
from tests.support.localhttp import LocalHTTPServer

FIXTURES = Path(__file__).parent / "data" / "fixtures"
PUBLIC = "https://digest.example.org"
T0 = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
DAY1 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
DAY2 = DAY1 + timedelta(days=1)
SOURCES = {
    1: [("hf-daily", "hf_papers", "/hf_papers_daily_2024-08-01.html"),
        ("hf-api", "hf_api", "/hf_api_daily_papers_2026-06-12.json"),
        ("arxiv", "arxiv_feed", "/arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml")],
    2: [("hf-api", "hf_api", "/hf_api_daily_papers_2026-07-31.json"),
        ("hf-api-2", "hf_api", "/hf_api_daily_papers_2026-08-03.json"),
        ("arxiv", "arxiv_feed", "/arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml")],
}


@pytest.fixture
def pages() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(directory=FIXTURES) as server:
        yield server


@pytest.fixture
async def mail(tmp_path: Path) -> AsyncIterator[MaildirSink]:
    async with MaildirSink(tmp_path / "Maildir") as sink:
        yield sink


def make_config(db_url: str, pages: LocalHTTPServer, mail: MaildirSink, day: int) -> Config:
    reader = {"profiles": ["agents"], "schedule": "daily 07:00", "timezone": "Europe/Berlin", "max_items": 8}
    return parse_config({
        "bot": {"database": db_url, "public_url": PUBLIC},
        "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none", "sender": "digest@example.org"},
        "sources": [{"name": name, "kind": kind, "url": pages.url(path)} for name, kind, path in SOURCES[day]],
        "profiles": {"agents": {"keywords": ["agent", "agents", "multi-agent", "tool", "reasoning", "language model"],
                                "min_score": 0.5}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", **reader},
                        {"name": "bob", "email": "bob@example.org", **reader}],
    })


async def cycle(config: Config, now: datetime) -> None:
    async with Fetcher(config.bot.user_agent, min_host_interval=0.0, backoff_base=0.01, max_retries=1) as fetcher, \
            App(config, fetcher=fetcher) as app:
        await app.cycle(now=now)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def papers(text: str) -> list[tuple[str, str, str]]:
    """(title, 👍 link, 👎 link) per paper of a digest's text part, in order."""
    found = re.findall(r"^\d+\. (.+?)\n.*?More like this: (\S+)\n\s+Fewer like this: (\S+)", text, re.M | re.S)
    return [(title, up, down) for title, up, down in found]


def latest(mail: MaildirSink, to: str) -> str:
    return text_of([m for m in mail.messages() if str(m["To"]) == to][-1])


async def test_a_rating_goes_from_the_mail_to_the_next_digest(db_url: str, pages: LocalHTTPServer,
                                                               mail: MaildirSink) -> None:
    await cycle(make_config(db_url, pages, mail, 1), T0)
    await cycle(make_config(db_url, pages, mail, 1), DAY1)
    ada, bob = latest(mail, "ada@example.org"), latest(mail, "bob@example.org")
    shown = papers(ada)
    assert len(shown) == 8 and [t for t, _, _ in shown] == [t for t, _, _ in papers(bob)]  # no ratings: the same
    assert "you rated" not in ada

    with Store.open(db_url) as store:
        web_app = make_app(store, load_secret(store, None), clock=lambda: DAY1 + timedelta(hours=2))
        async with WebServer(web_app, port=0) as server, httpx.AsyncClient(base_url=server.url) as http:
            liked, disliked = shown[:4], shown[4:]
            for title, up, down in liked + disliked:
                link = up if (title, up, down) in liked else down
                page = await http.get(link.removeprefix(PUBLIC))  # what a mail scanner does too
                assert page.status_code == 200 and "records" not in page.text
                assert store.ratings_of("email", "ada") == []  # a GET records nothing
            for title, up, down in liked + disliked:
                link = up if (title, up, down) in liked else down
                token, choice = link.removeprefix(f"{PUBLIC}/rate/").rsplit("/", 1)
                done = await http.post(f"/rate/{token}", data={"rating": choice})
                assert done.status_code == 200, done.text[:300]
            forged = shown[0][1].removeprefix(PUBLIC).replace("/up", "").rstrip("A") + "Ab/up"
            assert (await http.get(forged)).status_code == 400
        ratings = store.ratings_of("email", "ada")
        assert sorted(r.rating for r in ratings) == [-1] * 4 + [1] * 4 and {r.profile for r in ratings} == {"agents"}
        assert store.ratings_of("email", "bob") == []

    await cycle(make_config(db_url, pages, mail, 2), DAY2)
    ada2, bob2 = latest(mail, "ada@example.org"), latest(mail, "bob@example.org")
    assert ada2 != ada and bob2 != bob  # the next day's digests
    assert "you rated 👍" in ada2 or "you rated 👎" in ada2  # her ratings moved papers, and each says so
    assert "you rated" not in bob2  # bob rated nothing: the profile alone
    liked_titles = [title for title, _, _ in liked]
    for quoted in re.findall(r"rated 👍 \(e\.g\. “(.+?)”\)", " ".join(ada2.split())):
        assert any(title.startswith(quoted.rstrip("…")) for title in liked_titles), quoted
