"""Fetcher behaviour against a real HTTP server on 127.0.0.1 (tests/localhttp.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import random
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.errors import FetchError
from bot.models import Page, Source
from bot.sources.fetch import MAX_RETRY_AFTER, Fetcher, _retry_after, backoff_delay, is_internal_host
from tests.support.clock import FakeClock
from tests.support.localhttp import LocalHTTPServer, Reply

FIXTURES = Path(__file__).parent / "data" / "fixtures"
HF_PAGE = "hf_papers_daily_2024-08-01.html"
UA = "digestbot-test/1.0 (+mailto:test@example.org)"


def src(url: str) -> Source:
    return Source(name="t", kind="feed", url=url)


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(directory=FIXTURES) as running:
        yield running


def make_fetcher(**overrides: Any) -> Fetcher:
    """A fetcher whose waits (spacing, backoff, Retry-After) go to a `FakeClock` unless a test gives a clock:
    they are checked as numbers, not by waiting. Network timeouts and the deadline stay real."""
    settings: dict[str, Any] = {"timeout": 5.0, "deadline": 5.0, "max_retries": 3, "backoff_base": 0.01,
                                "min_host_interval": 0.0, "clock": FakeClock()}
    settings.update(overrides)
    return Fetcher(UA, **settings)


def clock_of(fetcher: Fetcher) -> FakeClock:
    assert isinstance(fetcher.clock, FakeClock)
    return fetcher.clock


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with make_fetcher() as running:
        yield running


async def test_200_with_etag_then_304_is_none(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    page = await fetcher.fetch(src(server.url("/" + HF_PAGE)))
    assert page is not None
    assert page.body == (FIXTURES / HF_PAGE).read_bytes()
    assert page.status == 200 and page.etag and page.last_modified
    assert page.content_type.startswith("text/html")
    assert page.fetched_at.tzinfo is not None

    again = await fetcher.fetch(src(server.url("/" + HF_PAGE)), etag=page.etag, last_modified=page.last_modified)
    assert again is None
    sent = server.requests_for("/" + HF_PAGE)
    assert sent[1].headers["if-none-match"] == page.etag
    assert sent[1].headers["if-modified-since"] == page.last_modified
    assert all(r.headers["user-agent"] == UA for r in sent)


async def test_last_modified_alone_gives_304(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    page = await fetcher.fetch(src(server.url("/" + HF_PAGE)))
    assert page is not None
    assert await fetcher.fetch(src(server.url("/" + HF_PAGE)), last_modified=page.last_modified) is None


async def test_5xx_retried_then_success(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/flaky", Reply(500), Reply(503), Reply(200, b"finally"))
    page = await fetcher.fetch(src(server.url("/flaky")))
    assert page is not None and page.body == b"finally"
    assert len(server.requests_for("/flaky")) == 3


async def test_5xx_every_time_fails_after_retries(server: LocalHTTPServer) -> None:
    server.route("/down", Reply(502))
    async with make_fetcher(max_retries=2) as fetcher:
        with pytest.raises(FetchError, match=r"/down: HTTP 502 after 3 attempts") as caught:
            await fetcher.fetch(src(server.url("/down")))
    assert caught.value.status == 502 and caught.value.hint
    assert len(server.requests_for("/down")) == 3


async def test_429_retry_after_seconds_is_honoured(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/limited", Reply(429, headers={"Retry-After": "1"}), Reply(200, b"ok"))
    page = await fetcher.fetch(src(server.url("/limited")))
    assert page is not None and page.body == b"ok"
    assert len(server.requests_for("/limited")) == 2
    assert clock_of(fetcher).sleeps == [1.0]  # the wait the site asked for, before the second request
    host = server.base_url.removeprefix("http://")
    assert host in fetcher.host_not_before


async def test_retry_after_beyond_deadline_fails_at_once(server: LocalHTTPServer) -> None:
    server.route("/slowdown", Reply(429, headers={"Retry-After": "120"}))
    async with make_fetcher(deadline=3.0) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(src(server.url("/slowdown")))
        assert time.monotonic() - started < 1.0
        assert caught.value.retry_after is not None and caught.value.retry_after > 100
        assert "/slowdown" in str(caught.value)
        # The host's "not before" time is kept: the next fetch to that host sends nothing.
        host = server.base_url.removeprefix("http://")
        assert fetcher.host_not_before[host] > datetime.now(UTC) + timedelta(seconds=100)
        with pytest.raises(FetchError) as again:
            await fetcher.fetch(src(server.url("/" + HF_PAGE)))
        assert again.value.retry_after is not None and again.value.retry_after > 100
        assert again.value.held and not caught.value.held  # the second sent nothing: a hold, not an answer
        assert again.value.retry_at == fetcher.host_not_before[host]
    assert len(server.requests) == 1


async def test_retry_after_http_date(server: LocalHTTPServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    server.route("/maintenance", Reply(503, headers={"Retry-After": when}))
    async with make_fetcher(deadline=3.0) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(src(server.url("/maintenance")))
    assert caught.value.retry_after is not None and 3500 < caught.value.retry_after <= 3600
    assert caught.value.retry_at == parsedate_to_datetime(when)  # the date itself, not "now + seconds"


async def test_404_is_not_retried(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="HTTP 404") as caught:
        await fetcher.fetch(src(server.url("/missing.xml")))
    assert caught.value.status == 404
    assert server.url("/missing.xml") in str(caught.value)
    assert "[[sources]]" in caught.value.hint
    assert len(server.requests_for("/missing.xml")) == 1


async def test_gzip_body_is_decoded(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/zipped", Reply(200, gzip.compress(b"<rss/>" * 1000), {"Content-Encoding": "gzip"}))
    page = await fetcher.fetch(src(server.url("/zipped")))
    assert page is not None and page.body == b"<rss/>" * 1000


async def test_gzip_bomb_stops_at_the_cap(server: LocalHTTPServer) -> None:
    bomb = gzip.compress(b"\0" * 30_000_000, compresslevel=6)
    assert len(bomb) < 100_000
    server.route("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    async with make_fetcher(max_bytes=1_000_000) as fetcher:
        with pytest.raises(FetchError, match="larger than 1000000 bytes"):
            await fetcher.fetch(src(server.url("/bomb")))
    assert len(server.requests_for("/bomb")) == 1  # too large is not retried


async def test_declared_length_over_cap(server: LocalHTTPServer) -> None:
    server.route("/huge", Reply(200, b"x" * 5000))
    async with make_fetcher(max_bytes=1000) as fetcher:
        with pytest.raises(FetchError, match="larger than 1000 bytes"):
            await fetcher.fetch(src(server.url("/huge")))


async def test_redirects_followed(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/a", Reply(301, headers={"Location": "/b"}))
    server.route("/b", Reply(302, headers={"Location": server.url("/" + HF_PAGE)}))
    page = await fetcher.fetch(src(server.url("/a")))
    assert page is not None and page.url == server.url("/" + HF_PAGE)


async def test_redirect_loop_is_an_error(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/loop", Reply(302, headers={"Location": "/loop"}))
    with pytest.raises(FetchError, match="more than 5 redirects"):
        await fetcher.fetch(src(server.url("/loop")))
    assert len(server.requests_for("/loop")) == 6


async def test_redirect_to_non_http_scheme_refused(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/sneaky", Reply(302, headers={"Location": "file:///etc/passwd"}))
    with pytest.raises(FetchError, match="non-HTTP"):
        await fetcher.fetch(src(server.url("/sneaky")))


async def test_a_public_source_cannot_redirect_to_an_internal_address(server: LocalHTTPServer) -> None:
    """The source at 127.0.0.1 plays a public site (the one seam: how its address is classified); it answers 302
    to a port on another loopback address, where a listener counts connections: none may arrive."""
    with socket.socket() as internal:
        internal.bind(("127.0.0.2", 0))
        internal.listen()
        internal.setblocking(False)
        server.route("/moved", Reply(302, headers={"Location": f"http://127.0.0.2:{internal.getsockname()[1]}/"}))
        async with make_fetcher() as fetcher:
            real = fetcher.is_internal

            async def origin_is_public(host: str) -> bool:
                return False if host == "127.0.0.1" else await real(host)

            fetcher.is_internal = origin_is_public
            with pytest.raises(FetchError, match=r"redirect to an internal address \(127\.0\.0\.2\) refused"):
                await fetcher.fetch(src(server.url("/moved")))
        with pytest.raises(BlockingIOError):
            internal.accept()  # nobody knocked


@pytest.mark.parametrize(("host", "internal"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.10", True), ("169.254.169.254", True), ("::1", True),
    ("[fe80::1]", True), ("localhost", True), ("8.8.8.8", False), ("2606:4700::1111", False),
])
async def test_internal_addresses_are_recognised(host: str, internal: bool) -> None:
    assert await is_internal_host(host) is internal


async def test_deadline_bounds_a_slow_answer(server: LocalHTTPServer) -> None:
    server.route("/slow", Reply(200, b"late", delay=3.0))
    async with make_fetcher(deadline=0.5) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match="deadline"):
            await fetcher.fetch(src(server.url("/slow")))
    assert time.monotonic() - started < 1.5


async def test_connect_error_retried_then_reported() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_fetcher(max_retries=2) as fetcher:
        with pytest.raises(FetchError, match="after 3 attempts") as caught:
            await fetcher.fetch(src(f"http://127.0.0.1:{port}/feed.xml"))
    assert f"127.0.0.1:{port}" in str(caught.value) and caught.value.hint


async def test_requests_to_one_host_are_spaced(server: LocalHTTPServer) -> None:
    server.route("/one", Reply(200, b"1"))
    server.route("/two", Reply(200, b"2"))
    async with make_fetcher(min_host_interval=0.3) as fetcher:
        await asyncio.gather(fetcher.fetch(src(server.url("/one"))), fetcher.fetch(src(server.url("/two"))))
    assert len(server.requests) == 2
    assert clock_of(fetcher).sleeps == [0.3]  # the second request waited its turn


async def test_local_path_and_file_url_are_read(fetcher: Fetcher) -> None:
    path = FIXTURES / "hf_api_daily_papers_2026-07-31.json"
    page = await fetcher.fetch(src(str(path)))
    assert page is not None and page.body == path.read_bytes() and page.url == str(path)
    assert page.fetched_at.tzinfo is not None
    by_url = await fetcher.fetch(src(path.as_uri()))
    assert by_url is not None and by_url.body == page.body
    assert await fetcher.fetch(src(str(path)), last_modified=page.last_modified) is None


async def test_missing_file_and_bad_scheme(fetcher: Fetcher, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="cannot read the file"):
        await fetcher.fetch(src(str(tmp_path / "nope.xml")))
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        await fetcher.fetch(src("ftp://example.org/feed.xml"))
    with pytest.raises(FetchError, match=r"not a valid URL \(Invalid IPv6 URL\)"):
        await fetcher.fetch(src("http://[::1/feed.xml"))


def test_backoff_doubles_per_attempt_with_jitter_and_a_one_minute_ceiling() -> None:
    assert [backoff_delay(n, 1.0, 1.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(2, 0.5, 0.5) == 1.0 and backoff_delay(2, 0.5, 1.4) == pytest.approx(2.8)
    assert backoff_delay(20, 1.0, 1.0) == 60.0


async def test_retries_wait_longer_each_time_with_jitter(server: LocalHTTPServer) -> None:
    """The gaps between attempts follow `backoff_delay` with the fetcher's own random draws: doubled per attempt,
    and jittered (a seed whose draws are far from 1, so an unjittered schedule would fall outside the bounds)."""
    server.route("/wobbly", Reply(500), Reply(503), Reply(502), Reply(200, b"up"))
    seed = next(s for s in range(1000) if _far_from_one(random.Random(s), 3))
    draws = random.Random(seed)
    expected = [backoff_delay(n, 0.25, draws.uniform(0.5, 1.5)) for n in range(3)]
    async with make_fetcher(backoff_base=0.25, rng=random.Random(seed)) as fetcher:
        page = await fetcher.fetch(src(server.url("/wobbly")))
        assert page is not None and page.body == b"up"
        assert len(server.requests_for("/wobbly")) == 4
        assert clock_of(fetcher).sleeps == [round(want, 6) for want in expected]


def _far_from_one(rng: random.Random, count: int) -> bool:
    return all(abs(rng.uniform(0.5, 1.5) - 1.0) > 0.35 for _ in range(count))


async def test_concurrent_fetches_to_one_host_are_limited_per_host(server: LocalHTTPServer) -> None:
    for n in range(6):
        server.route(f"/busy{n}", Reply(200, b"ok", delay=0.1))
    async with make_fetcher(per_host_concurrency=2) as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(src(server.url(f"/busy{n}"))) for n in range(6)))
    assert all(page is not None for page in pages)
    assert server.max_in_flight == 2  # never more than 2, and the 2 were used


async def test_another_host_is_not_held_up_by_a_busy_one(server: LocalHTTPServer) -> None:
    server.route("/stuck", Reply(200, b"late", delay=1.0))
    with LocalHTTPServer() as other:
        other.route("/quick", Reply(200, b"quick"))
        async with make_fetcher(per_host_concurrency=1) as fetcher:
            stuck = asyncio.ensure_future(fetcher.fetch(src(server.url("/stuck"))))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            quick = await fetcher.fetch(src(other.url("/quick")))
            assert time.monotonic() - started < 0.5
            assert quick is not None and quick.body == b"quick"
            assert not stuck.done()
            assert (await stuck) is not None


async def test_read_timeout_fails_an_attempt_long_before_the_deadline(server: LocalHTTPServer) -> None:
    server.route("/mute", Reply(200, b"never in time", delay=3.0))
    async with make_fetcher(timeout=0.3, deadline=10.0, max_retries=1) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"timed out after 2 attempts"):
            await fetcher.fetch(src(server.url("/mute")))
    assert time.monotonic() - started < 2.0
    assert len(server.requests_for("/mute")) == 2


async def test_a_connection_closed_without_an_answer_is_retried(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/hangup", Reply(hang_up=True), Reply(200, b"second time lucky"))
    page = await fetcher.fetch(src(server.url("/hangup")))
    assert page is not None and page.body == b"second time lucky"
    assert len(server.requests_for("/hangup")) == 2


async def test_a_gzip_bomb_is_never_inflated_past_the_cap(server: LocalHTTPServer) -> None:
    """Memory, not just the outcome: inflating these 64 MB whole would allocate them; capped, a little over 1 MB."""
    bomb = gzip.compress(b"\0" * 64_000_000, compresslevel=9)
    server.route("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    async with make_fetcher(max_bytes=1_000_000) as fetcher:
        tracemalloc.start()
        try:
            with pytest.raises(FetchError, match="larger than 1000000 bytes"):
                await fetcher.fetch(src(server.url("/bomb")))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16_000_000


async def test_retry_after_takes_the_place_of_the_backoff(server: LocalHTTPServer) -> None:
    server.route("/limited", Reply(429, headers={"Retry-After": "1"}), Reply(200, b"ok"))
    async with make_fetcher(backoff_base=5.0) as fetcher:  # a backoff on top would wait 2.5 s or more
        page = await fetcher.fetch(src(server.url("/limited")))
    assert page is not None and len(server.requests_for("/limited")) == 2
    assert clock_of(fetcher).sleeps == [1.0]


async def test_connect_timeout_fails_an_attempt_long_before_the_deadline() -> None:
    """A host that never completes the TCP handshake: a listener whose accept queue is full drops new SYNs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            await asyncio.sleep(0.1)
            async with make_fetcher(timeout=0.5, deadline=10.0, max_retries=0) as fetcher:
                started = time.monotonic()
                with pytest.raises(FetchError, match="connect timed out"):
                    await fetcher.fetch(src(f"http://127.0.0.1:{port}/feed.xml"))
            assert time.monotonic() - started < 3.0
        finally:
            for filler in fillers:
                filler.close()


async def test_a_turn_past_the_deadline_from_our_own_spacing_is_not_a_retry_after(server: LocalHTTPServer) -> None:
    """Only the site's Retry-After may put a hold on a source; a queue of our own making fails this try alone."""
    server.route("/one", Reply(200, b"1"))
    server.route("/two", Reply(200, b"2"))
    async with make_fetcher(min_host_interval=3.0, deadline=1.0) as fetcher:
        first, second = await asyncio.gather(fetcher.fetch(src(server.url("/one"))),
                                             fetcher.fetch(src(server.url("/two"))), return_exceptions=True)
    assert isinstance(first, Page) and isinstance(second, FetchError)
    assert "queued ahead of this one" in str(second) and "asked us" not in str(second)
    assert second.retry_after is None and second.status is None
    assert fetcher.host_not_before == {}
    assert len(server.requests) == 1


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), ("0", 0.0), (str(MAX_RETRY_AFTER + 1), MAX_RETRY_AFTER), ("9" * 20, MAX_RETRY_AFTER),
    ("9" * 5000, MAX_RETRY_AFTER),  # longer than `int()` reads
    ("-5", None), ("1e9", None), ("soon", None), ("", None), (b"\xb2", None),  # a superscript 2 is no HTTP digit
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER), ("Fri, 31 Dec 9999 23:59:59 -2359", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # already past: ask again now
])
def test_retry_after_is_read_within_a_week_and_never_raises(value: str | bytes, seconds: float | None) -> None:
    """A "wait 30 years" (or a date in 9999) must not silence a source for good, nor crash the fetch."""
    raw = value if isinstance(value, bytes) else value.encode()
    waited, at = _retry_after(httpx.Headers({b"Retry-After": raw}))
    if seconds is None:
        assert (waited, at) == (None, None)
    else:
        assert waited is not None and abs(waited - seconds) < 5
        assert at is None if raw.isdigit() else at is not None
