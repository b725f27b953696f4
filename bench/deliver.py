"""A morning delivered: 10,000 subscribers' digests (20 papers each) through digestbot's own cycle to a relay that
waits 20 ms before each reply to MAIL, RCPT and DATA, beside smtplib opening one connection per message to the
same relay in the same run.

    python bench/deliver.py [--subscribers 10000] [--concurrency 8] [--db sqlite --db postgresql]
                            [--baseline 300] [--delay 0.02]

The relay (aiosmtpd) runs in a process of its own, as a real relay would, and writes down every message it
accepts (recipient and Message-ID): each digest is counted there, exactly once. digestbot's side is
`App.cycle`, the code `digestbot once` and the daemon run: one cycle meets the subscribers, the next (at their
07:00) plans every digest and delivers everything due, over `smtp.concurrency` connections. The baseline sends
the same rendered message `--baseline` times with `smtplib`, one connection per message (what a script that
loops over subscribers does), timed and scaled to the subscriber count. Peak memory is this process's
`ru_maxrss` (the relay's is its own). Each database starts empty: a fresh SQLite file, or a fresh PostgreSQL
schema (dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import secrets
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, make_url, text  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import Config, parse_config  # noqa: E402
from bot.models import Item  # noqa: E402
from bot.store import Store  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


# --- the relay, in its own process ------------------------------------------------------------------------------

def relay(port_file: Path, log_file: Path, delay: float) -> None:
    """`--relay`: accept mail on 127.0.0.1, waiting `delay` before answering MAIL, RCPT and DATA; one line per
    message accepted ("recipient<TAB>Message-ID") in `log_file`; until SIGTERM."""
    from aiosmtpd.smtp import SMTP

    out = log_file.open("a", buffering=1)

    class Slow:
        async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                              options: list[str]) -> str:
            await asyncio.sleep(delay)
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 OK"

        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                              options: list[str]) -> str:
            await asyncio.sleep(delay)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            await asyncio.sleep(delay)
            head = envelope.content.split(b"\r\n\r\n", 1)[0]
            found = _MESSAGE_ID.search(head)
            message_id = found[1].decode() if found else "?"
            for rcpt in envelope.rcpt_tos:
                out.write(f"{rcpt}\t{message_id}\n")
            return "250 Message accepted for delivery"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        handler = Slow()
        server = await loop.create_server(lambda: SMTP(handler, data_size_limit=None), "127.0.0.1", 0)
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        stopped = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopped.set)
        await stopped.wait()
        server.close()

    asyncio.run(serve())
    out.close()


@contextlib.contextmanager
def running_relay(tmp: Path, delay: float) -> Iterator[tuple[int, Path]]:
    port_file, log_file = tmp / "relay.port", tmp / "relay.log"
    process = subprocess.Popen([sys.executable, __file__, "--relay", str(port_file), str(log_file),
                                "--delay", str(delay)])
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        yield int(port_file.read_text()), log_file
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


# --- digestbot's side -----------------------------------------------------------------------------------------

def config(database: str, port: int, subscribers: int, concurrency: int, due: datetime) -> Config:
    return parse_config({
        "bot": {"database": database, "semantic": "off"},
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "sender": "Digest <digest@example.org>",
                 "concurrency": concurrency},
        "profiles": {"agents": {"keywords": ["agent"]}},
        "subscribers": [{"name": f"s{i:05d}", "email": f"s{i:05d}@example.org", "profiles": ["agents"],
                         "schedule": f"daily {due:%H:%M}", "timezone": "UTC", "max_items": 20}
                        for i in range(subscribers)],
    })


def papers(now: datetime) -> list[Item]:
    return [Item(id=f"arxiv:2612.{i:05d}", title=f"Tool-using agents, part {i}: planning and verification",
                 url=f"https://arxiv.org/abs/2612.{i:05d}", authors=("Ada Lovelace", "Alan Turing"),
                 abstract="We study language model agents that plan, call tools and check each other. " * 4,
                 published=now - timedelta(hours=6)) for i in range(20)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def morning(database: str, port: int, subscribers: int, concurrency: int) -> dict[str, float]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    due = now - timedelta(minutes=1)
    cfg = config(database, port, subscribers, concurrency, due)
    with Store.open(database) as store:
        store.save_items("bench", papers(now), seen_at=now - timedelta(hours=3))
        async with App(cfg, store=store) as app:
            await app.cycle(now=now - timedelta(hours=2))  # meets every subscriber before their 07:00
            started = time.perf_counter()
            report = await app.cycle(now=now)
            seconds = time.perf_counter() - started
    sent = sum(d.status == "sent" for d in report.delivered)
    return {"seconds": seconds, "planned": len(report.planned.planned), "sent": sent, "rss": rss_mb()}


def baseline(port: int, count: int) -> float:
    """Seconds for `count` messages, each over a connection of its own (smtplib)."""
    body = "A digest of 20 papers.\n" * 400  # the size of a rendered digest's text part, roughly
    started = time.perf_counter()
    for i in range(count):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "digest@example.org", f"b{i}@example.org", "digest"
        message["Message-ID"] = f"<baseline-{i}@example.org>"
        message.set_content(body)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(message)
    return time.perf_counter() - started


@contextlib.contextmanager
def empty_database(kind: str, tmp: Path, pg_url: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'deliver.sqlite3'}"
        return
    schema = f"bench_deliver_{secrets.token_hex(4)}"
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--relay":
        relay(Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--baseline", type=int, default=300, help="messages sent by the smtplib loop")
    parser.add_argument("--delay", type=float, default=0.02, help="the relay's wait before each reply (s)")
    parser.add_argument("--db", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--pg-url", default=os.environ.get("DIGESTBOT_TEST_DATABASE_URL", DEFAULT_PG))
    args = parser.parse_args()
    for kind in args.db or ["sqlite"]:
        with tempfile.TemporaryDirectory() as tmp, running_relay(Path(tmp), args.delay) as (port, log_file), \
                empty_database(kind, Path(tmp), args.pg_url) as database:
            figures = asyncio.run(morning(database, port, args.subscribers, args.concurrency))
            loop_seconds = baseline(port, args.baseline) * args.subscribers / args.baseline
            time.sleep(0.5)
            received = [line.split("\t") for line in log_file.read_text().splitlines()]
        digests = [(rcpt, mid) for rcpt, mid in received if not rcpt.startswith("b")]
        per_id = Counter(mid for _, mid in digests)
        once = len(per_id) == args.subscribers and set(per_id.values()) == {1}
        each = len({rcpt for rcpt, _ in digests}) == args.subscribers
        print(f"\n== {kind}: {args.subscribers:,} digests, smtp.concurrency = {args.concurrency}, relay waits "
              f"{1e3 * args.delay:.0f} ms before MAIL, RCPT and DATA ==")
        print(f"digestbot's cycle (plan + deliver): {figures['seconds']:.1f} s for {figures['planned']:,.0f} "
              f"planned, {figures['sent']:,.0f} sent ({figures['sent'] / figures['seconds']:.0f} digests/s); "
              f"target ≤ 120 s")
        print(f"smtplib, one connection per message: {args.baseline} sent, scaled to {args.subscribers:,}: "
              f"{loop_seconds:.0f} s; digestbot is {loop_seconds / figures['seconds']:.1f}× faster (target ≥ 10×)")
        print(f"counted at the relay: {len(digests):,} digests, {len(per_id):,} Message-IDs, every subscriber "
              f"{'once' if once and each else 'NOT exactly once'}; peak RSS {figures['rss']:.0f} MB (target ≤ 300)")


if __name__ == "__main__":
    main()
