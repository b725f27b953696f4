"""A server answering malformed HTTP: every fetch gives a page, "not modified", or a `FetchError`, and nothing else.

The answers come from a raw local TCP server (not an HTTP library, which would refuse to write most of them): odd
status codes, broken and contradictory headers (Retry-After in every wrong form, unknown encodings, lying lengths,
bad redirects, bytes that are not text) and bodies that do not match them. Each request's path seeds its answer,
so a failure names the seed that reproduces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import random
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.errors import FetchError
from bot.models import Source
from bot.sources.fetch import Fetcher
from tests.support.fuzz import fuzz_case

BODY = (Path(__file__).parent / "data" / "fixtures" / "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml").read_bytes()
STATUSES = [200, 200, 200, 204, 206, 301, 302, 303, 304, 307, 308, 400, 403, 404, 410, 418, 429, 500, 502, 503, 999]
HEADERS = [
    b"Retry-After: -5", b"Retry-After: 99999999999999999999", b"Retry-After: Wed, 21 Oct 2015 07:28:00 GMT",
    b"Retry-After: soon", b"Retry-After: 1e9", b"Retry-After: Fri, 31 Dec 9999 23:59:59 -2359", b"Retry-After: \xb2",
    b"Retry-After: 0", b"Content-Encoding: gzip", b"Content-Encoding: br", b"Content-Encoding: bogus",
    b"Content-Encoding: deflate", b"Content-Length: 5", b"Content-Length: 999999", b"Content-Length: -1",
    b"Content-Length: abc", b"Transfer-Encoding: chunked", b"Location: /elsewhere", b"Location: http://[::1",
    b"Location: ftp://example.org/x", b"Location: ", b"ETag: \xff\xfe", b"Content-Type: text/html; charset=bogus",
    b"Last-Modified: Fri, 31 Dec 9999 23:59:59 -2359", b"X-\xff: y", b"Bad Header Line",
]
BODIES = [BODY, b"", gzip.compress(BODY), BODY[:100], b"\xff" * 50, zlib.compress(BODY), b"5\r\nhello\r\n0\r\n\r\n",
          b"zz\r\nbad\r\n"]


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await reader.readuntil(b"\r\n\r\n")
        rng = random.Random(request.split(b" ", 2)[1])  # the path: one seeded answer per request
        headers = rng.sample(HEADERS, rng.randint(0, 4))
        body = rng.choice(BODIES)
        head = b"HTTP/1.1 %d Whatever\r\n" % rng.choice(STATUSES) + b"".join(h + b"\r\n" for h in headers)
        if not any(h.lower().startswith((b"content-length", b"transfer-encoding")) for h in headers):
            head += b"Content-Length: %d\r\n" % len(body)
        writer.write(head + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("seed", range(0, 600, 100))
async def test_malformed_answers_give_a_page_or_a_fetch_error(port: int, seed: int) -> None:
    async with Fetcher("fuzz", deadline=2.0, timeout=1.0, max_retries=1, backoff_base=0.001, min_host_interval=0.0,
                       max_bytes=100_000) as fetcher:
        for case in range(seed, seed + 100):
            fetcher.host_not_before.clear()  # a Retry-After from one case must not hold the next
            with fuzz_case(f"GET /{case} (the answer is seeded by its path)"), contextlib.suppress(FetchError):
                await fetcher.fetch(Source(name="fuzz", kind="feed", url=f"http://127.0.0.1:{port}/{case}"))
