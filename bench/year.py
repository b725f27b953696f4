"""A simulated year (or any number of days) with retention: daily digests for 1,000 subscribers, every digest
exactly once across the prune boundary, and a database whose size stops growing once the retention window is
full.

    python bench/year.py [--days 120] [--retention 30d] [--subscribers 1000] [--papers 100] [--db sqlite ...]

Each simulated day, `--papers` new papers arrive (saved as a refresh saves them, first seen at 06:00 UTC) and
`App.cycle` runs at 07:05 UTC as the daemon's leader would: it plans each subscriber's digest (daily 07:00 UTC,
the day's papers, `max_items` 5 to keep the run short), delivers them to an in-process SMTP sink that counts
(recipient, Message-ID), and, once a day, runs the retention pass. The sources are left out (the week bench
covers them): what this measures is what a year of history does to the store. Recorded per day: the cycle's
time, the live database size (SQLite's pages in use; PostgreSQL's tables with indexes) and the rows kept. At the
end: every subscriber got exactly one digest per day from day 1, none twice, and the size at the last day against
the size at the middle one. `--svg FILE` draws size over days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from week import DEFAULT_PG, CountingSink, database, running_sink  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import Config, parse_config  # noqa: E402
from bot.models import Item  # noqa: E402
from bot.store import Store  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = ("agents", "tool use", "planning", "verification", "memory", "web browsing", "reasoning", "benchmarks")


def config(database_url: str, port: int, subscribers: int, retention: str) -> Config:
    return parse_config({
        "bot": {"database": database_url, "semantic": "off", "retention": retention},
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "sender": "digest@example.org",
                 "concurrency": 4},
        "profiles": {"agents": {"keywords": ["agents"]}},
        "subscribers": [{"name": f"s{i:04d}", "email": f"s{i:04d}@example.org", "profiles": ["agents"],
                         "schedule": "daily 07:00", "timezone": "UTC", "max_items": 5, "send_empty": True}
                        for i in range(subscribers)],
    })


def papers(day: int, count: int) -> list[Item]:
    return [Item(id=f"arxiv:{2600 + day // 28:04d}.{day % 28:02d}{i:03d}",
                 title=f"Language model agents for {WORDS[i % len(WORDS)]}, day {day} paper {i}",
                 url=f"https://arxiv.org/abs/{day}.{i}", authors=("Ada Lovelace", "Alan Turing"),
                 abstract=f"We study agents and {WORDS[(i + day) % len(WORDS)]}. " * 12) for i in range(count)]


async def run(kind: str, args: argparse.Namespace, sink: CountingSink, url: str) -> list[dict[str, float]]:
    days: list[dict[str, float]] = []
    cfg = config(url, sink.port, args.subscribers, args.retention)
    with Store.open(url) as store:
        async with App(cfg, store=store) as app:
            for day in range(args.days):
                morning = START + timedelta(days=day)
                store.save_items("feed", papers(day, args.papers), seen_at=morning + timedelta(hours=6))
                before = len(sink.received)
                started = time.perf_counter()
                report = await app.cycle(now=morning + timedelta(hours=7, minutes=5))
                seconds = time.perf_counter() - started
                footprint = store.footprint()
                days.append({"day": day, "seconds": seconds, "bytes": float(footprint.bytes or 0),
                             "items": footprint.items, "rows": footprint.deliveries,
                             "sent": len(sink.received) - before,
                             "pruned": float(report.pruned.items + report.pruned.deliveries)
                             if report.pruned else 0.0})
                if day % 10 == 0 or day == args.days - 1:
                    print(f"  {kind} day {day:3d}: {seconds:5.1f} s, {days[-1]['sent']:.0f} sent, "
                          f"{footprint.bytes / 2**20:6.1f} MB, {footprint.items} papers, "
                          f"{footprint.deliveries} outbox rows", flush=True)
    received = list(sink.received)
    per_pair = Counter(received)
    per_recipient = Counter(rcpt for rcpt, _ in received)
    expected = args.days - 1  # day 0 meets everyone; a digest every day after
    once = all(n == 1 for n in per_pair.values())
    everyone = all(per_recipient[f"s{i:04d}@example.org"] == expected for i in range(args.subscribers))
    middle, last = days[len(days) // 2], days[-1]
    growth = (last["bytes"] - middle["bytes"]) / middle["bytes"]
    late = [d["seconds"] for d in days[len(days) // 2:]]
    print(f"\n== {kind}: {args.days} days, {args.subscribers:,} subscribers, retention {args.retention} ==")
    print(f"digests: {len(received):,} received, {len(per_pair):,} distinct; every subscriber "
          f"{'exactly once a day' if once and everyone else 'NOT exactly once a day'} ({expected} each)")
    print(f"live size: day {middle['day']:.0f} {middle['bytes'] / 2**20:.1f} MB, day {last['day']:.0f} "
          f"{last['bytes'] / 2**20:.1f} MB ({growth:+.1%}; target within ±15 %); papers {last['items']:.0f}, "
          f"outbox rows {last['rows']:.0f}")
    print(f"cycle time, second half: median {sorted(late)[len(late) // 2]:.1f} s, max {max(late):.1f} s; first "
          f"day {days[1]['seconds']:.1f} s")
    return days


def svg(series: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Live size over days, one line per database: a small dependency-free plot for BENCHMARKS.md."""
    width, height, pad = 560, 220, 40
    top = max(d["bytes"] for days in series.values() for d in days) / 2**20 * 1.1 or 1
    count = max(len(days) for days in series.values())
    colours = {"sqlite": "#0b57d0", "postgresql": "#b3261e"}
    lines = []
    for kind, days in series.items():
        points = " ".join(f"{pad + (width - 2 * pad) * d['day'] / max(count - 1, 1):.1f},"
                          f"{height - pad - (height - 2 * pad) * d['bytes'] / 2**20 / top:.1f}" for d in days)
        lines.append(f'<polyline fill="none" stroke="{colours.get(kind, "#333")}" stroke-width="2" '
                     f'points="{points}"/>')
    legend = "".join(f'<text x="{pad + 10 + 120 * i}" y="18" fill="{colours.get(k, "#333")}" font-size="12">'
                     f'{k}</text>' for i, k in enumerate(series))
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">'
        f'<rect width="100%" height="100%" fill="#fff"/>{legend}'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
        f'<text x="{width / 2}" y="{height - 8}" font-size="12" text-anchor="middle">day</text>'
        f'<text x="{pad - 4}" y="{pad}" font-size="11" text-anchor="end">{top:.0f} MB</text>'
        f'<text x="{pad - 4}" y="{height - pad}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{width - pad}" y="{height - pad + 14}" font-size="11" text-anchor="end">{count - 1}</text>'
        + "".join(lines) + "</svg>\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--retention", default="30d")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--papers", type=int, default=100, help="new papers a day")
    parser.add_argument("--db", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--pg-url", default=os.environ.get("DIGESTBOT_TEST_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--svg", type=Path, help="write a plot of live size over days here")
    parser.add_argument("--json", type=Path, help="write the per-day figures here (one object per database)")
    parser.add_argument("--plot-from", type=Path, nargs="+", metavar="JSON",
                        help="only draw --svg from the --json files of earlier runs")
    args = parser.parse_args()
    series: dict[str, list[dict[str, float]]] = {}
    if args.plot_from:
        for path in args.plot_from:
            series.update(json.loads(path.read_text()))
        svg(series, args.svg)
        return
    for kind in args.db or ["sqlite"]:
        with tempfile.TemporaryDirectory() as tmp, running_sink(Path(tmp) / "mail") as sink, \
                database(kind, Path(tmp), args.pg_url) as url:
            series[kind] = asyncio.run(run(kind, args, sink, url))
    if args.json:
        args.json.write_text(json.dumps(series))
    if args.svg:
        svg(series, args.svg)


if __name__ == "__main__":
    main()
