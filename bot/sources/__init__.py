"""The sources stage: `fetch.Fetcher` gets a `Page`, `parse_page` turns it into `Item`s.

Parsing is pure and chosen by the source's `kind` from a registry of one function per kind. A parser
returns [] only when the page itself says it is empty (an arXiv feed on a weekend, a day with no HF
papers yet); anything else that yields nothing is a `ParseError` ("layout changed?"), so an empty digest
is never a silently broken scraper. `paging.fetch_all_pages` fetches and parses every page of a listing
(HF API pages, arXiv list and API result pages) up to the source's `max_pages`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.errors import ParseError
from bot.models import Item, Page, Source
from bot.sources.arxiv import parse_arxiv_api, parse_arxiv_feed
from bot.sources.arxiv_list import parse_arxiv_list
from bot.sources.feeds import parse_css, parse_feed
from bot.sources.hf import parse_hf_api, parse_hf_papers
from bot.sources.ids import dedupe
from bot.sources.paging import fetch_all_pages, next_page_url

Parser = Callable[[Page, Mapping[str, Any]], list[Item]]

PARSERS: dict[str, Parser] = {
    "hf_papers": parse_hf_papers,
    "hf_api": parse_hf_api,
    "arxiv_feed": parse_arxiv_feed,
    "arxiv_api": parse_arxiv_api,
    "feed": parse_feed,
    "arxiv_list": parse_arxiv_list,
    "css": parse_css,
}

KINDS: tuple[str, ...] = tuple(PARSERS)

__all__ = ["KINDS", "PARSERS", "fetch_all_pages", "next_page_url", "parse_page"]


def parse_page(kind: str, page: Page, source: Source | None = None) -> list[Item]:
    """Items on `page` as the parser for `kind` reads them, deduplicated by canonical id (first kept)."""
    parser = PARSERS.get(kind)
    if parser is None:
        raise ParseError(f"unknown source kind {kind!r}; expected one of: {', '.join(KINDS)}",
                         hint="Set `kind` in the [[sources]] entry to one of the kinds listed.")
    if not page.body or page.body.isspace():
        raise ParseError(f"{page.url}: empty body where a {kind} page was expected; layout changed?")
    options: Mapping[str, Any] = source.options if source is not None else {}
    try:
        items = parser(page, options)
    except ParseError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # A page shaped unlike anything the parser knows must mark the source failing, not crash the run.
        raise ParseError(f"{page.url}: cannot read this {kind} page ({exc!r}); layout changed?") from exc
    return dedupe(items)
