"""A broken source is never mistaken for a quiet day, never costs stored items, and never stops the others.

Each fault is served by a real local HTTP server to a source that worked before; the cycle must mark that
source failing with a useful error, keep every stored item, refresh the healthy source, and still deliver the
digest, which says which source is failing. The admin is told once per failure streak, and on recovery.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.app import App, CycleReport
from bot.config import Config, parse_config
from bot.models import Item, Page, SourceOptions
from bot.notify.maildir import MaildirSink
from bot.notify.slack_sink import SlackSink
from bot.report import print_sources, source_rows
from bot.sources import hf, ids
from bot.sources.fetch import Fetcher
from bot.store import Store
from tests.support.localhttp import LocalHTTPServer, Reply, Request

Handler = Callable[[Request], Reply]
FIXTURES = Path(__file__).parent / "data" / "fixtures"
HF_API = (FIXTURES / "hf_api_daily_papers_2026-06-12.json").read_bytes()
HF_PAGE = (FIXTURES / "hf_papers_daily_2024-08-01.html").read_bytes()
T0 = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
KEYWORDS = ("model", "models", "agents", "video")


class Switch:
    """A route whose reply the test changes between cycles (the source 'breaks')."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    def __call__(self, request: Request) -> Reply:
        return self.reply


FAULTS: dict[str, tuple[Reply, str]] = {
    "500": (Reply(500, b"oops"), "500"),
    "429-seconds": (Reply(429, b"slow down", {"Retry-After": "3600"}), "429"),
    "503-http-date": (Reply(503, b"down", {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(days=3),
                                                                           usegmt=True)}), "503"),
    "garbage": (Reply(200, b"<html><body><p>We moved! \xff\xfe</p></body></html>",
                      {"Content-Type": "text/html"}), "layout changed?"),
    "empty-body": (Reply(200, b"", {"Content-Type": "text/html"}), "layout changed?"),
    "truncated": (Reply(200, HF_PAGE[: len(HF_PAGE) // 3], {"Content-Type": "text/html"}), "layout changed?"),
    "slow": (Reply(200, HF_PAGE, delay=5.0), "deadline"),
    "drip": (Reply(200, HF_PAGE[:200], {"Content-Length": "200"}, drip=0.5), "deadline"),
    "gzip-bomb": (Reply(200, gzip.compress(b"\0" * 30_000_000), {"Content-Encoding": "gzip"}), "larger than"),
    "redirect-loop": (Reply(302, b"", {"Location": "/hf"}), "redirect"),
    "redirect-ftp": (Reply(302, b"", {"Location": "ftp://example.org/x"}), "ftp"),
    "redirect-broken": (Reply(302, b"", {"Location": "http://[::1/x"}), "Invalid URL in location header"),
}

# a hold that outlasts every cycle here (their clock is at T0), within the week a Retry-After is honoured for at most
RETRY_AT = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
RETRY_AFTER: dict[str, tuple[int, str]] = {
    "429-seconds": (429, "3600"),
    "503-seconds": (503, "3600"),
    "429-http-date": (429, format_datetime(RETRY_AT, usegmt=True)),
    "503-http-date": (503, format_datetime(RETRY_AT, usegmt=True)),
}
PAGE_ETAG = '"hf-daily-2024-08-01"'
PAGE_LAST_MODIFIED = "Thu, 01 Aug 2024 18:00:00 GMT"


def conditional(body: bytes, etag: str = PAGE_ETAG, last_modified: str = PAGE_LAST_MODIFIED) -> Handler:
    """A route serving `body` with validators, and 304 to a request that sends its ETag back."""
    headers = {"Content-Type": "text/html", "ETag": etag, "Last-Modified": last_modified}

    def answer(request: Request) -> Reply:
        if request.headers.get("if-none-match") == etag:
            return Reply(304, b"", headers)
        return Reply(200, body, headers)

    return answer


@pytest.fixture
async def mail(tmp_path: Path) -> AsyncIterator[MaildirSink]:
    async with MaildirSink(tmp_path / "Maildir") as sink:
        yield sink


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


def make_config(db_url: str, server: LocalHTTPServer, mail: MaildirSink, *, admin: bool = False,
                sources: list[dict[str, Any]] | None = None, keywords: tuple[str, ...] = KEYWORDS,
                **extra: Any) -> Config:
    """Two HF sources on `server` (or `sources`), one daily subscriber; `extra` goes into [bot], except `slack`."""
    slack = extra.pop("slack", None)
    return parse_config({
        "bot": {"database": db_url, "failure_threshold": 2, **({"admin_email": "ops@example.org"} if admin else {}),
                **extra},
        "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none", "sender": "digest@example.org"},
        **({"slack": slack} if slack else {}),
        "sources": sources or [{"name": "steady", "kind": "hf_api", "url": server.url("/api"), "every": "30m"},
                               {"name": "fragile", "kind": "hf_papers", "url": server.url("/hf"), "every": "30m"}],
        "profiles": {"all": {"keywords": list(keywords)}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["all"], "schedule": "daily 06:00",
                         "timezone": "UTC"}],
    })


async def cycle(config: Config, now: datetime) -> CycleReport:
    async with Fetcher("digestbot-test", deadline=1.5, timeout=1.0, max_retries=1, backoff_base=0.01,
                       min_host_interval=0.0, max_bytes=2_000_000) as fetcher, App(config, fetcher=fetcher) as app:
        return await app.cycle(now=now)


def status(report: CycleReport) -> dict[str, str]:
    return {r.source: r.status for r in report.refreshed}


async def healthy_start(db_url: str, server: LocalHTTPServer, mail: MaildirSink) -> tuple[Switch, Config, int]:
    """Both sources served well and refreshed once at T0; returns the fragile route (to break it), the config and
    the number of items stored."""
    server.route("/api", Reply(200, HF_API, {"Content-Type": "application/json"}))
    fragile = Switch(Reply(200, HF_PAGE, {"Content-Type": "text/html"}))
    server.route("/hf", handler=fragile)
    config = make_config(db_url, server, mail)
    assert status(await cycle(config, T0)) == {"steady": "ok", "fragile": "ok"}
    with Store.open(db_url) as store:
        return fragile, config, store.item_count()


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_marks_only_that_source_and_loses_nothing(db_url: str, server: LocalHTTPServer,
                                                              mail: MaildirSink, fault: str) -> None:
    fragile, config, stored = await healthy_start(db_url, server, mail)
    assert stored == 43

    fragile.reply, expected_error = FAULTS[fault]
    report = await cycle(config, T0 + timedelta(hours=1))  # both due again; 06:00 digest due too
    assert status(report) == {"steady": "ok", "fragile": "failed"}
    error = next(r.error for r in report.refreshed if r.source == "fragile")
    assert error and expected_error in error
    assert [(d.recipient, d.status) for d in report.delivered] == [("ada", "sent")]  # deliveries go on

    with Store.open(db_url) as store:
        assert store.item_count() == stored  # nothing deleted
        state = store.get_source_state("fragile")
        assert state.consecutive_failures == 1 and state.last_error and state.last_success_at is not None
        assert store.get_source_state("steady").consecutive_failures == 0
    text = mail.messages()[0].get_body(("plain",))
    assert text is not None and "fragile" in text.get_content()  # the digest says which source is failing


async def test_retry_after_is_honoured_across_cycles_and_restarts(db_url: str, server: LocalHTTPServer,
                                                                  mail: MaildirSink) -> None:
    server.route("/api", Reply(200, HF_API))
    server.route("/hf", Reply(429, b"", {"Retry-After": "7200"}), Reply(200, HF_PAGE))
    config = make_config(db_url, server, mail)
    assert status(await cycle(config, T0)) == {"steady": "ok", "fragile": "failed"}
    # A new App (as after a restart), 40 minutes later: the source is due but held by Retry-After.
    assert status(await cycle(config, T0 + timedelta(minutes=40)))["fragile"] == "skipped"
    assert len(server.requests_for("/hf")) == 1
    with Store.open(db_url) as store:  # the host's hold is kept in real time; let those two hours pass
        host = server.base_url.removeprefix("http://")
        assert host in store.host_holds()
        store.save_host_holds({})
    assert status(await cycle(config, T0 + timedelta(hours=2, minutes=1)))["fragile"] == "ok"


async def test_zero_items_where_there_were_many_is_a_failure(db_url: str, server: LocalHTTPServer,
                                                             mail: MaildirSink) -> None:
    server.route("/api", Reply(200, HF_API), Reply(200, b"[]"))
    server.route("/hf", Reply(200, HF_PAGE))
    config = make_config(db_url, server, mail)
    assert status(await cycle(config, T0))["steady"] == "ok"
    report = await cycle(config, T0 + timedelta(hours=1))
    assert status(report)["steady"] == "failed"
    assert "layout changed?" in (next(r.error for r in report.refreshed if r.source == "steady") or "")


async def test_an_item_dated_past_the_last_utc_datetime_is_undated_and_the_cycle_goes_on(
        db_url: str, server: LocalHTTPServer, mail: MaildirSink) -> None:
    """`9999-12-31T23:59:59-23:59` is a valid date whose UTC time does not exist: it once escaped the parser as an
    OverflowError and stopped the whole cycle."""
    fragile, config, stored = await healthy_start(db_url, server, mail)
    first = HF_PAGE.index(b"&quot;publishedAt&quot;:&quot;") + len(b"&quot;publishedAt&quot;:&quot;")
    hostile = HF_PAGE[:first] + b"9999-12-31T23:59:59-23:59" + HF_PAGE[HF_PAGE.index(b"&quot;", first):]
    fragile.reply = Reply(200, hostile, {"Content-Type": "text/html"})
    report = await cycle(config, T0 + timedelta(hours=1))
    assert status(report) == {"steady": "ok", "fragile": "ok"}
    assert [(d.recipient, d.status) for d in report.delivered] == [("ada", "sent")]
    with Store.open(db_url) as store:
        assert store.item_count() == stored


async def test_a_nul_in_a_paper_id_is_stored_encoded_not_refused(db_url: str, server: LocalHTTPServer,
                                                                  mail: MaildirSink) -> None:
    """PostgreSQL refuses text with a NUL; a JSON id "x\u0000y" once made the store refuse the whole cycle."""
    fragile, config, stored = await healthy_start(db_url, server, mail)
    entries = json.loads(HF_API)
    entries[0]["paper"]["id"] = "not-arxiv\u0000id"
    server.route("/api", Reply(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}))
    report = await cycle(config, T0 + timedelta(hours=1))
    assert status(report) == {"steady": "ok", "fragile": "ok"}
    with Store.open(db_url) as store:
        assert store.item_count() == stored + 1
        ids = {item.id for item in store.items_first_seen_between(None, T0 + timedelta(days=1))}
        assert "https://huggingface.co/papers/not-arxiv%00id" in ids


async def test_a_lone_surrogate_in_a_title_is_stored_and_mailed(db_url: str, server: LocalHTTPServer,
                                                                 mail: MaildirSink) -> None:
    """JSON's "\\ud800" survives `json.loads` as text no encoding carries: once, saving it raised out of the cycle."""
    fragile, config, stored = await healthy_start(db_url, server, mail)
    entries = json.loads(HF_API)
    entries[0]["paper"]["id"] = "2611.00001"
    entries[0]["paper"]["title"] = entries[0]["title"] = "Agents \ud800 models"
    server.route("/api", Reply(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}))
    report = await cycle(config, T0 + timedelta(hours=1))
    assert status(report) == {"steady": "ok", "fragile": "ok"}
    assert [(d.recipient, d.status) for d in report.delivered] == [("ada", "sent")]
    with Store.open(db_url) as store:
        assert store.get_items(["arxiv:2611.00001"])["arxiv:2611.00001"].title == "Agents \ufffd models"
    text = mail.messages()[0].get_body(("plain",))
    assert text is not None and "Agents \ufffd models" in text.get_content()


async def test_items_the_database_refuses_fail_that_source_not_the_cycle(db_url: str, server: LocalHTTPServer,
                                                                         mail: MaildirSink,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With the encoding of ids switched off, PostgreSQL refuses the NUL: that source fails, the rest goes on."""
    if not db_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL refuses a NUL in text")
    fragile, config, stored = await healthy_start(db_url, server, mail)
    monkeypatch.setattr(ids, "_UNSAFE_IN_LINK", re.compile(r"(?!)"))  # matches nothing
    entries = json.loads(HF_API)
    entries[0]["paper"]["id"] = "not-arxiv\u0000id"
    server.route("/api", Reply(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}))
    report = await cycle(config, T0 + timedelta(hours=1))
    assert status(report) == {"steady": "failed", "fragile": "ok"}
    assert "NUL" in (next(r.error for r in report.refreshed if r.source == "steady") or "")
    assert [(d.recipient, d.status) for d in report.delivered] == [("ada", "sent")]
    with Store.open(db_url) as store:
        assert store.item_count() == stored


async def test_a_bug_met_on_one_source_fails_that_source_not_the_cycle(db_url: str, server: LocalHTTPServer,
                                                                       mail: MaildirSink,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The last guard: an exception no parser foresaw (here injected) marks the source failing, with a hint to
    report it, and the other source and the digest go on."""
    fragile, config, stored = await healthy_start(db_url, server, mail)

    def broken(page: Page, options: SourceOptions) -> list[Item]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(hf, "parse_hf_papers", broken)
    report = await cycle(config, T0 + timedelta(hours=1))
    assert status(report) == {"steady": "ok", "fragile": "failed"}
    assert "unexpected error while reading this source (RecursionError(" in (
        next(r.error for r in report.refreshed if r.source == "fragile") or "")
    assert [(d.recipient, d.status) for d in report.delivered] == [("ada", "sent")]
    with Store.open(db_url) as store:
        assert store.item_count() == stored
        assert "digestbot bug" in (store.get_source_state("fragile").last_error or "")


async def test_admin_told_once_per_streak_and_on_recovery(db_url: str, server: LocalHTTPServer,
                                                          mail: MaildirSink) -> None:
    server.route("/api", Reply(200, HF_API))
    fragile = Switch(Reply(200, HF_PAGE))
    server.route("/hf", handler=fragile)
    config = make_config(db_url, server, mail, admin=True)
    await cycle(config, T0)
    fragile.reply = Reply(500, b"down")
    for hours in (1, 2, 3, 4):  # four failures in a row, threshold 2
        await cycle(config, T0 + timedelta(hours=hours))
    fragile.reply = Reply(200, HF_PAGE)
    await cycle(config, T0 + timedelta(hours=5))
    await cycle(config, T0 + timedelta(hours=6))

    to_admin = [m for m in mail.messages() if m["To"] == "ops@example.org"]
    subjects = [str(m["Subject"]) for m in to_admin]
    assert subjects == ["digestbot: Source fragile is failing", "digestbot: Source fragile works again"]
    body = to_admin[0].get_body(("plain",))
    assert body is not None and "500" in body.get_content() and "2 times in a row" in body.get_content()


async def test_sources_are_fetched_with_the_configured_user_agent(db_url: str, server: LocalHTTPServer,
                                                                  mail: MaildirSink) -> None:
    server.route("/api", Reply(200, HF_API))
    server.route("/hf", Reply(200, HF_PAGE))
    agent = "lab-digest/2.0 (+mailto:ops@lab.example)"
    async with App(make_config(db_url, server, mail, user_agent=agent)) as app:  # the App's own Fetcher
        report = await app.cycle(now=T0)
    assert status(report) == {"steady": "ok", "fragile": "ok"}
    assert {r.headers["user-agent"] for r in server.requests} == {agent}


async def test_an_arxiv_feed_empty_on_a_weekend_is_a_quiet_day_not_a_failure(db_url: str, server: LocalHTTPServer,
                                                                             mail: MaildirSink) -> None:
    weekday = (FIXTURES / "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml").read_bytes()
    weekend = (FIXTURES / "arxiv_rss_cs.CL_weekend_empty_2026-08-01.xml").read_bytes()
    server.route("/rss", Reply(200, weekday), Reply(200, weekend))
    config = make_config(db_url, server, mail, sources=[
        {"name": "rss", "kind": "arxiv_feed", "url": server.url("/rss"), "every": "30m",
         "announce_types": ["new", "cross", "replace"]}])
    first = await cycle(config, T0)
    assert [(r.status, r.fetched) for r in first.refreshed] == [("ok", 4)]  # replacements kept, as configured
    quiet = await cycle(config, T0 + timedelta(hours=1))
    assert [(r.status, r.fetched, r.error) for r in quiet.refreshed] == [("ok", 0, None)]
    with Store.open(db_url) as store:
        state = store.get_source_state("rss")
        assert state.consecutive_failures == 0 and state.last_item_count == 0 and state.max_item_count == 4
        assert store.item_count() == 4


async def test_a_digest_with_nothing_matched_is_still_sent_while_a_source_fails(db_url: str, server: LocalHTTPServer,
                                                                               mail: MaildirSink) -> None:
    """No match and no failing source: no mail. No match while a source fails: the mail says so, because an empty
    inbox would look like a quiet day."""
    server.route("/api", Reply(200, HF_API))
    fragile = Switch(Reply(200, HF_PAGE))
    server.route("/hf", handler=fragile)
    config = make_config(db_url, server, mail, keywords=("xylophone",))
    await cycle(config, T0)
    quiet = await cycle(config, T0 + timedelta(hours=1))  # 06:00: ada's digest is due, nothing matches
    assert [d.status for d in quiet.delivered] == ["skipped"] and mail.messages() == []

    fragile.reply = Reply(500, b"down")
    broken = await cycle(config, T0 + timedelta(days=1, hours=1))
    assert status(broken)["fragile"] == "failed"
    assert [(d.recipient, d.status) for d in broken.delivered] == [("ada", "sent")]
    [message] = mail.messages()
    text = message.get_body(("plain",))
    assert text is not None and "1 source could not be read: fragile" in text.get_content()
    assert "500" not in text.get_content()  # the error is the admin's, in the admin's notice


async def test_admin_told_on_slack_once_per_streak_and_on_recovery(db_url: str, server: LocalHTTPServer,
                                                                   mail: MaildirSink,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_SLACK_TOKEN", "xoxb-health-test")
    server.route("/api", Reply(200, HF_API))
    fragile = Switch(Reply(200, HF_PAGE))
    server.route("/hf", handler=fragile)
    async with SlackSink() as slack:
        config = make_config(db_url, server, mail, admin_slack_channel="C0OPS",
                             slack={"token_env": "HEALTH_SLACK_TOKEN", "base_url": slack.base_url})
        await cycle(config, T0)
        fragile.reply = Reply(500, b"down")
        for hours in (1, 2, 3):  # three failures in a row, threshold 2
            await cycle(config, T0 + timedelta(hours=hours))
        fragile.reply = Reply(200, HF_PAGE)
        await cycle(config, T0 + timedelta(hours=4))
        await cycle(config, T0 + timedelta(hours=5))
        to_ops = [json.dumps(p.body) for p in slack.posts if p.body.get("channel") == "C0OPS"]
    assert len(to_ops) == 2, to_ops
    assert "fragile" in to_ops[0] and "failing" in to_ops[0] and "500" in to_ops[0]
    assert "fragile" in to_ops[1] and "works again" in to_ops[1]


@pytest.mark.parametrize("form", list(RETRY_AFTER))
async def test_retry_after_holds_only_that_source_and_loses_nothing(db_url: str, server: LocalHTTPServer,
                                                                    mail: MaildirSink, form: str) -> None:
    """429 or 503 with Retry-After (seconds or an HTTP date) marks the source failed and holds it: no request
    before the hold ends, even once it is due again, while the other source and the digest go on."""
    fragile, config, stored = await healthy_start(db_url, server, mail)

    code, retry_after = RETRY_AFTER[form]
    fragile.reply = Reply(code, b"busy", {"Retry-After": retry_after})
    failed_at = T0 + timedelta(hours=1)  # both due again; 06:00 digest due too
    report = await cycle(config, failed_at)
    assert status(report) == {"steady": "ok", "fragile": "failed"}
    error = next(r.error for r in report.refreshed if r.source == "fragile")
    assert error and str(code) in error
    assert [(d.recipient, d.status) for d in report.delivered] == [("ada", "sent")]
    assert len(server.requests_for("/hf")) == 2  # a wait beyond the deadline is not waited for within the fetch

    held_at = failed_at + timedelta(minutes=45)  # fragile is due again (every 30m); an hour's hold still runs
    with Store.open(db_url) as store:
        state = store.get_source_state("fragile")
        assert state.not_before is not None and state.last_error and str(code) in state.last_error
        if retry_after.isdigit():  # delta-seconds count from the cycle's clock, like next_due_at
            assert abs(state.not_before - (failed_at + timedelta(seconds=int(retry_after)))) < timedelta(minutes=1)
        else:  # that date
            assert state.not_before == RETRY_AT
        assert state.next_due_at is not None and state.next_due_at <= held_at  # only the hold keeps it quiet
        host = server.base_url.removeprefix("http://")
        assert host in store.host_holds()
        store.save_host_holds({})  # the source's own hold, not the host's, must do it

    report = await cycle(config, held_at)
    assert status(report) == {"steady": "ok", "fragile": "skipped"}
    assert len(server.requests_for("/hf")) == 2  # no request while held
    with Store.open(db_url) as store:
        assert store.item_count() == stored  # nothing deleted
        state = store.get_source_state("fragile")
        assert state.consecutive_failures == 1 and state.last_success_at == T0 and state.not_before is not None


@pytest.mark.parametrize("code", [429, 503])
async def test_an_http_date_retry_after_holds_the_source_until_that_date(db_url: str, server: LocalHTTPServer,
                                                                          mail: MaildirSink, code: int) -> None:
    """A Retry-After date is a moment, not a span: the hold ends at that date whatever the cycle's clock reads
    (`digestbot once --now T`, a cycle that started a while ago)."""
    server.route("/api", Reply(200, HF_API))
    server.route("/hf", Reply(code, b"busy", {"Retry-After": format_datetime(RETRY_AT, usegmt=True)}))
    assert status(await cycle(make_config(db_url, server, mail), T0))["fragile"] == "failed"
    with Store.open(db_url) as store:
        held = store.get_source_state("fragile").not_before
    assert held == RETRY_AT


async def test_not_modified_keeps_items_and_validators_and_the_digest_goes_on(db_url: str, server: LocalHTTPServer,
                                                                             mail: MaildirSink) -> None:
    """A 304 is a success that changed nothing: no failure, no item lost, and the validators and counts kept, so
    the next refresh is conditional again and a later empty page is still judged against the real count."""
    server.route("/api", Reply(200, HF_API, {"Content-Type": "application/json"}))
    server.route("/hf", handler=conditional(HF_PAGE))
    config = make_config(db_url, server, mail)
    assert status(await cycle(config, T0)) == {"steady": "ok", "fragile": "ok"}
    with Store.open(db_url) as store:
        stored = store.item_count()

    report = await cycle(config, T0 + timedelta(hours=1))  # both due again; 06:00 digest due too
    assert status(report) == {"steady": "ok", "fragile": "not-modified"}
    first, second = server.requests_for("/hf")
    assert "if-none-match" not in first.headers and "if-modified-since" not in first.headers
    assert second.headers.get("if-none-match") == PAGE_ETAG
    assert second.headers.get("if-modified-since") == PAGE_LAST_MODIFIED
    assert [(d.recipient, d.status) for d in report.delivered] == [("ada", "sent")]
    with Store.open(db_url) as store:
        assert store.item_count() == stored
        state = store.get_source_state("fragile")
        assert (state.etag, state.last_modified) == (PAGE_ETAG, PAGE_LAST_MODIFIED)
        assert state.last_item_count == state.max_item_count == 13
        assert state.consecutive_failures == 0 and state.last_error is None and state.not_before is None
        assert state.last_success_at == T0 + timedelta(hours=1)


async def test_hf_papers_redirect_is_followed_and_its_etag_kept(db_url: str, server: LocalHTTPServer,
                                                                mail: MaildirSink) -> None:
    """huggingface.co/papers redirects to today's /papers/date/…: the items come from that page, and its ETag is
    kept and sent to the configured URL next time (the redirect passes it on), so an unchanged day is a 304."""
    server.route("/papers", Reply(302, headers={"Location": "/papers/date/2024-08-01"}))
    server.route("/papers/date/2024-08-01", handler=conditional(HF_PAGE))
    config = make_config(db_url, server, mail, sources=[
        {"name": "hf", "kind": "hf_papers", "url": server.url("/papers"), "every": "30m"}])
    first = await cycle(config, T0)
    assert [(r.status, r.fetched, r.new) for r in first.refreshed] == [("ok", 13, 13)]
    with Store.open(db_url) as store:
        assert store.item_count() == 13
        assert store.get_source_state("hf").etag == PAGE_ETAG  # the final page's, not the redirect's

    second = await cycle(config, T0 + timedelta(hours=1))
    assert [(r.status, r.error) for r in second.refreshed] == [("not-modified", None)]
    assert [r.headers.get("if-none-match") for r in server.requests_for("/papers")] == [None, PAGE_ETAG]
    assert [r.headers.get("if-none-match") for r in server.requests_for("/papers/date/2024-08-01")] == [
        None, PAGE_ETAG]
    with Store.open(db_url) as store:
        assert store.item_count() == 13
        state = store.get_source_state("hf")
        assert (state.etag, state.last_item_count, state.consecutive_failures) == (PAGE_ETAG, 13, 0)


async def test_a_source_on_a_host_that_asked_us_to_wait_is_held_not_failed(db_url: str, server: LocalHTTPServer,
                                                                          mail: MaildirSink) -> None:
    """fragile's 429 holds the whole host; steady, on the same host, then sends nothing and waits too, but that is
    politeness, not a failure: no error, no failure count, no admin notice, not named failing in the digest."""
    server.route("/api", Reply(200, HF_API))
    server.route("/hf", Reply(200, HF_PAGE), Reply(429, b"busy", {"Retry-After": format_datetime(RETRY_AT,
                                                                                                   usegmt=True)}))
    config = make_config(db_url, server, mail, admin=True, failure_threshold=1)
    assert status(await cycle(config, T0)) == {"steady": "ok", "fragile": "ok"}
    await cycle(config, T0 + timedelta(minutes=31))  # fragile answers 429 and holds the host
    asked = len(server.requests_for("/api"))
    report = await cycle(config, T0 + timedelta(hours=1, minutes=2))  # steady is due again: the host is held
    assert status(report) == {"steady": "skipped", "fragile": "skipped"}
    assert len(server.requests_for("/api")) == asked
    with Store.open(db_url) as store:
        steady = store.get_source_state("steady")
        assert steady.consecutive_failures == 0 and steady.last_error is None and steady.not_before == RETRY_AT
        assert store.get_source_state("fragile").consecutive_failures == 1
        shown = io.StringIO()
        print_sources(Console(file=shown, width=300), source_rows(config, store))
    rows = {line.split("│")[1].strip(): line for line in shown.getvalue().splitlines() if line.count("│") > 2}
    held = f"{RETRY_AT:%Y-%m-%d %H:%M} (held)"
    assert " ok " in rows["steady"] and held in rows["steady"]  # waiting, and says why
    assert "broken" in rows["fragile"] and held in rows["fragile"]  # threshold 1
    told = [str(m["Subject"]) for m in mail.messages() if m["To"] == "ops@example.org"]
    assert told == ["digestbot: Source fragile is failing"]
