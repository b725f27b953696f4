"""Multi-page sources: `next_page_url` as tables of cases, `fetch_all_pages` against a local HTTP server.

Pages are the real copies in tests/data/fixtures, or copies of them cut down in the test (a section removed,
the paging block's range or the opensearch numbers changed) so that a page 2 exists to serve.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import FetchError, ParseError
from bot.models import Item, Page, Source, SourceOptions
from bot.sources.fetch import Fetcher
from bot.sources.paging import fetch_all_pages, first_page_url, next_page_url, with_params
from bot.sources.parse import parse_page
from tests.support.localhttp import LocalHTTPServer, Reply

FIXTURES = Path(__file__).parent / "data" / "fixtures"
HF_API = "hf_api_daily_papers_2026-06-12.json"  # 30 entries, the full answer of /api/daily_papers
ARXIV_LIST = "arxiv_list_cs.CL_recent_2026-07-28.html"  # entries 1-50 of 408: 47 on Mon, first 3 of 110 on Fri
ARXIV_API_5 = "arxiv_api_query_all-transformer_cat-cs.LG_2026-06-14.atom.xml"  # 5 of 28946
ARXIV_API_3 = "arxiv_api_query_cat-cs.CL_max3_2026-09-24.atom.xml"  # 3 of 119894
ARXIV_API_LEGACY = "arxiv_api_query_id_list-1601.00001_2020-09-04_legacy-format.atom.xml"  # 1 of 1
FETCHED_AT = datetime(2026, 7, 28, 12, tzinfo=UTC)

HF = "https://huggingface.co/api/daily_papers"
LIST = "https://arxiv.org/list/cs.CL/recent"
API = "http://export.arxiv.org/api/query"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def hf_entries(start: int, stop: int) -> bytes:
    """Real entries of the HF API copy, as the API would answer one page of them."""
    return json.dumps(json.loads(fixture(HF_API))[start:stop]).encode()


def list_page(*, days: slice, first: int, last: int, total: int) -> bytes:
    """The real /recent page keeping only some day sections, its paging block saying "Total of `total` entries
    : `first`-`last`" (both copies of the block, as arXiv prints it above and below the list)."""
    html = fixture(ARXIV_LIST).decode()
    sections = re.findall(r"<dl id='articles'>.*?</dl>", html, flags=re.DOTALL)
    for dropped in set(sections) - set(sections[days]):
        html = html.replace(dropped, "")
    return re.sub(r"Total of \d+ entries :\s*<span>\d+-\d+</span>",
                  f"Total of {total} entries : <span>{first}-{last}</span>", html).encode()


def api_page(name: str, **numbers: int) -> bytes:
    """A real API answer with some opensearch numbers (totalResults, startIndex, itemsPerPage) changed."""
    xml = fixture(name).decode()
    for tag, value in numbers.items():
        xml = re.sub(rf"(<opensearch:{tag}[^>]*>)\d+(</opensearch:{tag}>)", rf"\g<1>{value}\g<2>", xml)
    return xml.encode()


def source(kind: str, url: str = "https://example.org/", **options: Any) -> Source:
    return Source(name="s", kind=kind, url=url, options=SourceOptions(**options))


def page_at(url: str, body: bytes) -> Page:
    return Page(url=url, body=body, fetched_at=FETCHED_AT)


def next_of(kind: str, url: str, body: bytes, number: int = 1, items: list[Item] | None = None,
            **options: Any) -> str | None:
    src, page = source(kind, url, **options), page_at(url, body)
    return next_page_url(src, page, parse_page(kind, page, src) if items is None else items, number)


# --- next_page_url: hf_api ----------------------------------------------------------------------------------

HF_CASES = [
    # (configured / fetched URL, body, page number, options, expected next URL)
    pytest.param(f"{HF}?date=2026-06-12&limit=30", hf_entries(0, 30), 1, {},
                 f"{HF}?date=2026-06-12&limit=30&p=1", id="full-page-appends-p"),
    pytest.param(f"{HF}?date=2026-06-12&p=2&limit=30", hf_entries(0, 30), 3, {},
                 f"{HF}?date=2026-06-12&p=3&limit=30", id="p-replaced-in-place"),
    pytest.param(f"{HF}?date=2026-06-12&limit=30", hf_entries(0, 29), 1, {}, None, id="short-page-is-last"),
    pytest.param(f"{HF}?date=2026-06-12&limit=30&p=1", b"[]", 2, {}, None, id="empty-page-is-last"),
    pytest.param(f"{HF}?date=2026-06-12", hf_entries(0, 30), 1, {}, None, id="no-limit-means-50-per-page"),
    pytest.param(HF, fixture(HF_API), 1, {}, None, id="real-answer-30-of-default-50"),
    pytest.param(f"{HF}?date=2026-06-12&limit=30", hf_entries(0, 30), 5, {}, None, id="default-max-pages-5"),
    pytest.param(f"{HF}?date=2026-06-12&limit=30", hf_entries(0, 30), 2, {"max_pages": 2}, None, id="max-pages"),
    pytest.param(f"{HF}?date=2026-06-12&limit=30", hf_entries(0, 30), 1, {"max_pages": 1}, None, id="one-page"),
    pytest.param(f"{HF}?limit=150", json.dumps(json.loads(fixture(HF_API)) * 4).encode(), 1, {},
                 f"{HF}?limit=100&p=1", id="limit-above-100-clamped"),
]


@pytest.mark.parametrize(("url", "body", "number", "options", "expected"), HF_CASES)
def test_next_page_hf_api(url: str, body: bytes, number: int, options: dict[str, Any], expected: str | None) -> None:
    assert next_of("hf_api", url, body, number, **options) == expected


def test_hf_api_page_size_counts_entries_not_parsed_items() -> None:
    """Items can be fewer than entries (a malformed entry is skipped); the page was still full."""
    url = f"{HF}?date=2026-06-12&limit=30"
    assert next_of("hf_api", url, hf_entries(0, 30), items=[]) == url + "&p=1"


@pytest.mark.parametrize(("url", "expected"), [
    (f"{HF}?date=2026-06-12&limit=500", f"{HF}?date=2026-06-12&limit=100"),
    (f"{HF}?limit=100&date=2026-06-12", f"{HF}?limit=100&date=2026-06-12"),
    (f"{HF}?date=2026-06-12", f"{HF}?date=2026-06-12"),
])
def test_first_page_clamps_hf_limit(url: str, expected: str) -> None:
    assert first_page_url(source("hf_api", url)) == expected


def test_first_page_leaves_other_kinds_alone() -> None:
    url = f"{API}?search_query=all:x&max_results=500"
    assert first_page_url(source("arxiv_api", url)) == url


# --- next_page_url: arxiv_list ------------------------------------------------------------------------------

LIST_CASES = [
    pytest.param(LIST, fixture(ARXIV_LIST), 1, {}, f"{LIST}?skip=50&show=50", id="real-page-1-of-408"),
    pytest.param(f"{LIST}?skip=0&show=50", fixture(ARXIV_LIST), 1, {}, f"{LIST}?skip=50&show=50",
                 id="skip-replaced-in-place"),
    pytest.param(f"{LIST}?show=50&skip=50", list_page(days=slice(1, 2), first=51, last=100, total=408), 2, {},
                 f"{LIST}?show=50&skip=100", id="middle-page"),
    pytest.param(f"{LIST}?skip=400&show=50", list_page(days=slice(1, 2), first=401, last=408, total=408), 2, {},
                 None, id="last-range-reached"),
    pytest.param(f"{LIST}?skip=0&show=25", list_page(days=slice(0, 1), first=1, last=25, total=408), 1, {},
                 f"{LIST}?skip=25&show=25", id="show-from-url-kept"),
    pytest.param(LIST, list_page(days=slice(0, 1), first=1, last=47, total=47), 1, {}, None, id="all-on-one-page"),
    pytest.param(LIST, fixture(ARXIV_LIST), 3, {"max_pages": 3}, None, id="max-pages"),
    # without "Total of N entries", a heading showing fewer than it has ("first 3 of 110") says there is more
    pytest.param(LIST, re.sub(rb"Total of \d+ entries", b"", fixture(ARXIV_LIST)), 1, {}, f"{LIST}?skip=50&show=50",
                 id="no-total-heading-says-more"),
    pytest.param(LIST, re.sub(rb"Total of \d+ entries", b"", list_page(days=slice(0, 1), first=1, last=47, total=47)),
                 1, {}, None, id="no-total-headings-complete"),
]


@pytest.mark.parametrize(("url", "body", "number", "options", "expected"), LIST_CASES)
def test_next_page_arxiv_list(url: str, body: bytes, number: int, options: dict[str, Any],
                              expected: str | None) -> None:
    assert next_of("arxiv_list", url, body, number, **options) == expected


def test_arxiv_list_paging_ignores_the_announce_type_filter() -> None:
    """A /new page whose entries were all filtered out (replacements) still has a next page if it says so."""
    assert next_of("arxiv_list", LIST, fixture(ARXIV_LIST), items=[]) == f"{LIST}?skip=50&show=50"


# --- next_page_url: arxiv_api -------------------------------------------------------------------------------

TRANSFORMER = f"{API}?search_query=all:transformer+AND+cat:cs.LG&max_results=5&id_list="
API_CASES = [
    pytest.param(f"{API}?search_query=cat:cs.CL&max_results=3", fixture(ARXIV_API_3), 1, {},
                 f"{API}?search_query=cat:cs.CL&max_results=3&start=3", id="start-appended"),
    pytest.param(TRANSFORMER, fixture(ARXIV_API_5), 1, {}, TRANSFORMER + "&start=5", id="query-kept-byte-for-byte"),
    pytest.param(f"{API}?search_query=cat:cs.CL&start=3&max_results=3", api_page(ARXIV_API_3, startIndex=3), 2, {},
                 f"{API}?search_query=cat:cs.CL&start=6&max_results=3", id="middle-page"),
    pytest.param(f"{API}?search_query=cat:cs.CL&start=3&max_results=3",
                 api_page(ARXIV_API_3, startIndex=3, totalResults=6), 2, {}, None, id="total-reached"),
    pytest.param(f"{API}?id_list=1601.00001", fixture(ARXIV_API_LEGACY), 1, {}, None, id="legacy-one-result"),
    pytest.param(f"{API}?search_query=cat:cs.CL&max_results=3",
                 re.sub(rb"<entry>.*</entry>", b"", fixture(ARXIV_API_3), flags=re.DOTALL), 1, {}, None,
                 id="empty-page-despite-total"),
    pytest.param(f"{API}?search_query=cat:cs.CL&max_results=3", fixture(ARXIV_API_3), 4, {"max_pages": 4}, None,
                 id="max-pages"),
]


@pytest.mark.parametrize(("url", "body", "number", "options", "expected"), API_CASES)
def test_next_page_arxiv_api(url: str, body: bytes, number: int, options: dict[str, Any],
                             expected: str | None) -> None:
    assert next_of("arxiv_api", url, body, number, **options) == expected


@pytest.mark.parametrize(("kind", "name"), [
    ("hf_papers", "hf_papers_daily_2024-08-01.html"),
    ("arxiv_feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
    ("feed", "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml"),
])
def test_kinds_without_paging(kind: str, name: str) -> None:
    assert next_of(kind, "https://example.org/list?p=0&skip=0", fixture(name)) is None


@pytest.mark.parametrize(("url", "params", "expected"), [
    ("https://h/x", {"p": 1}, "https://h/x?p=1"),
    ("https://h/x?a=%3A+b&p=0#frag", {"p": 1}, "https://h/x?a=%3A+b&p=1#frag"),
    ("https://h/x?p=0&p=5&q=a:b", {"p": 1}, "https://h/x?p=1&q=a:b"),
    ("https://h/x?flag&q=", {"skip": 50, "show": 50}, "https://h/x?flag&q=&skip=50&show=50"),
])
def test_with_params(url: str, params: dict[str, int], expected: str) -> None:
    assert with_params(url, params) == expected


# --- fetch_all_pages against a local server -----------------------------------------------------------------

@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(directory=FIXTURES) as running:
        yield running


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher("digestbot-test/1.0", timeout=5.0, deadline=5.0, max_retries=0,
                       min_host_interval=0.0) as running:
        yield running


def requested(server: LocalHTTPServer) -> list[str]:
    return [request.path for request in server.requests]


def ids_of(body: bytes, kind: str) -> list[str]:
    return [item.id for item in parse_page(kind, page_at("https://example.org/", body))]


async def test_hf_api_pages_until_a_short_page(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    base = "/api/daily_papers?date=2026-06-12&limit=2"
    server.route(base, Reply(200, hf_entries(0, 2)))
    server.route(base + "&p=1", Reply(200, hf_entries(2, 4)))
    server.route(base + "&p=2", Reply(200, hf_entries(4, 5)))
    result = await fetch_all_pages(fetcher, source("hf_api", server.url(base)), etag=None, last_modified=None)
    assert result is not None
    first, items = result
    assert requested(server) == [base, base + "&p=1", base + "&p=2"]
    assert first.url == server.url(base)
    assert [item.id for item in items] == ids_of(hf_entries(0, 5), "hf_api")


async def test_hf_api_empty_page_ends_and_max_pages_caps(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    base = "/api/daily_papers?limit=2&p=0"
    for p in range(6):
        server.route(f"/api/daily_papers?limit=2&p={p}", Reply(200, hf_entries(2 * p, 2 * p + 2)))
    capped = await fetch_all_pages(fetcher, source("hf_api", server.url(base), max_pages=3), etag=None,
                                   last_modified=None)
    assert capped is not None and len(capped[1]) == 6
    assert requested(server) == [f"/api/daily_papers?limit=2&p={p}" for p in range(3)]

    server.requests.clear()
    server.route("/api/daily_papers?limit=2&p=1", Reply(200, b"[]"))
    ended = await fetch_all_pages(fetcher, source("hf_api", server.url(base)), etag=None, last_modified=None)
    assert ended is not None and len(ended[1]) == 2
    assert requested(server) == ["/api/daily_papers?limit=2&p=0", "/api/daily_papers?limit=2&p=1"]


async def test_overlapping_pages_are_deduplicated(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    base = "/api/daily_papers?limit=2"
    server.route(base, Reply(200, hf_entries(0, 2)))
    server.route(base + "&p=1", Reply(200, hf_entries(1, 3)))  # the listing moved by one between the requests
    server.route(base + "&p=2", Reply(200, hf_entries(3, 4)))
    result = await fetch_all_pages(fetcher, source("hf_api", server.url(base)), etag=None, last_modified=None)
    assert result is not None
    assert [item.id for item in result[1]] == ids_of(hf_entries(0, 4), "hf_api")


async def test_a_server_ignoring_the_page_parameter_costs_one_request(server: LocalHTTPServer,
                                                                      fetcher: Fetcher) -> None:
    server.route("/api/daily_papers", Reply(200, hf_entries(0, 2)))  # every ?p= gets page 1 again
    result = await fetch_all_pages(fetcher, source("hf_api", server.url("/api/daily_papers?limit=2")), etag=None,
                                   last_modified=None)
    assert result is not None and len(result[1]) == 2
    assert requested(server) == ["/api/daily_papers?limit=2", "/api/daily_papers?limit=2&p=1"]


async def test_hf_api_limit_above_100_is_fetched_as_100(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/api/daily_papers?limit=250", Reply(400, b'{"error":"limit must be <= 100"}'))
    server.route("/api/daily_papers?limit=100", Reply(200, hf_entries(0, 30)))
    result = await fetch_all_pages(fetcher, source("hf_api", server.url("/api/daily_papers?limit=250")), etag=None,
                                   last_modified=None)
    assert result is not None and len(result[1]) == 30
    assert requested(server) == ["/api/daily_papers?limit=100"]


async def test_not_modified_page_1_is_none(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    src = source("hf_api", server.url("/" + HF_API))  # served as a file: ETag and Last-Modified, then 304
    result = await fetch_all_pages(fetcher, src, etag=None, last_modified=None)
    assert result is not None
    first, items = result
    assert len(items) == 30 and first.etag and first.last_modified
    assert await fetch_all_pages(fetcher, src, etag=first.etag, last_modified=first.last_modified) is None
    assert len(server.requests) == 2
    assert server.requests[1].headers["if-none-match"] == first.etag


async def test_later_pages_are_fetched_unconditionally(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/api/daily_papers?limit=2", Reply(200, hf_entries(0, 2), {"ETag": '"v1"'}))
    server.route("/api/daily_papers?limit=2&p=1", Reply(200, hf_entries(2, 3)))
    result = await fetch_all_pages(fetcher, source("hf_api", server.url("/api/daily_papers?limit=2")), etag='"v0"',
                                   last_modified="Mon, 27 Jul 2026 00:00:00 GMT")
    assert result is not None and result[0].etag == '"v1"' and len(result[1]) == 3
    assert "if-none-match" in server.requests[0].headers
    assert not {"if-none-match", "if-modified-since"} & set(server.requests[1].headers)


@pytest.mark.parametrize(("reply", "error"), [
    (Reply(503), FetchError),
    (Reply(200, b"<html>Service temporarily overloaded</html>"), ParseError),
])
async def test_a_failing_later_page_fails_the_refresh(server: LocalHTTPServer, fetcher: Fetcher, reply: Reply,
                                                      error: type[Exception]) -> None:
    server.route("/api/daily_papers?limit=2", Reply(200, hf_entries(0, 2)))
    server.route("/api/daily_papers?limit=2&p=1", reply)
    with pytest.raises(error, match=r"p=1"):
        await fetch_all_pages(fetcher, source("hf_api", server.url("/api/daily_papers?limit=2")), etag=None,
                              last_modified=None)


async def test_arxiv_list_follows_the_paging_block(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    mon = list_page(days=slice(0, 1), first=1, last=47, total=50)
    fri = list_page(days=slice(1, 2), first=48, last=50, total=50)
    server.route("/list/cs.CL/recent", Reply(200, mon))
    server.route("/list/cs.CL/recent?skip=47&show=50", Reply(200, fri))
    result = await fetch_all_pages(fetcher, source("arxiv_list", server.url("/list/cs.CL/recent")), etag=None,
                                   last_modified=None)
    assert result is not None
    assert requested(server) == ["/list/cs.CL/recent", "/list/cs.CL/recent?skip=47&show=50"]
    assert [item.id for item in result[1]] == ids_of(mon, "arxiv_list") + ids_of(fri, "arxiv_list")
    assert len(result[1]) == 50


async def test_arxiv_list_real_page_then_max_pages(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    server.route("/list/cs.CL/recent", Reply(200, fixture(ARXIV_LIST)))
    server.route("/list/cs.CL/recent?skip=50&show=50", Reply(200, list_page(days=slice(1, 2), first=51, last=100,
                                                                             total=408)))
    result = await fetch_all_pages(fetcher, source("arxiv_list", server.url("/list/cs.CL/recent"), max_pages=2),
                                   etag=None, last_modified=None)
    assert result is not None
    assert requested(server) == ["/list/cs.CL/recent", "/list/cs.CL/recent?skip=50&show=50"]
    assert [item.id for item in result[1]] == ids_of(fixture(ARXIV_LIST), "arxiv_list")  # page 2 repeated Fri


async def test_arxiv_api_pages_to_total_results(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    query = "/api/query?search_query=all:transformer+AND+cat:cs.LG&max_results=5"
    last = api_page(ARXIV_API_3, startIndex=5, itemsPerPage=5, totalResults=8)
    server.route(query, Reply(200, fixture(ARXIV_API_5)))
    server.route(query + "&start=5", Reply(200, last))
    result = await fetch_all_pages(fetcher, source("arxiv_api", server.url(query)), etag=None, last_modified=None)
    assert result is not None
    assert requested(server) == [query, query + "&start=5"]
    assert [item.id for item in result[1]] == ids_of(fixture(ARXIV_API_5), "arxiv_api") + ids_of(last, "arxiv_api")
    assert len(result[1]) == 8


async def test_single_page_kinds_fetch_once(server: LocalHTTPServer, fetcher: Fetcher) -> None:
    name = "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"
    result = await fetch_all_pages(fetcher, source("arxiv_feed", server.url("/" + name)), etag=None,
                                   last_modified=None)
    assert result is not None and result[1]
    assert len(server.requests) == 1
