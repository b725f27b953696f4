"""Multi-page sources: which page comes next (pure), and fetching a whole listing politely.

    hf_api      /api/daily_papers?…&limit=L&p=N   next: p=N+1, same limit; last when a page has fewer than L entries
    arxiv_list  /list/<cat>/recent?skip=S&show=K   next: skip=S+count, show=K; last when "Total of N entries" is reached
    arxiv_api   /api/query?…&start=S&max_results=K next: start=S+K; last at opensearch totalResults (or an empty page)

Other kinds are one page (`bot.sources.kinds` says which rule a kind uses). Every kind stops at
`source.options.max_pages` (default 5, the config's default),
so a listing that never ends costs a bounded number of requests per refresh. Next-page URLs change only the
paging parameters; every other query parameter is kept byte for byte, so a query the user wrote stays theirs.

Hugging Face assumptions: without `limit`, `/api/daily_papers` answers up to 50 entries per page (its default);
a `limit` above 100 gets an error response from HF, so it is clamped to 100 and the rest is fetched by paging
(the user gets what they asked for, bounded by `max_pages`, instead of a source that fails on every refresh).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlsplit, urlunsplit

from bot.models import Item, Page, Source
from bot.sources.arxiv import api_span, list_span
from bot.sources.fetch import Fetcher
from bot.sources.hf import api_entry_count
from bot.sources.kinds import source_kind
from bot.sources.parse import parse_page

log = logging.getLogger(__name__)

HF_DEFAULT_LIMIT = 50
HF_MAX_LIMIT = 100
ARXIV_API_DEFAULT_MAX_RESULTS = 10  # the export API's documented default

__all__ = ["fetch_all_pages", "first_page_url", "next_page_url", "with_params"]


def first_page_url(source: Source) -> str:
    """The URL page 1 is fetched from: the configured one, unless the kind's rule says otherwise."""
    return source_kind(source.kind).first_url(source)


def first_hf_api(source: Source) -> str:
    """An hf_api `limit` above 100 becomes 100 (HF refuses more); paging fetches the rest."""
    limit = _int_param(source.url, "limit")
    if limit is not None and limit > HF_MAX_LIMIT:
        log.warning("source %s: limit=%d is above what Hugging Face accepts; fetching %d per page instead",
                    source.name, limit, HF_MAX_LIMIT)
        return with_params(source.url, {"limit": HF_MAX_LIMIT})
    return source.url


def next_page_url(source: Source, page: Page, items: list[Item], number: int) -> str | None:
    """The URL of the page after `page` (the `number`-th fetched, from 1), or None when `page` was the last.

    Only facts on the page and in its URL decide (totals, ranges, entry counts), never `items` alone where the
    page says more: parsed items can be fewer than the entries (announce-type filter, malformed entries).
    """
    if number >= source.options.max_pages:
        return None
    return source_kind(source.kind).page_after(page, items)


def next_hf_api(page: Page, items: list[Item]) -> str | None:
    entries = api_entry_count(page)
    count = len(items) if entries is None else entries
    limit = _int_param(page.url, "limit")
    size = HF_DEFAULT_LIMIT if limit is None or limit < 1 else min(limit, HF_MAX_LIMIT)
    if count < size:
        return None
    params: dict[str, int] = {"p": (_int_param(page.url, "p") or 0) + 1}
    if limit is not None and limit > HF_MAX_LIMIT:
        params["limit"] = HF_MAX_LIMIT
    return with_params(page.url, params)


def next_arxiv_list(page: Page, items: list[Item]) -> str | None:
    span = list_span(page)
    if span is None or span.count == 0:
        return None  # no "Total of N entries": a listing that fits on one page
    end = span.start + span.count
    if end >= span.total:
        return None
    show = _int_param(page.url, "show") or span.per_page or span.count
    return with_params(page.url, {"skip": end, "show": show})


def next_arxiv_api(page: Page, items: list[Item]) -> str | None:
    span = api_span(page)
    if span is None or span.count == 0:
        return None  # an empty page ends paging even where totalResults promises more (the API does that)
    per_page = span.per_page or _int_param(page.url, "max_results") or ARXIV_API_DEFAULT_MAX_RESULTS
    start = span.start + per_page
    if start >= span.total:
        return None
    return with_params(page.url, {"start": start, "max_results": per_page})


def with_params(url: str, params: Mapping[str, int | str]) -> str:
    """`url` with these query parameters set (replaced in place, else appended); other parameters untouched."""
    parts = urlsplit(url)
    pending = {name: quote_plus(str(value)) for name, value in params.items()}
    pairs: list[str] = []
    for pair in parts.query.split("&") if parts.query else []:
        name = unquote_plus(pair.split("=", 1)[0])
        if name not in params:
            pairs.append(pair)
        elif name in pending:
            pairs.append(f"{quote_plus(name)}={pending.pop(name)}")
    pairs += [f"{quote_plus(name)}={value}" for name, value in pending.items()]
    return urlunsplit(parts._replace(query="&".join(pairs)))


def _int_param(url: str, name: str) -> int | None:
    value = next((v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k == name), None)
    return int(value) if value is not None and value.strip().isdigit() else None


async def fetch_all_pages(fetcher: Fetcher, source: Source, *, etag: str | None,
                          last_modified: str | None) -> tuple[Page, list[Item]] | None:
    """Page 1 (conditional) and the pages after it: (page 1, all items deduplicated by id, first kept).

    None when page 1 is not modified: the listing is taken as unchanged, nothing else is fetched. Later pages
    are fetched unconditionally, one after another (the fetcher spaces requests to one host).

    A later page that fails raises its FetchError / ParseError, and the pipeline records the source as failed and
    stores nothing from this refresh. Keeping the pages that worked would store page 1's ETag, so the next
    refresh would get a 304 and never fetch the missing pages again; failing keeps them due and the error visible.

    Paging also stops when a page brings only items already seen (a server ignoring the paging parameter) or
    when the next URL was already fetched, so a confused site never costs more than one wasted request.
    """
    first = await fetcher.fetch(replace(source, url=first_page_url(source)), etag=etag, last_modified=last_modified)
    if first is None:
        return None
    page_items = parse_page(source.kind, first, source)
    items = list(page_items)
    seen = {item.id for item in items}
    fetched = {first.url}
    page, number = first, 1
    while (url := next_page_url(source, page, page_items, number)) is not None and url not in fetched:
        next_page = await fetcher.fetch(replace(source, url=url))
        if next_page is None:  # a 304 to a request without validators: nothing to read, nothing to go on from
            log.warning("source %s: page %d (%s) answered 304 to an unconditional request", source.name,
                        number + 1, url)
            break
        page, number = next_page, number + 1
        fetched |= {url, page.url}
        page_items = parse_page(source.kind, page, source)
        fresh = [item for item in page_items if item.id not in seen]
        items += fresh
        seen.update(item.id for item in fresh)
        log.debug("source %s: page %d has %d items, %d new", source.name, number, len(page_items), len(fresh))
        if page_items and not fresh:
            break
    return first, items
