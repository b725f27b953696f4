"""Polite HTTP fetching: one `Fetcher` (one shared `httpx.AsyncClient`) turns a `Source` into a `Page`.

    fetch(source) ── file:// or a path ─► read the file (mtime as Last-Modified)
        └─ http(s) ─► per-host turn (semaphore, min spacing, Retry-After "not before")
                     ─► GET (conditional) ─► 3xx: follow ≤ 5, http(s) only
                                           ─► 304: None;  2xx: body capped on decoded bytes
                                           ─► 429/5xx/connect error/timeout: retry with backoff + jitter
                                           ─► other 4xx: FetchError at once

Everything runs under one total deadline per fetch. Every failure is a `FetchError` naming the URL with a
hint. `host_not_before` maps "host[:port]" to the UTC time before which that host must not be asked again
(from Retry-After); the caller may persist it and put it back into a new Fetcher.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from types import TracebackType
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import httpx

from bot.errors import FetchError
from bot.models import Page, Source
from bot.sources.ids import parse_date, url_problem

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
# The longest wait a Retry-After is honoured for: a buggy or hostile "wait 30 years" (or a date in 9999) must not
# silence a source for good. After a week the source is simply asked again, and holds again if still told to.
MAX_RETRY_AFTER = 7 * 24 * 3600
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_HINT_URL = "Use an http(s):// URL with a host, a file:// URL or a local path."
_HINT_TRANSIENT = "The site did not answer properly; the source is retried on its next refresh."
_HINT_QUEUED = ("Many sources share this host and its spacing between requests; the source is tried again on its "
                "next refresh. Fewer sources on one host, or a longer `every`, avoid it.")
_HINT_SIZE = "The URL may point at the wrong thing (an archive, a video); raise the size cap only if it is right."
_HINT_STATUS = {
    401: "The site wants a login; digestbot can only read public pages.",
    403: "The site refuses this client (login required or bots blocked); check the URL and the user agent.",
    404: "The page is not there: check `url` in the [[sources]] entry.",
    410: "The page is gone for good: remove or replace the source.",
    429: "The site is rate-limiting us: make this source's `every` longer.",
}


@dataclass(frozen=True, slots=True)
class _Reply:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes = b""


async def is_internal_host(host: str) -> bool:
    """Whether `host` is, or resolves to, an address that is not public: loopback, private, link-local, or
    otherwise reserved. A name that does not resolve is not judged internal (its request fails anyway)."""
    try:
        addresses = {ipaddress.ip_address(host.strip("[]"))}
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return False
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found}
    return any(not address.is_global for address in addresses)


def _hostname(url: str) -> str:
    return urlsplit(url).hostname or ""


class Clock:
    """The fetcher's time: a monotonic clock for spacing and deadlines, the wall clock for Retry-After dates, and
    the sleep that waits. Tests inject one that records the waits and moves time on at once."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Fetcher:
    """Fetches sources politely; use as `async with Fetcher(ua) as fetcher: page = await fetcher.fetch(src)`."""

    def __init__(self, user_agent: str, *, timeout: float = 20.0, deadline: float = 60.0,
                 max_bytes: int = 20_000_000, max_retries: int = 3, per_host_concurrency: int = 2,
                 min_host_interval: float = 1.0, backoff_base: float = 1.0,
                 transport: httpx.AsyncBaseTransport | None = None, rng: random.Random | None = None,
                 clock: Clock | None = None) -> None:
        self.clock = clock or Clock()  # every wait (spacing, backoff, Retry-After) and the times they compare
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.max_retries = max_retries
        self.per_host_concurrency = per_host_concurrency
        self.min_host_interval = min_host_interval
        self.backoff_base = backoff_base
        self._rng = rng or random.Random()  # the backoff's jitter; seed one for a reproducible schedule
        self.host_not_before: dict[str, datetime] = {}
        self._next_slot: dict[str, float] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self.is_internal: Callable[[str], Awaitable[bool]] = is_internal_host  # redirects may not lead there
        self._client = httpx.AsyncClient(
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,  # followed by hand: count, scheme check and politeness per hop
            transport=transport,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, source: Source, *, etag: str | None = None,
                    last_modified: str | None = None) -> Page | None:
        """The page at `source.url`, or None when the server (or file) says it is not modified."""
        url = source.url
        problem = url_problem(url)
        if problem is not None:
            raise FetchError(f"{url}: {problem}", hint=_HINT_URL)
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            headers = {"If-None-Match": etag} if etag else {}
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            try:
                async with asyncio.timeout(self.deadline):
                    return await self._fetch_http(url, headers, self.clock.monotonic() + self.deadline)
            except TimeoutError as exc:
                raise FetchError(f"{url}: no complete response within the {self.deadline:g} s deadline",
                                 hint=_HINT_TRANSIENT) from exc
        if scheme == "file":
            return await asyncio.to_thread(self._read_file, url, url2pathname(unquote(urlsplit(url).path)),
                                           last_modified)
        return await asyncio.to_thread(self._read_file, url, url, last_modified)  # a plain path

    async def _fetch_http(self, url: str, headers: dict[str, str], deadline_at: float) -> Page | None:
        """One fetch with retries; Retry-After waits happen in `_take_turn` through `host_not_before`."""
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                reply = await self._follow(url, headers, deadline_at)
            except _RETRYABLE as exc:
                if last:
                    raise FetchError(f"{url}: {_describe(exc)} after {attempts} attempts",
                                     hint=_HINT_TRANSIENT) from exc
                log.info("%s: %s, retrying", url, _describe(exc))
                await self._sleep_backoff(attempt, deadline_at)
                continue
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise FetchError(f"{url}: {_describe(exc)}", hint="Check the source URL in the config.") from exc
            if reply.status == 304:
                return None
            if 200 <= reply.status < 300:
                return _page(reply)
            if reply.status != 429 and reply.status < 500:
                raise FetchError(f"{reply.url}: HTTP {reply.status}", status=reply.status,
                                 hint=_HINT_STATUS.get(reply.status, "Check the source URL in the config."))
            retry_after, retry_at = _retry_after(reply.headers)
            if retry_after is not None:
                host = _host(reply.url)
                self.host_not_before[host] = retry_at or self.clock.now() + timedelta(seconds=retry_after)
                if self.clock.monotonic() + retry_after > deadline_at:
                    raise FetchError(f"{reply.url}: HTTP {reply.status}, Retry-After {retry_after:.0f} s: beyond this "
                                     "fetch's deadline, so the source waits until then", status=reply.status,
                                     retry_after=retry_after, retry_at=retry_at,
                                     hint=_HINT_STATUS.get(reply.status, _HINT_TRANSIENT))
            if last:
                raise FetchError(f"{reply.url}: HTTP {reply.status} after {attempts} attempts", status=reply.status,
                                 retry_after=retry_after, retry_at=retry_at,
                                 hint=_HINT_STATUS.get(reply.status, _HINT_TRANSIENT))
            log.info("%s: HTTP %s, retrying", reply.url, reply.status)
            if retry_after is None:
                await self._sleep_backoff(attempt, deadline_at)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _sleep_backoff(self, attempt: int, deadline_at: float) -> None:
        delay = backoff_delay(attempt, self.backoff_base, self._rng.uniform(0.5, 1.5))
        remaining = deadline_at - self.clock.monotonic()
        await self.clock.sleep(max(0.0, min(delay, remaining)))

    async def _follow(self, url: str, headers: dict[str, str], deadline_at: float) -> _Reply:
        """GET `url`, following at most MAX_REDIRECTS redirects, to http(s) URLs only, and never from a public
        address to this machine or a private network (a source must not make digestbot probe, say, its own
        database port); the configured URL itself may be local."""
        public_origin: bool | None = None
        for _ in range(MAX_REDIRECTS + 1):
            reply = await self._get(url, headers, deadline_at)
            location = reply.headers.get("location")
            if reply.status not in _REDIRECTS or not location:
                return reply
            target = urljoin(url, location.strip())  # httpx has checked that it is a valid URL
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise FetchError(f"{url}: redirect to a non-HTTP URL {target!r} refused",
                                 hint="Check the source URL; only http(s) redirects are followed.")
            if public_origin is None:
                public_origin = not await self.is_internal(_hostname(url))
            if public_origin and await self.is_internal(_hostname(target)):
                raise FetchError(f"{url}: redirect to an internal address ({_hostname(target)}) refused",
                                 hint="A public source may not lead digestbot to this machine or its private "
                                      "network; if that is really where the feed lives, configure that URL.")
            url = target
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects",
                         hint="The URL redirects in a loop or too often; put the final URL in the config.")

    async def _get(self, url: str, headers: dict[str, str], deadline_at: float) -> _Reply:
        """One request within this host's turn; the body is read only for a 2xx answer."""
        host = _host(url)
        semaphore = self._semaphores.setdefault(host, asyncio.Semaphore(self.per_host_concurrency))
        async with semaphore:
            await self._take_turn(host, url, deadline_at)
            async with self._client.stream("GET", url, headers=headers) as response:
                body = await self._read_capped(response, url) if 200 <= response.status_code < 300 else b""
                return _Reply(str(response.url), response.status_code, response.headers, body)

    async def _take_turn(self, host: str, url: str, deadline_at: float) -> None:
        """Wait for this host's Retry-After time and spacing; fail at once if that is past the deadline."""
        now = self.clock.monotonic()
        not_before = self.host_not_before.get(host)
        held = now  # when the site's Retry-After lets us ask again
        if not_before is not None:
            held += max(0.0, (not_before - self.clock.now()).total_seconds())
        if held > deadline_at:
            wait = held - now
            raise FetchError(f"{url}: the site asked us to wait {wait:.0f} s, beyond this fetch's deadline",
                             retry_after=wait, retry_at=not_before, held=True, hint=_HINT_STATUS[429])
        start = max(held, self._next_slot.get(host, now))
        if start > deadline_at:  # our own spacing, not the site: no hold on the source, just a later try
            raise FetchError(f"{url}: {start - now:.0f} s of requests to this host are queued ahead of this one, "
                             "beyond this fetch's deadline", hint=_HINT_QUEUED)
        self._next_slot[host] = start + max(self.min_host_interval, HOST_INTERVALS.get(host.split(":")[0], 0.0))
        if start > now:
            await self.clock.sleep(start - now)

    async def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        """The decoded body, stopping as soon as it passes max_bytes (so a gzip bomb never inflates fully)."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        inflater = _Inflater(encoding, url)
        declared = response.headers.get("content-length", "")
        if encoding == "identity" and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"{url}: body larger than {self.max_bytes} bytes ({declared} declared)", hint=_HINT_SIZE)
        body = bytearray()
        async for raw in response.aiter_raw():
            body += inflater.inflate(raw, self.max_bytes + 1 - len(body))
            if len(body) > self.max_bytes:
                raise FetchError(f"{url}: body larger than {self.max_bytes} bytes", hint=_HINT_SIZE)
        return bytes(body)

    def _read_file(self, shown: str, path: str, last_modified: str | None) -> Page | None:
        """A local file as a Page: what the demo and `digestbot parse FILE` read."""
        try:
            stat = os.stat(path)
            mtime = formatdate(stat.st_mtime, usegmt=True)
            if last_modified == mtime:
                return None
            if stat.st_size > self.max_bytes:
                raise FetchError(f"{shown}: file larger than {self.max_bytes} bytes", hint=_HINT_SIZE)
            with open(path, "rb") as handle:
                body = handle.read()
        except OSError as exc:
            raise FetchError(f"{shown}: cannot read the file ({exc.strerror or exc})",
                             hint="Check the path; a relative path is read from the working directory.") from exc
        return Page(url=shown, body=body, fetched_at=datetime.now(UTC), last_modified=mtime)


class _Inflater:
    """Content-Encoding decoding with an output limit per call (zlib `max_length`)."""

    def __init__(self, encoding: str, url: str) -> None:
        if encoding in ("gzip", "x-gzip"):
            self._wbits: int | None = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS
        elif encoding in ("identity", ""):
            self._wbits = None
        else:
            raise FetchError(f"{url}: unsupported Content-Encoding {encoding!r}",
                             hint="The server ignored our Accept-Encoding (gzip, deflate).")
        self._url = url
        self._zlib = zlib.decompressobj(self._wbits) if self._wbits is not None else None

    def _zlib_wbits(self) -> int:
        return self._wbits if self._wbits is not None else zlib.MAX_WBITS

    def inflate(self, data: bytes, limit: int) -> bytes:
        if self._zlib is None:
            return data
        try:
            out = self._zlib.decompress(data, limit)
            if self._zlib.eof and self._zlib.unused_data and len(out) < limit:  # concatenated gzip members
                rest = self._zlib.unused_data
                self._zlib = zlib.decompressobj(self._zlib_wbits())
                out += self.inflate(rest, limit - len(out))
        except zlib.error as exc:
            raise FetchError(f"{self._url}: corrupt compressed body ({exc})", hint=_HINT_TRANSIENT) from exc
        return out


def _page(reply: _Reply) -> Page:
    return Page(
        url=reply.url,
        body=reply.body,
        fetched_at=datetime.now(UTC),
        content_type=reply.headers.get("content-type", ""),
        status=reply.status,
        etag=reply.headers.get("etag"),
        last_modified=reply.headers.get("last-modified"),
    )


# Sites that publish a slower pace for robots than our default spacing (arXiv's API asks for 3 s between calls).
HOST_INTERVALS = {"export.arxiv.org": 3.0, "arxiv.org": 1.0}


def backoff_delay(attempt: int, base: float, jitter: float) -> float:
    """Seconds to wait before retry number `attempt + 1`: `base` doubled per attempt, times a random `jitter` in
    [0.5, 1.5) so that sources failing together (one host down) do not all come back at the same moment; a minute
    at most."""
    return min(60.0, base * 2.0**attempt * jitter)


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()


def _retry_after(headers: httpx.Headers) -> tuple[float | None, datetime | None]:
    """Retry-After as seconds from now, and as a time where the header gives an HTTP date; (None, None) when it
    is absent or unreadable."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None, None
    if value.isascii() and value.isdigit():
        return float(min(int(value[:12]), MAX_RETRY_AFTER)), None
    when = parse_date(value)  # None when unreadable, or out of any datetime's range
    if when is None:
        return None, None
    now = datetime.now(UTC)
    when = min(when, now + timedelta(seconds=MAX_RETRY_AFTER))
    return max(0.0, (when - now).total_seconds()), when


def _describe(exc: Exception) -> str:
    """A short human phrase for an httpx error (its own message is often empty)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})" if str(exc) else "cannot connect"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
