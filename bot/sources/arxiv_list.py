"""arXiv /list pages (`arxiv_list`): /list/<cat>/recent (one `dl#articles` per day) and /new (one per announce type).

Items as in `bot.sources.arxiv`: `arxiv:<id>`, the /abs URL, `section` from the section heading on /new pages,
`published` from the heading's date (midnight in New York, where arXiv announces; a heading without a year takes
the year that puts it closest before the fetch). A section is read with a few lexbor queries, not a few per
entry; each shortcut checks the layout it relies on and falls back to reading entry by entry.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import NamedTuple
from urllib.parse import urljoin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from selectolax.lexbor import LexborHTMLParser, LexborNode

from bot.errors import ParseError
from bot.models import Item, Page, SourceOptions
from bot.sources.arxiv import SHOWING, is_kept
from bot.sources.ids import ARXIV_ABS, ARXIV_ID_PATTERN, arxiv_id, collapse, names

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                        "dec"), start=1)}
_DAY = re.compile(r"(?:(?P<wd>[A-Za-z]{3})[a-z]*,?\s+)?(?P<day>\d{1,2})\s+(?P<mon>[A-Za-z]{3})[a-z]*\.?"
                  r"(?:\s+(?P<year>\d{4}|\d{2})\b)?")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SECTIONS = (("new submission", "new"), ("cross", "cross"), ("replacement", "replace"))
_ENTRY_PARTS = "div.list-title, div.list-authors a, p.mathjax"  # only `a` matches the authors' selector
_SECTION_PARTS = "dd, dd div.list-title, dd div.list-authors a, dd p.mathjax"


def _new_york() -> tzinfo:
    try:
        return ZoneInfo("America/New_York")
    except ZoneInfoNotFoundError:  # no tz database installed: UTC is a day-accurate stand-in
        return UTC


def parse_arxiv_list(page: Page, options: SourceOptions) -> list[Item]:
    """arxiv.org/list/<cat>/recent (one `dl#articles` per day) or /new (one per announce type)."""
    tree = LexborHTMLParser(page.body)  # lexbor decodes the UTF-8 itself, as `Page.text` would
    sections = tree.css("dl#articles")
    if not sections:
        if _says_empty(tree, _EMPTY_PAGE):
            return []
        raise ParseError(f"{page.url}: no dl#articles section found; layout changed?")
    if not page.body[-256:].rstrip().lower().endswith(b"</html>"):  # the tail only: no copy of the whole page
        raise ParseError(f"{page.url}: the page stops before its end (no closing </html>); truncated page?",
                         hint=_HINT_TRUNCATED)
    groups = [group for dl in sections for group in _groups(dl)]
    days = [_heading_day(group.heading, page.fetched_at) for group in groups]
    page_day = _page_day(tree, page.fetched_at) if None in days else None
    items: list[Item] = []
    said_empty = 0
    for group, day in zip(groups, days, strict=True):
        if not group.dts and group.says_empty:
            said_empty += 1
            continue
        _check_complete(page, group.heading, len(group.dts))
        items += _list_items(group, day or page_day)
    if not items:
        if groups and said_empty == len(groups):
            return []
        raise ParseError(f"{page.url}: {len(groups)} article sections but no entries read; layout changed?")
    return [item for item in items if is_kept(item, options.announce_types)]


_HINT_TRUNCATED = "The page arrived incomplete; the source is retried on its next refresh."
# What arXiv's list templates (arxiv-browse, `list/new.html` and `list_macros.html`) print instead of entries: a /new
# page whose sections are all empty, and an empty section. "No new submissions" is older wording, kept in case.
_EMPTY_PAGE = ("no updates today", "no new submissions")
_EMPTY_SECTION = ("no updates for this time period",)


def _says_empty(node: LexborHTMLParser | LexborNode, sentences: tuple[str, ...]) -> bool:
    """Whether a paragraph of `node` says it has nothing to list (so an empty page is a quiet day, not a broken one).
    Only a `p` counts: the same words in a script, a comment or an entry's title do not."""
    return any(_is_saying(p, sentences) for p in node.css("p"))


def _is_saying(paragraph: LexborNode, sentences: tuple[str, ...]) -> bool:
    return collapse(paragraph.text()).lower().startswith(sentences)


def _check_complete(page: Page, heading: str, entries: int) -> None:
    """A section holds as many entries as its heading says it shows: fewer means the page was cut short (a proxy's
    partial answer served as a whole 200), and paging on from it would skip the rest for good."""
    showing = SHOWING.search(heading)
    if showing is not None and entries < int(showing.group(1)):
        raise ParseError(f"{page.url}: section {heading!r} has {entries} of the {showing.group(1)} entries it "
                         "announces; truncated page? layout changed?", hint=_HINT_TRUNCATED)


def _page_day(tree: LexborHTMLParser, fetched_at: datetime) -> datetime | None:
    """The /new page says "Showing new listings for Tuesday, 28 July 2026" above its sections."""
    for heading in tree.css("h3"):
        text = collapse(heading.text())
        if text.lower().startswith("showing new listings for"):
            return _heading_day(text, fetched_at)
    return None


def _heading_section(heading: str) -> str | None:
    lowered = heading.lower()
    return next((section for marker, section in _SECTIONS if lowered.startswith(marker)), None)


def _heading_day(heading: str, fetched_at: datetime) -> datetime | None:
    """A heading date ("Mon, 27 Jul 2026", "Tuesday, 28 July 2026", "Mon, 27 Jul") at midnight New York.

    Without a year, the year is the one that puts the date closest before the fetch (a December listing
    fetched in January is last year's), preferring years where the printed weekday matches.
    """
    match = _DAY.search(heading)
    month = _MONTHS.get(match.group("mon").lower()) if match else None
    if match is None or month is None:
        return None
    day = int(match.group("day"))
    if match.group("year"):
        year = int(match.group("year"))
        years = [year + 2000 if year < 100 else year]
    else:
        years = [fetched_at.year + 1, fetched_at.year, fetched_at.year - 1]
    candidates = []
    for year in years:
        try:
            candidates.append(datetime(year, month, day, tzinfo=_new_york()))
        except ValueError:
            continue
    if len(years) > 1:
        latest = fetched_at + timedelta(days=2)
        candidates = [c for c in candidates if c <= latest]
        weekday = (match.group("wd") or "").lower()
        matching = [c for c in candidates if _WEEKDAYS[c.weekday()] == weekday]
        candidates = matching or candidates
    return max(candidates).astimezone(UTC) if candidates else None


_ABS_PATH = re.compile(r"^(?:https?://(?:www\.)?(?:export\.)?arxiv\.org)?/abs/(.+)$")
# the plain link of a listing, `/abs/2607.22529`: its id is what `arxiv_id` reads from the absolute URL
_ABS_LINK = re.compile(rf"^(?:https?://(?:www\.)?(?:export\.)?arxiv\.org)?/abs/{ARXIV_ID_PATTERN}/?$")


def _abs_id(href: str) -> str | None:
    """The id in an `/abs/...` link (relative on listing pages); the general reader only for odd links."""
    match = _ABS_LINK.match(href)
    if match:
        return match.group("id")
    match = _ABS_PATH.match(href)
    if match:
        return arxiv_id(ARXIV_ABS + match.group(1))
    return arxiv_id(urljoin("https://arxiv.org/", href))


class _Group(NamedTuple):
    """One section's entries: its heading, each `dt` with its "Abstract" link, each `dd`'s title, authors and
    abstract, and whether it says it has none ("No updates for this time period.")."""

    heading: str
    dts: list[LexborNode]
    links: list[LexborNode | None]
    parts: list[tuple[str, tuple[str, ...], str]]
    says_empty: bool


def _groups(dl: LexborNode) -> list[_Group]:
    """The sections of one `dl#articles`: the whole `dl` under its heading, as arXiv writes it, or, in a `dl` that
    holds several headings, the entries after each (so a replacement is never read as a new submission)."""
    headings = dl.css("h3")
    if len(headings) > 1:
        return _groups_by_heading(dl)
    dts = dl.css("dt")
    says_empty = not dts and _says_empty(dl, _EMPTY_SECTION)
    return [_Group(collapse(headings[0].text()) if headings else "", dts, _abstract_links(dl, dts),
                   _section_parts(dl), says_empty)]


def _groups_by_heading(dl: LexborNode) -> list[_Group]:
    """The entries that follow each heading of `dl` in document order (entries before the first heading, if any,
    form a group without one)."""
    groups = [_Group("", [], [], [], False)]
    for node in dl.css("h3, dt, dd, p"):  # in document order
        group = groups[-1]
        if node.tag == "h3":
            groups.append(_Group(collapse(node.text()), [], [], [], False))
        elif node.tag == "dt":
            group.dts.append(node)
            group.links.append(node.css_first('a[title="Abstract"]'))
        elif node.tag == "dd":
            group.parts.append(_entry_parts(node.css(_ENTRY_PARTS)))
        elif not group.dts and _is_saying(node, _EMPTY_SECTION):
            groups[-1] = group._replace(says_empty=True)
    return groups if groups[0].dts or groups[0].parts else groups[1:]


def _list_items(group: _Group, day: datetime | None) -> list[Item]:
    section = _heading_section(group.heading)
    items: list[Item] = []
    for dt, link, (title, authors, abstract) in zip(group.dts, group.links, group.parts, strict=False):
        if link is None:
            link = dt.css_first('a[href*="/abs/"]')
        paper_id = _abs_id(link.attributes.get("href") or "") if link else None
        if paper_id is None or not title:
            continue
        entry_section = section
        if section == "replace" and "cross-list" in dt.text().lower():
            entry_section = "replace-cross"
        items.append(Item(
            id=f"arxiv:{paper_id}",
            title=title,
            url=ARXIV_ABS + paper_id,
            abstract=abstract,
            authors=authors,
            published=day,
            section=entry_section,
        ))
    return items


def _abstract_links(dl: LexborNode, dts: list[LexborNode]) -> list[LexborNode | None]:
    """Each entry's "Abstract" link (`dt.css_first('a[title="Abstract"]')` for every `dt`), from one query for the
    whole section when each `dt` holds exactly one, as a child; else asked `dt` by `dt`."""
    links = dl.css('dt a[title="Abstract"]')
    if len(links) == len(dts) and all(
            link.parent is not None and link.parent.mem_id == dt.mem_id for link, dt in zip(links, dts, strict=True)):
        return list(links)
    return [dt.css_first('a[title="Abstract"]') for dt in dts]


def _section_parts(dl: LexborNode) -> list[tuple[str, tuple[str, ...], str]]:
    """Title, authors and abstract of each `dd` of a section, in order."""
    groups = _parts_by_dd(dl)
    if groups is None:
        return [_entry_parts(dd.css(_ENTRY_PARTS)) for dd in dl.css("dd")]
    return [_entry_parts(nodes) for nodes in groups]


def _parts_by_dd(dl: LexborNode) -> list[list[LexborNode]] | None:
    """The `_ENTRY_PARTS` of every `dd` from one query for the whole section, or None to ask `dd` by `dd`.

    The query's matches come in document order; when the `dd`s are children of the section and the section is
    inside no `dd`, every part follows the `dd` holding it and precedes the next one.
    """
    ancestor = dl.parent
    while ancestor is not None:
        if ancestor.tag == "dd":
            return None
        ancestor = ancestor.parent
    section_id = dl.mem_id
    groups: list[list[LexborNode]] = []
    for node in dl.css(_SECTION_PARTS):
        if node.tag != "dd":
            groups[-1].append(node)
        elif (parent := node.parent) is not None and parent.mem_id == section_id:
            groups.append([])
        else:
            return None
    return groups


def _entry_parts(nodes: list[LexborNode]) -> tuple[str, tuple[str, ...], str]:
    """Title, authors and abstract of one listing entry from its `_ENTRY_PARTS` matches, in document order: the
    tag says which part each is, and the first title and abstract count (as with `css_first`). The text is read
    by lexbor's own `textContent` (`text_lexbor`, the same text as `text()`, in fewer steps)."""
    title: str | None = None
    abstract: str | None = None
    authors: list[str] = []
    for node in nodes:
        tag = node.tag
        if tag == "a":
            authors.append(node.text_lexbor())
        elif tag == "div":
            if title is None:
                title = collapse(node.text_lexbor())
        elif abstract is None:
            abstract = collapse(node.text_lexbor())
    if title and title.startswith("Title:"):
        title = title[6:].lstrip()
    return title or "", names(authors), abstract or ""
