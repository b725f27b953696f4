"""A simulated week of scheduling: 10,000 subscribers in 30 time zones, 5 sources, every digest exactly once.

    python bench/week.py [--subscribers 10000] [--days 7] [--tick 30] [--db sqlite --db postgresql]
    python bench/week.py --subscribers 500 --days 2          # a quick smoke run
    python bench/week.py --db sqlite --profile               # + cProfile of planning and of the event loop

The parent process is the outside world: five HTTP servers on 127.0.0.1 (one host each, `tests/localhttp.py`)
and an SMTP sink (`MaildirSink` subclassed to count messages instead of filing them). For each database a fresh
child process runs the bot over a controlled clock, so the time and memory figures are the bot's alone:

- the clock starts at `--start` (default Saturday 2026-10-24 00:00 UTC, a week in which Europe, Israel,
  Lebanon and Egypt leave summer time) and advances by `--tick` minutes; every tick is `App.cycle(now=t)`
  (refresh the sources that are due on their own `every`, plan, deliver) followed by `Deliverer.deliver_due`
  until the outbox has nothing due, so each tick ends with every owed digest sent;
- the sources serve a new day's items at 00:00 UTC every simulated day: ~115 new items a day, drawn from the
  judged seed corpus in `bench/data/` and the real pages in `tests/data/fixtures/`, with fresh arXiv ids per
  day, rendered in the shape of the real pages (HF `/api/daily_papers` JSON, arXiv RSS 2.0 and Atom feeds, the
  arXiv export API, a generic RSS blog); a third of the HF entries are papers the arXiv RSS also lists that day
  (one item, two sources). Repeated fetches within a day get `304 Not Modified` through the ETag;
- subscribers: schedules `daily HH:MM` (60 %), `weekdays HH:MM` (25 %), `weekly DAY HH:MM` (15 %), mostly
  between 06:00 and 09:45 local, one in ten at any minute of the day; 1–2 of six keyword profiles each;
  `send_empty = true` for everyone, so every digest owed is a real email and is counted at the SMTP sink.

The fetcher has no per-host spacing (`min_host_interval=0`): simulated ticks come a few seconds apart in real
time where a daemon's come a minute apart, so the shipped 1 s spacing, which counts real time, would stall the
refreshes of a simulated week; one host per source keeps the rest of the politeness code in play.

The tick. A real daemon ticks every minute; here a coarser tick keeps a week of 10,000 subscribers within
minutes. Digests are due at minute granularity and the planner asks "which period is due at or before now", so
a digest due at 07:05 is planned and sent at the first tick at or after 07:05: a coarser tick only moves send
times later within one tick; it cannot add or lose one (the bench checks that too: each digest must be
planned in [scheduled instant, scheduled instant + tick)).

The expected digests are computed here, apart from the bot: per subscriber, every local date in the window on
which the schedule runs, its wall time in the subscriber's zone as a UTC instant (the first one when the wall
time occurs twice), kept if it falls between the first tick (when the planner first meets every subscriber;
a new subscriber's first digest is at its first scheduled time from then on) and the last tick, one per
period key (the local date, or the ISO week for `weekly`). Every message the sink received is mapped by its
Message-ID to its outbox row; the check is exactly one message per (subscriber, period), none missing, none
unexpected, and the total equal.

Reported per database: digests expected / sent / duplicates / missing / unexpected / planned outside their
tick; per-tick wall time (median, p95, max) and the total; time in refresh / planning / delivery; peak RSS of
the bot's process (`ru_maxrss`) and with `--tracemalloc` the traced Python peak (slower; times not comparable);
and the store calls the week made (count, total time), which is where per-tick time goes.

Run time: every tick plans every subscriber with a few store queries each, so at 10,000 subscribers a tick
costs ~5 s on SQLite and ~14 s on PostgreSQL whatever is due; by the measured rates the default run (336 ticks
per database) would take ~40 min on SQLite and ~1.5 h on PostgreSQL on a 2-core box. `--subscribers`, `--days`
and `--tick` make shorter runs (see `../BENCHMARKS.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import multiprocessing
import pstats
import random
import re
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.utils import format_datetime
from functools import cache, wraps
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.models import Page  # noqa: E402
from bot.notify.maildir import MaildirSink  # noqa: E402
from bot.outbox.deliver import Deliverer  # noqa: E402
from bot.outbox.plan import PlanResult  # noqa: E402
from bot.sources.fetch import Fetcher  # noqa: E402
from bot.sources.parse import parse_page  # noqa: E402
from bot.sources.refresh import RefreshResult  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.store.schema import deliveries  # noqa: E402
from tests.support.localhttp import LocalHTTPServer, Reply, Request  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
SEED = ROOT / "bench" / "data" / "seed_items.jsonl"
DEFAULT_START = "2026-10-24T00:00:00+00:00"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DRAIN_LIMIT = 500  # rows per deliver_due call while draining a tick

# 30 zones, with a rough weight for how many subscribers live there. Whole, half- and quarter-hour offsets,
# both hemispheres, zones that change clocks in the default week and zones that never do.
ZONES: tuple[tuple[str, int], ...] = (
    ("UTC", 2), ("Europe/London", 6), ("Europe/Berlin", 8), ("Europe/Paris", 5), ("Europe/Helsinki", 2),
    ("Europe/Moscow", 2), ("Africa/Cairo", 2), ("Africa/Lagos", 2), ("Africa/Johannesburg", 1),
    ("Asia/Jerusalem", 2), ("Asia/Beirut", 1), ("Asia/Tehran", 1), ("Asia/Dubai", 1), ("Asia/Karachi", 1),
    ("Asia/Kolkata", 7), ("Asia/Kathmandu", 1), ("Asia/Shanghai", 7), ("Asia/Singapore", 3), ("Asia/Tokyo", 4),
    ("Australia/Adelaide", 1), ("Australia/Sydney", 3), ("Pacific/Auckland", 1), ("Pacific/Chatham", 1),
    ("America/St_Johns", 1), ("America/Sao_Paulo", 3), ("America/Santiago", 1), ("America/New_York", 9),
    ("America/Chicago", 4), ("America/Denver", 2), ("America/Los_Angeles", 7),
)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

PROFILES: dict[str, dict[str, Any]] = {
    "rlhf": {"keywords": ["RLHF", "reinforcement learning from human feedback", "DPO", "direct preference optimization",
                          "preference optimization", "reward model", "human preferences", "PPO", "GRPO", "RLAIF"]},
    "recsys": {"keywords": ["recommendation", "recommender", "click-through", "CTR", "semantic IDs",
                            "collaborative filtering", "user behavior"]},
    "multimodal": {"keywords": ["multimodal", "vision-language", "MLLM", "image-text", "visual", "video", "CLIP"]},
    "safety": {"keywords": ["safety", "jailbreak", "red teaming", "harmful", "misalignment", "refusal",
                            "value alignment"]},
    "reasoning": {"keywords": ["reasoning", "chain-of-thought", "mathematical", "theorem", "planning", "agent"]},
    "speech": {"keywords": ["speech", "audio", "ASR", "spoken", "text-to-speech", "music"]},
}

# name, kind, path, new items a day, refresh interval
SOURCES: tuple[tuple[str, str, str, int, str], ...] = (
    ("hf-daily", "hf_api", "/api/daily_papers", 30, "1h"),
    ("arxiv-rss", "arxiv_feed", "/rss/cs.LG+cs.AI+cs.CL", 45, "2h"),
    ("arxiv-api", "arxiv_api", "/api/query?search_query=cat:cs.IR&max_results=100", 25, "6h"),
    ("arxiv-atom", "arxiv_feed", "/atom/cs.CV", 20, "3h"),
    ("lab-blog", "feed", "/blog/feed.xml", 5, "30m"),
)
HF_FROM_RSS = 10  # of the HF entries each day, this many are papers the arXiv RSS lists too


# --- content: a day's items per source ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Paper:
    title: str
    abstract: str
    authors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    id: str  # arXiv id, or a blog post slug
    paper: Paper


@cache
def paper_pool() -> tuple[Paper, ...]:
    """Real titles and abstracts: the judged seed corpus plus every item on the fixture pages."""
    fixtures = [("hf_api", f) for f in FIXTURES.glob("hf_api_*.json")]
    fixtures += [("arxiv_feed", f) for f in FIXTURES.glob("arxiv_rss*.xml")]
    fixtures += [("arxiv_api", f) for f in FIXTURES.glob("arxiv_api_*.xml")]
    fixtures += [("arxiv_list", f) for f in FIXTURES.glob("arxiv_list_*.html")]
    papers: list[Paper] = []
    for kind, path in sorted(fixtures):
        page = Page(url=f"https://example.org/{path.name}", body=path.read_bytes(), fetched_at=datetime.now(UTC))
        papers += [Paper(i.title, i.abstract or "", i.authors) for i in parse_page(kind, page) if i.abstract]
    names = sorted({a for p in papers for a in p.authors}) or ["A. Author"]
    rng = random.Random(7)
    for line in SEED.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        papers.append(Paper(row["title"], row["abstract"], tuple(rng.sample(names, rng.randint(1, 6)))))
    return tuple(papers)


@cache
def day_entries(source: int, day: int) -> tuple[Entry, ...]:
    """The items source `source` lists on simulated day `day` (deterministic)."""
    name, _kind, _path, count, _every = SOURCES[source]
    rng = random.Random(f"{name}/{day}")
    pool = paper_pool()
    own = [Entry(f"2610.{10000 + day * 1000 + source * 200 + i:05d}", pool[rng.randrange(len(pool))])
           for i in range(count)]
    if name == "hf-daily":  # a third are today's arXiv announcements, one item from two sources
        return (*day_entries(1, day)[:HF_FROM_RSS], *own[HF_FROM_RSS:])
    if name == "lab-blog":
        return tuple(Entry(f"d{day:02d}-post-{i}", e.paper) for i, e in enumerate(own))
    return tuple(own)


def render_body(source: int, day: int, start: datetime) -> tuple[bytes, str]:
    """The day's page for `source`, in the shape of the real page of its kind."""
    kind = SOURCES[source][1]
    entries = day_entries(source, day)
    when = (start + timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "hf_api":
        return _hf_json(entries, when), "application/json"
    if SOURCES[source][0] == "arxiv-rss":
        return _arxiv_rss(entries, when), "application/rss+xml"
    if kind == "arxiv_api":
        return _arxiv_api(entries, when), "application/atom+xml"
    if kind == "arxiv_feed":
        return _arxiv_atom(entries, when), "application/atom+xml"
    return _blog_rss(entries, when), "application/rss+xml"


def _hf_json(entries: tuple[Entry, ...], when: datetime) -> bytes:
    stamp = when.strftime("%Y-%m-%dT00:00:00.000Z")
    rows = [{"paper": {"id": e.id, "authors": [{"name": a, "hidden": False} for a in e.paper.authors],
                       "publishedAt": stamp, "submittedOnDailyAt": stamp, "title": e.paper.title,
                       "summary": e.paper.abstract, "upvotes": (i * 7) % 40},
             "publishedAt": stamp, "title": e.paper.title, "numComments": i % 4}
            for i, e in enumerate(entries)]
    return json.dumps(rows).encode()


def _arxiv_rss(entries: tuple[Entry, ...], when: datetime) -> bytes:
    items = "".join(
        f"<item><title>{escape(e.paper.title)}</title><link>https://arxiv.org/abs/{e.id}</link>"
        f"<description>arXiv:{e.id}v1 Announce Type: new \nAbstract: {escape(e.paper.abstract)}</description>"
        f"<guid isPermaLink=\"false\">oai:arXiv.org:{e.id}v1</guid><category>cs.LG</category>"
        f"<pubDate>{format_datetime(when)}</pubDate><arxiv:announce_type>new</arxiv:announce_type>"
        f"<dc:creator>{escape(', '.join(e.paper.authors))}</dc:creator></item>" for e in entries)
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<rss xmlns:arxiv=\"http://arxiv.org/schemas/atom\" "
            "xmlns:dc=\"http://purl.org/dc/elements/1.1/\" version=\"2.0\"><channel>"
            "<title>cs.LG, cs.AI, cs.CL updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>"
            f"<description>updates</description><pubDate>{format_datetime(when)}</pubDate>{items}"
            "</channel></rss>").encode()


def _atom_entry(e: Entry, when: datetime, *, feed: bool) -> str:
    authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in e.paper.authors)
    summary = f"arXiv:{e.id}v1 Announce Type: new \nAbstract: {e.paper.abstract}" if feed else e.paper.abstract
    extra = "<arxiv:announce_type>new</arxiv:announce_type>" if feed else ""
    return (f"<entry><id>{'oai:arXiv.org:' if feed else 'http://arxiv.org/abs/'}{e.id}v1</id>"
            f"<title>{escape(e.paper.title)}</title><updated>{when.isoformat()}</updated>"
            f"<link href=\"https://arxiv.org/abs/{e.id}v1\" rel=\"alternate\" type=\"text/html\"/>"
            f"<summary>{escape(summary)}</summary><published>{when.isoformat()}</published>{extra}{authors}</entry>")


def _arxiv_atom(entries: tuple[Entry, ...], when: datetime) -> bytes:
    body = "".join(_atom_entry(e, when, feed=True) for e in entries)
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<feed xmlns:arxiv=\"http://arxiv.org/schemas/atom\" "
            "xmlns=\"http://www.w3.org/2005/Atom\"><id>http://rss.arxiv.org/atom/cs.CV</id>"
            f"<title>cs.CV updates on arXiv.org</title><updated>{when.isoformat()}</updated>{body}</feed>").encode()


def _arxiv_api(entries: tuple[Entry, ...], when: datetime) -> bytes:
    body = "".join(_atom_entry(e, when, feed=False) for e in entries)
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<feed xmlns:opensearch=\"http://a9.com/-/spec/opensearch/1.1/\" "
            "xmlns:arxiv=\"http://arxiv.org/schemas/atom\" xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<id>https://arxiv.org/api/bench</id><title>arXiv Query</title><updated>{when.isoformat()}</updated>"
            f"<opensearch:itemsPerPage>100</opensearch:itemsPerPage><opensearch:totalResults>{len(entries)}"
            f"</opensearch:totalResults><opensearch:startIndex>0</opensearch:startIndex>{body}</feed>").encode()


def _blog_rss(entries: tuple[Entry, ...], when: datetime) -> bytes:
    items = "".join(
        f"<item><title>{escape(e.paper.title)}</title><link>https://lab.example.org/blog/{e.id}</link>"
        f"<description>{escape(e.paper.abstract)}</description><guid>https://lab.example.org/blog/{e.id}</guid>"
        f"<pubDate>{format_datetime(when)}</pubDate></item>" for e in entries)
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<rss version=\"2.0\"><channel><title>A lab's blog</title>"
            f"<link>https://lab.example.org/blog/</link><description>posts</description>{items}</channel></rss>"
            ).encode()


# --- the world (parent process): sources and the mail sink ----------------------------------------------------

class SourceServers:
    """One LocalHTTPServer per source (one host each); bodies follow the shared simulated clock."""

    def __init__(self, clock: Any, start: datetime) -> None:
        self.clock = clock
        self.start = start
        self.servers = [LocalHTTPServer() for _ in SOURCES]
        self.lock = threading.Lock()
        self.bodies: dict[tuple[int, int], tuple[bytes, str]] = {}
        self.answers: Counter[int] = Counter()

    def __enter__(self) -> SourceServers:
        for index, server in enumerate(self.servers):
            server.start()
            server.route(SOURCES[index][2].split("?")[0], handler=self._handler(index))
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()

    def url(self, index: int) -> str:
        return self.servers[index].url(SOURCES[index][2])

    def _handler(self, index: int) -> Callable[[Request], Reply]:
        def handle(request: Request) -> Reply:
            day = int((self.clock.value - self.start.timestamp()) // 86400)
            etag = f"\"{SOURCES[index][0]}-{day}\""
            with self.lock:
                if (index, day) not in self.bodies:
                    self.bodies[(index, day)] = render_body(index, day, self.start)
                body, content_type = self.bodies[(index, day)]
                self.answers[304 if request.headers.get("if-none-match") == etag else 200] += 1
            if request.headers.get("if-none-match") == etag:
                return Reply(304, b"", {"ETag": etag})
            return Reply(200, body, {"ETag": etag, "Content-Type": content_type})

        return handle


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class CountingSink(MaildirSink):
    """The real in-process SMTP server, keeping (recipient, Message-ID) per message instead of a Maildir file."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.received: list[tuple[str, str]] = []
        self.bytes = 0

    def deliver(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> str:
        head = content.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        message_id = found[1].decode() if found else "?"
        self.received.extend((rcpt, message_id) for rcpt in rcpt_tos)
        self.bytes += len(content)
        return message_id


@contextlib.contextmanager
def running_sink(directory: Path) -> Iterator[CountingSink]:
    """The sink on its own event loop in a thread of the parent process."""
    loop = asyncio.new_event_loop()
    sink = CountingSink(directory)
    loop.run_until_complete(sink.start())
    thread = threading.Thread(target=loop.run_forever, name="smtp-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        asyncio.run_coroutine_threadsafe(sink.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# --- subscribers and what they are owed -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Subscriber:
    name: str
    zone: str
    kind: str  # daily, weekdays, weekly
    at: dtime
    weekday: int | None
    profiles: tuple[str, ...]
    max_items: int

    @property
    def schedule(self) -> str:
        hhmm = self.at.strftime("%H:%M")
        return f"weekly {DAYS[self.weekday or 0]} {hhmm}" if self.kind == "weekly" else f"{self.kind} {hhmm}"

    @property
    def email(self) -> str:
        return f"{self.name}@bench.example.org"

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "profiles": list(self.profiles), "schedule": self.schedule,
                "timezone": self.zone, "max_items": self.max_items, "send_empty": True}


def make_subscribers(count: int, seed: int) -> list[Subscriber]:
    rng = random.Random(seed)
    zones, weights = zip(*ZONES, strict=True)
    out = []
    for i in range(count):
        kind = rng.choices(("daily", "weekdays", "weekly"), (60, 25, 15))[0]
        if rng.random() < 0.9:
            at = dtime(rng.choice((6, 7, 7, 7, 8, 8, 9)), rng.choice((0, 0, 0, 15, 30, 30, 45)))
        else:
            at = dtime(rng.randrange(24), rng.randrange(60))
        out.append(Subscriber(name=f"s{i:05d}", zone=rng.choices(zones, weights)[0], kind=kind, at=at,
                              weekday=rng.randrange(7) if kind == "weekly" else None,
                              profiles=tuple(rng.sample(sorted(PROFILES), rng.choice((1, 1, 2)))),
                              max_items=rng.choice((10, 15, 25))))
    return out


def expected_digests(sub: Subscriber, first: datetime, last: datetime) -> dict[str, datetime]:
    """Period key → scheduled instant (UTC) for every scheduled time in [first, last], worked out here."""
    tz = ZoneInfo(sub.zone)
    day: date = first.astimezone(tz).date() - timedelta(days=1)
    end = last.astimezone(tz).date() + timedelta(days=1)
    owed: dict[str, datetime] = {}
    while day <= end:
        runs = (sub.kind == "daily" or (sub.kind == "weekdays" and day.weekday() < 5)
                or (sub.kind == "weekly" and day.weekday() == sub.weekday))
        instant = datetime.combine(day, sub.at, tzinfo=tz).astimezone(UTC)  # fold=0: first of a repeated time
        if runs and first <= instant <= last:
            year, week, _ = day.isocalendar()
            key = f"{year}-W{week:02d}" if sub.kind == "weekly" else day.isoformat()
            assert key not in owed, (sub, key)
            owed[key] = instant
        day += timedelta(days=1)
    return owed


def bot_config(subs: list[Subscriber], database: str, source_urls: list[str], smtp_port: int) -> dict[str, Any]:
    return {
        "bot": {"database": database, "user_agent": "digestbot-bench/1.0 (+mailto:bench@example.org)"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                 "sender": "digestbot bench <digest@bench.example.org>"},
        "sources": [{"name": name, "kind": kind, "url": url, "every": every}
                    for (name, kind, _path, _count, every), url in zip(SOURCES, source_urls, strict=True)],
        "profiles": PROFILES,
        "subscribers": [s.to_config() for s in subs],
    }


# --- the bot (child process) ----------------------------------------------------------------------------------

@dataclass(slots=True)
class WeekResult:
    database: str
    ticks: list[float] = field(default_factory=list)  # seconds per tick (cycle + drain)
    refresh_s: float = 0.0
    plan_s: float = 0.0
    deliver_s: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    busiest_tick: int = 0  # digests sent in the busiest tick
    busiest_tick_s: float = 0.0
    new_items: int = 0
    refreshes: int = 0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    traced_peak_mb: float | None = None
    store_calls: dict[str, tuple[int, float]] = field(default_factory=dict)
    profile: str = ""
    wall_s: float = 0.0


class TimedApp(App):
    """The shipped App, with the refresh and planning phases timed (and planning profiled when asked)."""

    def __init__(self, *args: Any, plan_profiler: cProfile.Profile | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refresh_s = self.plan_s = 0.0
        self.plan_profiler = plan_profiler

    async def refresh(self, *, now: datetime, only_due: bool = True,
                      on_result: Callable[[RefreshResult], None] | None = None) -> list[RefreshResult]:
        started = time.perf_counter()
        try:
            return await super().refresh(now=now, only_due=only_due, on_result=on_result)
        finally:
            self.refresh_s += time.perf_counter() - started

    def _plan(self, now: datetime) -> PlanResult:
        started = time.perf_counter()
        if self.plan_profiler is not None:
            self.plan_profiler.enable()  # planning runs in a worker thread: profile it there
        try:
            return super()._plan(now)
        finally:
            if self.plan_profiler is not None:
                self.plan_profiler.disable()
            self.plan_s += time.perf_counter() - started


def instrument(store: Store) -> dict[str, list[float]]:
    """Count calls and time per public Store method (calls made from worker threads included)."""
    calls: dict[str, list[float]] = {}
    lock = threading.Lock()

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                with lock:
                    entry = calls.setdefault(name, [0, 0.0])
                    entry[0] += 1
                    entry[1] += spent

        return timed

    for name in dir(Store):
        if not name.startswith("_") and name not in ("open", "close") and callable(getattr(Store, name)):
            setattr(store, name, wrap(name, getattr(store, name)))
    return calls


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _profile_text(profiler: cProfile.Profile, title: str, top: int = 25) -> str:
    out = io.StringIO()
    out.write(f"--- {title}: top {top} by own time ---\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


async def _week(spec: dict[str, Any], clock: Any) -> WeekResult:
    result = WeekResult(database=spec["label"])
    config = parse_config(spec["config"])
    store = Store.open(config.bot.database)
    calls = instrument(store)
    loop_profiler = cProfile.Profile() if spec["profile"] else None
    # No per-host spacing: a simulated week's ticks come seconds apart in real time, where a daemon's come a minute
    # apart, so the shipped 1 s spacing (real time) would stall every simulated refresh; nothing else changes.
    fetcher = Fetcher(config.bot.user_agent, min_host_interval=0.0)
    app = TimedApp(config, store=store, fetcher=fetcher,
                   plan_profiler=cProfile.Profile() if spec["profile"] else None)
    result.rss_before_mb = _rss_mb()
    if spec["tracemalloc"]:
        tracemalloc.start()
    sent: Counter[str] = Counter()
    started_all = time.perf_counter()
    async with fetcher, app:
        deliverer = Deliverer(app.config, app.store, app.renderer, secret=await app.secret())
        for stamp in spec["ticks"]:
            now = datetime.fromtimestamp(stamp, UTC)
            clock.value = stamp
            if loop_profiler is not None:
                loop_profiler.enable()
            started = time.perf_counter()
            report = await app.cycle(now=now)
            outcomes = list(report.delivered)
            while batch := await deliverer.deliver_due(now=now, limit=DRAIN_LIMIT):
                outcomes += batch
            spent = time.perf_counter() - started
            if loop_profiler is not None:
                loop_profiler.disable()
            result.ticks.append(spent)
            sent.update(o.status for o in outcomes)
            if len(outcomes) > result.busiest_tick:
                result.busiest_tick, result.busiest_tick_s = len(outcomes), spent
            result.new_items += sum(r.new for r in report.refreshed)
            result.refreshes += sum(r.status != "skipped" for r in report.refreshed)
    result.wall_s = time.perf_counter() - started_all
    if spec["tracemalloc"]:
        result.traced_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    store.close()
    result.refresh_s, result.plan_s = app.refresh_s, app.plan_s
    result.deliver_s = sum(result.ticks) - app.refresh_s - app.plan_s
    result.outcomes = dict(sent)
    result.rss_peak_mb = _rss_mb()
    result.store_calls = {name: (int(n), t) for name, (n, t) in calls.items()}
    if loop_profiler is not None and app.plan_profiler is not None:
        result.profile = (_profile_text(app.plan_profiler, "planning (worker thread)")
                          + _profile_text(loop_profiler, "event loop: refresh, claim, render, send, record"))
    return result


def bot_process(spec: dict[str, Any], clock: Any, conn: Any) -> None:
    """Child process entry: run the week, send the WeekResult back."""
    try:
        conn.send(asdict(asyncio.run(_week(spec, clock))))
    except BaseException as exc:
        conn.send({"error": repr(exc)})
        raise


# --- checking (parent) ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class Check:
    expected: int = 0
    received: int = 0  # messages at the sink
    exactly_once: int = 0
    duplicates: int = 0
    missing: int = 0
    unexpected: int = 0
    off_tick: int = 0  # planned outside [scheduled, scheduled + tick)
    unknown_ids: int = 0
    wrong_address: int = 0
    empty: int = 0  # digests sent with no items (send_empty)
    states: dict[str, int] = field(default_factory=dict)
    worst_late_s: float = 0.0


def check(url: str, subs: list[Subscriber], ticks: list[datetime], tick: timedelta,
          received: list[tuple[str, str]]) -> Check:
    owed = {s.name: expected_digests(s, ticks[0], ticks[-1]) for s in subs}
    address = {s.name: s.email for s in subs}
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(deliveries.c.message_id, deliveries.c.recipient, deliveries.c.period_key,
                           deliveries.c.state, deliveries.c.created_at, deliveries.c.payload,
                           deliveries.c.kind)
            rows = {r.message_id: r for r in connection.execute(query)}
    finally:
        engine.dispose()
    result = Check(expected=sum(len(v) for v in owed.values()), received=len(received))
    result.states = dict(Counter(f"{r.kind}:{r.state}" for r in rows.values()))
    per_period: Counter[tuple[str, str]] = Counter()
    for rcpt, message_id in received:
        row = rows.get(message_id)
        if row is None:
            result.unknown_ids += 1
            continue
        result.wrong_address += rcpt != address.get(row.recipient)
        per_period[(row.recipient, row.period_key)] += 1
        result.empty += not row.payload.get("items")
        due = owed.get(row.recipient, {}).get(row.period_key)
        if due is not None:
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            late = (created - due).total_seconds()
            result.worst_late_s = max(result.worst_late_s, late)
            result.off_tick += not 0 <= late < tick.total_seconds()
    expected_pairs = {(name, key) for name, keys in owed.items() for key in keys}
    result.exactly_once = sum(1 for pair in expected_pairs if per_period.get(pair) == 1)
    result.duplicates = sum(n - 1 for n in per_period.values() if n > 1)
    result.missing = sum(1 for pair in expected_pairs if pair not in per_period)
    result.unexpected = sum(1 for pair in per_period if pair not in expected_pairs)
    return result


# --- databases ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def database(kind: str, tmp: Path, pg_url: str) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL schema (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'week.sqlite3'}"
        return
    schema = f"bench_week_{secrets.token_hex(4)}"
    admin = create_engine(pg_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- main -----------------------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def print_run(result: WeekResult, c: Check, answers: Counter[int], sink_bytes: int) -> None:
    ok = (c.duplicates == 0 and c.missing == 0 and c.unexpected == 0 and c.unknown_ids == 0 and c.off_tick == 0
          and c.wrong_address == 0 and c.received == c.expected)
    print(f"\n== {result.database}: {'PASS' if ok else 'FAIL'} ==")
    print(f"digests expected {c.expected:,}, messages received {c.received:,}, exactly once {c.exactly_once:,}, "
          f"duplicates {c.duplicates}, missing {c.missing}, unexpected {c.unexpected}, unknown Message-ID "
          f"{c.unknown_ids}, wrong address {c.wrong_address}, planned outside their tick {c.off_tick} "
          f"(latest {c.worst_late_s / 60:.0f} min after the scheduled time)")
    print(f"outbox rows: {', '.join(f'{k} {v:,}' for k, v in sorted(c.states.items()))}; deliver outcomes: "
          f"{', '.join(f'{k} {v:,}' for k, v in sorted(result.outcomes.items()))}; empty digests sent "
          f"{c.empty:,} ({c.empty / max(1, c.received):.1%}); {sink_bytes / 2**20:.0f} MB of mail")
    print(f"sources: {result.refreshes} refreshes (HTTP 200: {answers[200]}, 304: {answers[304]}), "
          f"{result.new_items:,} new items")
    t = result.ticks
    print(f"ticks: {len(t)}, per tick median {statistics.median(t):.3f} s, p95 {pct(t, 0.95):.3f} s, "
          f"max {max(t):.3f} s (busiest tick: {result.busiest_tick:,} digests in {result.busiest_tick_s:.2f} s); "
          f"total {sum(t):.1f} s = refresh {result.refresh_s:.1f} + plan {result.plan_s:.1f} + "
          f"deliver {result.deliver_s:.1f} (wall {result.wall_s:.1f} s)")
    traced = f", tracemalloc peak {result.traced_peak_mb:.1f} MB" if result.traced_peak_mb is not None else ""
    print(f"memory: RSS before the week {result.rss_before_mb:.0f} MB, peak {result.rss_peak_mb:.0f} MB{traced}")
    print("store calls (all ticks; nested calls count in both):")
    ranked = sorted(result.store_calls.items(), key=lambda kv: -kv[1][1])
    for name, (count, spent) in ranked[:10]:
        print(f"  {name:<26} {count:>10,} calls {spent:>8.1f} s {spent / count * 1e6:>8.0f} µs/call")
    if result.profile:
        print(result.profile)


def run_one(kind: str, args: argparse.Namespace, subs: list[Subscriber], ticks: list[datetime],
            start: datetime) -> bool:
    ctx = multiprocessing.get_context("spawn")
    clock = ctx.Value("d", ticks[0].timestamp())
    with (tempfile.TemporaryDirectory(prefix="digestbot-week-") as tmp_name,
          database(kind, Path(tmp_name), args.pg_url) as url,
          SourceServers(clock, start) as servers,
          running_sink(Path(tmp_name) / "unused-maildir") as sink):
        config = bot_config(subs, url, [servers.url(i) for i in range(len(SOURCES))], sink.port)
        spec = {"label": kind, "config": config, "ticks": [t.timestamp() for t in ticks],
                "profile": args.profile, "tracemalloc": args.tracemalloc}
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=bot_process, args=(spec, clock, sender))
        child.start()
        sender.close()
        outcome = receiver.recv()
        child.join()
        if "error" in outcome:
            raise SystemExit(f"{kind} run failed: {outcome['error']}")
        result = WeekResult(**outcome)
        c = check(url, subs, ticks, timedelta(minutes=args.tick), sink.received)
        print_run(result, c, servers.answers, sink.bytes)
    return c.duplicates == c.missing == c.unexpected == c.off_tick == 0 and c.received == c.expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--tick", type=int, default=30, help="minutes between ticks (a real daemon: 1)")
    parser.add_argument("--start", default=DEFAULT_START, help="the simulated week's first tick (ISO, UTC)")
    parser.add_argument("--db", action="append", choices=("sqlite", "postgresql"), help="repeatable; default both")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL to create a scratch schema in")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--profile", action="store_true", help="cProfile planning and the event loop (slower)")
    args = parser.parse_args()
    if not 1 <= args.days <= 60 or not 1 <= args.tick <= 24 * 60:
        parser.error("--days must be 1..60 and --tick 1..1440")
    started = time.perf_counter()
    start = datetime.fromisoformat(args.start).astimezone(UTC)
    step = timedelta(minutes=args.tick)
    ticks = [start + i * step for i in range(args.days * 24 * 60 // args.tick)]
    subs = make_subscribers(args.subscribers, args.seed)
    owed = sum(len(expected_digests(s, ticks[0], ticks[-1])) for s in subs)
    changes = sorted({z for z, _ in ZONES
                      if ticks[0].astimezone(ZoneInfo(z)).utcoffset() != ticks[-1].astimezone(ZoneInfo(z)).utcoffset()})
    print(f"{args.subscribers:,} subscribers in {len(ZONES)} zones, {len(SOURCES)} sources, {args.days} days from "
          f"{start:%Y-%m-%d %H:%M} UTC, a tick every {args.tick} min ({len(ticks)} ticks); {owed:,} digests owed; "
          f"zones changing their UTC offset in the window: {', '.join(changes) or 'none'}")
    ok = True
    for kind in args.db or ["sqlite", "postgresql"]:
        ok = run_one(kind, args, subs, ticks, start) and ok
    print(f"\n({time.perf_counter() - started:.0f} s)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
