"""Whole cycles over sources that serve mutated real pages: no page, however broken, stops a cycle.

Six sources, one of each page kind, answer with seeded mutations of their real copies (see `test_parser_fuzz`), a
different one every cycle, for two simulated days of hourly cycles on the real pipeline (local HTTP, the store, the
planner and SMTP into a local mail sink). Every cycle must finish, every source end it ok, failed or not modified,
nothing stored may be lost, and the subscriber gets exactly one digest a day.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import App
from bot.config import parse_config
from bot.notify.maildir import MaildirSink
from bot.sources.fetch import Fetcher
from bot.store import Store
from tests.support.fuzz import fuzz_case
from tests.support.localhttp import LocalHTTPServer, Reply, Request
from tests.test_parser_fuzz import mutate_bytes, mutate_date

FIXTURES = Path(__file__).parent / "data" / "fixtures"
SOURCES = [
    ("hf_papers", "hf_papers_daily_2024-08-01.html", "text/html"),
    ("hf_api", "hf_api_daily_papers_2026-06-12.json", "application/json"),
    ("arxiv_feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml", "application/rss+xml"),
    ("arxiv_api", "arxiv_api_query_cat-cs.CL_max3_2026-09-24.atom.xml", "application/atom+xml"),
    ("arxiv_list", "arxiv_list_cs.CL_recent_2026-07-28.html", "text/html"),
    ("feed", "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml", "application/atom+xml"),
]
T0 = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
DAYS = 2


def mutating(kind: str, body: bytes, content_type: str) -> Callable[[Request], Reply]:
    """A route that serves the real page on its first request, then a new seeded mutation of it on each next one:
    every other time only a hostile date in an otherwise sound page (so it gets past the parse to the items)."""
    served = 0

    def answer(request: Request) -> Reply:
        nonlocal served
        served += 1
        rng = random.Random(f"{kind}-{served}")
        page = body if served == 1 else mutate_date(rng, body) if served % 2 else mutate_bytes(rng, body)
        return Reply(200, page, {"Content-Type": content_type})

    return answer


async def test_two_days_of_cycles_over_mutated_pages(db_url: str, tmp_path: Path) -> None:
    with LocalHTTPServer() as server:
        async with MaildirSink(tmp_path / "Maildir") as mail:
            await run_cycles(db_url, server, mail)


async def run_cycles(db_url: str, server: LocalHTTPServer, mail: MaildirSink) -> None:
    """Hourly cycles over the mutating sources, checking after each that nothing stored was lost."""
    for kind, name, content_type in SOURCES:
        server.route(f"/{kind}", handler=mutating(kind, (FIXTURES / name).read_bytes(), content_type))
    config = parse_config({
        "bot": {"database": db_url, "failure_threshold": 1000},
        "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none", "sender": "digest@example.org"},
        "sources": [{"name": kind, "kind": kind, "url": server.url(f"/{kind}"), "every": "1h",
                     **({"max_pages": 1} if kind in ("hf_api", "arxiv_api", "arxiv_list") else {})}
                    for kind, _, _ in SOURCES],
        "profiles": {"all": {"keywords": ["model", "language", "learning"]}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["all"], "schedule": "daily 06:00",
                         "timezone": "UTC"}],
    })
    stored = 0
    statuses: set[str] = set()
    async with Fetcher("digestbot-test", deadline=1.5, timeout=1.0, max_retries=0, min_host_interval=0.0,
                       max_bytes=2_000_000) as fetcher, App(config, fetcher=fetcher) as app:
        for hour in range(DAYS * 24):
            with fuzz_case(f"the cycle of hour {hour} (each source's answer n is seeded by '<kind>-<n>')"):
                report = await app.cycle(now=T0 + timedelta(hours=hour))
                statuses |= {r.status for r in report.refreshed}
                with Store.open(db_url) as store:
                    count = store.item_count()
                assert count >= stored  # nothing stored is ever lost
            stored = count
    assert statuses <= {"ok", "failed", "not-modified", "skipped"} and {"ok", "failed"} <= statuses
    assert len(mail.messages()) == DAYS  # one digest a day, whatever the pages did
