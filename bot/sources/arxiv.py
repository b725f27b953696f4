"""arXiv: the announcement feeds (`arxiv_feed`), the export API (`arxiv_api`), and paging spans for the API and the
/list pages (whose parser, `arxiv_list`, is `bot.sources.arxiv_list`).

Every item has `id` `arxiv:<id without version>` and `url` `https://arxiv.org/abs/<id>`. Announcement
feeds and /new list pages set `section` to the announce type ("new", "cross", "replace", "replace-cross");
the source option `announce_types` (default {"new", "cross"}, or "all") chooses which are kept, so a
revised old paper is not news by default. `published` is the announcement date from the feed or page
(midnight in New York, where arXiv announces), or the API's first-version date.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from selectolax.lexbor import LexborHTMLParser

from bot.errors import ParseError
from bot.models import Item, Page, SourceOptions
from bot.sources.feeds import ARXIV, ATOM, Entry, parse_xml, read_feed
from bot.sources.ids import ARXIV_ABS, arxiv_id, collapse, date_reader

ANNOUNCE_TYPES = frozenset({"new", "cross", "replace", "replace-cross"})
_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.IGNORECASE)


def is_kept(item: Item, wanted: frozenset[str] | None) -> bool:
    """Whether `announce_types` keeps the item (one without a section always is)."""
    return wanted is None or item.section is None or item.section in wanted


def parse_arxiv_feed(page: Page, options: SourceOptions) -> list[Item]:
    """rss.arxiv.org RSS 2.0 or Atom. A channel without items (weekends, holidays) is a quiet day: []."""
    entries = read_feed(page)
    if not entries:
        return []
    read_date = date_reader()
    items = [item for entry in entries if (item := _announcement_item(entry, read_date)) is not None]
    if not items:
        raise ParseError(f"{page.url}: {len(entries)} entries but no arXiv ids in them; layout changed?")
    return [item for item in items if is_kept(item, options.announce_types)]


def _announcement_item(entry: Entry, read_date: Callable[[str], datetime | None]) -> Item | None:
    paper_id = arxiv_id(entry.guid) or arxiv_id(entry.link)
    if paper_id is None or not entry.title:
        return None
    prefix = _PREFIX.match(entry.summary)
    section = collapse(entry.element.findtext(f"{ARXIV}announce_type")) or (prefix.group("type") if prefix else "")
    # one `dc:creator` lists them all, comma-separated; the names are collapsed already, so strip is enough
    authors = tuple(filter(None, map(str.strip, ",".join(entry.authors).split(","))))
    return Item(
        id=f"arxiv:{paper_id}",
        title=entry.title,
        url=ARXIV_ABS + paper_id,
        abstract=collapse(entry.summary[prefix.end():] if prefix else entry.summary),
        authors=authors,
        published=read_date(entry.published),
        section=section.lower() or None,
    )


def parse_arxiv_api(page: Page, options: SourceOptions) -> list[Item]:
    """export.arxiv.org/api/query Atom, current and legacy (pre-2025) formats. No entries: no results, []."""
    entries = read_feed(page)
    read_date = date_reader()
    items: list[Item] = []
    for entry in entries:
        if "/api/errors" in entry.guid:  # the API reports a bad query as a single entry
            raise ParseError(f"{page.url}: arXiv API error: {collapse(entry.summary)}",
                             hint="Check the query parameters in the source URL.")
        paper_id = arxiv_id(entry.guid) or arxiv_id(entry.link)
        if paper_id is None or not entry.title:
            continue
        items.append(Item(
            id=f"arxiv:{paper_id}",
            title=entry.title,
            url=ARXIV_ABS + paper_id,
            abstract=collapse(entry.summary),
            authors=entry.authors,
            published=read_date(entry.published),
        ))
    if entries and not items:
        raise ParseError(f"{page.url}: {len(entries)} entries but no arXiv ids in them; layout changed?")
    return items


OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
_TOTAL = re.compile(r"Total of\s+(\d+)\s+entries", re.IGNORECASE)
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
# a /list section heading: "Mon, 27 Jul 2026 (showing 47 of 47 entries )", "… (showing first 3 of 110 entries )"
SHOWING = re.compile(r"\(showing (?:first )?(\d+) of (\d+) entries", re.IGNORECASE)
_PER_PAGE = re.compile(r"Showing up to\s+(\d+)\s+entries per page", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Span:
    """Entries `start` .. `start + count - 1` (0-based) of a listing of `total`; `per_page` as the page says."""

    start: int
    count: int
    total: int
    per_page: int | None = None


def list_span(page: Page) -> Span | None:
    """A /list page's place in its listing: "Total of 408 entries : <span>1-50</span> …"; None if it doesn't say.

    The paging block counts entries before any announce-type filter, so paging never stops early because
    replacements were dropped. Without the current range, the URL's `skip=` and the `<dt>`s on the page stand in.
    Without the block, a section heading that shows fewer entries than it has ("showing first 3 of 110 entries")
    still says the listing goes on: the total is then at least the entries still owed to that section.
    """
    tree = LexborHTMLParser(page.text())
    paging = tree.css_first("div.paging")
    total = _TOTAL.search(collapse(paging.text()) if paging is not None else page.text())
    ranges = (_RANGE.match(collapse(span.text())) for span in paging.css("span")) if paging is not None else ()
    current = next((match for match in ranges if match), None)
    if current is not None:
        start, count = int(current.group(1)) - 1, int(current.group(2)) - int(current.group(1)) + 1
    else:
        skip = parse_qs(urlsplit(page.url).query).get("skip", ["0"])[0]
        start, count = int(skip) if skip.isdigit() else 0, len(tree.css("dl#articles dt"))
    more = tree.css_first("div.morefewer")
    per_page = _PER_PAGE.search(collapse(more.text())) if more is not None else None
    if total is not None:
        owed = int(total.group(1))
    else:
        shown = [SHOWING.search(collapse(h3.text())) for h3 in tree.css("dl#articles h3")]
        missing = sum(int(m.group(2)) - int(m.group(1)) for m in shown if m is not None)
        if not missing:
            return None
        owed = start + count + missing
    return Span(start, count, owed, int(per_page.group(1)) if per_page else None)


def api_span(page: Page) -> Span | None:
    """The API answer's opensearch `startIndex`, entry count, `totalResults` and `itemsPerPage`; None if absent."""
    root = parse_xml(page)
    total = _int_text(root.findtext(f"{OPENSEARCH}totalResults"))
    if total is None:
        return None
    return Span(start=_int_text(root.findtext(f"{OPENSEARCH}startIndex")) or 0,
                count=len(root.findall(f"{ATOM}entry")), total=total,
                per_page=_int_text(root.findtext(f"{OPENSEARCH}itemsPerPage")))


def _int_text(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None
