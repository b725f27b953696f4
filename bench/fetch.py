"""One refresh cycle over 200 sources served locally, through the real pipeline, beside a naive sequential loop.

    python bench/fetch.py [--sources 200] [--hosts 10] [--deadline 8] [--tracemalloc]

The parent process serves real fixture bodies from `tests/data/fixtures/` on `--hosts` HTTP servers
(127.0.0.1, one port each, threaded) and runs each measured cycle in a fresh child process, so every
memory figure belongs to one cycle and the servers' work is not counted. About a tenth of the sources fail:
500 on every request, 429 with `Retry-After: 1` on every request, a 200 with a bot-check page instead of the
feed ("garbage"), and a slow drip (1 byte every 0.5 s, the server gives up after 12 s). A few more fail once
and then answer (500 once, 429 once), as real sites do.

The cycles, each on a fresh temporary SQLite store:

- `digestbot`: `Store.open`, `Fetcher` with the shipped politeness (1 s between requests to one host, 2 per host,
  3 retries with backoff from 1 s) and a total deadline of `--deadline` seconds per fetch (shipped: 60 s), then
  `refresh_sources(AsyncStore(store), fetcher, sources, now=...)`: fetch (following paging: the servers ignore paging
  parameters, so an arxiv_list / arxiv_api source costs one extra request, which repeats page 1 and ends
  paging), parse, diff, record health;
- `digestbot-nospacing`: the same with `min_host_interval=0`, to show what the spacing itself costs;
- `naive`: one `httpx.Client` GET after another, no concurrency, no retries, no spacing, no total deadline
  (per-read timeout 20 s, as the Fetcher's), then `parse_page` and `store.save_items` for each good answer.

Reported per cycle: wall time, sources ok / failed, items parsed, items stored (distinct ids; many sources
share a fixture body), requests the servers saw (in all, and at the busiest host: with 1 s spacing that many
seconds is the floor for the cycle), the smallest gap between two requests to one host, the longest
event-loop stall (how late a 5 ms sleep woke up: parsing and the store's synchronous writes run on the loop), peak RSS
of the cycle's process (`ru_maxrss`, and its growth over the RSS before the cycle), and with `--tracemalloc`
the traced Python allocation peak (tracemalloc slows the cycle, so wall times of that run are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bot.errors import ParseError  # noqa: E402
from bot.models import Page, Source  # noqa: E402
from bot.sources.fetch import Fetcher  # noqa: E402
from bot.sources.parse import parse_page  # noqa: E402
from bot.sources.refresh import refresh_sources  # noqa: E402
from bot.store import AsyncStore, Store  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "fixtures"
USER_AGENT = "digestbot-bench/1.0 (+mailto:bench@example.org)"
READ_TIMEOUT = 20.0
DRIP_INTERVAL = 0.5
DRIP_FOR = 12.0
GARBAGE = (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
           b"<body><p>Checking your browser before accessing the site.</p></body></html>")
MODES = ("digestbot", "digestbot-nospacing", "naive")
# (kind, fixture): every source serves one of these real bodies.
BODIES: tuple[tuple[str, str], ...] = (
    ("hf_papers", "hf_papers_daily_2024-08-01.html"),
    ("hf_api", "hf_api_daily_papers_2026-06-12.json"),
    ("hf_api", "hf_api_daily_papers_2026-07-31.json"),
    ("hf_api", "hf_api_daily_papers_2026-08-03.json"),
    ("arxiv_feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
    ("arxiv_feed", "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml"),
    ("arxiv_api", "arxiv_api_query_all-transformer_cat-cs.LG_2026-06-14.atom.xml"),
    ("arxiv_api", "arxiv_api_query_cat-cs.CL_max3_2026-09-24.atom.xml"),
    ("arxiv_api", "arxiv_api_query_id_list-1601.00001_2020-09-04_legacy-format.atom.xml"),
    ("arxiv_list", "arxiv_list_cs.CL_recent_2026-07-28.html"),
    ("feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
)
# How many sources misbehave, and how; the rest answer 200 with their fixture.
TROUBLE: dict[str, int] = {"500": 6, "429": 4, "garbage": 6, "drip": 2, "500-once": 2, "429-once": 2}
FAILING = frozenset({"500", "429", "garbage", "drip"})
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".xml": "application/xml"}


# --- the servers (parent process) --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Route:
    behaviour: str
    fixture: str


class BenchServer:
    """A threaded HTTP/1.0 server on 127.0.0.1 answering routes by behaviour; logs arrival times."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.arrivals: list[float] = []
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd = _BacklogServer(self)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()
            self.hits.clear()

    def arrive(self, path: str) -> int:
        """Log a request; the number of earlier requests to the same path."""
        with self.lock:
            self.arrivals.append(time.monotonic())
            seen = self.hits.get(path, 0)
            self.hits[path] = seen + 1
            return seen


class _BacklogServer(ThreadingHTTPServer):
    request_queue_size = 128

    def __init__(self, bench: BenchServer) -> None:
        self.bench = bench
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _BacklogServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path  # a paging query (`?start=`, `?skip=`) gets the same body
        seen = self.server.bench.arrive(path)
        route = self.server.bench.routes.get(path)
        with contextlib.suppress(ConnectionError, OSError):  # a client that gave up (deadline)
            if route is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._answer(route, seen)

    def _answer(self, route: Route, seen: int) -> None:
        behaviour = route.behaviour
        if behaviour == "500" or (behaviour == "500-once" and seen == 0):
            self._send(500, b"internal error", "text/plain")
        elif behaviour == "429" or (behaviour == "429-once" and seen == 0):
            self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
        elif behaviour == "garbage":
            self._send(200, GARBAGE, "text/html; charset=utf-8")
        else:
            body = (FIXTURES / route.fixture).read_bytes()
            kind = CONTENT_TYPES.get(Path(route.fixture).suffix, "application/octet-stream")
            if behaviour == "drip":
                self._drip(body, kind)
            else:
                self._send(200, body, kind)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._head(status, len(body), content_type, headers)
        self.wfile.write(body)

    def _head(self, status: int, length: int, content_type: str, headers: dict[str, str] | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()

    def _drip(self, body: bytes, content_type: str) -> None:
        """Headers at once, then one byte every DRIP_INTERVAL, hanging up after DRIP_FOR seconds."""
        self._head(200, len(body), content_type, None)
        self.wfile.flush()
        end = time.monotonic() + DRIP_FOR
        for byte in body:
            if self.server.bench.stopping.is_set() or time.monotonic() >= end:
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(DRIP_INTERVAL)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's signature)
        return


def plan_sources(servers: Sequence[BenchServer], count: int) -> list[dict[str, str]]:
    """`count` sources, source i on host i mod hosts, serving fixture i mod len(BODIES); TROUBLE spread at random."""
    trouble = [b for b, n in TROUBLE.items() for _ in range(n)]
    chosen = random.Random(2026).sample(range(count), min(len(trouble), count))
    behaviours = dict(zip(chosen, trouble, strict=False))
    plan = []
    for i in range(count):
        server = servers[i % len(servers)]
        kind, fixture = BODIES[i % len(BODIES)]
        path = f"/s/{i:03d}/{fixture}"
        server.routes[path] = Route(behaviours.get(i, "ok"), fixture)
        plan.append({"name": f"src-{i:03d}", "kind": kind, "url": server.base_url + path,
                     "behaviour": behaviours.get(i, "ok")})
    return plan


def min_host_gap(servers: Sequence[BenchServer]) -> float:
    gaps = [b - a for s in servers for a, b in zip(sorted(s.arrivals), sorted(s.arrivals)[1:], strict=False)]
    return min(gaps) if gaps else float("nan")


# --- one measured cycle (child process) -------------------------------------------------------------------------

@dataclass(slots=True)
class CycleResult:
    mode: str
    wall_s: float
    ok: int
    failed: int
    parsed: int
    stored: int
    rss_before_mb: float
    rss_peak_mb: float
    traced_peak_mb: float | None = None
    loop_stall_ms: float | None = None
    requests: int = 0
    busiest_host: int = 0
    min_gap_s: float = 0.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


async def _digestbot_cycle(store: Store, sources: list[Source], spacing: float, deadline: float) -> tuple[float, ...]:
    """(ok, failed, items parsed, longest event-loop stall in ms) for one `refresh_sources` cycle."""
    stalls: list[float] = [0.0]
    watcher = asyncio.create_task(_watch_loop(stalls))
    async with Fetcher(USER_AGENT, deadline=deadline, min_host_interval=spacing) as fetcher:
        results = await refresh_sources(AsyncStore(store), fetcher, sources, now=datetime.now(UTC))
    watcher.cancel()
    ok = sum(1 for r in results if r.status == "ok")
    return ok, sum(1 for r in results if r.status == "failed"), sum(r.fetched for r in results), stalls[0] * 1e3


async def _watch_loop(longest: list[float], tick: float = 0.005) -> None:
    """Record how late a short sleep wakes up: the longest time the loop was busy with one callback."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(tick)
        longest[0] = max(longest[0], loop.time() - before - tick)


def _naive_cycle(store: Store, sources: list[Source]) -> tuple[int, ...]:
    ok = failed = parsed = 0
    with httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=READ_TIMEOUT) as client:
        for source in sources:
            try:
                response = client.get(source.url)
                response.raise_for_status()
                page = Page(url=str(response.url), body=response.content, fetched_at=datetime.now(UTC))
                items = parse_page(source.kind, page, source)
            except (httpx.HTTPError, ParseError):
                failed += 1
                continue
            store.save_items(source.name, items, seen_at=datetime.now(UTC))
            ok += 1
            parsed += len(items)
    return ok, failed, parsed


def run_cycle(mode: str, plan: list[dict[str, str]], deadline: float, traced: bool) -> CycleResult:
    sources = [Source(name=p["name"], kind=p["kind"], url=p["url"]) for p in plan]
    with tempfile.TemporaryDirectory(prefix="digestbot-bench-") as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        rss_before = _rss_mb()
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        stall: float | None = None
        if mode == "naive":
            ok, failed, parsed = _naive_cycle(store, sources)
        else:
            spacing = 0.0 if mode == "digestbot-nospacing" else 1.0
            counts = asyncio.run(_digestbot_cycle(store, sources, spacing, deadline))
            ok, failed, parsed, stall = int(counts[0]), int(counts[1]), int(counts[2]), counts[3]
        wall = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
        tracemalloc.stop()
        stored = store.item_count()
        store.close()
    return CycleResult(mode, wall, ok, failed, parsed, stored, rss_before, _rss_mb(), traced_peak, stall)


# --- the parent: serve, run each cycle in a child, print --------------------------------------------------------

def run_child(mode: str, plan_path: Path, deadline: float, traced: bool) -> CycleResult:
    command = [sys.executable, __file__, "--child", mode, "--plan", str(plan_path), "--deadline", str(deadline)]
    if traced:
        command.append("--tracemalloc")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} cycle failed:\n{done.stderr}")
    return CycleResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def print_results(results: Sequence[CycleResult], plan: Sequence[dict[str, str]], hosts: int) -> None:
    expected_failing = sum(1 for p in plan if p["behaviour"] in FAILING)
    print(f"{len(plan)} sources on {hosts} hosts (127.0.0.1); {expected_failing} set to fail "
          f"({', '.join(f'{n} {b}' for b, n in TROUBLE.items() if b in FAILING)}), "
          f"{sum(n for b, n in TROUBLE.items() if b not in FAILING)} to fail once then answer\n")
    header = (f"{'mode':<20} {'wall s':>7} {'ok':>4} {'failed':>6} {'parsed':>7} {'stored':>6} {'requests':>8} "
              f"{'max/host':>8} {'min gap s':>9} {'stall ms':>8} {'RSS before MB':>13} {'RSS peak MB':>11} "
              f"{'traced peak MB':>14}")
    print(header)
    print("-" * len(header))
    for r in results:
        traced = f"{r.traced_peak_mb:.1f}" if r.traced_peak_mb is not None else "-"
        stall = f"{r.loop_stall_ms:.0f}" if r.loop_stall_ms is not None else "-"
        print(f"{r.mode:<20} {r.wall_s:>7.1f} {r.ok:>4} {r.failed:>6} {r.parsed:>7} {r.stored:>6} {r.requests:>8} "
              f"{r.busiest_host:>8} {r.min_gap_s:>9.3f} {stall:>8} {r.rss_before_mb:>13.1f} {r.rss_peak_mb:>11.1f} "
              f"{traced:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=8.0, help="total deadline per fetch, seconds")
    parser.add_argument("--mode", action="append", choices=MODES, help="only these cycles (repeatable)")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        plan = json.loads(args.plan.read_text(encoding="utf-8"))
        print(json.dumps(asdict(run_cycle(args.child, plan, args.deadline, args.tracemalloc))))
        return
    started = time.perf_counter()
    servers = [BenchServer() for _ in range(args.hosts)]
    for server in servers:
        server.start()
    try:
        plan = plan_sources(servers, args.sources)
        results = []
        with tempfile.TemporaryDirectory(prefix="digestbot-bench-plan-") as tmp:
            plan_path = Path(tmp) / "plan.json"
            plan_path.write_text(json.dumps(plan), encoding="utf-8")
            for mode in args.mode or MODES:
                for server in servers:
                    server.reset()
                result = run_child(mode, plan_path, args.deadline, args.tracemalloc)
                result.requests = sum(len(s.arrivals) for s in servers)
                result.busiest_host = max(len(s.arrivals) for s in servers)
                result.min_gap_s = min_host_gap(servers)
                results.append(result)
    finally:
        for server in servers:
            server.stop()
    print_results(results, plan, args.hosts)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
